"""Pure loss functions for SMPLify-style fitting. Every function returns one energy per batch element ``[B]``.

Conventions: pixel coordinates follow :mod:`human3d.geometry.cameras`; rotations are axis-angle (radians).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "geman_mcclure",
    "keypoint_scale",
    "reprojection_energy",
    "reprojection_error_px",
    "hinge_limit_energy",
    "soft_iou_energy",
    "mask_distance_transform",
    "mask_boundary_points",
    "silhouette_chamfer_energy",
]


def geman_mcclure(sq_residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman–McClure robust penalty of squared residuals: ``sigma^2 r^2 / (sigma^2 + r^2)`` (SMPLify's GMoF).

    Quadratic (``r^2``) for ``|r| << sigma``, saturating at ``sigma^2`` for outliers.
    """
    s2 = sigma * sigma
    return s2 * sq_residual / (s2 + sq_residual)


def keypoint_scale(keypoints: torch.Tensor, min_scale: float = 8.0) -> torch.Tensor:
    """Person size in pixels ``[B]``: the longer side of the bounding box of confident keypoints ``[B, K, 3]``.

    Used to make the reprojection energy independent of image resolution. Persons with < 2 keypoints get
    ``min_scale``.
    """
    conf = keypoints[..., 2] > 0  # [B, K]
    big = torch.finfo(keypoints.dtype).max
    uv = keypoints[..., :2]
    lo = torch.where(conf[..., None], uv, torch.full_like(uv, big)).amin(1)  # [B, 2]
    hi = torch.where(conf[..., None], uv, torch.full_like(uv, -big)).amax(1)
    ext = (hi - lo).amax(-1)
    ext = torch.where(conf.sum(1) >= 2, ext, torch.full_like(ext, min_scale))
    return ext.clamp_min(min_scale)


def reprojection_energy(
    pred_uv: torch.Tensor,
    pred_valid: torch.Tensor,
    target: torch.Tensor,
    scale: torch.Tensor,
    sigma: float = 0.15,
    weights: torch.Tensor | None = None,
    behind_penalty: float = 1.0,
) -> torch.Tensor:
    """Robust reprojection energy ``[B]``, normalised to saturate at 1 per keypoint (SMPLify's data term).

    ``sum_k w_k c_k GM(|pred_k - target_k|^2 / scale^2, sigma) / sigma^2`` over keypoints ``pred_uv`` ``[B, K, 2]``,
    with confidences ``c_k`` (``target[..., 2]``, ``target`` ``[B, K, 3]``), optional per-keypoint weights ``w_k``
    ``[K]`` or ``[B, K]``, and residuals measured in units of the person's size ``scale`` ``[B]`` (pixels), so
    ``sigma`` is a fraction of the person's size: a keypoint costs ``~ (r / sigma)^2`` well inside it and at most 1.

    Keypoints the camera rejects (``pred_valid`` ``[B, K]`` False: at or behind the near plane) get
    ``behind_penalty`` per unit confidence (default 1: the saturated penalty) instead of their (meaningless) pixel
    residual, so a body never gains by moving behind the camera.
    """
    conf = target[..., 2]  # [B, K]
    if weights is not None:
        conf = conf * weights
    d2 = ((pred_uv - target[..., :2]) ** 2).sum(-1) / (scale[:, None] ** 2)  # [B, K]
    rho = geman_mcclure(d2, sigma) / (sigma * sigma)
    rho = torch.where(pred_valid, rho, torch.full_like(rho, behind_penalty))
    return (conf * rho).sum(-1)


def reprojection_error_px(pred_uv: torch.Tensor, pred_valid: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean pixel error ``[B]`` over keypoints with confidence > 0 (unweighted; NaN-free: 0 if none).

    Keypoints behind the camera count as ``inf`` would be misleading; they are excluded here and reported
    separately by the fitter.
    """
    m = (target[..., 2] > 0) & pred_valid  # [B, K]
    err = (pred_uv - target[..., :2]).norm(dim=-1)
    n = m.sum(-1).clamp_min(1)
    return torch.where(m, err, torch.zeros_like(err)).sum(-1) / n


def hinge_limit_energy(angles: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Joint-angle limit energy ``[B]``: squared excess of ``angles`` ``[B, N]`` outside ``[lower, upper]`` ``[N]``.

    Zero inside the range, ``(a - upper)^2`` above and ``(lower - a)^2`` below (radians^2). Use ``±inf`` for an
    open side. SMPLify penalises only bending the wrong way (``exp`` of the signed angle); a quadratic outside a
    range has the same intent, no gradient inside the allowed range, and no blow-up for large errors.
    """
    return (torch.relu(angles - upper) ** 2 + torch.relu(lower - angles) ** 2).sum(-1)


def soft_iou_energy(silhouette: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``1 - soft IoU`` ``[B]`` between soft silhouettes and target masks ``[B, H, W]`` in ``[0, 1]``."""
    inter = (silhouette * mask).flatten(1).sum(-1)
    union = (silhouette + mask - silhouette * mask).flatten(1).sum(-1)
    return 1.0 - inter / (union + eps)


# ---- silhouette (distance-transform / Chamfer) -----------------------------------------------------------------------
def mask_distance_transform(mask: torch.Tensor) -> torch.Tensor:
    """Euclidean distance (pixels) from each pixel centre to the nearest mask pixel centre, 0 inside: ``[H, W]``.

    ``mask`` ``[H, W]`` bool (or anything ``> 0.5`` counts as person). Exact (``scipy.ndimage.distance_transform_edt``).
    """
    from scipy.ndimage import distance_transform_edt

    m = (mask > 0.5).cpu().numpy()
    return torch.from_numpy(distance_transform_edt(~m).astype(np.float32)).to(mask.device)


def mask_boundary_points(mask: torch.Tensor, n: int) -> torch.Tensor:
    """Up to ``n`` pixel centres ``[N, 2]`` (u, v) = (j + 0.5, i + 0.5) on the mask's boundary: mask pixels with a
    4-neighbour outside the mask (or the image), evenly subsampled in raster order (deterministic)."""
    m = mask > 0.5
    pad = F.pad(m[None, None].float(), (1, 1, 1, 1))[0, 0] > 0.5  # outside the image counts as background
    inner = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    ii, jj = (m & ~inner).nonzero(as_tuple=True)
    if ii.numel() > n:
        keep = torch.linspace(0, ii.numel() - 1, n, device=ii.device).round().long()
        ii, jj = ii[keep], jj[keep]
    return torch.stack([jj, ii], -1).float() + 0.5


def silhouette_chamfer_energy(
    uv: torch.Tensor,
    distance: torch.Tensor,
    boundary: torch.Tensor,
    boundary_valid: torch.Tensor,
    scale: torch.Tensor,
    uv_cover: torch.Tensor | None = None,
    vertex_valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Two-sided silhouette energy ``[B]`` between projected mesh vertices and a person mask (no rendering).

    ``E = mean_v (D(u_v) / s)^2 + mean_p (min_v |p - u_v| / s)^2``: the first term pulls vertices that project
    outside the mask onto it (``D``: the mask's distance transform, :func:`mask_distance_transform`, sampled
    bilinearly; beyond the grid it grows by the distance to the grid); the second pulls the nearest vertex onto
    each mask boundary point ``p`` (the mask must be covered). Every vertex of a mesh projects inside its own
    silhouette, so both terms vanish at the true body up to the vertices' spacing: unlike ``1 - soft IoU`` with a
    soft rasterizer there is no bias from blurred edges, and the gradient reaches limbs far from the mask.

    All coordinates are pixels of the distance grid (centres at ``j + 0.5``); distances are in units of the
    person's size ``s`` in the same pixels.

    Args:
        uv: ``[B, V, 2]`` projected vertices.
        distance: ``[B, h, w]`` distance transforms of the masks.
        boundary: ``[B, P, 2]`` mask boundary points (:func:`mask_boundary_points`), ``boundary_valid`` ``[B, P]``.
        scale: ``[B]`` person size.
        uv_cover: ``[B, V', 2]`` vertices for the coverage term (default ``uv``; a subset is cheaper).
        vertex_valid: ``[B, V]`` bool, vertices to count in the first term (default all).
    """
    B, h, w = distance.shape
    size = torch.tensor([w, h], dtype=uv.dtype, device=uv.device)
    inside = torch.minimum(torch.maximum(uv, torch.zeros_like(size)), size)
    beyond = (uv - inside).norm(dim=-1)  # [B, V] distance to the grid
    grid = 2.0 * inside / size - 1.0  # align_corners=False: pixel centre j + 0.5 <-> sample j
    d = F.grid_sample(distance[:, None].to(uv.dtype), grid[:, None], mode="bilinear", padding_mode="border",
                      align_corners=False)[:, 0, 0]  # [B, V]  # fmt: skip
    s2 = scale.to(uv.dtype)[:, None] ** 2
    out2 = (d + beyond) ** 2 / s2  # [B, V]
    if vertex_valid is None:
        outside = out2.mean(-1)
    else:
        outside = torch.where(vertex_valid, out2, torch.zeros_like(out2)).sum(-1) / vertex_valid.sum(-1).clamp_min(1)
    cov = uv if uv_cover is None else uv_cover
    pts = boundary.to(uv.dtype)
    with torch.no_grad():  # nearest vertex per boundary point; the gradient needs only that pair (envelope)
        idx = torch.cdist(pts, cov.detach()).argmin(-1)  # [B, P]
    nearest = cov.gather(1, idx[..., None].expand(-1, -1, 2))  # [B, P, 2]
    near = ((pts - nearest) ** 2).sum(-1) / s2  # [B, P]
    n = boundary_valid.sum(-1).clamp_min(1)
    cover = torch.where(boundary_valid, near, torch.zeros_like(near)).sum(-1) / n
    return outside + cover
