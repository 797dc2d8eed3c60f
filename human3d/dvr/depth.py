"""DVR's backward pass: the depth of the surface along a ray, differentiated implicitly.

At the hit ``p = o + t d`` the field satisfies ``f_theta(p) = level``. Differentiating,
``df/dtheta + (grad_p f . d) dt/dtheta = 0``, so ``dt/dtheta = -(grad_p f . d)^-1 df/dtheta`` (Niemeyer et al.
2020, eq. 7): no gradient flows through the marching or the secant steps. :func:`implicit_depth` returns ``t``
as a tensor whose backward is exactly that: ``dL/dtheta = sum_rays -(dL/dt) (df/dtheta) / (grad_p f . d)``,
computed with one ``autograd.grad`` of ``f(p)`` with those per-ray weights. The denominator is clamped away from
zero (``|grad_p f . d| >= 1e-3``, DVR's value, keeping its sign); rays without a hit get zero gradient.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from human3d.errors import InvalidInputError

__all__ = ["implicit_depth", "DENOM_EPS"]

#: |grad_p f . d| is clamped to at least this (DVR's value).
DENOM_EPS = 1e-3


class _ImplicitDepth(torch.autograd.Function):
    @staticmethod
    def forward(ctx, depth, origins, dirs, hit, fn, eps, *params):  # depth [R], origins/dirs [R, 3], hit [R]
        idx = hit.nonzero(as_tuple=True)[0]
        p = (origins[idx] + depth[idx, None] * dirs[idx]).detach()  # [H, 3] the hit points
        denom = torch.zeros(0, dtype=depth.dtype, device=depth.device)
        if idx.numel() and any(ctx.needs_input_grad[6:]):
            with torch.enable_grad():
                x = p.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(fn(x).sum(), x)  # [H, 3] grad_p f
            denom = (g * dirs[idx]).sum(-1)  # [H]
            sign = torch.where(denom < 0, -torch.ones_like(denom), torch.ones_like(denom))
            denom = sign * denom.abs().clamp_min(eps)
        ctx.fn, ctx._params = fn, params  # the parameter tensors themselves (autograd.grad's inputs)
        ctx.save_for_backward(idx, p, denom)
        return depth.clone()

    @staticmethod
    def backward(ctx, grad_depth):  # grad_depth [R]
        idx, p, denom = ctx.saved_tensors
        params = ctx.needs_input_grad[6:]
        n_in = 6 + len(params)
        grads: list = [None] * n_in
        if idx.numel() == 0 or denom.numel() == 0 or not any(params):
            return tuple(grads)
        with torch.enable_grad():
            f = ctx.fn(p)  # [H] f(p) with the parameters' graph
            w = -grad_depth[idx] / denom  # [H] -(dL/dt) / (grad_p f . d)
            inputs = [t for t, need in zip(ctx._params, params) if need]
            g = torch.autograd.grad(f, inputs, grad_outputs=w.to(f.dtype), allow_unused=True)
        it = iter(g)
        for k, need in enumerate(params):
            if need:
                gk = next(it)
                grads[6 + k] = gk if gk is not None else torch.zeros_like(ctx._params[k])
        return tuple(grads)


def implicit_depth(fn: Callable[[torch.Tensor], torch.Tensor], params: Sequence[torch.Tensor], depth: torch.Tensor,
                   origins: torch.Tensor, dirs: torch.Tensor, hit: torch.Tensor,
                   eps: float = DENOM_EPS) -> torch.Tensor:  # fmt: skip
    """The hit depth ``depth`` [R] (from :func:`human3d.dvr.marching.march_rays`, no graph) as a function of the
    field's parameters ``params`` (those of ``fn``: ``list(model.parameters())``), with DVR's implicit gradient.

    ``fn(points [M, 3]) -> [M]`` is the field whose level set was found (e.g. occupancy logits); origins, dirs
    [R, 3]; hit [R] bool. Returns depth [R] (the same values; zero gradient where ``~hit``).
    """
    if depth.dim() != 1 or origins.shape != (depth.shape[0], 3) or dirs.shape != origins.shape:
        raise InvalidInputError(f"depth, origins, dirs: expected [R], [R, 3], [R, 3], got {tuple(depth.shape)}, "
                                f"{tuple(origins.shape)}, {tuple(dirs.shape)}")  # fmt: skip
    if hit.shape != depth.shape or hit.dtype != torch.bool:
        raise InvalidInputError(f"hit: expected a bool tensor [R] = {tuple(depth.shape)}, got {hit.dtype} {tuple(hit.shape)}")
    return _ImplicitDepth.apply(depth.detach(), origins.detach(), dirs.detach(), hit, fn, float(eps), *params)
