"""Analytic signed distance functions (negative inside), exact in the Euclidean metric; used as test oracles and
as initial shapes. Points x [..., 3] -> distances [...]."""

from __future__ import annotations

import torch

from human3d.errors import InvalidInputError

__all__ = ["sphere_sdf", "box_sdf", "field_gradient"]


def sphere_sdf(x: torch.Tensor, radius: float = 0.5, center=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """``||x - c|| - r``."""
    if radius <= 0:
        raise InvalidInputError(f"radius: expected > 0, got {radius}")
    c = torch.as_tensor(center, dtype=x.dtype, device=x.device)
    return torch.linalg.vector_norm(x - c, dim=-1) - radius


def box_sdf(x: torch.Tensor, half_extents=(0.5, 0.5, 0.5), center=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """Axis-aligned box: ``||max(q, 0)|| + min(max_i q_i, 0)`` with ``q = |x - c| - h`` (exact inside and out)."""
    h = torch.as_tensor(half_extents, dtype=x.dtype, device=x.device)
    if (h <= 0).any():
        raise InvalidInputError(f"half_extents: expected positive values, got {half_extents}")
    q = (x - torch.as_tensor(center, dtype=x.dtype, device=x.device)).abs() - h
    return torch.linalg.vector_norm(q.clamp(min=0), dim=-1) + q.amax(-1).clamp(max=0)


def field_gradient(fn, x: torch.Tensor, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Values fn(x) [N] and spatial gradients [N, 3] by autograd (``create_graph`` for eikonal training terms)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True) if not x.requires_grad else x
        y = fn(x)
        (g,) = torch.autograd.grad(y.sum(), x, create_graph=create_graph)
    return y, g
