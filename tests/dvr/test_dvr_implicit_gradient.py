"""DVR's implicit depth gradient against two oracles on a tiny float64 MLP field: central finite differences of
the marched hit depth w.r.t. every parameter, and autograd through an unrolled secant solve."""

from __future__ import annotations

import torch

from human3d.dvr.depth import implicit_depth
from human3d.dvr.marching import march_rays, ray_box, secant_refine


class TinyField(torch.nn.Module):
    """Ball logits + a small tanh MLP (float64): a smooth field whose surface depends on every parameter."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.l1 = torch.nn.Linear(3, 6).double()
        self.l2 = torch.nn.Linear(6, 1).double()
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)

    def forward(self, x):
        return 6.0 * (0.8 - x.norm(dim=-1)) + self.l2(torch.tanh(self.l1(x)))[:, 0]


def rays(n=12):
    g = torch.Generator().manual_seed(5)
    o = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1) * 2.5
    d = torch.nn.functional.normalize(0.3 * torch.randn(n, 3, generator=g, dtype=torch.float64) - o, dim=-1)
    d[-1] = torch.nn.functional.normalize(torch.cross(o[-1], torch.ones(3, dtype=torch.float64), dim=0), dim=0)
    return o, d  # the last ray is tangent-free: it misses the ball


def march(field, o, d):
    t0, t1, valid = ray_box(o, d, torch.tensor([[-2.0] * 3, [2.0] * 3], dtype=torch.float64))
    return march_rays(field, o, d, t0, t1, n_steps=96, n_secant=40, step_chunk=96, valid=valid)


def test_implicit_gradient_matches_finite_differences_and_unrolled_secant():
    field = TinyField()
    o, d = rays()
    res = march(field, o, d)
    assert res.hit[:-1].all() and not res.hit[-1]
    weights = torch.linspace(0.5, 1.5, len(o), dtype=torch.float64)
    params = list(field.parameters())
    t = implicit_depth(field, params, res.depth, o, d, res.hit)
    assert torch.equal(t, res.depth)
    grads = torch.autograd.grad((weights * t).sum(), params)

    # oracle 1: central finite differences of the marched depth, every parameter entry
    h = 1e-6
    fd = []
    with torch.no_grad():
        for p in params:
            g = torch.zeros_like(p)
            for i in range(p.numel()):
                old = p.view(-1)[i].item()
                p.view(-1)[i] = old + h
                up = (weights * march(field, o, d).depth).sum()
                p.view(-1)[i] = old - h
                dn = (weights * march(field, o, d).depth).sum()
                p.view(-1)[i] = old
                g.view(-1)[i] = (up - dn) / (2 * h)
            fd.append(g)
    for g, f in zip(grads, fd):
        assert torch.allclose(g, f, rtol=1e-5, atol=1e-7), (g - f).abs().max()

    # oracle 2: autograd through 60 unrolled secant steps from a fixed bracket around the root
    hit = res.hit
    lo, hi = (res.depth[hit] - 0.02).detach(), (res.depth[hit] + 0.02).detach()
    f_lo, f_hi = field(o[hit] + lo[:, None] * d[hit]), field(o[hit] + hi[:, None] * d[hit])
    t_unrolled = secant_refine(field, o[hit], d[hit], lo, hi, f_lo, f_hi, n_iters=60)
    assert torch.allclose(t_unrolled, res.depth[hit], atol=1e-10)
    unrolled = torch.autograd.grad((weights[hit] * t_unrolled).sum(), params)
    for g, u in zip(grads, unrolled):
        assert torch.allclose(g, u, rtol=1e-6, atol=1e-9), (g - u).abs().max()


def test_rays_without_a_hit_get_zero_gradient():
    field = TinyField()
    o, d = rays()
    res = march(field, o, d)
    params = list(field.parameters())
    w = torch.zeros(len(o), dtype=torch.float64)
    w[-1] = 1.0  # only the missing ray carries loss
    t = implicit_depth(field, params, res.depth, o, d, res.hit)
    grads = torch.autograd.grad((w * t).sum(), params, allow_unused=True)
    assert all(g is None or torch.count_nonzero(g) == 0 for g in grads)
