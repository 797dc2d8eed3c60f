"""NeRF training configuration, composed of component configs (a docstring per field), and presets.

``NerfConfig`` = ``data`` (how the scene is read) + ``field`` (instant-ngp hash grid) + ``estimator`` (occupancy
grid) + ``pe`` (the classic positional-encoding NeRF) + ``optim`` + ``run`` (steps, budget, seed, device). Dotted
names reach the components: ``preset("fast", **{"run.max_steps": 500})`` or ``--set field.hidden_dim=32``.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _default

from human3d.config import Config, from_preset
from human3d.errors import InvalidInputError
from human3d.train.core import RunConfig
from human3d.train.scene import SceneDataConfig

__all__ = ["NGPFieldConfig", "OccGridConfig", "PEFieldConfig", "NerfOptimConfig", "NerfConfig", "PRESETS", "preset"]


@dataclass
class NGPFieldConfig(Config):
    """The instant-ngp field: a multiresolution hash grid and two small MLPs."""

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

    def validate(self) -> None:
        for name in ("n_levels", "n_features_per_level", "log2_table_size", "base_resolution", "hidden_dim"):
            if not int(getattr(self, name)) > 0:
                raise InvalidInputError(f"field.{name}: expected a positive integer, got {getattr(self, name)}")
        if self.max_resolution < self.base_resolution:
            raise InvalidInputError(f"field.max_resolution: expected >= base_resolution ({self.base_resolution}), "
                                    f"got {self.max_resolution}")  # fmt: skip


@dataclass
class OccGridConfig(Config):
    """The occupancy-grid estimator (nerfacc's ``OccGridEstimator``): where rays are sampled, and its updates."""

    resolution: int = 128
    """Occupancy-grid cells per axis."""
    init_from_masks: bool = True
    """When the training images have alpha, start the grid from the masks' visual hull (space carving): cells seen
    as background by some training view are never sampled."""
    render_step_size: float | None = None
    """Ray-marching step (world units); None: box diagonal / 1024 (nerfacc's 5e-3 for a 3-unit box)."""
    update_every: int = 16
    """Update the grid every this many steps."""
    warmup_steps: int = 256
    """Steps during which every update re-evaluates ``warmup_fraction`` of the cells."""
    warmup_fraction: float = 1.0
    """Fraction of all cells re-evaluated per update during warm-up."""
    update_fraction: float = 0.25
    """Fraction of cells (random, plus as many occupied ones) re-evaluated per update after warm-up."""
    occ_thre: float = 0.01
    """A cell is occupied when its EMA of ``density * step`` exceeds min(occ_thre, mean)."""
    ema_decay: float = 0.95
    """Decay of the occupancy EMA per update."""
    alpha_thre: float = 0.0
    """Drop marched samples with alpha below this during training (0 keeps all)."""
    early_stop_eps: float = 1e-4
    """Drop marched samples once the transmittance falls below this."""

    def validate(self) -> None:
        if not int(self.resolution) > 0 or not int(self.update_every) > 0:
            raise InvalidInputError(f"estimator.resolution / update_every: expected positive integers, got "
                                    f"{self.resolution} / {self.update_every}")  # fmt: skip
        for name in ("warmup_fraction", "update_fraction"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise InvalidInputError(f"estimator.{name}: expected a fraction in (0, 1], got {getattr(self, name)}")
        if self.render_step_size is not None and not self.render_step_size > 0:
            raise InvalidInputError(f"estimator.render_step_size: expected > 0 or null, got {self.render_step_size}")


@dataclass
class PEFieldConfig(Config):
    """The classic positional-encoding NeRF (Mildenhall et al. 2020): coarse + fine MLPs and their samplers."""

    pos_freqs: int = 10
    """Positional-encoding frequencies of positions."""
    dir_freqs: int = 4
    """Positional-encoding frequencies of view directions."""
    hidden_dim: int = 256
    """Trunk width of the MLPs."""
    n_layers: int = 8
    """Trunk depth of the MLPs (a skip connection at half depth)."""
    n_coarse: int = 64
    """Stratified samples per ray."""
    n_fine: int = 128
    """Hierarchical samples per ray (0 disables the fine network)."""

    def validate(self) -> None:
        if not int(self.n_coarse) > 0 or int(self.n_fine) < 0 or not int(self.n_layers) > 0:
            raise InvalidInputError(f"pe: expected n_coarse > 0, n_fine >= 0, n_layers > 0, got {self.n_coarse}, "
                                    f"{self.n_fine}, {self.n_layers}")  # fmt: skip


@dataclass
class NerfOptimConfig(Config):
    """Batches, Adam and the learning-rate schedule."""

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

    def validate(self) -> None:
        for name in ("num_rays", "target_samples", "max_rays"):
            if not int(getattr(self, name)) > 0:
                raise InvalidInputError(f"optim.{name}: expected a positive integer, got {getattr(self, name)}")
        if not self.lr > 0:
            raise InvalidInputError(f"optim.lr: expected > 0, got {self.lr}")
        if not 0.0 <= self.lr_decay_start < 1.0:
            raise InvalidInputError(f"optim.lr_decay_start: expected a fraction in [0, 1), got {self.lr_decay_start}")


@dataclass
class NerfConfig(Config):
    """A NeRF run: the model kind, its components and the run settings."""

    model: str = "ngp"
    """``"ngp"``: hash-grid field + occupancy-grid ray marching; ``"nerf"``: positional-encoding MLPs with
    stratified + hierarchical sampling (Mildenhall et al. 2020)."""
    data: SceneDataConfig = _default(default_factory=SceneDataConfig)
    """How the dataset is read."""
    near: float | None = None
    """Near plane along rays; None uses the dataset's."""
    far: float | None = None
    """Far plane along rays; None uses the dataset's."""
    aabb: tuple[float, ...] | None = None
    """Scene box (xmin, ymin, zmin, xmax, ymax, zmax) for the hash grid and occupancy grid; None: the dataset's."""
    field: NGPFieldConfig = _default(default_factory=NGPFieldConfig)
    """The ``"ngp"`` field."""
    estimator: OccGridConfig = _default(default_factory=OccGridConfig)
    """The ``"ngp"`` occupancy grid."""
    pe: PEFieldConfig = _default(default_factory=PEFieldConfig)
    """The ``"nerf"`` model."""
    optim: NerfOptimConfig = _default(default_factory=NerfOptimConfig)
    """Optimisation."""
    render_chunk: int = 1 << 14
    """Rays per forward pass when rendering full images."""
    run: RunConfig = _default(default_factory=lambda: RunConfig(max_steps=20000, checkpoint_every=500))
    """Steps, time budget, seed, device, threads, logging."""

    def validate(self) -> None:
        if self.model not in ("ngp", "nerf"):
            raise InvalidInputError(f"model: expected 'ngp' or 'nerf', got '{self.model}'")
        if self.aabb is not None and len(self.aabb) != 6:
            raise InvalidInputError(f"aabb: expected 6 numbers (xmin, ymin, zmin, xmax, ymax, zmax), got {self.aabb}")
        if not int(self.render_chunk) > 0:
            raise InvalidInputError(f"render_chunk: expected a positive integer, got {self.render_chunk}")


PRESETS: dict[str, dict] = {
    # CPU: a smaller hash grid (max resolution 512 suits ~400 px images), more levels stored densely, a coarser ray
    # step and occupancy update, fewer samples per step; one thread (its ops are small: on a shared 2-core machine
    # two threads were several times slower)
    "fast": {
        "model": "ngp",
        "field.n_levels": 12,
        "field.n_features_per_level": 2,
        "field.log2_table_size": 17,
        "field.dense_max_entries": 1 << 21,
        "field.max_resolution": 512,
        "estimator.resolution": 128,
        "estimator.render_step_size": 3 * 3**0.5 / 768,
        "estimator.update_fraction": 0.125,
        "estimator.warmup_fraction": 0.125,
        "optim.target_samples": 1 << 15,
        "optim.num_rays": 1024,
        "optim.max_rays": 1 << 13,
        "optim.lr_warmup_steps": 20,
        "run.max_steps": 3000,
        "run.checkpoint_every": 250,
        "run.threads": 1,
    },
    # GPU: nerfacc's instant-ngp setting for nerf_synthetic
    "quality": {"model": "ngp", "run.max_steps": 20000, "optim.target_samples": 1 << 18,
                "field.max_resolution": 2048, "field.log2_table_size": 19},  # fmt: skip
    # the classic positional-encoding NeRF (baseline)
    "nerf": {"model": "nerf", "optim.lr": 5e-4, "optim.lr_final_factor": 0.1, "optim.num_rays": 1024,
             "optim.adam_eps": 1e-8, "optim.adam_betas": (0.9, 0.999), "optim.weight_decay": 0.0,
             "optim.lr_warmup_steps": 0, "run.max_steps": 200000, "run.checkpoint_every": 1000},  # fmt: skip
}


def preset(name: str = "fast", **overrides) -> NerfConfig:
    """A :class:`NerfConfig` from a preset name (``fast``, ``quality``, ``nerf``) plus (dotted) field overrides."""
    return from_preset(NerfConfig, PRESETS, name, overrides)
