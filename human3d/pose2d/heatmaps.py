"""The 2D pose heatmap codec, as pure functions: Gaussian targets and three decoders.

Conventions
-----------
* Coordinates are **continuous pixel coordinates of the heatmap grid** (as in :mod:`human3d.geometry.cameras`):
  the heatmap covers ``[0, W] x [0, H]`` and the centre of cell ``(row i, column j)`` is ``(u, v) = (j + 0.5,
  i + 0.5)``. With this convention an image of size ``W*s x H*s`` maps onto its ``W x H`` heatmap by ``uv / s``
  exactly (:func:`image_to_heatmap`), with no half-pixel correction.
* **Unbiased encoding** (Zhang et al., "Distribution-Aware Coordinate Representation", CVPR 2020): the Gaussian is
  centred at the exact sub-pixel location (not at a rounded cell), evaluated at cell centres, peak value 1:
  ``h(u, v) = exp(-((u - x)^2 + (v - y)^2) / (2 sigma^2))``.
* **Target weights** ``[B, K]``: 1 for a labelled joint whose centre lies in the grid, 0 for invisible / unlabelled
  joints (visibility <= 0) and joints outside the heatmap; multiply the per-joint loss by them.
* Decoders return ``uv`` ``[B, K, 2]`` and ``score`` ``[B, K]`` (the heatmap's maximum):

  - :func:`decode_argmax`: the best cell's centre moved a quarter cell towards the higher neighbour on each axis
    (the classic Hourglass / SimpleBaseline post-processing). For an exact Gaussian with offset ``d`` from the best
    cell's centre (``|d| < 1/2``) the error is ``| |d| - 1/4 |`` per axis: ``1/8`` on average for uniform ``d``.
  - :func:`decode_dark`: DARK: blur the heatmap with a Gaussian (max preserved), take its log and refine the best
    cell by one Newton step of the second-order Taylor expansion, ``x = m - H^-1 g`` (central differences).
    The log of a Gaussian is quadratic, so the step is exact up to discretisation.
  - :func:`soft_argmax`: integral regression: the expectation of cell centres under ``softmax(beta * h)`` (or the
    non-negative heatmap normalised, ``beta=None``); differentiable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from human3d.errors import InvalidInputError, check_tensor

__all__ = [
    "image_to_heatmap",
    "heatmap_to_image",
    "gaussian_targets",
    "decode_argmax",
    "decode_dark",
    "soft_argmax",
    "gaussian_blur",
]


def _check_size(size) -> tuple[int, int]:
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise InvalidInputError(f"size: expected (height, width) as two positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def _check_sigma(sigma) -> float:
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise InvalidInputError(f"sigma: expected a positive finite standard deviation in cells, got {sigma!r}")
    return float(sigma)


def _check_heatmaps(heatmaps) -> torch.Tensor:
    check_tensor(heatmaps, "heatmaps", (None, None, None, None), dtype_floating=True)
    if heatmaps.shape[-1] < 1 or heatmaps.shape[-2] < 1:
        raise InvalidInputError(f"heatmaps: expected [B, K, H, W] with H, W >= 1, got {tuple(heatmaps.shape)}")
    return heatmaps


def image_to_heatmap(uv: torch.Tensor, stride: float) -> torch.Tensor:
    """Image pixel coordinates ``[..., 2]`` -> heatmap coordinates for a heatmap ``stride`` times smaller."""
    return uv / stride


def heatmap_to_image(uv: torch.Tensor, stride: float) -> torch.Tensor:
    """Inverse of :func:`image_to_heatmap`."""
    return uv * stride


def gaussian_targets(
    uv: torch.Tensor, size: tuple[int, int], sigma: float = 2.0, visibility: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unbiased Gaussian heatmaps ``[B, K, H, W]`` (peak 1 at the exact sub-pixel ``uv``) and target weights ``[B, K]``.

    Args:
        uv: ``[B, K, 2]`` keypoints in heatmap coordinates (see the module docstring); NaN allowed where invisible.
        size: ``(H, W)`` of the heatmap.
        sigma: the Gaussian's standard deviation in cells.
        visibility: ``[B, K]`` (> 0: labelled); None: all labelled.
    """
    H, W = _check_size(size)
    sigma = _check_sigma(sigma)
    check_tensor(uv, "uv", (None, None, 2), finite=False, dtype_floating=True)
    B, K = uv.shape[:2]
    vis = torch.ones(B, K, dtype=torch.bool, device=uv.device) if visibility is None else visibility > 0
    check_tensor(vis, "visibility", (B, K))
    finite = torch.isfinite(uv).all(-1)  # [B, K]
    inside = finite & (uv[..., 0] >= 0) & (uv[..., 0] <= W) & (uv[..., 1] >= 0) & (uv[..., 1] <= H)
    weight = (vis & inside).to(uv.dtype)  # [B, K]
    c = torch.where(finite[..., None], uv, torch.zeros_like(uv))
    xs = torch.arange(W, dtype=uv.dtype, device=uv.device) + 0.5  # [W]
    ys = torch.arange(H, dtype=uv.dtype, device=uv.device) + 0.5  # [H]
    gx = torch.exp(-((xs - c[..., 0:1]) ** 2) / (2 * sigma**2))  # [B, K, W]
    gy = torch.exp(-((ys - c[..., 1:2]) ** 2) / (2 * sigma**2))  # [B, K, H]
    heat = gy[..., :, None] * gx[..., None, :]  # [B, K, H, W] (separable)
    return heat * weight[..., None, None], weight


def _argmax_cells(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best cell per map: row i [B, K], column j [B, K] (int64) and the maximum [B, K]."""
    W = heatmaps.shape[-1]
    score, flat = heatmaps.flatten(2).max(dim=-1)  # [B, K]
    i = torch.div(flat, W, rounding_mode="floor")
    return i, flat - i * W, score


def _neighbours(padded: torch.Tensor, i: torch.Tensor, j: torch.Tensor, di: int, dj: int) -> torch.Tensor:
    """Values of a 1-cell-padded map [B, K, H+2, W+2] at cells (i + di, j + dj) [B, K]."""
    Wp = padded.shape[-1]
    idx = ((i + 1 + di) * Wp + (j + 1 + dj)).unsqueeze(-1)  # [B, K, 1]
    return padded.flatten(2).gather(-1, idx)[..., 0]


def decode_argmax(heatmaps: torch.Tensor, shift: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    """Best cell's centre moved ``shift`` cells towards the higher neighbour on each axis -> (uv [B, K, 2], score [B, K]).

    ``shift=0`` gives the plain argmax. Neighbours outside the map count as equal (no shift on that side).
    """
    _check_heatmaps(heatmaps)
    i, j, score = _argmax_cells(heatmaps)
    p = F.pad(heatmaps, (1, 1, 1, 1), mode="replicate")  # [B, K, H+2, W+2]
    dx = _neighbours(p, i, j, 0, 1) - _neighbours(p, i, j, 0, -1)
    dy = _neighbours(p, i, j, 1, 0) - _neighbours(p, i, j, -1, 0)
    u = j.to(heatmaps.dtype) + 0.5 + shift * torch.sign(dx)
    v = i.to(heatmaps.dtype) + 0.5 + shift * torch.sign(dy)
    return torch.stack([u, v], -1), score


def gaussian_blur(heatmaps: torch.Tensor, sigma: float, radius: int | None = None) -> torch.Tensor:
    """Separable Gaussian blur of ``[B, K, H, W]`` maps (zero padding); kernel radius ``ceil(3 sigma)`` by default."""
    sigma = _check_sigma(sigma)
    r = int(math.ceil(3 * sigma)) if radius is None else int(radius)
    x = torch.arange(-r, r + 1, dtype=heatmaps.dtype, device=heatmaps.device)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()  # [2r+1]
    B, K, H, W = heatmaps.shape
    h = heatmaps.reshape(B * K, 1, H, W)
    h = F.conv2d(h, k.view(1, 1, 1, -1), padding=(0, r))
    h = F.conv2d(h, k.view(1, 1, -1, 1), padding=(r, 0))
    return h.view(B, K, H, W)


def decode_dark(
    heatmaps: torch.Tensor, blur_sigma: float | None = 1.0, eps: float = 1e-10
) -> tuple[torch.Tensor, torch.Tensor]:
    """DARK decoding -> (uv [B, K, 2], score [B, K]; the raw heatmap's maximum).

    The maps are blurred with a Gaussian of ``blur_sigma`` cells (None: no blur; DARK's modulation, which makes
    network outputs Gaussian-like) and rescaled to their original maximum; then ``log(max(h, eps))`` is expanded
    to second order at the best cell (central differences) and the Newton step ``-H^-1 g`` is added to the cell's
    centre. Steps are dropped where the Hessian is not negative definite and clamped to one cell.
    """
    _check_heatmaps(heatmaps)
    _, _, raw = _argmax_cells(heatmaps)
    h = heatmaps
    if blur_sigma is not None:
        peak = h.flatten(2).amax(-1)[..., None, None]  # [B, K, 1, 1]
        h = gaussian_blur(h, blur_sigma)
        h = h * peak / h.flatten(2).amax(-1)[..., None, None].clamp(min=eps)
    i, j, _ = _argmax_cells(h)
    L = torch.log(h.clamp(min=eps))
    p = F.pad(L, (1, 1, 1, 1), mode="replicate")

    def at(di, dj):
        return _neighbours(p, i, j, di, dj)

    c = at(0, 0)
    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    hxx = at(0, 1) - 2 * c + at(0, -1)
    hyy = at(1, 0) - 2 * c + at(-1, 0)
    hxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = hxx * hyy - hxy**2
    ok = (det > eps) & (hxx < 0)  # negative definite: a maximum
    safe = torch.where(ok, det, torch.ones_like(det))
    ox = -(hyy * gx - hxy * gy) / safe  # -H^-1 g
    oy = -(-hxy * gx + hxx * gy) / safe
    ox = torch.where(ok, ox, torch.zeros_like(ox)).clamp(-1.0, 1.0)
    oy = torch.where(ok, oy, torch.zeros_like(oy)).clamp(-1.0, 1.0)
    u = j.to(h.dtype) + 0.5 + ox
    v = i.to(h.dtype) + 0.5 + oy
    return torch.stack([u, v], -1), raw


def soft_argmax(heatmaps: torch.Tensor, beta: float | None = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Integral regression -> (uv [B, K, 2], score [B, K]; the heatmap's maximum). Differentiable.

    ``beta``: weights ``softmax(beta * h)`` over the cells (network logits); None: ``relu(h) / sum(relu(h))``
    (a heatmap that is already a non-negative density, e.g. a Gaussian target).
    """
    _check_heatmaps(heatmaps)
    B, K, H, W = heatmaps.shape
    flat = heatmaps.flatten(2)  # [B, K, H*W]
    if beta is None:
        w = flat.clamp(min=0)
        w = w / w.sum(-1, keepdim=True).clamp(min=torch.finfo(w.dtype).tiny)
    else:
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
            raise InvalidInputError(f"beta: expected a positive finite softmax temperature or None, got {beta!r}")
        w = torch.softmax(beta * flat, dim=-1)
    w = w.view(B, K, H, W)
    xs = torch.arange(W, dtype=heatmaps.dtype, device=heatmaps.device) + 0.5
    ys = torch.arange(H, dtype=heatmaps.dtype, device=heatmaps.device) + 0.5
    u = (w.sum(-2) * xs).sum(-1)  # marginal over rows, [B, K]
    v = (w.sum(-1) * ys).sum(-1)
    return torch.stack([u, v], -1), flat.amax(-1)
