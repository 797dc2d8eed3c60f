"""Small files shipped with the package (package data, found through :mod:`importlib.resources`, so editable and
wheel installs alike find them).

- ``examples/``: the example photo ``000000000785.jpg`` (MS-COCO, CC-BY-2.0) and its 17 COCO keypoints
  ``000000000785_keypoints.json`` (CC-BY-4.0); see ``examples/ATTRIBUTION.md``.

The shipped pose-prior weights are ``generative`` package data (:func:`generative.priors.pose.assets_dir`).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from human3d.errors import ModelFileError

__all__ = ["examples_dir", "example_photo"]

EXAMPLE_STEM = "000000000785"


def examples_dir() -> Path:
    """The folder of the shipped example inputs (``human3d/assets/examples``)."""
    folder = importlib.resources.files(__name__) / "examples"
    if not isinstance(folder, Path) or not folder.is_dir():
        raise ModelFileError(f"example folder {folder!s}: expected a folder on disk (install the package unzipped)")
    return folder


def example_photo() -> tuple[Path, Path]:
    """``(image, keypoints)``: the shipped example photo and its COCO keypoint file."""
    d = examples_dir()
    return d / f"{EXAMPLE_STEM}.jpg", d / f"{EXAMPLE_STEM}_keypoints.json"
