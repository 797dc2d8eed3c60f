"""Exception types and boundary validation helpers.

Validate at the boundary (CLI, file loaders, public functions), never in inner loops. Every error names the
argument or file that was wrong and what was expected.

The hierarchy is owned by ``generative.errors`` (``generative`` stands alone) and extended here: ``Human3DError`` is
``generative.errors.GenerativeError``, and ``InvalidInputError``, ``ModelFileError`` and ``check_tensor`` are
``generative``'s own, so ``except InvalidInputError`` / ``except Human3DError`` catch what either package raises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from generative.errors import GenerativeError, InvalidInputError, ModelFileError, check_tensor

Human3DError = GenerativeError
"""Base class of all errors raised on purpose by human3d (and generative): the same class as ``GenerativeError``."""

__all__ = [
    "DatasetError",
    "Human3DError",
    "InvalidInputError",
    "LPIPSUnavailableError",
    "ModelFileError",
    "UnsafePickleError",
    "check_file",
    "check_tensor",
]


class UnsafePickleError(ModelFileError):
    """A pickle tried to load an object outside the allow-list (possible code execution)."""


class DatasetError(Human3DError, ValueError):
    """A dataset (images, transforms, keypoint files) is missing, malformed or empty."""


class LPIPSUnavailableError(Human3DError, RuntimeError):
    """LPIPS needs pretrained network weights that cannot be obtained offline here (:func:`human3d.metrics.lpips`)."""


def check_file(
    path, name: str = "file", suffixes: Sequence[str] | None = None, error: type[Human3DError] = DatasetError
) -> Path:
    """Check that ``path`` names an existing regular file (with one of ``suffixes``); return it as a Path.

    ``error`` is the exception type raised (``ModelFileError`` for model files, ``DatasetError`` for data).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise error(f"{name}: '{p}' does not exist")
    if not p.is_file():
        raise error(f"{name}: '{p}' is not a file")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise error(f"{name}: '{p}' should end with one of {list(suffixes)}")
    return p
