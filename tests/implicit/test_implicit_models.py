"""Implicit models: exact geometric initialisation, IGR / hash-grid SDF on spot's point cloud reaching a Chamfer bound
(oracle: surface samples of the real mesh), MISE vs dense on the trained field, DeepSDF and OccNet losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from human3d.data.paths import shared_data_dir
from human3d.implicit.extract import dense_grid, marching_cubes, mesh_area_volume, mise_grid
from human3d.implicit.models import (
    AutoDecoder,
    HashGridSDF,
    IGRNetwork,
    OccupancyNetwork,
    ResnetPointNet,
    clamped_l1,
    deepsdf_loss,
    fit_latent,
    igr_loss,
    knn_sigma,
    occupancy_loss,
)
from human3d.implicit.sampling import load_mesh, sample_surface, unit_sphere_normalization
from human3d.metrics import chamfer_l1, normal_consistency

SPOT = shared_data_dir() / "meshes_watertight" / "spot_triangulated.obj"


def test_geometric_init_is_the_sphere():
    x = torch.randn(3000, 3) * 0.6
    for model in (IGRNetwork(64, 4, radius=0.4), HashGridSDF(radius=0.4)):
        err = (model(x) - (x.norm(dim=-1) - 0.4)).abs().max().item()
        assert err < 1e-2


def test_knn_sigma_matches_brute_force():
    p = np.random.default_rng(0).random((300, 3))
    d = np.sort(np.linalg.norm(p[:, None] - p[None], axis=-1), 1)
    np.testing.assert_allclose(knn_sigma(p, 50), d[:, 50], rtol=1e-12)


def _fit(model, P, N, sig, steps, lr, batch=1024):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(P), (batch,), generator=g)
        loss, _ = igr_loss(model, P[idx], sig[idx], N[idx], generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


# Chamfer-L1 bounds in unit-sphere units (spot's bbox diagonal there is 2.39), 10k points, one thread: measured
# hash 0.0128 (0.54 % of the diagonal, NC 0.983, ~13 s) and IGR 4x32 0.0334 (1.4 %, NC 0.932, ~4 s); asserted with margin
@pytest.mark.skipif(not SPOT.exists(), reason="shared mesh data not available")
@pytest.mark.parametrize("kind,steps,lr,bound", [("hash", 120, 1e-2, 0.02), ("igr", 120, 5e-3, 0.045)])
def test_fit_spot_point_cloud_reaches_chamfer_bound(kind, steps, lr, bound, one_thread):
    import trimesh

    v, f = load_mesh(SPOT)
    vu = unit_sphere_normalization(v).to_unit(v)
    p, n = sample_surface(vu, f, 10000, seed=0)
    ref, refn = sample_surface(vu, f, 10000, seed=1)
    P, N = torch.tensor(p, dtype=torch.float32), torch.tensor(n, dtype=torch.float32)
    sig = torch.tensor(knn_sigma(p, 50), dtype=torch.float32)
    torch.manual_seed(0)
    model = HashGridSDF(n_levels=6, max_resolution=64) if kind == "hash" else IGRNetwork(32, 3)
    _fit(model, P, N, sig, steps, lr)
    gm, n_eval = mise_grid(model, 64, init_resolution=16)
    vm, fm = marching_cubes(gm)
    mesh = trimesh.Trimesh(vm, fm, process=False)
    q, fi = trimesh.sample.sample_surface(mesh, 10000, seed=2)
    cd = chamfer_l1(q, ref).item()
    nc = normal_consistency(q, mesh.face_normals[fi], ref, refn).item()
    print(f"{kind}: Chamfer-L1 {cd:.4f} ({cd / 2.39:.2%} of the diagonal), NC {nc:.3f}")
    assert cd < bound and nc > 0.9
    # MISE and dense marching cubes agree on the trained field
    vd, fd = marching_cubes(dense_grid(model, 64))
    assert n_eval < 0.5 * 65**3
    np.testing.assert_allclose(mesh_area_volume(vm, fm), mesh_area_volume(vd, fd), rtol=1e-4)


def test_deepsdf_loss_and_latent_recovery(one_thread):
    torch.manual_seed(0)
    model = AutoDecoder(3, latent_dim=8, code_sigma=0.1, hidden=32, n_layers=3)
    x = torch.rand(3, 64, 3) * 2 - 1
    sdf = torch.randn(3, 64) * 0.2
    loss, terms = deepsdf_loss(model, torch.arange(3), x, sdf, delta=0.1, code_reg=1e-3)
    pred = model(torch.arange(3), x)
    ref = (pred.clamp(-0.1, 0.1) - sdf.clamp(-0.1, 0.1)).abs().mean()
    assert terms["clamped_l1"] == pytest.approx(ref.item(), rel=1e-6)
    reg = (model.codes.weight**2).sum(-1).mean() / 0.01
    assert loss.item() == pytest.approx(ref.item() + 1e-3 * reg.item(), rel=1e-6)
    assert clamped_l1(torch.tensor([0.5, -0.05]), torch.tensor([0.2, 0.05])).item() == pytest.approx(0.05)
    # test-time optimisation recovers a code: samples of f(z*, .) -> z with lower error than the zero code
    z_true = torch.randn(8) * 0.5
    xs = torch.rand(512, 3) * 2 - 1
    with torch.no_grad():
        target = model.decoder(z_true, xs)
    z = fit_latent(model.decoder, xs, target, steps=200, lr=2e-2, prior_weight=0.0)
    with torch.no_grad():
        err_fit = clamped_l1(model.decoder(z, xs), target).item()
        err_zero = clamped_l1(model.decoder(torch.zeros(8), xs), target).item()
    assert err_fit < 0.2 * err_zero


def test_occupancy_network_permutation_invariance_and_bce():
    torch.manual_seed(0)
    net = OccupancyNetwork(c_dim=16, hidden=32, n_layers=3, encoder_hidden=16)
    pts = torch.randn(2, 100, 3)
    c = net.encoder(pts)
    torch.testing.assert_close(net.encoder(pts[:, torch.randperm(100)]), c)
    x = torch.randn(2, 50, 3)
    inside = x.norm(dim=-1) < 1
    loss, _ = occupancy_loss(net, pts, x, inside)
    logit = net(pts, x)
    p = torch.sigmoid(logit)
    ref = -(inside * p.log() + (~inside) * (1 - p).log()).mean()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    torch.testing.assert_close(net.field(c[0])(x[0]), -logit[0])
    with pytest.raises(Exception, match="points"):
        ResnetPointNet()(torch.zeros(1, 0, 3))


def test_fit_latent_uses_a_generative_prior_energy(one_thread):
    """With a `generative` GaussianPrior as the code prior dominating a weak data term, the code goes to the
    prior's mode (its mean)."""
    from generative.priors.base import GaussianPrior

    torch.manual_seed(0)
    dec = AutoDecoder(2, latent_dim=4, hidden=16, n_layers=2).decoder
    codes = torch.randn(64, 4) * 0.1 + torch.tensor([0.3, -0.2, 0.1, 0.0])
    prior = GaussianPrior.fit(codes)
    xs = torch.rand(32, 3) * 2 - 1
    far = torch.full((32,), 5.0)  # clamped at delta: the data term is at most 0.1 and nearly flat in z
    z = fit_latent(dec, xs, far, steps=400, lr=2e-2, prior_energy=prior.energy, prior_weight=10.0)
    torch.testing.assert_close(z, prior.mean, atol=2e-2, rtol=0)
