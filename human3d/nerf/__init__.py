"""Neural radiance fields: samplers (stratified, hierarchical, occupancy grid), volume rendering, models, trainer.

Quick start::

    from human3d.nerf import NerfTrainer, preset
    trainer = NerfTrainer("runs/lego", "path/to/nerf_synthetic/lego", config=preset("fast"))
    trainer.train()
    print(trainer.evaluate("test"))
"""

from human3d.nerf.config import PRESETS, NerfConfig, preset  # noqa: F401
from human3d.nerf.model import NGPModel, PENeRFModel, RayOutput, build_model, render_image  # noqa: F401
from human3d.nerf.occupancy import OccupancyGrid  # noqa: F401
from human3d.nerf.rendering import (  # noqa: F401
    RenderOutput,
    accumulate_along_rays,
    exclusive_segment_cumsum,
    render_transmittance,
    render_weights,
    volume_render,
    volume_render_dense,
)
from human3d.nerf.samplers import (  # noqa: F401
    RaySamples,
    hierarchical_samples,
    ray_aabb_intersect,
    sample_pdf,
    stratified_bins,
    stratified_samples,
)
from human3d.nerf.trainer import LRSchedule, NerfTrainer  # noqa: F401
