"""Ray samplers producing packed samples: stratified, hierarchical (inverse CDF) and the ray-AABB helper.

All samplers are vectorised over rays. Their output, :class:`RaySamples`, is packed (nerfacc style): flat arrays
sorted by ray with ``ray_indices``; a fixed number of samples per ray is just a special case. Rays are unit-speed,
so ``t`` is a distance along the ray in world units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "RaySamples",
    "ray_aabb_intersect",
    "stratified_bins",
    "stratified_samples",
    "sample_pdf",
    "hierarchical_samples",
]


@dataclass
class RaySamples:
    """Packed samples: interval ``[t_starts, t_ends]`` on ray ``ray_indices`` (sorted, non-decreasing)."""

    ray_indices: torch.Tensor  # [S] int64
    t_starts: torch.Tensor  # [S]
    t_ends: torch.Tensor  # [S]
    n_rays: int

    def __len__(self) -> int:
        return self.ray_indices.shape[0]

    @property
    def t_mids(self) -> torch.Tensor:
        return 0.5 * (self.t_starts + self.t_ends)

    def positions(self, origins: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        """World positions [S, 3] of the interval midpoints for rays origins/dirs [R, 3]."""
        return origins[self.ray_indices] + dirs[self.ray_indices] * self.t_mids[:, None]

    def select(self, mask: torch.Tensor) -> "RaySamples":
        """Keep the samples where ``mask`` [S] is True (order, hence packing, is preserved)."""
        return RaySamples(self.ray_indices[mask], self.t_starts[mask], self.t_ends[mask], self.n_rays)

    def counts(self) -> torch.Tensor:
        """Samples per ray [R]."""
        return torch.bincount(self.ray_indices, minlength=self.n_rays)


def ray_aabb_intersect(origins: torch.Tensor, dirs: torch.Tensor, aabb: torch.Tensor):
    """Slab test. origins/dirs [R, 3], aabb [2, 3] -> (t_enter [R], t_exit [R], hit [R] bool).

    ``t_enter`` may be negative when the origin is inside the box.
    """
    safe = torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    inv = 1.0 / safe
    t0 = (aabb[0] - origins) * inv
    t1 = (aabb[1] - origins) * inv
    t_enter = torch.minimum(t0, t1).amax(-1)
    t_exit = torch.maximum(t0, t1).amin(-1)
    return t_enter, t_exit, t_exit > t_enter


def stratified_bins(
    near: torch.Tensor, far: torch.Tensor, n_samples: int, randomize: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Interval edges [R, K+1] from ``near`` to ``far`` [R]: uniform, or with every inner edge jittered uniformly
    within its half-bin neighbourhood when ``randomize`` (so every sample position is uniformly distributed within
    its stratum and intervals stay contiguous)."""
    R = near.shape[0]
    u = torch.linspace(0.0, 1.0, n_samples + 1, device=near.device, dtype=near.dtype).expand(R, -1)
    if randomize:
        mids = 0.5 * (u[:, 1:] + u[:, :-1])
        lower = torch.cat([u[:, :1], mids], -1)
        upper = torch.cat([mids, u[:, -1:]], -1)
        r = torch.rand(R, n_samples + 1, generator=generator, dtype=near.dtype).to(near.device)
        r[:, 0], r[:, -1] = 0.0, 1.0  # keep near and far fixed
        u = lower + (upper - lower) * r
    return near[:, None] + (far - near)[:, None] * u


def _pack_dense(edges: torch.Tensor) -> RaySamples:
    R, K1 = edges.shape
    ray_indices = torch.arange(R, device=edges.device).repeat_interleave(K1 - 1)
    return RaySamples(ray_indices, edges[:, :-1].reshape(-1), edges[:, 1:].reshape(-1), R)


def stratified_samples(
    near: torch.Tensor, far: torch.Tensor, n_samples: int, randomize: bool = True, generator=None
) -> tuple[RaySamples, torch.Tensor]:
    """``n_samples`` stratified intervals per ray between ``near`` and ``far`` [R].

    Returns the packed samples and the interval edges [R, K+1] (for :func:`hierarchical_samples`).
    """
    edges = stratified_bins(near, far, n_samples, randomize, generator)
    return _pack_dense(edges), edges


def sample_pdf(
    bins: torch.Tensor,
    weights: torch.Tensor,
    n_samples: int,
    randomize: bool = True,
    generator: torch.Generator | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Inverse-CDF sampling of the piecewise-constant PDF ``weights`` [R, K] over ``bins`` edges [R, K+1].

    Returns sorted positions [R, n_samples]. ``randomize`` draws stratified uniforms (one per ``1/n`` stratum);
    otherwise the stratum midpoints are used. ``eps`` is added to the weights so empty rays sample uniformly.
    """
    R, K = weights.shape
    w = weights.detach() + eps
    pdf = w / w.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1).clamp(max=1.0)  # [R, K+1]
    cdf[:, -1] = 1.0
    if randomize:
        r = torch.rand(R, n_samples, generator=generator, dtype=w.dtype).to(w.device)
        u = (torch.arange(n_samples, device=w.device, dtype=w.dtype) + r) / n_samples
    else:
        u = ((torch.arange(n_samples, device=w.device, dtype=w.dtype) + 0.5) / n_samples).expand(R, -1)
    u = u.contiguous()
    idx = torch.searchsorted(cdf, u, right=True)  # first edge with cdf > u
    below = (idx - 1).clamp(0, K)
    above = idx.clamp(0, K)
    c0, c1 = cdf.gather(1, below), cdf.gather(1, above)
    b0, b1 = bins.gather(1, below), bins.gather(1, above)
    denom = c1 - c0
    frac = torch.where(denom > 0, (u - c0) / denom.clamp_min(1e-12), torch.zeros_like(u))
    return (b0 + frac * (b1 - b0)).detach()


def hierarchical_samples(
    bins: torch.Tensor, weights: torch.Tensor, n_samples: int, randomize: bool = True, generator=None,
    include_coarse: bool = True,
) -> tuple[RaySamples, torch.Tensor]:  # fmt: skip
    """Fine samples for NeRF's hierarchical sampling.

    Draws ``n_samples`` positions per ray from the coarse weights [R, K] over ``bins`` [R, K+1]
    (:func:`sample_pdf`), merges them with the coarse edges (``include_coarse``) and returns packed intervals
    between consecutive sorted positions, plus the fine edges [R, K'].
    """
    t = sample_pdf(bins, weights, n_samples, randomize, generator)
    edges = torch.sort(torch.cat([bins.detach(), t], -1), -1).values if include_coarse else t
    return _pack_dense(edges), edges
