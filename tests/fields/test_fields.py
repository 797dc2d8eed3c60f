"""Field encodings and MLPs against closed forms, scipy interpolation, uint32 hashing and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import RegularGridInterpolator

from human3d.fields import (
    HASH_PRIMES,
    MLP,
    GaussianFourierFeatures,
    HashGridEncoding,
    NeRFField,
    NGPField,
    hash_grid_indices,
    positional_encoding,
    sh_basis,
    trunc_exp,
)


def test_positional_encoding_layout_closed_form():
    x = torch.tensor([[0.1, -0.3, 0.7]], dtype=torch.float64)
    L = 3
    out = positional_encoding(x, L, include_input=True)
    assert out.shape == (1, 3 * (2 * L + 1))
    xn = x.numpy()[0]
    expect = list(xn)
    expect += [math.cos(2**k * math.pi * v) for k in range(L) for v in xn]
    expect += [math.sin(2**k * math.pi * v) for k in range(L) for v in xn]
    assert np.allclose(out.numpy()[0], expect)
    assert positional_encoding(x, L, include_input=False).shape == (1, 3 * 2 * L)


def test_gaussian_fourier_features():
    enc = GaussianFourierFeatures(3, num_features=2000, sigma=4.0, seed=1)
    assert enc.out_dim == 4000
    assert enc.B.std().item() == pytest.approx(4.0, rel=0.05)
    x = torch.rand(5, 3)
    proj = 2 * np.pi * x.numpy() @ enc.B.numpy().T
    assert np.allclose(enc(x).numpy(), np.concatenate([np.cos(proj), np.sin(proj)], -1), atol=1e-3)
    assert torch.equal(GaussianFourierFeatures(3, 16, seed=1).B, GaussianFourierFeatures(3, 16, seed=1).B)


def test_spherical_harmonics_orthonormal():
    # Fibonacci sphere quadrature: (4 pi / N) sum_i Y_a(d_i) Y_b(d_i) ~ delta_ab
    n = 20000
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5**0.5) * i
    r = torch.sqrt(1 - z * z)
    d = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)
    Y = sh_basis(3, d)  # bands l = 0..3: 16 bases
    gram = 4 * math.pi / n * Y.T @ Y
    assert torch.allclose(gram, torch.eye(16, dtype=torch.float64), atol=2e-3)


def _np_hash(v: np.ndarray, T: int) -> np.ndarray:
    """instant-ngp's hash in uint32 arithmetic (wrapping multiplication), independent of the torch code."""
    v = v.astype(np.uint32)
    with np.errstate(over="ignore"):
        h = v[..., 0] * np.uint32(HASH_PRIMES[0]) ^ v[..., 1] * np.uint32(HASH_PRIMES[1]) ^ v[..., 2] * np.uint32(HASH_PRIMES[2])
    return (h % np.uint32(T)).astype(np.int64)


def test_hash_indices_match_uint32_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(500, 3, generator=g, dtype=torch.float64)
    res = torch.tensor([300.0, 2048.0, 5000.0], dtype=torch.float64)
    T = 2**19
    idx, w = hash_grid_indices(x, res, T)
    assert idx.shape == (3, 500, 8) and w.shape == (3, 500, 8)
    assert torch.allclose(w.sum(-1), torch.ones(3, 500, dtype=torch.float64))
    for lvl in range(3):
        v0 = np.floor(x.numpy() * res[lvl].item()).astype(np.int64)
        for k in range(8):
            corner = v0 + np.array([k >> 2 & 1, k >> 1 & 1, k & 1])
            assert np.array_equal(idx[lvl, :, k].long().numpy(), _np_hash(corner, T))


def test_dense_level_is_trilinear_interpolation():
    enc = HashGridEncoding(n_levels=1, n_features_per_level=3, log2_table_size=10, base_resolution=6, max_resolution=6)
    assert enc.dense_levels == [0] and enc.hashed_levels == []
    with torch.no_grad():
        enc.dense_grids[0].normal_()
    vals = enc.vertex_features(0).detach().double().numpy()  # [7, 7, 7, 3] indexed (x, y, z)
    ax = np.linspace(0, 1, 7)
    interp = RegularGridInterpolator((ax, ax, ax), vals)
    x = torch.rand(300, 3, generator=torch.Generator().manual_seed(1))
    assert np.allclose(enc(x).detach().numpy(), interp(x.double().numpy()), atol=1e-5)


def test_collision_free_hashed_level_is_trilinear_interpolation():
    res, T = 5, 2**13
    enc = HashGridEncoding(n_levels=1, n_features_per_level=2, log2_table_size=13, base_resolution=res,
                           max_resolution=res, dense_max_entries=0)  # fmt: skip
    assert enc.hashed_levels == [0]
    ax = np.arange(res + 1)
    verts = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1)  # [6, 6, 6, 3]
    h = _np_hash(verts.reshape(-1, 3), T)
    assert len(np.unique(h)) == h.size  # no collisions on this level
    with torch.no_grad():
        enc.hash_table.normal_()
    vals = enc.hash_table.detach().double().numpy()[h].reshape(res + 1, res + 1, res + 1, 2)
    interp = RegularGridInterpolator((ax / res, ax / res, ax / res), vals)
    x = torch.rand(300, 3, generator=torch.Generator().manual_seed(2))
    assert np.allclose(enc(x).detach().numpy(), interp(x.double().numpy()), atol=1e-5)


def test_hash_grid_gradients_match_finite_differences():
    enc = HashGridEncoding(n_levels=3, n_features_per_level=2, log2_table_size=8, base_resolution=3, max_resolution=12)
    assert enc.dense_levels and enc.hashed_levels  # both code paths
    enc = enc.double()
    with torch.no_grad():
        for p in enc.parameters():
            p.normal_()
    x = (0.05 + 0.9 * torch.rand(6, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)).requires_grad_()
    names = [n for n, _ in enc.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in enc.named_parameters()]

    def f(x, *ps):
        return torch.func.functional_call(enc, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5)


def test_hash_grid_bad_input():
    from human3d.errors import InvalidInputError

    enc = HashGridEncoding(n_levels=2, log2_table_size=8, base_resolution=2, max_resolution=4)
    with pytest.raises(InvalidInputError, match="x: expected points"):
        enc(torch.rand(4, 2))
    with pytest.raises(InvalidInputError, match="bad configuration"):
        HashGridEncoding(n_levels=0)


def test_mlp_and_fields():
    mlp = MLP(5, 2, hidden_dim=8, n_hidden=3, skips=(2,))
    assert mlp(torch.rand(7, 5)).shape == (7, 2)
    assert mlp.hidden[2].in_features == 8 + 5
    aabb = torch.tensor([[-1.0, -1, -1], [1, 1, 1]])
    torch.manual_seed(0)
    for field in (NGPField(aabb, n_levels=4, log2_table_size=10, max_resolution=32), NeRFField(aabb, hidden_dim=32)):
        x = torch.rand(10, 3) * 2 - 1
        d1 = torch.nn.functional.normalize(torch.randn(10, 3), dim=-1)
        s1, c1 = field(x, d1)
        s2, c2 = field(x, -d1)
        assert torch.equal(s1, s2) and torch.allclose(field.density(x), s1)  # the direction enters late
        assert not torch.allclose(c1, c2)
        assert (s1 >= 0).all() and (c1 > 0).all() and (c1 < 1).all()
    ngp = NGPField(aabb, n_levels=2, log2_table_size=8, base_resolution=4, max_resolution=8)
    assert (ngp.density(torch.tensor([[2.0, 0, 0], [0, 0, -1.5]])) == 0).all()  # outside the box


def test_trunc_exp_gradient_is_clamped():
    x = torch.tensor([1.0, 20.0], requires_grad=True)
    trunc_exp(x).sum().backward()
    assert torch.allclose(x.grad, torch.exp(torch.tensor([1.0, 15.0])))
