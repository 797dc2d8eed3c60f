"""Gaussian-splatting training configuration (one dataclass, a docstring per field) and presets.

Step-indexed schedules (densification, opacity reset, SH degree, learning-rate decay, resolution) run on a
*virtual step*: the real step, or, when ``time_budget_s`` is set, ``iterations * elapsed / time_budget_s``, so that
a run stretched or squeezed into a wall-clock budget keeps the same schedule shape.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from human3d.errors import InvalidInputError

__all__ = ["SplatConfig", "PRESETS", "preset"]


@dataclass
class SplatConfig:
    # ----------------------------------------------------------------------------------- data
    downscale: float = 1.0
    """Divide the dataset's image size by this factor when loading (the run's evaluation resolution)."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Background colour behind the Gaussians and of RGBA images (nerf_synthetic protocol: white)."""
    random_background: bool = False
    """Train on a random background colour per step when the images have alpha (discourages floaters)."""

    # ----------------------------------------------------------------------------------- initialisation
    init: str = "auto"
    """``"points"``: the dataset's sparse points (COLMAP ``points3D``); ``"random"``: uniform in the scene box;
    ``"auto"``: points when the dataset has them, else random."""
    init_num_points: int = 100_000
    """Number of random initial Gaussians (``init="random"``)."""
    init_box_scale: float = 1.0
    """The random initialisation box is the dataset's scene box scaled by this about its centre."""
    init_opacity: float = 0.1
    """Initial opacity of every Gaussian."""
    init_scale_factor: float = 1.0
    """Initial scales are the RMS distance to the 3 nearest neighbours times this."""
    sh_degree: int = 3
    """Maximal spherical-harmonics degree of the colours (0..3)."""
    sh_degree_interval: int = 1000
    """Raise the active SH degree by one every this many (virtual) steps."""

    # ----------------------------------------------------------------------------------- optimisation
    iterations: int = 30_000
    """Number of training steps (or the virtual length of the schedule when ``time_budget_s`` is set)."""
    time_budget_s: float | None = None
    """Stop after this many seconds of training; schedules then advance with elapsed time (see module doc)."""
    budget_clock: str = "wall"
    """Clock of ``time_budget_s`` and of the reported training time: ``"wall"`` or ``"process"`` (CPU time of this
    process: a fair measure on a machine shared with other jobs)."""
    batch_size: int = 1
    """Training views rendered per step."""
    lr_means: float = 1.6e-4
    """Initial learning rate of the means, times the scene extent."""
    lr_means_final: float = 1.6e-6
    """Final learning rate of the means (times the extent), reached by exponential decay at the last step."""
    lr_sh_dc: float = 2.5e-3
    """Learning rate of the degree-0 SH coefficients."""
    lr_sh_rest: float = 2.5e-3 / 20
    """Learning rate of the higher-order SH coefficients."""
    lr_opacity: float = 0.05
    """Learning rate of the opacity logits."""
    lr_scales: float = 5e-3
    """Learning rate of the log-scales."""
    lr_quats: float = 1e-3
    """Learning rate of the rotation quaternions."""
    adam_eps: float = 1e-15
    """Adam epsilon (the reference uses 1e-15)."""
    ssim_lambda: float = 0.2
    """Loss = (1 - lambda) L1 + lambda (1 - SSIM)."""
    patch_size: int = 0
    """When > 0, each step renders a random ``patch_size`` x ``patch_size`` crop of the training view (the
    camera's principal point is shifted; images smaller than the patch are used whole): cheaper steps at high
    resolution. Exact except for Gaussians centred well outside the patch, whose EWA Jacobian is clamped to the
    patch's field of view (as for any camera in 3DGS). 0 renders whole images (reference)."""
    resolution_schedule: tuple = ()
    """Coarse-to-fine training: ((virtual_step, factor), ...) renders the training views downscaled by ``factor``
    (relative to ``downscale``) from that step on; empty = always full resolution."""

    # ----------------------------------------------------------------------------------- density control
    densify_from: int = 500
    """First (virtual) step of densification."""
    densify_until: int = 15_000
    """No densification, opacity reset or statistics after this step."""
    densify_every: int = 100
    """Densify and prune every this many steps."""
    opacity_reset_every: int = 3000
    """Reset all opacities to at most ``opacity_reset_value`` every this many steps (0 disables)."""
    opacity_reset_value: float = 0.01
    """Opacity after a reset."""
    grad_threshold: float = 2e-4
    """Average NDC positional-gradient norm above which a Gaussian is cloned or split."""
    grad_reference_width: int | None = None
    """When set, the gradient threshold is scaled by (training-image width / this): screen-space gradients in NDC
    units grow with resolution, so the reference threshold (tuned at 800 px) densifies little at low resolution.
    None = the reference behaviour."""
    percent_dense: float = 0.01
    """Gaussians with a largest scale above this fraction of the scene extent are split, below it cloned."""
    prune_opacity: float = 0.005
    """Prune Gaussians whose opacity falls below this."""
    max_screen_fraction: float | None = 0.15
    """After the first opacity reset, prune Gaussians whose screen radius exceeded this fraction of the image
    size (None disables)."""
    max_world_fraction: float | None = 0.1
    """After the first opacity reset, prune Gaussians larger than this fraction of the scene extent."""
    split_samples: int = 2
    """Gaussians a split Gaussian is replaced by."""
    max_gaussians: int | None = None
    """Cap on the number of Gaussians (densify the largest gradients first); None = unlimited (reference)."""

    # ----------------------------------------------------------------------------------- rasterizer
    tile_size: int = 16
    """Tile size in pixels of the rasterizer."""
    eps2d: float = 0.3
    """Low-pass filter added to the 2-D covariances (pixels^2)."""
    near_plane: float = 0.01
    """Gaussians closer to the camera than this are culled."""
    rasterize_mode: str = "classic"
    """``"classic"`` or ``"antialiased"`` (EWA-compensated opacities)."""
    backend: str = "auto"
    """Rasterizer backend: ``"auto"`` (gsplat on CUDA when installed, else torch), ``"torch"`` or ``"gsplat"``."""

    compile: bool = False
    """``torch.compile`` the per-fragment kernels (see :func:`human3d.splat.rasterize.set_compile`): ~1.3x faster
    compositing on a CPU after a one-off compilation of about half a minute; needs a C++ compiler."""

    # ----------------------------------------------------------------------------------- runtime
    device: str = "auto"
    """``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``."""
    threads: int = 0
    """torch CPU threads (0 keeps torch's default)."""
    seed: int = 0
    """Random seed (initialisation, view order, split samples)."""
    checkpoint_every: int = 1000
    """Write the checkpoint every this many steps (and at the end)."""
    log_every: int = 50
    """Append loss / PSNR / Gaussian count to ``log.jsonl`` every this many steps."""
    eval_max_views: int = 0
    """Evaluate on at most this many views (evenly spaced; 0 = all)."""

    # -------------------------------------------------------------------------------------------
    def validate(self) -> "SplatConfig":
        for name in ("iterations", "batch_size", "densify_every", "sh_degree_interval", "checkpoint_every",
                     "log_every", "tile_size", "split_samples", "init_num_points"):  # fmt: skip
            if int(getattr(self, name)) <= 0:
                raise InvalidInputError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if not 0 <= int(self.sh_degree) <= 3:
            raise InvalidInputError(f"sh_degree: expected 0..3, got {self.sh_degree}")
        if self.init not in ("auto", "random", "points"):
            raise InvalidInputError(f"init: expected 'auto', 'random' or 'points', got '{self.init}'")
        if self.rasterize_mode not in ("classic", "antialiased"):
            raise InvalidInputError(f"rasterize_mode: expected 'classic' or 'antialiased', got '{self.rasterize_mode}'")
        if self.budget_clock not in ("wall", "process"):
            raise InvalidInputError(f"budget_clock: expected 'wall' or 'process', got '{self.budget_clock}'")
        if self.backend not in ("auto", "torch", "gsplat"):
            raise InvalidInputError(f"backend: expected 'auto', 'torch' or 'gsplat', got '{self.backend}'")
        if self.downscale < 1:
            raise InvalidInputError(f"downscale: expected >= 1, got {self.downscale}")
        if not 0.0 < self.init_opacity < 1.0:
            raise InvalidInputError(f"init_opacity: expected a value in (0, 1), got {self.init_opacity}")
        if not 0.0 <= self.ssim_lambda <= 1.0:
            raise InvalidInputError(f"ssim_lambda: expected a value in [0, 1], got {self.ssim_lambda}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise InvalidInputError(f"time_budget_s: expected > 0 seconds, got {self.time_budget_s}")
        for name in ("lr_means", "lr_means_final", "lr_sh_dc", "lr_sh_rest", "lr_opacity", "lr_scales", "lr_quats"):
            if not getattr(self, name) >= 0:
                raise InvalidInputError(f"{name}: expected >= 0, got {getattr(self, name)}")
        for item in self.resolution_schedule:
            if len(item) != 2 or not float(item[1]) >= 1:
                raise InvalidInputError(
                    f"resolution_schedule: expected (step, factor >= 1) pairs, got {self.resolution_schedule}"
                )
        if int(self.patch_size) < 0 or 0 < int(self.patch_size) < 16:
            raise InvalidInputError(f"patch_size: expected 0 (whole images) or at least 16 pixels, got {self.patch_size}")
        if self.max_gaussians is not None and int(self.max_gaussians) <= 0:
            raise InvalidInputError(f"max_gaussians: expected a positive integer or None, got {self.max_gaussians}")
        return self

    def replace(self, **kwargs) -> "SplatConfig":
        unknown = set(kwargs) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InvalidInputError(f"unknown SplatConfig field(s): {sorted(unknown)}")
        return dataclasses.replace(self, **kwargs).validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SplatConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {}
        for k, v in d.items():
            if k not in names:
                continue
            if k == "resolution_schedule":
                v = tuple(tuple(x) for x in v)
            elif isinstance(v, list):
                v = tuple(v)
            kw[k] = v
        return cls(**kw).validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


PRESETS: dict[str, dict] = {
    # CPU: fewer, capped Gaussians, a compressed schedule and coarse-to-fine resolution
    # CPU: a compressed schedule with higher learning rates, at most 40k Gaussians, no opacity reset, and
    # coarse-to-fine training: 1/4 resolution, then 1/2, then 200x200 crops at full resolution
    "fast": dict(
        iterations=3000,
        init_num_points=20_000,
        init_box_scale=0.87,
        init_scale_factor=0.5,
        sh_degree=3,
        sh_degree_interval=500,
        lr_means=1.6e-4 * 2,
        lr_means_final=1.6e-6 * 2,
        lr_sh_dc=0.01,
        lr_sh_rest=5e-4,
        lr_opacity=0.1,
        lr_scales=0.01,
        densify_from=200,
        densify_until=2400,
        densify_every=100,
        opacity_reset_every=0,
        grad_reference_width=800,
        max_gaussians=40_000,
        patch_size=200,
        resolution_schedule=((0, 4), (600, 2), (1500, 1)),
        checkpoint_every=500,
    ),
    # the reference 3DGS schedule (GPU)
    "quality": dict(iterations=30_000),
}


def preset(name: str, **overrides) -> SplatConfig:
    """A :class:`SplatConfig` from a preset name (``fast`` for CPUs, ``quality`` = the reference schedule)."""
    if name not in PRESETS:
        raise InvalidInputError(f"preset: expected one of {sorted(PRESETS)}, got '{name}'")
    return SplatConfig().replace(**{**PRESETS[name], **overrides})
