"""Ray marching + secant refinement against closed forms: ray-sphere intersection, ray-box slabs."""

from __future__ import annotations


import pytest
import torch

from human3d.dvr.losses import fd_normals
from human3d.dvr.marching import march_rays, ray_box, secant_refine
from human3d.errors import InvalidInputError

CENTER = torch.tensor([0.1, -0.2, 0.05])
RADIUS = 0.7


def sphere_logits(x: torch.Tensor) -> torch.Tensor:
    """Occupancy logits of a ball (positive inside): sigmoid(8 (r - |x - c|)) is an occupancy with f = 0.5 on the
    sphere, so the level is logit(0.5) = 0."""
    return 8.0 * (RADIUS - (x - CENTER).norm(dim=-1))


def random_rays(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    origins = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1) * 3.0
    target = CENTER + 0.9 * (torch.rand(n, 3, generator=g) * 2 - 1)  # some rays miss the ball
    dirs = torch.nn.functional.normalize(target - origins, dim=-1)
    return origins, dirs


def closed_form(origins, dirs):
    """First intersection t of unit-direction rays with the sphere: t = b - sqrt(b^2 - c), hit where b^2 > c."""
    oc = origins - CENTER
    b = -(oc * dirs).sum(-1)
    disc = b * b - ((oc * oc).sum(-1) - RADIUS**2)
    return b - disc.clamp_min(0).sqrt(), disc > 0


def test_secant_hit_depth_matches_ray_sphere_intersection():
    o, d = random_rays(4000)
    box = torch.tensor([[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]])
    t0, t1, valid = ray_box(o, d, box)
    res = march_rays(sphere_logits, o, d, t0, t1, n_steps=64, n_secant=8, valid=valid)
    t_true, hit_true = closed_form(o, d)
    grazing = (RADIUS - ((o - CENTER) - ((o - CENTER) * d).sum(-1, keepdim=True) * d).norm(dim=-1)).abs() < 1e-3
    assert torch.equal(res.hit[~grazing], hit_true[~grazing])
    assert 0.3 < hit_true.float().mean() < 0.9  # both kinds of rays are tested
    err = (res.depth - t_true)[res.hit & hit_true].abs()
    assert err.max() < 1e-4, err.max()
    assert not res.inside_start.any()


def test_memory_chunks_do_not_change_the_result_and_no_graph_is_built():
    o, d = random_rays(500, seed=1)
    t0, t1, valid = ray_box(o, d, torch.tensor([[-1.5] * 3, [1.5] * 3]))
    a = march_rays(sphere_logits, o, d, t0, t1, 128, 8, step_chunk=1, valid=valid)
    b = march_rays(sphere_logits, o, d, t0, t1, 128, 8, step_chunk=128, valid=valid)
    assert torch.equal(a.hit, b.hit) and torch.allclose(a.depth[a.hit], b.depth[b.hit], atol=1e-6)
    assert not a.depth.requires_grad


def test_secant_step_is_the_formula():
    """One secant step on a bracket equals x2 = x1 - f(x1) (x1 - x0) / (f(x1) - f(x0))."""
    o, d = random_rays(10, seed=2)
    t_true, hit = closed_form(o, d)
    o, d, t_true = o[hit], d[hit], t_true[hit]
    x0, x1 = t_true - 0.05, t_true + 0.03
    f = lambda t: sphere_logits(o + t[:, None] * d)  # noqa: E731
    got = secant_refine(sphere_logits, o, d, x0, x1, f(x0), f(x1), n_iters=1)
    want = x1 - f(x1) * (x1 - x0) / (f(x1) - f(x0))
    assert torch.allclose(got, want, atol=1e-6)


def test_ray_box_slabs_closed_form():
    o = torch.tensor([[-3.0, 0.2, 0.1], [0.0, 0.0, 0.0], [-3.0, 5.0, 0.0]])
    d = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), dim=-1)
    t0, t1, valid = ray_box(o, d, torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    assert torch.allclose(t0[:2], torch.tensor([2.0, 0.0])) and torch.allclose(t1[:2], torch.tensor([4.0, 1.0]))
    assert valid.tolist() == [True, True, False]


def test_fd_normals_of_a_sphere_are_radial():
    x = CENTER + torch.nn.functional.normalize(torch.randn(100, 3), dim=-1) * RADIUS
    n = fd_normals(sphere_logits, x, 1e-3)
    assert torch.allclose(n, torch.nn.functional.normalize(x - CENTER, dim=-1), atol=1e-3)


def test_bad_rays_are_named():
    with pytest.raises(InvalidInputError, match="origins, dirs: expected rays"):
        march_rays(sphere_logits, torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(4), torch.ones(4))
    with pytest.raises(InvalidInputError, match="n_steps"):
        march_rays(sphere_logits, torch.zeros(4, 3), torch.ones(4, 3), torch.zeros(4), torch.ones(4), n_steps=1)
