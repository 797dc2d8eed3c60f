"""The tile rasterizer against closed forms, a brute-force compositor, autograd and finite differences."""

import importlib

import pytest
import torch

from human3d.errors import InvalidInputError
from human3d.splat import rasterize
from human3d.splat.projection import project_gaussians

R = importlib.import_module("human3d.splat.rasterize")  # the module (the package exports the function)
DT = torch.float64
W, H = 32, 24
K = torch.tensor([[[50.0, 0.0, 16.0], [0.0, 50.0, 12.0], [0.0, 0.0, 1.0]]], dtype=DT)
I4 = torch.eye(4, dtype=DT)[None]
UNIT_Q = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=DT)


def _pixel_grid():
    v, u = torch.meshgrid(torch.arange(H, dtype=DT) + 0.5, torch.arange(W, dtype=DT) + 0.5, indexing="ij")
    return u, v


def _analytic_alpha(mean_cam, s, o):
    """alpha image of an isotropic Gaussian (scale s, opacity o) at camera-frame mean_cam, by the EWA formulas."""
    x, y, z = mean_cam
    f = 50.0
    J = torch.tensor([[f / z, 0, -f * x / z**2], [0, f / z, -f * y / z**2]], dtype=DT)
    cov = s**2 * J @ J.T + 0.3 * torch.eye(2, dtype=DT)
    inv = torch.linalg.inv(cov)
    mu = torch.tensor([f * x / z + 16.0, f * y / z + 12.0], dtype=DT)
    u, v = _pixel_grid()
    d = torch.stack([u - mu[0], v - mu[1]], -1)
    q = torch.einsum("hwi,ij,hwj->hw", d, inv, d)
    a = (o * torch.exp(-0.5 * q)).clamp(max=0.99)
    return torch.where(a >= 1 / 255, a, torch.zeros_like(a))


def test_single_isotropic_gaussian_matches_analytic_image():
    mean = (0.13, -0.07, 2.0)  # off-axis: the EWA Jacobian makes the footprint slightly anisotropic
    s, o = 0.12, 0.8
    col = torch.tensor([[0.2, 0.5, 0.9]], dtype=DT)
    bg = torch.tensor([1.0, 0.5, 0.0], dtype=DT)
    rc, ra, meta = rasterize(torch.tensor([mean], dtype=DT), UNIT_Q[None], torch.full((1, 3), s, dtype=DT),
                             torch.tensor([o], dtype=DT), col, I4, K, W, H, background=bg)  # fmt: skip
    a = _analytic_alpha(mean, s, o)
    assert int((a > 0).sum()) > 50 and bool((a == 0).any())  # footprint inside the image, threshold exercised
    torch.testing.assert_close(ra[0, ..., 0], a, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(rc[0], a[..., None] * col[0] + (1 - a[..., None]) * bg, rtol=1e-12, atol=1e-14)
    assert meta["n_fragments"] == int((a > 0).sum())  # only pixels inside the footprint are evaluated


def test_two_overlapping_gaussians_composite_closed_form():
    far, near = (0.05, 0.0, 3.0), (-0.04, 0.02, 2.0)
    means = torch.tensor([far, near], dtype=DT)  # given back to front: the rasterizer sorts by depth
    scales = torch.tensor([[0.2] * 3, [0.1] * 3], dtype=DT)
    opac = torch.tensor([0.9, 0.7], dtype=DT)
    cols = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=DT)
    bg = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    rc, ra, _ = rasterize(means, UNIT_Q.expand(2, 4), scales, opac, cols, I4, K, W, H, background=bg)
    a_far = _analytic_alpha(far, 0.2, 0.9)[..., None]
    a_near = _analytic_alpha(near, 0.1, 0.7)[..., None]
    expected = a_near * cols[1] + (1 - a_near) * a_far * cols[0] + (1 - a_near) * (1 - a_far) * bg
    torch.testing.assert_close(rc[0], expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(ra[0], 1 - (1 - a_near) * (1 - a_far), rtol=1e-12, atol=1e-14)


def test_alpha_clamp_and_early_termination():
    # three opaque layers centred on pixel (12, 16): alpha 0.98 each there; after two layers T = 4e-4 and the
    # third would bring it to 8e-6 < 1e-4, so 3DGS stops before it (its colour must not appear)
    u0, v0, f = 16.5, 12.5, 50.0
    zs = [2.0, 2.5, 3.0]
    means = torch.tensor([[(u0 - 16) * z / f, (v0 - 12) * z / f, z] for z in zs], dtype=DT)
    opac = torch.tensor([0.98, 0.98, 0.98], dtype=DT)
    cols = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [100.0, 100.0, 100.0]], dtype=DT)
    bg = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    rc, ra, _ = rasterize(means, UNIT_Q.expand(3, 4), torch.full((3, 3), 0.2, dtype=DT), opac, cols, I4, K, W, H,
                          background=bg)  # fmt: skip
    expected = 0.98 * cols[0] + 0.02 * 0.98 * cols[1] + 0.02 * 0.02 * bg
    torch.testing.assert_close(rc[0, 12, 16], expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ra[0, 12, 16, 0], torch.tensor(1 - 4e-4, dtype=DT), rtol=1e-12, atol=1e-12)
    # clamp: a single Gaussian of opacity 1 gives alpha 0.99 at its centre
    _, ra1, _ = rasterize(means[:1], UNIT_Q[None], torch.full((1, 3), 0.2, dtype=DT), torch.ones(1, dtype=DT),
                          cols[:1], I4, K, W, H)  # fmt: skip
    assert float(ra1[0, 12, 16, 0]) == pytest.approx(0.99, abs=1e-15)


def _random_scene(n=40, seed=0, dtype=DT, min_opacity=0.04):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype) * 0.25
    means[:, 2] += 2.5
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = torch.rand(n, 3, generator=g, dtype=dtype) * 0.12 + 0.02
    opac = torch.rand(n, generator=g, dtype=dtype) * (0.999 - min_opacity) + min_opacity
    cols = torch.rand(n, 3, generator=g, dtype=dtype)
    return means, quats, scales, opac, cols


def _brute_force(means, quats, scales, opac, cols, bg):
    """Loop over Gaussians (test oracle only): every pixel, front to back, 3DGS skip/clamp/termination rules."""
    p = project_gaussians(means, I4, K, W, H, quats=quats, scales=scales, opacities=opac)
    u, v = _pixel_grid()
    T = torch.ones(H, W, dtype=DT)
    C = torch.zeros(H, W, 3, dtype=DT)
    done = torch.zeros(H, W, dtype=torch.bool)
    for i in torch.argsort(p.depths[0]).tolist():
        if not bool(p.valid[0, i]):
            continue
        a, b, c = p.conics[0, i]
        dx, dy = u - p.means2d[0, i, 0], v - p.means2d[0, i, 1]
        al = (opac[i] * torch.exp(-0.5 * (a * dx * dx + 2 * b * dx * dy + c * dy * dy))).clamp(max=0.99)
        use = (al >= 1 / 255) & ~done
        nt = T * (1 - al)
        stop = use & (nt < 1e-4)
        done |= stop
        use &= ~stop
        C = C + torch.where(use[..., None], (al * T)[..., None] * cols[i], torch.zeros_like(C))
        T = torch.where(use, nt, T)
    return C + T[..., None] * bg, 1 - T, done


@pytest.mark.parametrize("chunk", [10**7, 300])
def test_random_scene_matches_brute_force(chunk):
    means, quats, scales, opac, cols = _random_scene(150, seed=1, min_opacity=0.5)
    bg = torch.tensor([0.3, 0.6, 0.9], dtype=DT)
    rc, ra, meta = rasterize(means, quats, scales, opac, cols, I4, K, W, H, background=bg, chunk_fragments=chunk)
    C, A, terminated = _brute_force(means, quats, scales, opac, cols, bg)
    torch.testing.assert_close(rc[0], C, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ra[0, ..., 0], A, rtol=1e-10, atol=1e-12)
    assert int(terminated.sum()) > 10  # early termination is exercised


def test_custom_backward_matches_autograd():
    means, quats, scales, opac, cols = _random_scene(150, seed=2, min_opacity=0.5)
    p = project_gaussians(means, I4, K, W, H, quats=quats, scales=scales, opacities=opac)
    vis = torch.nonzero(p.valid[0]).squeeze(1)
    args = [p.means2d[0, vis].detach(), p.conics[0, vis].detach(), opac[vis].detach(), cols[vis].detach()]
    frags = R.build_fragments(*args[:3], p.depths[0, vis], torch.zeros_like(vis), 1, W, H, 16, chunk_fragments=200)
    assert len(frags.chunks) > 1
    g = torch.Generator().manual_seed(0)
    wc, wa = torch.randn(W * H, 3, generator=g, dtype=DT), torch.randn(W * H, generator=g, dtype=DT)
    grads = []
    for fn in (R.composite_fragments, R.composite_fragments_reference):
        x = [a.clone().requires_grad_() for a in args]
        c, a = fn(*x, frags)
        grads.append(torch.autograd.grad((c * wc).sum() + (a * wa).sum(), x))
    for g1, g2 in zip(*grads):
        torch.testing.assert_close(g1, g2, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("sh_degree", [None, 2])
def test_gradients_match_finite_differences(sh_degree):
    g = torch.Generator().manual_seed(3)
    n, w, h = 4, 12, 10
    K_small = torch.tensor([[[14.0, 0, 6.0], [0, 14.0, 5.0], [0, 0, 1]]], dtype=DT)
    means = torch.randn(n, 3, generator=g, dtype=DT) * 0.3 + torch.tensor([0.0, 0.0, 2.0], dtype=DT)
    log_scales = torch.log(torch.rand(n, 3, generator=g, dtype=DT) * 0.2 + 0.15)
    quats = torch.randn(n, 4, generator=g, dtype=DT)
    logits = torch.randn(n, generator=g, dtype=DT).clamp(-1.5, 1.5)  # opacity in (0.18, 0.82): no clamp at 0.99
    cols = torch.rand(n, 9, 3, generator=g, dtype=DT) - 0.3 if sh_degree else torch.rand(n, 3, generator=g, dtype=DT)
    weight = torch.randn(1, h, w, 3, generator=g, dtype=DT)
    vm = torch.eye(4, dtype=DT)[None]
    vm[0, :3, 3] = torch.tensor([0.05, -0.03, 0.1], dtype=DT)

    def f(means, log_scales, quats, logits, cols):
        rc, ra, _ = rasterize(means, quats, torch.exp(log_scales), torch.sigmoid(logits), cols, vm, K_small, w, h,
                              sh_degree=sh_degree, background=torch.tensor([0.2, 0.4, 0.6], dtype=DT))  # fmt: skip
        return (rc * weight).sum() + ra.sum()

    inputs = [t.clone().requires_grad_() for t in (means, log_scales, quats, logits, cols)]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_multi_camera_batch_equals_single_renders():
    means, quats, scales, opac, cols = _random_scene(50, seed=4)
    vm = torch.eye(4, dtype=DT).repeat(2, 1, 1)
    vm[1, :3, 3] = torch.tensor([0.1, 0.05, 0.2], dtype=DT)
    Ks = torch.cat([K, K * torch.tensor([[1.1], [1.1], [1.0]], dtype=DT)])
    rc, ra, meta = rasterize(means, quats, scales, opac, cols, vm, Ks, W, H)
    assert rc.shape == (2, H, W, 3) and ra.shape == (2, H, W, 1) and meta["means2d"].shape == (2, 50, 2)
    for c in range(2):
        rc1, ra1, _ = rasterize(means, quats, scales, opac, cols, vm[c : c + 1], Ks[c : c + 1], W, H)
        torch.testing.assert_close(rc[c], rc1[0], rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(ra[c], ra1[0], rtol=1e-12, atol=1e-13)


def test_depth_render_modes_and_tile_sizes():
    mean = torch.tensor([[0.0, 0.0, 2.0]], dtype=DT)
    args = (UNIT_Q[None], torch.full((1, 3), 0.1, dtype=DT), torch.tensor([0.9], dtype=DT),
            torch.ones(1, 3, dtype=DT), I4, K, W, H)  # fmt: skip
    rc, ra, _ = rasterize(mean, *args, render_mode="RGB+ED")
    m = ra[0, ..., 0] > 0
    torch.testing.assert_close(rc[0, ..., 3][m], torch.full_like(rc[0, ..., 3][m], 2.0))  # expected depth
    rd, _, _ = rasterize(mean, *args, render_mode="D")
    torch.testing.assert_close(rd[0, ..., 0], 2.0 * ra[0, ..., 0])  # accumulated depth
    means, quats, scales, opac, cols = _random_scene(40, seed=5)
    ref = rasterize(means, quats, scales, opac, cols, I4, K, W, H, tile_size=16)[0]
    for ts in (4, 8, 13):
        torch.testing.assert_close(rasterize(means, quats, scales, opac, cols, I4, K, W, H, tile_size=ts)[0], ref)


def test_means2d_gradient_is_retained_for_densification():
    means, quats, scales, opac, cols = _random_scene(30, seed=6, dtype=torch.float32)
    f32 = dict(dtype=torch.float32)
    means.requires_grad_()
    rc, _, meta = rasterize(means, quats, scales, opac, cols, I4.to(**f32), K.to(**f32), W, H)
    rc.sum().backward()
    g = meta["means2d"].grad
    assert g is not None and g.shape == (1, 30, 2)
    assert bool((g[meta["visible"]].abs().sum(-1) > 0).all()) and float(g[~meta["visible"]].abs().sum()) == 0


def test_empty_and_offscreen_scenes():
    means = torch.tensor([[0.0, 0.0, -2.0], [50.0, 0.0, 2.0]], dtype=DT)  # behind the camera, far off-screen
    rc, ra, meta = rasterize(means, UNIT_Q.expand(2, 4), torch.full((2, 3), 0.1, dtype=DT), torch.full((2,), 0.5, dtype=DT),
                             torch.ones(2, 3, dtype=DT), I4, K, W, H, background=torch.zeros(3, dtype=DT))  # fmt: skip
    assert meta["n_fragments"] == 0 and float(rc.abs().sum()) == 0 and float(ra.sum()) == 0


def test_bad_inputs_raise_clear_errors():
    means, quats, scales, opac, cols = _random_scene(5)
    ok = dict(means=means, quats=quats, scales=scales, opacities=opac, colors=cols, viewmats=I4, Ks=K, width=W, height=H)

    def call(**kw):
        return rasterize(**{**ok, **kw})

    cases = [
        (dict(means=means[:, :2]), "means"),
        (dict(quats=quats[:3]), "quats"),
        (dict(scales=-scales), "scales"),
        (dict(opacities=opac + 2), "opacities"),
        (dict(colors=cols[:4]), "colors"),
        (dict(viewmats=torch.eye(3, dtype=DT)[None]), "viewmats"),
        (dict(Ks=K.repeat(2, 1, 1)), "Ks"),
        (dict(means=means.clone().index_fill_(0, torch.tensor([1]), float("nan"))), "means"),
        (dict(width=0), "width"),
        (dict(sh_degree=2), "colors"),
        (dict(sh_degree=7, colors=torch.zeros(5, 16, 3, dtype=DT)), "sh_degree"),
        (dict(render_mode="RGBA"), "render_mode"),
        (dict(background=torch.zeros(4, dtype=DT)), "background"),
        (dict(backend="gsplat"), "backend"),
    ]
    for kw, word in cases:
        with pytest.raises(InvalidInputError, match=word):
            call(**kw)


def test_gsplat_cuda_path_is_never_taken_on_cpu(monkeypatch):
    gsplat = pytest.importorskip("gsplat")

    def boom(*a, **k):  # its CUDA kernels would try to JIT-compile here
        raise AssertionError("gsplat.rasterization must not be called without CUDA")

    monkeypatch.setattr(gsplat, "rasterization", boom)
    assert not R.gsplat_available() or torch.cuda.is_available()
    means, quats, scales, opac, cols = _random_scene(5)
    rc, _, meta = rasterize(means, quats, scales, opac, cols, I4, K, W, H, backend="auto")
    assert meta["backend"] == "torch" and rc.shape == (1, H, W, 3)


def test_crop_by_principal_point_shift_equals_crop_of_full_render():
    # what patch training relies on: a W'xH' camera with (cx - x0, cy - y0) sees exactly the crop, as long as
    # the 3DGS Jacobian clamp (1.3x the field of view) does not differ: keep Gaussians centred inside the crop
    means, quats, scales, opac, cols = _random_scene(200, seed=7)
    uv = project_gaussians(means, I4, K, W, H, quats=quats, scales=scales).means2d[0]
    inside = (uv[:, 0] > 9) & (uv[:, 0] < 26) & (uv[:, 1] > 5) & (uv[:, 1] < 18)
    means, quats, scales, opac, cols = (t[inside] for t in (means, quats, scales, opac, cols))
    assert len(means) > 20
    full, _, _ = rasterize(means, quats, scales, opac, cols, I4, K, W, H)
    Kc = K.clone()
    Kc[0, 0, 2] -= 9
    Kc[0, 1, 2] -= 5
    crop, _, _ = rasterize(means, quats, scales, opac, cols, I4, Kc, 17, 13)
    torch.testing.assert_close(crop[0], full[0, 5:18, 9:26], rtol=1e-10, atol=1e-12)
