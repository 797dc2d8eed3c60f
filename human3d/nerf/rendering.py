"""Volume rendering over packed samples (nerfacc style).

Samples of many rays are stored flat and sorted by ray: ``ray_indices`` [S] (non-decreasing), interval bounds
``t_starts``/``t_ends`` [S] along unit-speed rays, densities ``sigmas`` [S] and colours ``rgbs`` [S, 3]. With
``delta_i = t_end_i - t_start_i``:

    alpha_i = 1 - exp(-sigma_i delta_i),   T_i = prod_{j<i} (1 - alpha_j) = exp(-sum_{j<i} sigma_j delta_j),
    w_i = T_i alpha_i,   C = sum_i w_i c_i (+ (1 - sum_i w_i) * background),
    depth = sum_i w_i (t_start_i + t_end_i) / 2,   opacity = sum_i w_i.

The exclusive per-ray sum uses one global cumulative sum (float64) minus each ray's value at its first sample.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = [
    "RenderOutput",
    "segment_starts",
    "exclusive_segment_cumsum",
    "render_transmittance",
    "render_weights",
    "accumulate_along_rays",
    "volume_render",
    "volume_render_dense",
]


class RenderOutput(NamedTuple):
    rgb: torch.Tensor  # [R, 3] composited colour (with background when given)
    depth: torch.Tensor  # [R] expected termination distance (sum w_i t_mid_i); 0 for empty rays
    opacity: torch.Tensor  # [R] accumulated alpha sum_i w_i in [0, 1]
    weights: torch.Tensor  # [S] per-sample weights w_i
    transmittance: torch.Tensor  # [S] T_i (transmittance before sample i)


def segment_starts(ray_indices: torch.Tensor, n_rays: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First packed position [R] and sample count [R] of every ray (start is meaningless where count is 0)."""
    counts = torch.bincount(ray_indices, minlength=n_rays)
    starts = torch.cumsum(counts, 0) - counts
    return starts, counts


def exclusive_segment_cumsum(values: torch.Tensor, ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    """``out_i = sum_{j < i, ray_j = ray_i} values_j`` for packed, ray-sorted ``values`` [S] (float64 inside)."""
    if values.numel() == 0:
        return values
    v = values.double()
    incl = torch.cumsum(v, 0)
    excl = incl - v  # global exclusive sum
    starts, _ = segment_starts(ray_indices, n_rays)
    return (excl - excl[starts[ray_indices]]).to(values.dtype)


def render_transmittance(
    sigmas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor, ray_indices: torch.Tensor, n_rays: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (T_i [S], alpha_i [S]) with ``T_i = exp(-sum_{j<i} sigma_j delta_j)`` and ``alpha_i = 1 - exp(-sigma_i delta_i)``."""
    sd = sigmas * (t_ends - t_starts)  # [S] optical thickness of each interval
    alphas = 1.0 - torch.exp(-sd)
    trans = torch.exp(-exclusive_segment_cumsum(sd, ray_indices, n_rays))
    return trans, alphas


def render_weights(
    sigmas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor, ray_indices: torch.Tensor, n_rays: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (weights w_i = T_i alpha_i [S], T_i [S], alpha_i [S])."""
    trans, alphas = render_transmittance(sigmas, t_starts, t_ends, ray_indices, n_rays)
    return trans * alphas, trans, alphas


def accumulate_along_rays(
    weights: torch.Tensor, ray_indices: torch.Tensor, n_rays: int, values: torch.Tensor | None = None
) -> torch.Tensor:
    """``sum_i w_i v_i`` per ray: weights [S], values [S, C] (or None -> sum of weights) -> [R, C] (or [R])."""
    if values is None:
        return torch.zeros(n_rays, dtype=weights.dtype, device=weights.device).index_add_(0, ray_indices, weights)
    src = weights[:, None] * values
    out = torch.zeros(n_rays, values.shape[-1], dtype=src.dtype, device=src.device)
    return out.index_add(0, ray_indices, src)


def volume_render(
    sigmas: torch.Tensor,
    rgbs: torch.Tensor,
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    ray_indices: torch.Tensor,
    n_rays: int,
    background: torch.Tensor | None = None,
) -> RenderOutput:
    """Composite packed samples into per-ray colour, depth and opacity (see the module docstring).

    Args:
        sigmas [S] >= 0, rgbs [S, 3], t_starts/t_ends [S], ray_indices [S] (sorted), n_rays R.
        background: [3] or [R, 3] colour seen through the remaining transmittance (None: black).
    """
    weights, trans, _ = render_weights(sigmas, t_starts, t_ends, ray_indices, n_rays)
    rgb = accumulate_along_rays(weights, ray_indices, n_rays, rgbs)
    opacity = accumulate_along_rays(weights, ray_indices, n_rays)
    depth = accumulate_along_rays(weights, ray_indices, n_rays, ((t_starts + t_ends) * 0.5)[:, None])[:, 0]
    if background is not None:
        rgb = rgb + (1.0 - opacity)[:, None] * background
    return RenderOutput(rgb, depth, opacity, weights, trans)


def volume_render_dense(
    sigmas: torch.Tensor, rgbs: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor, background=None
) -> RenderOutput:
    """The same rendering for a fixed number of samples per ray: sigmas [R, K], rgbs [R, K, 3], t [R, K]."""
    R, K = sigmas.shape
    ray_indices = torch.arange(R, device=sigmas.device).repeat_interleave(K)
    out = volume_render(
        sigmas.reshape(-1), rgbs.reshape(-1, 3), t_starts.reshape(-1), t_ends.reshape(-1), ray_indices, R, background
    )
    return out._replace(weights=out.weights.view(R, K), transmittance=out.transmittance.view(R, K))
