"""DVR's forward pass: ray-box clipping, ray marching to the first free-to-occupied crossing, secant refinement.

A *field* here is a callable ``fn(points [M, 3]) -> [M]`` of occupancy **logits** (positive inside); the surface
is the level set ``fn = level`` (``level = logit(tau)``: 0 for DVR's occupancy threshold tau = 0.5, so
``sign(fn - level) = sign(f_theta - 0.5)``). Rays are ``p = o + t d``; with unit directions ``t`` is the distance
along the ray (world units). Everything here runs under ``no_grad``: the gradient of the depth comes from
:mod:`human3d.dvr.depth` (implicit differentiation), never from the marching.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from human3d.errors import InvalidInputError

__all__ = ["ray_box", "MarchResult", "march_rays", "secant_refine"]

Field = Callable[[torch.Tensor], torch.Tensor]


def ray_box(origins: torch.Tensor, dirs: torch.Tensor, box: torch.Tensor, eps: float = 1e-9):
    """Slab intersection of rays (origins, dirs [R, 3]) with the axis-aligned box [2, 3] (min, max).

    Returns ``t_near``, ``t_far`` [R] (``t_near >= 0``: a ray starting inside the box starts at its origin) and
    ``valid`` [R] bool (the ray meets the box in front of its origin)."""
    inv = 1.0 / torch.where(dirs.abs() < eps, torch.full_like(dirs, eps), dirs)  # [R, 3]
    t0 = (box[0] - origins) * inv
    t1 = (box[1] - origins) * inv
    t_near = torch.minimum(t0, t1).amax(-1).clamp_min(0.0)  # [R]
    t_far = torch.maximum(t0, t1).amin(-1)  # [R]
    return t_near, t_far, t_far > t_near


class MarchResult(NamedTuple):
    """What :func:`march_rays` finds per ray ([R] each)."""

    depth: torch.Tensor  # ray parameter t of the surface (secant-refined); meaningless where ~hit
    hit: torch.Tensor  # bool: a free-to-occupied crossing was found inside [t_near, t_far]
    t_max: torch.Tensor  # t of the marched sample with the largest logit (where rays missing the surface are
    #                     pushed to be occupied: DVR's occupancy loss)
    max_logit: torch.Tensor  # that largest logit
    inside_start: torch.Tensor  # bool: the first sample is already occupied (no free-to-occupied crossing there)


def secant_refine(fn: Field, origins, dirs, t_lo, t_hi, f_lo, f_hi, n_iters: int = 8, level: float = 0.0):
    """Secant steps ``x2 = x1 - f(x1) (x1 - x0) / (f(x1) - f(x0))`` on the two latest iterates, starting from a
    bracket with ``f_lo <= level < f_hi`` (values minus ``level``) and safeguarded by it: the bracket shrinks with
    each new point's sign, and a step that would leave it (or divide by ~0) takes the bracket's own secant point
    (regula falsi, DVR's update) instead. All [R]; returns the last iterate [R]."""
    f_lo, f_hi = f_lo - level, f_hi - level
    x0, g0, x1, g1 = t_lo, f_lo, t_hi, f_hi
    x = t_lo
    for _ in range(int(n_iters)):  # a fixed small number of iterations, vectorised over rays
        den = g1 - g0
        x = x1 - g1 * (x1 - x0) / torch.where(den.abs() < 1e-30, torch.full_like(den, 1e-30), den)
        den_b = f_hi - f_lo
        x_b = t_lo - f_lo * (t_hi - t_lo) / torch.where(den_b.abs() < 1e-30, torch.full_like(den_b, 1e-30), den_b)
        bad = ~torch.isfinite(x) | (x <= torch.minimum(t_lo, t_hi)) | (x >= torch.maximum(t_lo, t_hi))
        x = torch.where(bad, x_b, x)
        f = fn(origins + x[:, None] * dirs) - level  # [R]
        occ = f > 0
        t_hi, f_hi = torch.where(occ, x, t_hi), torch.where(occ, f, f_hi)
        t_lo, f_lo = torch.where(occ, t_lo, x), torch.where(occ, f_lo, f)
        x0, g0, x1, g1 = x1, g1, x, f
    return x


@torch.no_grad()
def march_rays(
    fn: Field,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    t_near: torch.Tensor,
    t_far: torch.Tensor,
    n_steps: int = 128,
    n_secant: int = 8,
    level: float = 0.0,
    step_chunk: int = 16,
    valid: torch.Tensor | None = None,
) -> MarchResult:
    """March every ray (origins, dirs [R, 3]) with ``n_steps`` uniform samples on ``[t_near, t_far]`` [R] to the
    first sign change of ``fn - level`` from free (<= level) to occupied (> level), then refine with ``n_secant``
    secant steps. Samples are evaluated ``step_chunk`` steps at a time and only for rays without a crossing yet,
    so memory is ``O(R * step_chunk)`` whatever ``n_steps``. ``valid`` [R] (default all) marks rays to march."""
    if origins.dim() != 2 or origins.shape[-1] != 3 or dirs.shape != origins.shape:
        raise InvalidInputError(f"origins, dirs: expected rays [R, 3], got {tuple(origins.shape)}, {tuple(dirs.shape)}")
    if int(n_steps) < 2 or int(step_chunk) < 1 or int(n_secant) < 0:
        raise InvalidInputError(f"n_steps / step_chunk / n_secant: expected >= 2 / >= 1 / >= 0, got {n_steps}, "
                                f"{step_chunk}, {n_secant}")  # fmt: skip
    R, dev, dt = origins.shape[0], origins.device, origins.dtype
    n = int(n_steps)
    valid = torch.ones(R, dtype=torch.bool, device=dev) if valid is None else valid.clone()
    found = torch.zeros(R, dtype=torch.bool, device=dev)
    t_lo, t_hi = torch.zeros(R, dtype=dt, device=dev), torch.zeros(R, dtype=dt, device=dev)
    f_lo, f_hi = torch.zeros(R, dtype=dt, device=dev), torch.zeros(R, dtype=dt, device=dev)
    best_f = torch.full((R,), -torch.inf, dtype=dt, device=dev)
    best_t = t_near.clone()
    prev_t = torch.zeros(R, dtype=dt, device=dev)
    prev_f = torch.zeros(R, dtype=dt, device=dev)
    inside_start = torch.zeros(R, dtype=torch.bool, device=dev)
    span = (t_far - t_near).clamp_min(0)
    for s in range(0, n, int(step_chunk)):  # chunks of steps (bounded memory), vectorised over rays
        idx = (valid & ~found).nonzero(as_tuple=True)[0]  # [A] rays still searching
        if idx.numel() == 0:
            break
        k = torch.arange(s, min(s + int(step_chunk), n), device=dev, dtype=dt)  # [c]
        t = t_near[idx, None] + span[idx, None] * (k / (n - 1))  # [A, c]
        pts = origins[idx, None, :] + t[..., None] * dirs[idx, None, :]  # [A, c, 3]
        f = fn(pts.reshape(-1, 3)).reshape(t.shape).to(dt)  # [A, c]
        fmax, amax = f.max(-1)
        better = fmax > best_f[idx]
        best_f[idx] = torch.where(better, fmax, best_f[idx])
        best_t[idx] = torch.where(better, t.gather(1, amax[:, None])[:, 0], best_t[idx])
        if s == 0:
            inside_start[idx] = f[:, 0] > level
            tt, ff = t, f
        else:
            tt = torch.cat([prev_t[idx, None], t], 1)  # [A, c + 1]
            ff = torch.cat([prev_f[idx, None], f], 1)
        prev_t[idx], prev_f[idx] = t[:, -1], f[:, -1]
        if ff.shape[1] < 2:  # a one-step first chunk: no pair of samples yet
            continue
        change = (ff[:, :-1] <= level) & (ff[:, 1:] > level)  # [A, c(+1) - 1] free -> occupied
        has = change.any(-1)
        first = change.float().argmax(-1)  # index of the first crossing (0 where none)
        sel = idx[has]
        fi = first[has, None]
        t_lo[sel], t_hi[sel] = tt[has].gather(1, fi)[:, 0], tt[has].gather(1, fi + 1)[:, 0]
        f_lo[sel], f_hi[sel] = ff[has].gather(1, fi)[:, 0], ff[has].gather(1, fi + 1)[:, 0]
        found[sel] = True
    depth = torch.zeros(R, dtype=dt, device=dev)
    hit_idx = found.nonzero(as_tuple=True)[0]
    if hit_idx.numel():
        depth[hit_idx] = secant_refine(fn, origins[hit_idx], dirs[hit_idx], t_lo[hit_idx], t_hi[hit_idx],
                                       f_lo[hit_idx], f_hi[hit_idx], n_secant, level)  # fmt: skip
    return MarchResult(depth, found, best_t, best_f, inside_start)
