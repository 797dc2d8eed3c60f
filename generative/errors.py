"""Exception types and boundary validation helpers of ``generative`` (which imports nothing from ``human3d``).

Validate at the boundary (file loaders, public functions), never in inner loops. Every error names the argument or
file that was wrong and what was expected.

``human3d.errors`` builds on this module: ``Human3DError`` *is* ``GenerativeError``, and ``InvalidInputError``,
``ModelFileError`` and ``check_tensor`` are these very objects, so ``except human3d.errors.InvalidInputError`` catches
what ``generative`` raises, and one class hierarchy serves both packages.
"""

from __future__ import annotations

from typing import Sequence

import torch


class GenerativeError(Exception):
    """Base class of all errors raised on purpose (by ``generative``, and by ``human3d`` as ``Human3DError``)."""


class InvalidInputError(GenerativeError, ValueError):
    """An argument has the wrong shape, dtype, range or contains NaN/inf."""


class ModelFileError(GenerativeError, OSError):
    """A model, weights or checkpoint file is missing, unreadable, corrupt or of the wrong kind."""


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


def _fmt_shape(shape) -> str:
    return "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
