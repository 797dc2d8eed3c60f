"""EWA projection of 3D Gaussians to screen space (pinhole cameras, OpenCV convention).

Conventions (those of :mod:`human3d.geometry.cameras`, identical to gsplat's):
* ``viewmats`` [C, 4, 4] are world-to-camera; camera frame x right, y down, z forward.
* ``Ks`` [C, 3, 3] pixel intrinsics; a camera point projects to ``(u, v) = (fx x/z + cx, fy y/z + cy)`` and
  pixel (row i, column j) has its centre at ``(j + 0.5, i + 0.5)``.

For each Gaussian and camera: ``Sigma' = J W Sigma W^T J^T + eps2d * I`` (EWA splatting with the 0.3 px
low-pass filter), where ``W`` is the camera rotation and ``J`` the Jacobian of the perspective map at the
camera-frame mean (its x/z, y/z clamped to 1.3x the field of view, as in 3DGS). The conic is ``Sigma'^-1``
stored as ``(a, b, c)`` with ``d^T Sigma'^-1 d = a dx^2 + 2 b dx dy + c dy^2``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from human3d.errors import InvalidInputError
from human3d.splat.gaussians import quat_scale_to_matrix

__all__ = ["Projection", "project_gaussians", "ALPHA_THRESHOLD", "support_extent"]

#: Fragments with alpha below this are skipped (3DGS); it also bounds each Gaussian's screen support.
ALPHA_THRESHOLD = 1.0 / 255.0
#: Maximal support half-width in standard deviations: sqrt(2 ln 255) ~ 3.33 (alpha = 1/255 at opacity 1).
MAX_EXTENT_SIGMA = 3.33


class Projection(NamedTuple):
    """Screen-space Gaussians for C cameras and N Gaussians (see :func:`project_gaussians`)."""

    means2d: torch.Tensor  # [C, N, 2] pixel coordinates of the projected means
    depths: torch.Tensor  # [C, N] camera-frame z
    conics: torch.Tensor  # [C, N, 3] (a, b, c) of the inverse 2-D covariance
    covars2d: torch.Tensor  # [C, N, 2, 2] 2-D covariance including the low-pass term
    radii: torch.Tensor  # [C, N, 2] int32 per-axis support half-widths in pixels (0 = culled), gsplat's convention
    radius: torch.Tensor  # [C, N] 3-sigma screen radius from the largest eigenvalue (3DGS), 0 where culled
    valid: torch.Tensor  # [C, N] bool: in front of the near plane, behind the far plane, overlapping the image
    compensations: torch.Tensor | None  # [C, N] sqrt(det(Sigma) / det(Sigma')) (anti-aliased mode) or None


def support_extent(opacities: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Half-width of the alpha >= 1/255 support in standard deviations: min(3.33, sqrt(2 ln(255 o)))."""
    if opacities is None:
        return torch.full_like(like, MAX_EXTENT_SIGMA)
    o = opacities.detach().clamp_min(1e-12)
    return torch.sqrt(2.0 * torch.log(o / ALPHA_THRESHOLD).clamp_min(0.0)).clamp_max(MAX_EXTENT_SIGMA)


def project_gaussians(
    means: torch.Tensor,  # [N, 3]
    viewmats: torch.Tensor,  # [C, 4, 4]
    Ks: torch.Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    quats: torch.Tensor | None = None,  # [N, 4] WXYZ
    scales: torch.Tensor | None = None,  # [N, 3] (activated)
    covars: torch.Tensor | None = None,  # [N, 3, 3]
    opacities: torch.Tensor | None = None,  # [N] or [C, N], only for opacity-aware support radii
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    calc_compensations: bool = False,
) -> Projection:
    """Project N Gaussians into C pinhole cameras (differentiable; pure torch).

    Give either ``quats`` + ``scales`` or ``covars``. Culled Gaussians (depth outside (near, far), singular
    2-D covariance, or support entirely outside the image) get ``valid = False`` and zero radii.
    ``radii`` are per-axis support half-widths ``ceil(k sqrt(Sigma'_ii))`` with ``k = 3.33`` (gsplat's
    ``_fully_fused_projection``) or, when ``opacities`` are given, ``k = min(3.33, sqrt(2 ln(255 o)))``:
    exactly the region where alpha can reach 1/255 (gsplat's CUDA kernel).
    """
    C, N = viewmats.shape[0], means.shape[0]
    R = viewmats[:, :3, :3]  # [C, 3, 3]
    t = viewmats[:, :3, 3]  # [C, 3]
    # camera-frame means: one GEMM [3C, 3] x [3, N]
    means_c = (R.reshape(C * 3, 3) @ means.t()).reshape(C, 3, N) + t[:, :, None]  # [C, 3, N]
    tx, ty, tz = means_c.unbind(1)  # [C, N]

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    # Jacobian of the perspective map, with x/z and y/z clamped to 1.3x the image's field of view (3DGS/gsplat).
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    tz_safe = torch.where(tz.abs() > 1e-12, tz, torch.full_like(tz, 1e-12))
    rz = 1.0 / tz_safe
    ux = torch.minimum(torch.maximum(tx * rz, -lim_x_neg), lim_x_pos)  # clamped x/z
    uy = torch.minimum(torch.maximum(ty * rz, -lim_y_neg), lim_y_pos)
    # J = [[fx/z, 0, -fx ux/z], [0, fy/z, -fy uy/z]]; rows of J W as coefficients of the camera rows of W
    j00, j02 = fx * rz, -fx * ux * rz  # [C, N]
    j11, j12 = fy * rz, -fy * uy * rz
    if covars is None:
        if quats is None or scales is None:
            raise InvalidInputError("quats, scales / covars: expected quats [N, 4] and scales [N, 3], or covars [N, 3, 3]")
        M = quat_scale_to_matrix(quats, scales)  # [N, 3, 3], Sigma = M M^T
        # W M for every camera: one GEMM [3C, 3] x [3, 3N] -> [C, 3(i), N, 3(k)]
        WM = (R.reshape(C * 3, 3) @ M.permute(1, 0, 2).reshape(3, N * 3)).reshape(C, 3, N, 3)
        r0 = j00[..., None] * WM[:, 0] + j02[..., None] * WM[:, 2]  # [C, N, 3] first row of J W M
        r1 = j11[..., None] * WM[:, 1] + j12[..., None] * WM[:, 2]
        c00, c01, c11 = (r0 * r0).sum(-1), (r0 * r1).sum(-1), (r1 * r1).sum(-1)
    else:
        Sc = torch.einsum("cij,njk,clk->cnil", R, covars, R)  # [C, N, 3, 3] = W Sigma W^T
        c00 = j00 * j00 * Sc[..., 0, 0] + 2 * j00 * j02 * Sc[..., 0, 2] + j02 * j02 * Sc[..., 2, 2]
        c11 = j11 * j11 * Sc[..., 1, 1] + 2 * j11 * j12 * Sc[..., 1, 2] + j12 * j12 * Sc[..., 2, 2]
        c01 = j00 * j11 * Sc[..., 0, 1] + j00 * j12 * Sc[..., 0, 2] + j02 * j11 * Sc[..., 2, 1] + j02 * j12 * Sc[..., 2, 2]
    means2d = torch.stack([fx * tx * rz + cx, fy * ty * rz + cy], dim=-1)  # [C, N, 2]

    det_orig = c00 * c11 - c01 * c01
    c00 = c00 + eps2d  # low-pass filter
    c11 = c11 + eps2d
    det_raw = c00 * c11 - c01 * c01
    det = det_raw.clamp_min(1e-10)
    compensations = torch.sqrt((det_orig / det).clamp_min(0.0)) if calc_compensations else None
    rdet = 1.0 / det
    conics = torch.stack([c11 * rdet, -c01 * rdet, c00 * rdet], dim=-1)  # [C, N, 3]
    cov2d = torch.stack([c00, c01, c01, c11], dim=-1).reshape(C, N, 2, 2)

    with torch.no_grad():
        if opacities is not None:
            o = opacities if opacities.dim() == 2 else opacities[None].expand_as(tz)
            if compensations is not None:
                o = o * compensations
            k = support_extent(o, tz)
        else:
            k = support_extent(None, tz)
        sxx = c00.detach().clamp_min(0.0)
        syy = c11.detach().clamp_min(0.0)
        radii = torch.stack([torch.ceil(k * torch.sqrt(sxx)), torch.ceil(k * torch.sqrt(syy))], dim=-1)
        b = 0.5 * (sxx + syy)
        lam_max = b + torch.sqrt((b * b - det_raw).clamp_min(0.0))  # largest eigenvalue of Sigma'
        radius = torch.ceil(3.0 * torch.sqrt(lam_max))
        valid = (det_raw > 0) & (tz > near_plane) & (tz < far_plane)
        inside = (
            (means2d[..., 0] + radii[..., 0] > 0)
            & (means2d[..., 0] - radii[..., 0] < width)
            & (means2d[..., 1] + radii[..., 1] > 0)
            & (means2d[..., 1] - radii[..., 1] < height)
        )
        valid = valid & inside & (radii > 0).all(-1)
        radii = torch.where(valid[..., None], radii, torch.zeros_like(radii)).to(torch.int32)
        radius = torch.where(valid, radius, torch.zeros_like(radius))
    return Projection(means2d, tz, conics, cov2d, radii, radius, valid, compensations)
