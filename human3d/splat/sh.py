"""Real spherical harmonics for view-dependent colour, with the constants and sign conventions of 3DGS.

Coefficients are stored ``[..., K, 3]`` with ``K = (degree + 1) ** 2`` bases (band-major: l = 0, then the three
l = 1 bases, ...), RGB last, exactly as gsplat's ``colors`` argument. The DC term maps to colour through
``rgb = SH_C0 * dc + 0.5`` (Inria's ``SH2RGB``); evaluated colours get the same ``+ 0.5`` offset and are clamped
at zero by the renderer. Directions point from the camera centre to the Gaussian (world frame) and are
normalised here.

The basis itself is the project's one real SH basis, :func:`human3d.fields.encodings.sh_basis` (re-exported here):
``degree`` is always the highest band l (0..3).
"""

from __future__ import annotations

import torch

from human3d.errors import InvalidInputError
from human3d.fields.encodings import SH_C0, SH_MAX_DEGREE, num_sh_bases, sh_basis

__all__ = ["SH_C0", "num_sh_bases", "sh_degree_from_bases", "sh_basis", "eval_sh", "rgb_to_sh", "sh_to_rgb"]


def sh_degree_from_bases(k: int) -> int:
    """Inverse of :func:`num_sh_bases`; raises InvalidInputError if ``k`` is not a square in {1, 4, 9, 16}."""
    for d in range(SH_MAX_DEGREE + 1):
        if num_sh_bases(d) == k:
            return d
    raise InvalidInputError(f"k: expected (degree + 1)^2 SH bases for a degree in 0..{SH_MAX_DEGREE}, got {k}")


def eval_sh(degree: int, coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Evaluate SH colour: coeffs [..., K, C] (K >= (degree+1)^2; extra bases ignored), dirs [..., 3] -> [..., C].

    Returns the raw SH sum (no ``+ 0.5`` offset, no clamp), like gsplat's ``spherical_harmonics``.
    """
    basis = sh_basis(degree, dirs)  # [..., k] (checks degree and dirs)
    k = basis.shape[-1]
    if not isinstance(coeffs, torch.Tensor) or coeffs.dim() < 2 or coeffs.shape[-2] < k:
        got = tuple(coeffs.shape) if isinstance(coeffs, torch.Tensor) else type(coeffs).__name__
        raise InvalidInputError(f"coeffs: expected [..., K >= {k}, C] SH coefficients for degree {degree}, got {got}")
    return (basis.unsqueeze(-1) * coeffs[..., :k, :]).sum(dim=-2)


def rgb_to_sh(rgb: torch.Tensor) -> torch.Tensor:
    """Colour in [0, 1] -> DC coefficient (Inria ``RGB2SH``)."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(dc: torch.Tensor) -> torch.Tensor:
    """DC coefficient -> colour (Inria ``SH2RGB``)."""
    return dc * SH_C0 + 0.5
