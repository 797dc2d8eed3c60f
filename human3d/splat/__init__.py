"""3D Gaussian splatting: Gaussians, EWA projection, a tile-based torch rasterizer (gsplat on CUDA),
adaptive density control, training and the standard 3DGS ``.ply`` format.

Main entry points: :func:`rasterize` (gsplat-style functional renderer), :class:`SplatTrainer` with
:class:`SplatConfig` / :func:`preset`, :func:`save_ply` / :func:`load_ply`.
Note: ``human3d.splat.rasterize`` is the function; the module is ``importlib.import_module("human3d.splat.rasterize")``.
"""

from human3d.splat.config import PRESETS, SplatConfig, preset
from human3d.splat.densify import DensityStats, accumulate_stats, densify_and_prune, reset_opacity
from human3d.splat.gaussians import Gaussians, quat_scale_to_covariance, quat_scale_to_matrix
from human3d.splat.ply import load_ply, save_ply
from human3d.splat.projection import Projection, project_gaussians
from human3d.splat.rasterize import rasterize, set_compile
from human3d.splat.sh import eval_sh, rgb_to_sh, sh_to_rgb
from human3d.splat.trainer import SplatTrainer

__all__ = [
    "Gaussians",
    "quat_scale_to_covariance",
    "quat_scale_to_matrix",
    "Projection",
    "project_gaussians",
    "rasterize",
    "set_compile",
    "eval_sh",
    "rgb_to_sh",
    "sh_to_rgb",
    "SplatConfig",
    "PRESETS",
    "preset",
    "SplatTrainer",
    "DensityStats",
    "accumulate_stats",
    "densify_and_prune",
    "reset_opacity",
    "save_ply",
    "load_ply",
]
