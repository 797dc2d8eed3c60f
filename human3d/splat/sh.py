"""Real spherical harmonics for view-dependent colour, with the constants and sign conventions of 3DGS.

Coefficients are stored ``[..., K, 3]`` with ``K = (degree + 1) ** 2`` bases (band-major: l = 0, then the three
l = 1 bases, ...), RGB last, exactly as gsplat's ``colors`` argument. The DC term maps to colour through
``rgb = SH_C0 * dc + 0.5`` (Inria's ``SH2RGB``); evaluated colours get the same ``+ 0.5`` offset and are clamped
at zero by the renderer. Directions point from the camera centre to the Gaussian (world frame) and are
normalised here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["SH_C0", "num_sh_bases", "sh_degree_from_bases", "sh_basis", "eval_sh", "rgb_to_sh", "sh_to_rgb"]

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def num_sh_bases(degree: int) -> int:
    """Number of SH bases up to ``degree`` (0..3): ``(degree + 1) ** 2``."""
    return (int(degree) + 1) ** 2


def sh_degree_from_bases(k: int) -> int:
    """Inverse of :func:`num_sh_bases`; raises ValueError if ``k`` is not a square in {1, 4, 9, 16}."""
    for d in range(4):
        if num_sh_bases(d) == k:
            return d
    raise ValueError(f"{k} SH bases is not (degree + 1)^2 for a degree in 0..3")


def sh_basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """Real SH bases [..., (degree+1)^2] at directions [..., 3] (normalised here), 3DGS sign convention."""
    if not 0 <= degree <= 3:
        raise ValueError(f"sh degree must be in 0..3, got {degree}")
    d = F.normalize(dirs, dim=-1)
    x, y, z = d.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        xy, yz, xz = x * y, y * z, x * z
        out += [
            SH_C2[0] * xy,
            SH_C2[1] * yz,
            SH_C2[2] * (2.0 * zz - xx - yy),
            SH_C2[3] * xz,
            SH_C2[4] * (xx - yy),
        ]
        if degree >= 3:
            out += [
                SH_C3[0] * y * (3.0 * xx - yy),
                SH_C3[1] * xy * z,
                SH_C3[2] * y * (4.0 * zz - xx - yy),
                SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
                SH_C3[4] * x * (4.0 * zz - xx - yy),
                SH_C3[5] * z * (xx - yy),
                SH_C3[6] * x * (xx - 3.0 * yy),
            ]
    return torch.stack(out, dim=-1)


def eval_sh(degree: int, coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Evaluate SH colour: coeffs [..., K, C] (K >= (degree+1)^2; extra bases ignored), dirs [..., 3] -> [..., C].

    Returns the raw SH sum (no ``+ 0.5`` offset, no clamp), like gsplat's ``spherical_harmonics``.
    """
    k = num_sh_bases(degree)
    if coeffs.shape[-2] < k:
        raise ValueError(f"coeffs: need at least {k} SH bases for degree {degree}, got {coeffs.shape[-2]}")
    basis = sh_basis(degree, dirs)  # [..., k]
    return (basis.unsqueeze(-1) * coeffs[..., :k, :]).sum(dim=-2)


def rgb_to_sh(rgb: torch.Tensor) -> torch.Tensor:
    """Colour in [0, 1] -> DC coefficient (Inria ``RGB2SH``)."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(dc: torch.Tensor) -> torch.Tensor:
    """DC coefficient -> colour (Inria ``SH2RGB``)."""
    return dc * SH_C0 + 0.5
