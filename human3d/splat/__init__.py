"""3D Gaussian splatting: Gaussians, EWA projection, a tile-based torch rasterizer (gsplat on CUDA),
adaptive density control, training and the standard 3DGS ``.ply`` format."""

from human3d.splat.gaussians import Gaussians, quat_scale_to_covariance
from human3d.splat.projection import Projection, project_gaussians
from human3d.splat.rasterize import rasterize
from human3d.splat.sh import eval_sh, rgb_to_sh, sh_to_rgb

__all__ = [
    "Gaussians",
    "quat_scale_to_covariance",
    "Projection",
    "project_gaussians",
    "rasterize",
    "eval_sh",
    "rgb_to_sh",
    "sh_to_rgb",
]
