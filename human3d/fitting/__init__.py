"""Fitting body models to images: SMPLify-style staged optimisation over 2D keypoints, batched over people.

``smplify(model, keypoints2d, camera, prior="simple", ...)`` -> :class:`SMPLifyResult` (parameters + diagnostics);
``fit_images(images, keypoints, out_dir, ...)`` runs it over files and writes the results (``human3d fit``).
"""

from human3d.fitting.config import SMPLifyConfig
from human3d.fitting.smplify import SMPLifyResult, smplify

__all__ = ["smplify", "SMPLifyResult", "SMPLifyConfig", "fit_images"]


def __getattr__(name: str):
    if name == "fit_images":  # lazy: pulls in rendering and image IO
        from human3d.fitting.pipeline import fit_images

        return fit_images
    raise AttributeError(f"module 'human3d.fitting' has no attribute {name!r}")
