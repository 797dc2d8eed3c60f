"""Projection, covariance and SH against gsplat's pure-torch reference functions (same inputs, float64)."""

import math

import numpy as np
import pytest
import torch

gsplat_ref = pytest.importorskip("gsplat.cuda._torch_impl")  # installed with [dev]; pure torch, runs on CPU

from human3d.geometry.cameras import look_at  # noqa: E402
from human3d.splat.gaussians import Gaussians, quat_scale_to_covariance, quat_scale_to_matrix  # noqa: E402
from human3d.splat.projection import ALPHA_THRESHOLD, project_gaussians  # noqa: E402
from human3d.splat.sh import eval_sh, rgb_to_sh, sh_basis, sh_to_rgb  # noqa: E402

DT = torch.float64


def _scene(n=400, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=DT) * 1.5
    quats = torch.randn(n, 4, generator=g, dtype=DT)
    scales = torch.rand(n, 3, generator=g, dtype=DT) * 0.3 + 1e-3
    eyes = torch.randn(c, 3, generator=g, dtype=DT)
    eyes = eyes / eyes.norm(dim=-1, keepdim=True) * 3.5  # some Gaussians behind, some beside the cameras
    viewmats = look_at(eyes, torch.zeros(c, 3, dtype=DT))
    Ks = torch.tensor([[60.0, 0, 33.3], [0, 55.0, 24.1], [0, 0, 1]], dtype=DT).expand(c, 3, 3).clone()
    return means, quats, scales, viewmats, Ks, 64, 48


def test_covariance_matches_gsplat():
    means, quats, scales, *_ = _scene()
    ref, _ = gsplat_ref._quat_scale_to_covar_preci(quats, scales)
    torch.testing.assert_close(quat_scale_to_covariance(quats, scales), ref, rtol=1e-12, atol=1e-14)
    M = quat_scale_to_matrix(quats, scales)
    torch.testing.assert_close(M @ M.transpose(-1, -2), ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("use_covars", [False, True])
def test_projection_matches_gsplat(use_covars):
    means, quats, scales, viewmats, Ks, W, H = _scene()
    covars, _ = gsplat_ref._quat_scale_to_covar_preci(quats, scales)
    radii, m2, depths, conics, comp = gsplat_ref._fully_fused_projection(
        means, covars, viewmats, Ks, W, H, eps2d=0.3, near_plane=0.01, far_plane=1e10, calc_compensations=True
    )
    kw = dict(covars=covars) if use_covars else dict(quats=quats, scales=scales)
    p = project_gaussians(means, viewmats, Ks, W, H, eps2d=0.3, calc_compensations=True, **kw)
    valid = (radii > 0).all(-1)
    assert 0 < int(valid.sum()) < valid.numel()  # the scene exercises culling
    assert torch.equal(p.valid, valid)
    assert torch.equal(p.radii, radii.to(torch.int32))
    torch.testing.assert_close(p.means2d[valid], m2[valid], rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(p.depths, depths)
    torch.testing.assert_close(p.conics[valid], conics[valid], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(p.compensations[valid], comp[valid], rtol=1e-9, atol=1e-12)


def test_projection_near_far_culling_and_pixel_convention():
    # a Gaussian on the optical axis projects onto the principal point (cx, cy), i.e. between pixel centres
    means = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, -2.0], [0.0, 0.0, 0.005], [0.0, 0.0, 50.0]], dtype=DT)
    quats = torch.tensor([[1.0, 0, 0, 0]], dtype=DT).expand(4, 4)
    scales = torch.full((4, 3), 0.1, dtype=DT)
    K = torch.tensor([[[50.0, 0, 16.0], [0, 50.0, 12.0], [0, 0, 1]]], dtype=DT)
    p = project_gaussians(means, torch.eye(4, dtype=DT)[None], K, 32, 24, quats=quats, scales=scales, far_plane=10.0)
    assert p.valid[0].tolist() == [True, False, False, False]  # behind, inside the near plane, beyond far
    torch.testing.assert_close(p.means2d[0, 0], torch.tensor([16.0, 12.0], dtype=DT))
    # isotropic: Sigma' = (f s / z)^2 + 0.3 on the diagonal
    var = (50 * 0.1 / 2.0) ** 2 + 0.3
    torch.testing.assert_close(p.covars2d[0, 0], torch.eye(2, dtype=DT) * var)
    torch.testing.assert_close(p.conics[0, 0], torch.tensor([1 / var, 0.0, 1 / var], dtype=DT))
    assert float(p.radius[0, 0]) == math.ceil(3 * math.sqrt(var))  # 3-sigma eigenvalue radius


def test_radius_from_eigenvalues_and_opacity_aware_support():
    means, quats, scales, viewmats, Ks, W, H = _scene(n=200, c=1)
    opac = torch.rand(200, dtype=DT, generator=torch.Generator().manual_seed(1)) * 0.98 + 0.02
    p = project_gaussians(means, viewmats, Ks, W, H, quats=quats, scales=scales, opacities=opac)
    v = p.valid[0]
    lam = np.linalg.eigvalsh(p.covars2d[0][v].numpy()).max(-1)
    np.testing.assert_array_equal(p.radius[0][v].numpy(), np.ceil(3 * np.sqrt(lam)))
    # the support half-width is where o exp(-x^2 / (2 s^2)) = 1/255 along each axis
    k = np.sqrt(2 * np.log(opac.numpy() / ALPHA_THRESHOLD))
    kk = np.minimum(k, 3.33)[v.numpy()]
    sx = np.sqrt(p.covars2d[0][v][:, 0, 0].numpy())
    np.testing.assert_array_equal(p.radii[0][v][:, 0].numpy(), np.ceil(kk * sx))


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_matches_gsplat(degree):
    g = torch.Generator().manual_seed(degree)
    dirs = torch.randn(300, 3, generator=g, dtype=DT) * 2.0  # unnormalised on purpose
    coeffs = torch.randn(300, 16, 3, generator=g, dtype=DT)
    ref = gsplat_ref._spherical_harmonics(degree, dirs, coeffs)
    torch.testing.assert_close(eval_sh(degree, coeffs, dirs), ref, rtol=1e-12, atol=1e-12)


def test_sh_basis_orthonormal_and_dc_roundtrip():
    # Monte-Carlo check of orthonormality over the sphere (real SH): E[Y Y^T] * 4 pi = I
    g = torch.Generator().manual_seed(0)
    d = torch.randn(400_000, 3, generator=g, dtype=DT)
    Y = sh_basis(3, d)
    gram = (Y.T @ Y) / d.shape[0] * 4 * math.pi
    torch.testing.assert_close(gram, torch.eye(16, dtype=DT), atol=0.03, rtol=0)
    rgb = torch.rand(10, 3, dtype=DT)
    torch.testing.assert_close(sh_to_rgb(rgb_to_sh(rgb)), rgb)


def test_gaussians_from_points_knn_scales():
    pts = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0]])
    g = Gaussians.from_points(pts, sh_degree=2, opacity=0.2)
    # point 0: neighbours at 1, 2, 3 -> sqrt((1 + 4 + 9) / 3)
    assert math.isclose(float(g.scales[0, 0].detach()), math.sqrt(14 / 3), rel_tol=1e-6)
    assert g.sh_rest.shape == (4, 8, 3) and g.max_sh_degree == 2
    torch.testing.assert_close(g.opacities, torch.full((4,), 0.2))
    torch.testing.assert_close(g.covariances[1], torch.eye(3) * float(g.scales[1, 0]) ** 2)
