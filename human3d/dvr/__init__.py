"""Differentiable volumetric rendering (DVR, Niemeyer et al. 2020): occupancy + texture fields learned from images
and masks by ray marching to the surface with an implicit gradient of the hit depth.

* :mod:`~human3d.dvr.marching`: ray-box clipping, marching to the first free-to-occupied crossing, secant steps;
* :mod:`~human3d.dvr.depth`: :func:`implicit_depth`, the hit depth with DVR's implicit gradient;
* :mod:`~human3d.dvr.losses`: RGB L1, freespace / occupancy BCE, depth L1, normal smoothness;
* :mod:`~human3d.dvr.model`: :class:`DVRField` (hash grid + MLPs, sphere start);
* :mod:`~human3d.dvr.data`: masks from alpha or mask files, depth maps, camera checks;
* :mod:`~human3d.dvr.trainer`: :class:`DVRTrainer` on the scene-training core; MISE meshes.
"""

from human3d.dvr.config import DVRConfig, preset
from human3d.dvr.depth import implicit_depth
from human3d.dvr.marching import MarchResult, march_rays, ray_box, secant_refine
from human3d.dvr.model import DVRField

__all__ = ["DVRConfig", "preset", "implicit_depth", "march_rays", "ray_box", "secant_refine", "MarchResult",
           "DVRField", "DVRTrainer"]


def __getattr__(name):  # the trainer pulls in the training core: import it on first use
    if name == "DVRTrainer":
        from human3d.dvr.trainer import DVRTrainer

        return DVRTrainer
    raise AttributeError(name)
