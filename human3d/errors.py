"""Exception types and boundary validation helpers.

Validate at the boundary (CLI, file loaders, public functions), never in inner loops. Every error names the
argument or file that was wrong and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch


class Human3DError(Exception):
    """Base class of all errors raised on purpose by human3d."""


class InvalidInputError(Human3DError, ValueError):
    """An argument has the wrong shape, dtype, range or contains NaN/inf."""


class ModelFileError(Human3DError, OSError):
    """A body-model or weights file is missing, unreadable, corrupt or of the wrong kind."""


class UnsafePickleError(ModelFileError):
    """A pickle tried to load an object outside the allow-list (possible code execution)."""


class DatasetError(Human3DError, ValueError):
    """A dataset (images, transforms, keypoint files) is missing, malformed or empty."""


class LPIPSUnavailableError(Human3DError, RuntimeError):
    """LPIPS needs pretrained network weights that cannot be obtained offline here (:func:`human3d.metrics.lpips`)."""


def check_tensor(
    x,
    name: str,
    shape: Sequence[int | None | str] | None = None,
    *,
    finite: bool = True,
    dtype_floating: bool = False,
) -> torch.Tensor:
    """Check that ``x`` is a tensor of the given shape and (optionally) finite; return it.

    ``shape`` entries: an int must match exactly, ``None`` matches any size, a string names a size that must be
    equal wherever the same string appears (e.g. ``("B", None, 3)``). A leading ``...`` is not supported: give the
    full rank.
    """
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if shape is not None:
        if x.dim() != len(shape):
            raise InvalidInputError(
                f"{name}: expected a tensor of shape {_fmt_shape(shape)}, got {tuple(x.shape)}"
            )
        named: dict[str, int] = {}
        for dim, (want, got) in enumerate(zip(shape, x.shape)):
            if want is None:
                continue
            if isinstance(want, str):
                if named.setdefault(want, got) != got:
                    raise InvalidInputError(
                        f"{name}: expected shape {_fmt_shape(shape)}, got {tuple(x.shape)} "
                        f"(size '{want}' differs between dimensions)"
                    )
            elif got != want:
                raise InvalidInputError(
                    f"{name}: expected shape {_fmt_shape(shape)}, got {tuple(x.shape)} (dimension {dim})"
                )
    if dtype_floating and not x.is_floating_point():
        raise InvalidInputError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    if finite and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise InvalidInputError(f"{name}: contains {n_bad} NaN/inf value(s)")
    return x


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


def _fmt_shape(shape) -> str:
    return "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
