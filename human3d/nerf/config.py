"""NeRF training configuration (one dataclass, a docstring per field) and presets."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from human3d.errors import InvalidInputError

__all__ = ["NerfConfig", "PRESETS", "preset"]


@dataclass
class NerfConfig:
    # ----------------------------------------------------------------------------------- model
    model: str = "ngp"
    """``"ngp"``: hash-grid field + occupancy-grid ray marching; ``"nerf"``: positional-encoding MLPs with
    stratified + hierarchical sampling (Mildenhall et al. 2020)."""

    # ----------------------------------------------------------------------------------- data
    downscale: float = 1.0
    """Divide the image size by this factor when loading the dataset."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Background colour RGBA images are composited on for evaluation (nerf_synthetic protocol: white)."""
    random_background: bool = True
    """Train on a random background per ray when the images have alpha (teaches empty space to be transparent)."""
    near: float | None = None
    """Near plane along rays; None uses the dataset's."""
    far: float | None = None
    """Far plane along rays; None uses the dataset's."""
    aabb: tuple[float, ...] | None = None
    """Scene box (xmin, ymin, zmin, xmax, ymax, zmax) for the hash grid and occupancy grid; None: the dataset's."""

    # ----------------------------------------------------------------------------------- ngp field
    n_levels: int = 16
    """Hash-grid levels."""
    n_features_per_level: int = 2
    """Features per hash-grid level."""
    log2_table_size: int = 19
    """log2 of the hash-table size per level (levels that fit are stored densely)."""
    dense_max_entries: int | None = None
    """Levels with at most this many vertices are stored densely (grid_sample, faster on CPU); None: the table
    size, as in instant-ngp."""
    base_resolution: int = 16
    """Coarsest hash-grid resolution (cells per axis of the scene box)."""
    max_resolution: int = 2048
    """Finest hash-grid resolution."""
    hidden_dim: int = 64
    """Width of the density and colour MLPs."""
    geo_feat_dim: int = 15
    """Geometry features passed from the density MLP to the colour MLP."""

    # ----------------------------------------------------------------------------------- occupancy grid
    init_grid_from_masks: bool = True
    """When the training images have alpha, start the occupancy grid from the masks' visual hull (space carving):
    cells seen as background by some training view are never sampled."""
    grid_resolution: int = 128
    """Occupancy-grid cells per axis."""
    render_step_size: float | None = None
    """Ray-marching step (world units); None: box diagonal / 1024 (nerfacc's 5e-3 for a 3-unit box)."""
    grid_update_every: int = 16
    """Update the occupancy grid every this many steps."""
    grid_warmup_steps: int = 256
    """Steps during which every update re-evaluates ``grid_warmup_fraction`` of the cells."""
    grid_warmup_fraction: float = 1.0
    """Fraction of all cells re-evaluated per update during warm-up."""
    grid_update_fraction: float = 0.25
    """Fraction of cells (random, plus as many occupied ones) re-evaluated per update after warm-up."""
    occ_thre: float = 0.01
    """A cell is occupied when its EMA of ``density * step`` exceeds min(occ_thre, mean)."""
    ema_decay: float = 0.95
    """Decay of the occupancy EMA per update."""
    alpha_thre: float = 0.0
    """Drop marched samples with alpha below this during training (0 keeps all)."""
    early_stop_eps: float = 1e-4
    """Drop marched samples once the transmittance falls below this."""

    # ----------------------------------------------------------------------------------- nerf (PE) model
    pos_freqs: int = 10
    """Positional-encoding frequencies of positions (``"nerf"`` model)."""
    dir_freqs: int = 4
    """Positional-encoding frequencies of view directions (``"nerf"`` model)."""
    nerf_hidden: int = 256
    """Trunk width of the ``"nerf"`` MLP."""
    nerf_layers: int = 8
    """Trunk depth of the ``"nerf"`` MLP."""
    n_coarse: int = 64
    """Stratified samples per ray (``"nerf"`` model)."""
    n_fine: int = 128
    """Hierarchical samples per ray (``"nerf"`` model; 0 disables the fine network)."""

    # ----------------------------------------------------------------------------------- optimisation
    max_steps: int = 20000
    """Training steps."""
    time_budget_s: float | None = None
    """Stop after this many seconds of training (the LR schedule then follows elapsed time, not steps)."""
    num_rays: int = 1024
    """Rays in the first batch (``"ngp"`` then adapts it to ``target_samples``; ``"nerf"`` keeps it)."""
    target_samples: int = 1 << 18
    """Samples per batch the ``"ngp"`` ray count is adapted to."""
    max_rays: int = 1 << 16
    """Upper bound of the adaptive ray count."""
    lr: float = 1e-2
    """Adam learning rate."""
    lr_warmup_steps: int = 100
    """Linear LR warm-up from ``0.01 * lr``."""
    lr_final_factor: float = 0.03
    """The LR decays exponentially to ``lr * lr_final_factor`` at the end of training."""
    lr_decay_start: float = 0.5
    """Fraction of training (steps or time budget) after which the LR starts to decay."""
    adam_eps: float = 1e-15
    """Adam epsilon (instant-ngp uses 1e-15)."""
    adam_betas: tuple[float, float] = (0.9, 0.99)
    """Adam betas."""
    weight_decay: float = 1e-6
    """Weight decay of the MLPs (not the grids)."""
    seed: int = 0
    """Seed of every random draw (batches, jitter, initialisation)."""
    device: str = "auto"
    """``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``."""
    threads: int | None = None
    """torch CPU intra-op threads, set process-wide by the trainer (None: leave torch's setting). The ``fast``
    preset uses 1: its ops are small, and on a shared 2-core machine two threads were several times slower."""

    # ----------------------------------------------------------------------------------- logging / output
    checkpoint_every: int = 500
    """Write the checkpoint every this many steps (and at the end)."""
    log_every: int = 50
    """Append loss/PSNR to ``log.jsonl`` every this many steps."""
    eval_chunk: int = 1 << 14
    """Rays per forward pass when rendering full images."""
    eval_max_views: int | None = None
    """Evaluate at most this many test views (evenly spaced); None: all."""

    # -------------------------------------------------------------------------------------------
    def validate(self) -> "NerfConfig":
        if self.model not in ("ngp", "nerf"):
            raise InvalidInputError(f"model: expected 'ngp' or 'nerf', got '{self.model}'")
        for name in ("max_steps", "num_rays", "target_samples", "grid_resolution", "n_coarse", "checkpoint_every"):
            if int(getattr(self, name)) <= 0:
                raise InvalidInputError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if not self.lr > 0:
            raise InvalidInputError(f"lr: expected > 0, got {self.lr}")
        if self.downscale < 1:
            raise InvalidInputError(f"downscale: expected >= 1, got {self.downscale}")
        return self

    def replace(self, **kwargs) -> "NerfConfig":
        unknown = set(kwargs) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InvalidInputError(f"unknown NerfConfig field(s): {sorted(unknown)}")
        return dataclasses.replace(self, **kwargs).validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NerfConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(**kw).validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


PRESETS: dict[str, dict] = {
    # CPU: a smaller hash grid (max resolution 512 suits ~400 px images), more levels stored densely, a coarser ray
    # step and occupancy update, fewer samples per step
    "fast": dict(
        model="ngp",
        n_levels=12,
        n_features_per_level=2,
        log2_table_size=17,
        dense_max_entries=1 << 21,
        max_resolution=512,
        grid_resolution=128,
        render_step_size=3 * 3**0.5 / 768,
        grid_update_fraction=0.125,
        grid_warmup_fraction=0.125,
        target_samples=1 << 15,
        num_rays=1024,
        max_rays=1 << 13,
        max_steps=3000,
        checkpoint_every=250,
        lr_warmup_steps=20,
        threads=1,
    ),
    # GPU: nerfacc's instant-ngp setting for nerf_synthetic
    "quality": dict(model="ngp", max_steps=20000, target_samples=1 << 18, max_resolution=2048, log2_table_size=19),
    # the classic positional-encoding NeRF (baseline)
    "nerf": dict(model="nerf", lr=5e-4, lr_final_factor=0.1, num_rays=1024, adam_eps=1e-8, adam_betas=(0.9, 0.999),
                 weight_decay=0.0, lr_warmup_steps=0, max_steps=200000, checkpoint_every=1000),
}


def preset(name: str, **overrides) -> NerfConfig:
    """A :class:`NerfConfig` from a preset name (``fast``, ``quality``, ``nerf``) plus field overrides."""
    if name not in PRESETS:
        raise InvalidInputError(f"preset: expected one of {sorted(PRESETS)}, got '{name}'")
    return NerfConfig().replace(**{**PRESETS[name], **overrides})

