"""DVR's losses as pure functions (Niemeyer et al. 2020, sec. 3.4). Each is a *sum over the rays it applies to
divided by the batch's ray count* ``n_rays``, so a term weighs as much as the share of rays it concerns.

* :func:`rgb_l1`: ``|I_pred - I_true|_1`` where the predicted and the true masks overlap;
* :func:`freespace_loss`: BCE towards *free* at a point of each ray of a pixel outside the true mask;
* :func:`occupancy_loss`: BCE towards *occupied* at a point of each ray of an in-mask pixel that found no surface;
* :func:`depth_l1`: ``|t_pred - t_true|`` where both exist (optional supervision);
* :func:`normal_smoothness`: ``|n(p) - n(p + eps)|_2`` between unit normals at a surface point and a neighbour.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["rgb_l1", "freespace_loss", "occupancy_loss", "depth_l1", "normal_smoothness", "fd_normals"]


def _norm(n_rays: int) -> float:
    return 1.0 / max(int(n_rays), 1)


def rgb_l1(pred: torch.Tensor, target: torch.Tensor, n_rays: int) -> torch.Tensor:
    """pred, target [M, 3] on the overlap rays -> sum of L1 over channels and rays / n_rays."""
    return (pred - target).abs().sum() * _norm(n_rays)


def freespace_loss(logits: torch.Tensor, n_rays: int) -> torch.Tensor:
    """Occupancy logits [M] at points that must be free -> BCE(sigmoid, 0) summed / n_rays."""
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="sum") * _norm(n_rays)


def occupancy_loss(logits: torch.Tensor, n_rays: int) -> torch.Tensor:
    """Occupancy logits [M] at points that must be occupied -> BCE(sigmoid, 1) summed / n_rays."""
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="sum") * _norm(n_rays)


def depth_l1(pred: torch.Tensor, target: torch.Tensor, n_rays: int) -> torch.Tensor:
    """Hit depths pred, target [M] (same units) -> sum |pred - target| / n_rays."""
    return (pred - target).abs().sum() * _norm(n_rays)


def fd_normals(fn, x: torch.Tensor, h: float) -> torch.Tensor:
    """Unit normals [N, 3] of the level sets of ``fn`` at x [N, 3] by central differences of step ``h``, pointing
    to decreasing ``fn`` (outwards for occupancy logits). Differentiable w.r.t. ``fn``'s parameters with first-order
    autograd only (no double backward, so any encoding works)."""
    e = torch.eye(3, dtype=x.dtype, device=x.device) * h  # [3, 3]
    pts = torch.cat([x[:, None, :] + e, x[:, None, :] - e], 1).reshape(-1, 3)  # [N * 6, 3]
    v = fn(pts).reshape(-1, 2, 3)  # [N, +/-, axis]
    g = (v[:, 0] - v[:, 1]) / (2 * h)  # [N, 3]
    return -F.normalize(g, dim=-1, eps=1e-12)


def normal_smoothness(n_a: torch.Tensor, n_b: torch.Tensor, n_rays: int) -> torch.Tensor:
    """Unit normals [M, 3] at surface points and at perturbed neighbours -> sum ||n_a - n_b||_2 / n_rays."""
    return (n_a - n_b).norm(dim=-1).sum() * _norm(n_rays)
