"""Gaussian-splatting training configuration, composed of component configs (a docstring per field), and presets.

``SplatConfig`` = ``data`` + ``init`` (initial Gaussians) + ``optim`` + ``densify`` (adaptive density control) +
``raster`` (the rasterizer) + ``run`` (steps, budget, seed, device). Dotted names reach the components:
``preset("fast", **{"densify.max_gaussians": 50_000})`` or ``--set densify.max_gaussians=50000``.

Step-indexed schedules (densification, opacity reset, SH degree, learning-rate decay, resolution) run on a
*virtual step*: the real step, or, when ``run.time_budget_s`` is set, ``run.max_steps * elapsed / time_budget_s``,
so that a run stretched or squeezed into a wall-clock budget keeps the same schedule shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _default

from human3d.config import Config, from_preset
from human3d.errors import InvalidInputError
from human3d.train.core import RunConfig
from human3d.train.scene import SceneDataConfig

__all__ = ["SplatInitConfig", "SplatOptimConfig", "DensifyConfig", "RasterConfig", "SplatConfig", "PRESETS",
           "preset"]  # fmt: skip


def _positive(owner: str, cfg, *names: str) -> None:
    for name in names:
        if not int(getattr(cfg, name)) > 0:
            raise InvalidInputError(f"{owner + '.' if owner else ''}{name}: expected a positive integer, got {getattr(cfg, name)}")

@dataclass
class SplatInitConfig(Config):
    """The initial Gaussians."""

    mode: str = "auto"
    """``"points"``: the dataset's sparse points (COLMAP ``points3D``); ``"random"``: uniform in the scene box;
    ``"auto"``: points when the dataset has them, else random."""
    num_points: int = 100_000
    """Number of random initial Gaussians (``init="random"``)."""
    box_scale: float = 1.0
    """The random initialisation box is the dataset's scene box scaled by this about its centre."""
    opacity: float = 0.1
    """Initial opacity of every Gaussian."""
    scale_factor: float = 1.0
    """Initial scales are the RMS distance to the 3 nearest neighbours times this."""

    def validate(self) -> None:
        if self.mode not in ("auto", "random", "points"):
            raise InvalidInputError(f"init.mode: expected 'auto', 'random' or 'points', got '{self.mode}'")
        _positive("init", self, "num_points")
        if not 0.0 < self.opacity < 1.0:
            raise InvalidInputError(f"init.opacity: expected a value in (0, 1), got {self.opacity}")


@dataclass
class SplatOptimConfig(Config):
    """Batches, Adam learning rates, the loss and the resolution schedule."""

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

    def validate(self) -> None:
        _positive("optim", self, "batch_size")
        if not 0.0 <= self.ssim_lambda <= 1.0:
            raise InvalidInputError(f"optim.ssim_lambda: expected a value in [0, 1], got {self.ssim_lambda}")
        for name in ("lr_means", "lr_means_final", "lr_sh_dc", "lr_sh_rest", "lr_opacity", "lr_scales", "lr_quats"):
            if not getattr(self, name) >= 0:
                raise InvalidInputError(f"optim.{name}: expected >= 0, got {getattr(self, name)}")
        for item in self.resolution_schedule:
            if len(item) != 2 or not float(item[1]) >= 1:
                raise InvalidInputError(
                    f"optim.resolution_schedule: expected (step, factor >= 1) pairs, got {self.resolution_schedule}"
                )
        if int(self.patch_size) < 0 or 0 < int(self.patch_size) < 16:
            raise InvalidInputError(f"optim.patch_size: expected 0 (whole images) or at least 16 pixels, got "
                                    f"{self.patch_size}")  # fmt: skip


@dataclass
class DensifyConfig(Config):
    """Adaptive density control (3DGS): clone, split, prune and opacity resets, in virtual steps."""

    from_step: int = 500
    """First (virtual) step of densification."""
    until_step: int = 15_000
    """No densification, opacity reset or statistics after this step."""
    every: int = 100
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

    def validate(self) -> None:
        _positive("densify", self, "every", "split_samples")
        if self.max_gaussians is not None and int(self.max_gaussians) <= 0:
            raise InvalidInputError(f"densify.max_gaussians: expected a positive integer or null, got "
                                    f"{self.max_gaussians}")  # fmt: skip


@dataclass
class RasterConfig(Config):
    """The tile rasterizer (:func:`human3d.splat.rasterize.rasterize`)."""

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

    def validate(self) -> None:
        _positive("raster", self, "tile_size")
        if self.rasterize_mode not in ("classic", "antialiased"):
            raise InvalidInputError(f"raster.rasterize_mode: expected 'classic' or 'antialiased', got "
                                    f"'{self.rasterize_mode}'")  # fmt: skip
        if self.backend not in ("auto", "torch", "gsplat"):
            raise InvalidInputError(f"raster.backend: expected 'auto', 'torch' or 'gsplat', got '{self.backend}'")


@dataclass
class SplatConfig(Config):
    """A Gaussian-splatting run: its components and the run settings."""

    data: SceneDataConfig = _default(default_factory=lambda: SceneDataConfig(random_background=False))
    """How the dataset is read (``random_background`` off by default for splats)."""
    sh_degree: int = 3
    """Maximal spherical-harmonics degree of the colours (0..3)."""
    sh_degree_interval: int = 1000
    """Raise the active SH degree by one every this many (virtual) steps."""
    init: SplatInitConfig = _default(default_factory=SplatInitConfig)
    """The initial Gaussians."""
    optim: SplatOptimConfig = _default(default_factory=SplatOptimConfig)
    """Optimisation."""
    densify: DensifyConfig = _default(default_factory=DensifyConfig)
    """Adaptive density control."""
    raster: RasterConfig = _default(default_factory=RasterConfig)
    """The rasterizer."""
    run: RunConfig = _default(default_factory=lambda: RunConfig(max_steps=30_000, checkpoint_every=1000))
    """Steps (with a time budget: the virtual length of the schedule), time budget, seed, device, logging."""

    def validate(self) -> None:
        if not 0 <= int(self.sh_degree) <= 3:
            raise InvalidInputError(f"sh_degree: expected 0..3, got {self.sh_degree}")
        _positive("", self, "sh_degree_interval")


PRESETS: dict[str, dict] = {
    # CPU: a compressed schedule with higher learning rates, at most 40k Gaussians, no opacity reset, and
    # coarse-to-fine training: 1/4 resolution, then 1/2, then 200x200 crops at full resolution
    "fast": {
        "run.max_steps": 3000,
        "run.checkpoint_every": 500,
        "init.num_points": 20_000,
        "init.box_scale": 0.87,
        "init.scale_factor": 0.5,
        "sh_degree": 3,
        "sh_degree_interval": 500,
        "optim.lr_means": 1.6e-4 * 2,
        "optim.lr_means_final": 1.6e-6 * 2,
        "optim.lr_sh_dc": 0.01,
        "optim.lr_sh_rest": 5e-4,
        "optim.lr_opacity": 0.1,
        "optim.lr_scales": 0.01,
        "optim.patch_size": 200,
        "optim.resolution_schedule": ((0, 4), (600, 2), (1500, 1)),
        "densify.from_step": 200,
        "densify.until_step": 2400,
        "densify.every": 100,
        "densify.opacity_reset_every": 0,
        "densify.grad_reference_width": 800,
        "densify.max_gaussians": 40_000,
    },
    # the reference 3DGS schedule (GPU)
    "quality": {"run.max_steps": 30_000},
}


def preset(name: str = "fast", **overrides) -> SplatConfig:
    """A :class:`SplatConfig` from a preset name (``fast`` for CPUs, ``quality`` = the reference schedule) plus
    (dotted) field overrides."""
    return from_preset(SplatConfig, PRESETS, name, overrides)
