"""Volume rendering and samplers against closed forms, a per-ray loop reference, a KS test and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from human3d.nerf import (
    OccupancyGrid,
    exclusive_segment_cumsum,
    hierarchical_samples,
    ray_aabb_intersect,
    sample_pdf,
    stratified_samples,
    volume_render,
    volume_render_dense,
)


def _random_packed(g, n_rays=7, max_k=9, dtype=torch.float64):
    counts = torch.randint(0, max_k, (n_rays,), generator=g)
    counts[0] = 0  # an empty ray
    ri = torch.arange(n_rays).repeat_interleave(counts)
    edges = [torch.sort(torch.rand(int(c) + 1, generator=g, dtype=dtype) * 5).values for c in counts]
    ts = torch.cat([e[:-1] for e in edges])
    te = torch.cat([e[1:] for e in edges])
    return ri, ts, te


def _reference_render(sig, rgb, ts, te, ri, n_rays):
    """Independent per-ray loop with the product form T_i = prod_{j<i} (1 - alpha_j)."""
    out_rgb = np.zeros((n_rays, 3))
    out_op = np.zeros(n_rays)
    out_depth = np.zeros(n_rays)
    for r in range(n_rays):
        T = 1.0
        for i in np.nonzero(ri.numpy() == r)[0]:
            a = 1 - math.exp(-float(sig[i]) * float(te[i] - ts[i]))
            out_rgb[r] += T * a * rgb[i].numpy()
            out_op[r] += T * a
            out_depth[r] += T * a * float(ts[i] + te[i]) / 2
            T *= 1 - a
    return out_rgb, out_op, out_depth


def test_packed_rendering_matches_per_ray_loop():
    g = torch.Generator().manual_seed(0)
    ri, ts, te = _random_packed(g)
    sig = torch.rand(len(ri), generator=g, dtype=torch.float64) * 3
    rgb = torch.rand(len(ri), 3, generator=g, dtype=torch.float64)
    out = volume_render(sig, rgb, ts, te, ri, 7)
    ref_rgb, ref_op, ref_depth = _reference_render(sig, rgb, ts, te, ri, 7)
    assert np.allclose(out.rgb.numpy(), ref_rgb) and np.allclose(out.opacity.numpy(), ref_op)
    assert np.allclose(out.depth.numpy(), ref_depth)
    assert out.rgb[0].abs().sum() == 0 and out.opacity[0] == 0  # empty ray


def test_constant_density_slab_transmittance():
    # a slab of density sigma on [a, b], split into uneven intervals on each ray: T(b) = exp(-sigma (b - a)),
    # T_i = exp(-sigma (t_i - a)) exactly (the density is piecewise constant)
    sigma, a, b = 1.7, 2.0, 2.9
    g = torch.Generator().manual_seed(1)
    ris, tss, tes = [], [], []
    for r, k in enumerate([1, 5, 40]):
        e = torch.cat([torch.tensor([a]), torch.sort(a + (b - a) * torch.rand(k - 1, generator=g, dtype=torch.float64)).values, torch.tensor([b])])
        ris.append(torch.full((k,), r)), tss.append(e[:-1]), tes.append(e[1:])
    ri, ts, te = torch.cat(ris), torch.cat(tss), torch.cat(tes)
    out = volume_render(torch.full_like(ts, sigma), torch.ones(len(ts), 3, dtype=torch.float64), ts, te, ri, 3)
    assert torch.allclose(out.transmittance, torch.exp(-sigma * (ts - a)))
    assert torch.allclose(1 - out.opacity, torch.full((3,), math.exp(-sigma * (b - a)), dtype=torch.float64))


def test_weights_sum_at_most_one():
    g = torch.Generator().manual_seed(2)
    ri, ts, te = _random_packed(g, n_rays=50, max_k=30, dtype=torch.float32)
    sig = torch.rand(len(ri), generator=g) ** 4 * 1e4  # from ~0 to very opaque
    out = volume_render(sig, torch.rand(len(ri), 3, generator=g), ts, te, ri, 50)
    sums = torch.zeros(50).index_add_(0, ri, out.weights)
    assert (out.weights >= 0).all() and (sums <= 1 + 1e-6).all()
    assert torch.allclose(sums, out.opacity)


def test_single_opaque_sample_returns_its_colour_and_depth():
    c = torch.tensor([[0.2, 0.5, 0.9]])
    out = volume_render(torch.tensor([1e5]), c, torch.tensor([3.0]), torch.tensor([3.2]), torch.tensor([0]), 1,
                        background=torch.tensor([1.0, 0.0, 0.0]))  # fmt: skip
    assert torch.allclose(out.rgb, c) and out.opacity.item() == pytest.approx(1.0)
    assert out.depth.item() == pytest.approx(3.1)
    # behind transparent samples and in front of others, the opaque one still wins
    sig = torch.tensor([0.0, 0.0, 1e5, 5.0])
    rgb = torch.tensor([[1.0, 1, 1], [0, 0, 0], [0.2, 0.5, 0.9], [0, 1, 0]])
    t = torch.arange(5.0)
    out = volume_render(sig, rgb, t[:-1], t[1:], torch.zeros(4, dtype=torch.long), 1)
    assert torch.allclose(out.rgb, c)


def test_background_compositing_and_dense_wrapper():
    sig = torch.tensor([[0.0, 0.0], [0.5, 0.0]])
    rgb = torch.zeros(2, 2, 3)
    t = torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    bg = torch.tensor([0.3, 0.6, 0.9])
    out = volume_render_dense(sig, rgb, t[:, :-1], t[:, 1:], background=bg)
    assert torch.allclose(out.rgb[0], bg)  # empty ray sees the background
    assert torch.allclose(out.rgb[1], math.exp(-0.5) * bg)  # black half-transparent sample in front of it
    assert out.weights.shape == (2, 2)


def test_rendering_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(3)
    ri, ts, te = _random_packed(g, n_rays=4, max_k=5)
    sig = (torch.rand(len(ri), generator=g, dtype=torch.float64) * 2).requires_grad_()
    rgb = torch.rand(len(ri), 3, generator=g, dtype=torch.float64).requires_grad_()

    def f(s, c):
        o = volume_render(s, c, ts, te, ri, 4, background=torch.full((3,), 0.5, dtype=torch.float64))
        return o.rgb, o.depth

    assert torch.autograd.gradcheck(f, (sig, rgb))


def test_exclusive_segment_cumsum_large_offsets():
    # float64 inside: a long prefix of big values must not swamp the small per-ray sums
    v = torch.cat([torch.full((100000,), 1000.0), torch.full((3,), 1e-3)])
    ri = torch.cat([torch.zeros(100000, dtype=torch.long), torch.ones(3, dtype=torch.long)])
    out = exclusive_segment_cumsum(v, ri, 2)
    assert torch.allclose(out[-3:], torch.tensor([0.0, 1e-3, 2e-3]), atol=1e-9)


# ----------------------------------------------------------------------------------------------- samplers
def test_stratified_samples_cover_strata():
    R, K = 2000, 8
    near, far = torch.full((R,), 2.0), torch.full((R,), 6.0)
    s, edges = stratified_samples(near, far, K, randomize=True, generator=torch.Generator().manual_seed(0))
    assert len(s) == R * K and torch.equal(s.counts(), torch.full((R,), K))
    assert (edges[:, 0] == 2).all() and (edges[:, -1] == 6).all() and (edges.diff(dim=-1) > 0).all()
    # each interval midpoint stays within its half-bin-padded stratum and the pooled midpoints are uniform
    mids = s.t_mids.view(R, K)
    k = torch.arange(K)
    assert ((mids >= 2 + 4 * (k - 0.5) / K).all() and (mids <= 2 + 4 * (k + 1.5) / K).all())
    det, _ = stratified_samples(near[:1], far[:1], K, randomize=False)
    assert torch.allclose(det.t_mids, 2 + 4 * (k + 0.5) / K)


def _piecewise_cdf(bins, w):
    w = w / w.sum()
    cum = np.concatenate([[0], np.cumsum(w)])
    return lambda x: np.interp(x, bins, cum)


def test_hierarchical_sampler_matches_its_pdf_ks_test():
    bins = np.array([2.0, 2.5, 3.0, 3.2, 4.0, 5.5, 6.0])
    w = np.array([0.1, 0.0, 3.0, 0.5, 1.0, 0.2])
    R = 4000  # one i.i.d. draw per ray (identical PDFs): a valid KS sample
    tb = torch.tensor(bins, dtype=torch.float64).expand(R, -1)
    tw = torch.tensor(w, dtype=torch.float64).expand(R, -1)
    x = sample_pdf(tb, tw, 1, randomize=True, generator=torch.Generator().manual_seed(0), eps=0)[:, 0].numpy()
    cdf = _piecewise_cdf(bins, w)
    assert stats.kstest(x, cdf).pvalue > 0.01
    # a wrong PDF (uniform over the bins) is rejected by the same test
    assert stats.kstest(x, lambda t: (t - 2) / 4).pvalue < 1e-6
    # deterministic draws are exactly the inverse CDF at the stratum midpoints
    det = sample_pdf(tb[:1], tw[:1], 10, randomize=False, eps=0)[0].numpy()
    u = (np.arange(10) + 0.5) / 10
    assert np.allclose(cdf(det), u, atol=1e-9)
    assert not ((det > 2.5) & (det < 3.0)).any()  # nothing where the weight is zero
    fine, edges = hierarchical_samples(tb[:3], tw[:3], 16, randomize=True, generator=torch.Generator().manual_seed(1))
    assert edges.shape == (3, 7 + 16) and (edges.diff(dim=-1) >= 0).all() and len(fine) == 3 * 22


def test_ray_aabb_intersect_closed_form():
    aabb = torch.tensor([[-1.0, -1, -1], [1, 1, 1]])
    o = torch.tensor([[-5.0, 0, 0], [0, 0, 0], [-5, 3, 0]])
    d = torch.tensor([[1.0, 0, 0], [0, 0, 1], [1, 0, 0]])
    t0, t1, hit = ray_aabb_intersect(o, d, aabb)
    assert torch.allclose(t0[:2], torch.tensor([4.0, -1])) and torch.allclose(t1[:2], torch.tensor([6.0, 1]))
    assert hit.tolist() == [True, True, False]


def test_occupancy_march_matches_brute_force():
    grid = OccupancyGrid(torch.tensor([[-1.0, -1, -1], [1, 1, 1]]), resolution=8)
    grid.binary.zero_()
    grid.binary[2:4, 3, 1:6] = True  # a few occupied cells
    g = torch.Generator().manual_seed(0)
    o = torch.randn(64, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, -3.0])
    d = torch.nn.functional.normalize(torch.tensor([0.0, 0.0, 3.0]) + torch.randn(64, 3, generator=g) * 0.5, dim=-1)
    step = 0.01
    s = grid.march(o, d, near=0.5, far=10.0, step_size=step)
    # brute force: every step along every ray, midpoint tested cell by cell
    t0, t1, _ = ray_aabb_intersect(o, d, grid.aabb)
    t0 = t0.clamp_min(0.5)
    expect = []
    for r in range(64):
        k = 0
        while t0[r] + (k + 0.5) * step < t1[r]:
            p = o[r] + d[r] * (t0[r] + (k + 0.5) * step)
            ijk = ((p + 1) / 2 * 8).floor().long().clamp(0, 7)
            if ((p >= -1) & (p < 1)).all() and grid.binary[tuple(ijk)]:
                expect.append((r, round(float(t0[r] + k * step), 4)))
            k += 1
    got = list(zip(s.ray_indices.tolist(), [round(v, 4) for v in s.t_starts.tolist()]))
    assert len(expect) > 50 and got == expect
    assert torch.allclose(s.t_ends - s.t_starts, torch.full_like(s.t_starts, step))


def test_occupancy_update_and_culling():
    aabb = torch.tensor([[-1.0, -1, -1], [1, 1, 1]])
    grid = OccupancyGrid(aabb, resolution=8)

    def density(x):  # dense cube in cells [2, 4) along every axis
        return ((x >= -0.5) & (x < 0.0)).all(-1).float() * 100.0

    grid.update(density, step_size=0.01)
    expect = torch.zeros(8, 8, 8, dtype=torch.bool)
    expect[2:4, 2:4, 2:4] = True
    assert torch.equal(grid.binary, expect)
    assert torch.allclose(grid.occs.view(8, 8, 8)[2, 2, 2], torch.tensor(1.0))  # density * step
    # EMA: the density vanishes -> occupancy decays by ema_decay, cells become empty below the threshold
    grid.update(lambda x: torch.zeros(x.shape[0]), step_size=0.01, ema_decay=0.5)
    assert torch.allclose(grid.occs.view(8, 8, 8)[2, 2, 2], torch.tensor(0.5))
    # transmittance culling: the opaque cube stops rays; nothing behind it is returned
    o = torch.tensor([[-0.25, -0.25, -3.0]])
    d = torch.tensor([[0.0, 0.0, 1.0]])
    grid.binary.fill_(True)
    s = grid.march(o, d, 0.0, 10.0, 0.01, sigma_fn=lambda smp, p: density(p), early_stop_eps=1e-4)
    assert s.t_starts.min() == pytest.approx(2.0) and 2.5 < s.t_starts.max() < 2.5 + 0.1  # empty space kept
    s = grid.march(o, d, 0.0, 10.0, 0.01, sigma_fn=lambda smp, p: density(p), alpha_thre=1e-3)
    assert s.t_starts.min() >= 2.5 - 0.011 and s.t_starts.max() < 2.5 + 0.1  # low-alpha samples dropped


def test_carve_from_masks_keeps_the_object():
    from human3d.geometry import generate_rays, intrinsics_from_fov, invert_rigid, look_at

    aabb = torch.tensor([[-1.0, -1, -1], [1, 1, 1]])
    grid = OccupancyGrid(aabb, resolution=16)
    n, size = 12, 32
    ang = torch.arange(n) * 2 * math.pi / n
    eyes = torch.stack([3 * torch.cos(ang), 3 * torch.sin(ang), 0.8 * torch.ones(n)], -1)
    w2c = look_at(eyes, torch.zeros(n, 3), torch.tensor([0.0, 0, 1]).expand(n, 3))
    K = intrinsics_from_fov(0.9, size, size, n)
    # masks of a sphere of radius 0.4: pixels whose ray passes within 0.4 of the origin
    o, d = generate_rays(K, invert_rigid(w2c), size, size)
    dist = torch.linalg.cross(-o, d, dim=-1).norm(dim=-1)
    alphas = (dist < 0.4).float()
    kept = grid.carve_from_masks(K, w2c, alphas, dilate=1)
    assert 0 < kept < 0.3
    centers = grid.cell_centers()
    inside_sphere = centers.norm(dim=-1) < 0.4
    assert grid.hull.view(-1)[inside_sphere].all()  # every cell of the object survives
    assert not grid.hull.view(-1)[centers.norm(dim=-1) > 1.2].any()  # far cells are carved
    assert torch.equal(grid.binary, grid.hull)


def test_progressive_culling_equals_full_transmittance():
    from human3d.nerf import render_transmittance

    g = torch.Generator().manual_seed(5)
    grid = OccupancyGrid(torch.tensor([[-1.0, -1, -1], [1, 1, 1]]), resolution=8)
    o = torch.tensor([0.0, 0.0, -3.0]) + torch.randn(40, 3, generator=g) * 0.2
    d = torch.nn.functional.normalize(torch.tensor([0.0, 0.0, 1.0]) + torch.randn(40, 3, generator=g) * 0.2, dim=-1)
    table = torch.rand(8, 8, 8, generator=g) ** 6 * 200  # sparse, sometimes opaque cells

    def sigma_fn(smp, p):
        ijk = ((p + 1) / 2 * 8).floor().long().clamp(0, 7)
        return table[ijk[:, 0], ijk[:, 1], ijk[:, 2]]

    full = grid.march(o, d, 0.0, 10.0, 0.01)
    assert full.counts().max() > 100  # several culling rounds per ray
    trans, alphas = render_transmittance(sigma_fn(full, full.positions(o, d)), full.t_starts, full.t_ends,
                                         full.ray_indices, 40)  # fmt: skip
    for eps, athr in ((1e-4, 0.0), (1e-2, 1e-3)):
        expect = (trans > eps) & (alphas >= athr)
        got = grid.march(o, d, 0.0, 10.0, 0.01, sigma_fn=sigma_fn, early_stop_eps=eps, alpha_thre=athr)
        assert torch.equal(got.t_starts, full.t_starts[expect]) and torch.equal(got.ray_indices, full.ray_indices[expect])
