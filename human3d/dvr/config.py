"""DVR training configuration (a docstring per field) and presets.

``DVRConfig`` = ``data`` (how the scene is read) + ``field`` (the occupancy / texture network) + ``march`` (ray
marching and secant steps) + ``loss`` (DVR's loss weights) + ``optim`` + ``run`` (steps, budget, seed, device).
Dotted names reach the components: ``preset("fast", **{"run.max_steps": 500})`` or ``--set march.n_steps=64``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field as _default

from human3d.config import Config, from_preset
from human3d.errors import InvalidInputError
from human3d.train.core import RunConfig
from human3d.train.scene import SceneDataConfig

__all__ = ["DVRFieldConfig", "MarchConfig", "DVRLossConfig", "DVROptimConfig", "DVRConfig", "PRESETS", "preset"]


@dataclass
class DVRFieldConfig(Config):
    """The occupancy and texture networks (:class:`human3d.dvr.model.DVRField`): a hash grid and two small MLPs."""

    n_levels: int = 12
    """Hash-grid levels."""
    features_per_level: int = 2
    """Features per hash-grid level."""
    log2_table_size: int = 17
    """log2 of the hash-table size per level."""
    base_resolution: int = 16
    """Coarsest hash-grid resolution (cells per axis of the scene box)."""
    max_resolution: int = 256
    """Finest hash-grid resolution."""
    hidden: int = 64
    """Width of the occupancy and texture MLPs."""
    n_hidden: int = 1
    """Hidden layers of the occupancy MLP."""
    geo_features: int = 15
    """Features passed from the occupancy MLP to the texture MLP."""
    init_radius: float = 0.75
    """Radius of the starting sphere, in half-extents of the scene box."""
    init_slope: float = 10.0
    """Logit slope of the starting sphere per half-extent (its sharpness)."""

    def validate(self) -> None:
        for name in ("n_levels", "features_per_level", "log2_table_size", "base_resolution", "hidden", "n_hidden",
                     "geo_features"):  # fmt: skip
            if not int(getattr(self, name)) > 0:
                raise InvalidInputError(f"field.{name}: expected a positive integer, got {getattr(self, name)}")
        if self.max_resolution < self.base_resolution:
            raise InvalidInputError(f"field.max_resolution: expected >= base_resolution ({self.base_resolution}), "
                                    f"got {self.max_resolution}")  # fmt: skip
        if not (self.init_radius > 0 and self.init_slope > 0):
            raise InvalidInputError(f"field.init_radius / init_slope: expected > 0, got {self.init_radius}, "
                                    f"{self.init_slope}")  # fmt: skip


@dataclass
class MarchConfig(Config):
    """Ray marching (:func:`human3d.dvr.marching.march_rays`): uniform steps inside the scene box, the first
    free-to-occupied crossing, then secant steps."""

    n_steps: int = 128
    """Marching steps per ray at the end of training and when rendering (DVR: 128)."""
    n_steps_start: int = 16
    """Steps at the start of training; doubled at even fractions of the run up to ``n_steps`` (DVR: 16 -> 128)."""
    n_secant: int = 8
    """Secant refinement steps (DVR: 8)."""
    step_chunk: int = 16
    """Steps evaluated together (memory is rays x step_chunk whatever n_steps)."""
    threshold: float = 0.5
    """Occupancy level of the surface (tau; DVR: 0.5)."""

    def validate(self) -> None:
        if not (int(self.n_steps) >= 2 and 2 <= int(self.n_steps_start) <= int(self.n_steps)):
            raise InvalidInputError(f"march.n_steps / n_steps_start: expected 2 <= n_steps_start <= n_steps, got "
                                    f"{self.n_steps_start}, {self.n_steps}")  # fmt: skip
        if int(self.n_secant) < 0 or int(self.step_chunk) < 1:
            raise InvalidInputError(f"march.n_secant / step_chunk: expected >= 0 / >= 1, got {self.n_secant}, "
                                    f"{self.step_chunk}")  # fmt: skip
        if not 0.0 < self.threshold < 1.0:
            raise InvalidInputError(f"march.threshold: expected an occupancy in (0, 1), got {self.threshold}")

    @property
    def level(self) -> float:
        """The threshold as a logit (0 for tau = 0.5)."""
        return math.log(self.threshold / (1.0 - self.threshold))


@dataclass
class DVRLossConfig(Config):
    """Weights of DVR's losses (:mod:`human3d.dvr.losses`)."""

    rgb: float = 1.0
    """L1 photo-consistency where the predicted and true masks overlap."""
    freespace: float = 1.0
    """BCE towards free space on rays of pixels outside the mask."""
    occupancy: float = 1.0
    """BCE towards occupied on rays of in-mask pixels that found no surface."""
    depth: float = 0.0
    """L1 on hit depth (only for datasets with depth maps; 0: off)."""
    normal: float = 0.05
    """Normal smoothness between a surface point and a neighbour (DVR: 0.05)."""
    normal_radius: float = 0.01
    """Neighbour offset for the normal term, as a fraction of the scene-box diagonal."""

    def validate(self) -> None:
        for name in ("rgb", "freespace", "occupancy", "depth", "normal", "normal_radius"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise InvalidInputError(f"loss.{name}: expected a weight >= 0, got {v}")


@dataclass
class DVROptimConfig(Config):
    """Adam, its learning-rate schedule, and the ray batch."""

    lr: float = 1e-2
    """Peak learning rate (hash grid and MLPs)."""
    lr_final_factor: float = 0.05
    """The learning rate decays exponentially to lr * this at the end of the run."""
    adam_eps: float = 1e-15
    """Adam epsilon (tiny, as for hash grids)."""
    num_rays: int = 1024
    """Rays (pixels of random training views) per step."""
    render_chunk: int = 4096
    """Rays marched together when rendering."""

    def validate(self) -> None:
        if not (self.lr > 0 and 0 < self.lr_final_factor <= 1 and self.adam_eps > 0):
            raise InvalidInputError(f"optim.lr / lr_final_factor / adam_eps: expected > 0 / in (0, 1] / > 0, got "
                                    f"{self.lr}, {self.lr_final_factor}, {self.adam_eps}")  # fmt: skip
        if not (int(self.num_rays) > 0 and int(self.render_chunk) > 0):
            raise InvalidInputError(f"optim.num_rays / render_chunk: expected positive integers, got "
                                    f"{self.num_rays}, {self.render_chunk}")  # fmt: skip


@dataclass
class DVRConfig(Config):
    """Everything a DVR run needs (components documented field by field)."""

    data: SceneDataConfig = _default(default_factory=SceneDataConfig)
    field: DVRFieldConfig = _default(default_factory=DVRFieldConfig)
    march: MarchConfig = _default(default_factory=MarchConfig)
    loss: DVRLossConfig = _default(default_factory=DVRLossConfig)
    optim: DVROptimConfig = _default(default_factory=DVROptimConfig)
    run: RunConfig = _default(default_factory=RunConfig)
    max_image_side: int | None = None
    """Train (and evaluate) at most at this many pixels on the long image side: the dataset is downscaled further
    when needed (None: data.downscale only)."""
    aabb: list[float] | None = None
    """Scene box (xmin, ymin, zmin, xmax, ymax, zmax) the field lives in; None: the dataset's scene box."""
    supersample: int = 1
    """Render with supersample x supersample rays per pixel, averaged (antialiased edges; 1: one ray)."""
    mesh_resolution: int = 128
    """Marching-cubes cells per axis of the mesh written at the end of training (MISE from 32)."""

    def validate(self) -> None:
        if self.max_image_side is not None and not int(self.max_image_side) >= 8:
            raise InvalidInputError(f"max_image_side: expected at least 8 pixels or null, got {self.max_image_side}")
        if self.aabb is not None and (len(self.aabb) != 6 or not all(math.isfinite(float(a)) for a in self.aabb)):
            raise InvalidInputError(f"aabb: expected 6 finite numbers (xmin, ymin, zmin, xmax, ymax, zmax), got {self.aabb}")
        if not int(self.supersample) >= 1:
            raise InvalidInputError(f"supersample: expected a positive integer, got {self.supersample}")
        if not int(self.mesh_resolution) >= 32:
            raise InvalidInputError(f"mesh_resolution: expected >= 32 (MISE starts at 32), got {self.mesh_resolution}")


PRESETS: dict[str, dict] = {
    # CPU: images at most 100 px on a side (lego 400 px -> 100 px), one thread (small ops: on a shared 2-core
    # machine more threads were slower), 2x2 supersampled renders
    "fast": {"max_image_side": 100, "run.max_steps": 4000, "run.checkpoint_every": 250, "run.threads": 1,
             "run.log_every": 25, "supersample": 2},  # fmt: skip
    # GPU / long runs: full resolution, more rays, a finer grid
    "quality": {"optim.num_rays": 4096, "run.max_steps": 30000, "field.max_resolution": 1024,
                "field.log2_table_size": 19, "run.checkpoint_every": 1000, "supersample": 2},  # fmt: skip
    # tests: tiny images and network
    "tiny": {"max_image_side": 32, "optim.num_rays": 256, "field.n_levels": 6, "field.max_resolution": 64,
             "field.log2_table_size": 14, "field.hidden": 32, "march.n_steps": 64, "run.max_steps": 200,
             "run.threads": 1, "run.log_every": 25, "run.checkpoint_every": 100, "mesh_resolution": 64},  # fmt: skip
}


def preset(name: str = "fast", **overrides) -> DVRConfig:
    """A :class:`DVRConfig` from a preset name (``fast``, ``quality``, ``tiny``) plus (dotted) field overrides."""
    return from_preset(DVRConfig, PRESETS, name, overrides)
