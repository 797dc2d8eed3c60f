"""Analytic SDFs and mesh extraction against closed forms (sphere area/volume, box normals, eikonal residual)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from human3d.errors import InvalidInputError
from human3d.implicit.analytic import box_sdf, field_gradient, sphere_sdf
from human3d.implicit.extract import _straddling_cells, dense_grid, extract_mesh, marching_cubes, mesh_area_volume, mise_grid
from human3d.metrics import chamfer_l1


def test_eikonal_and_gradient_equals_normal():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4000, 3, generator=g, dtype=torch.float64) * 2 - 1
    _, grad = field_gradient(lambda p: sphere_sdf(p, 0.5, (0.1, 0, 0)), x)
    assert (grad.norm(dim=-1) - 1).abs().max() < 1e-12
    c = torch.tensor([0.1, 0, 0], dtype=torch.float64)
    torch.testing.assert_close(grad, (x - c) / (x - c).norm(dim=-1, keepdim=True))
    _, gb = field_gradient(lambda p: box_sdf(p, (0.3, 0.4, 0.5)), x)
    assert (gb.norm(dim=-1) - 1).abs().max() < 1e-12  # almost everywhere (not on the medial axis)
    # on the box faces the gradient is the face normal
    face = torch.tensor([[0.3, 0.1, -0.2], [0.05, -0.4, 0.3], [-0.1, 0.2, 0.5]], dtype=torch.float64)
    d, gf = field_gradient(lambda p: box_sdf(p, (0.3, 0.4, 0.5)), face)
    torch.testing.assert_close(d, torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(gf, torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]], dtype=torch.float64))
    # box distance against the closed form outside a corner
    p = torch.tensor([[0.5, 0.6, 0.7]], dtype=torch.float64)
    assert box_sdf(p, (0.3, 0.4, 0.5)).item() == pytest.approx(math.sqrt(3 * 0.2**2))


def test_marching_cubes_sphere_area_volume_and_normals():
    r = 0.6
    g = dense_grid(lambda x: sphere_sdf(x, r), 96)
    v, f = marching_cubes(g)
    area, vol = mesh_area_volume(v, f)
    assert area == pytest.approx(4 * math.pi * r**2, rel=0.01)
    assert vol == pytest.approx(4 / 3 * math.pi * r**3, rel=0.01)
    assert np.abs(np.linalg.norm(v, axis=1) - r).max() < 2 / 96 * 0.1
    m = extract_mesh(lambda x: sphere_sdf(x, r), 64, method="dense")
    np.testing.assert_allclose(m.normals, m.vertices / np.linalg.norm(m.vertices, axis=1, keepdims=True), atol=1e-5)
    # outward winding: face normals agree with the field's normals
    tri = m.vertices[m.faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert ((fn * m.normals[m.faces].mean(1)).sum(1) > 0).all()


def test_mise_matches_dense_with_fewer_evaluations():
    def field(x):  # union of a sphere and a box: edges, corners and a thin neck
        return torch.minimum(sphere_sdf(x, 0.45, (-0.3, 0, 0)), box_sdf(x, (0.35, 0.1, 0.2), (0.4, 0.1, 0)))

    gm, n_eval = mise_grid(field, 64, init_resolution=16)
    gd = dense_grid(field, 64)
    assert n_eval < 0.3 * gd.size
    (vm, fm), (vd, fd) = marching_cubes(gm), marching_cubes(gd)
    np.testing.assert_allclose(mesh_area_volume(vm, fm), mesh_area_volume(vd, fd), rtol=1e-6)
    assert chamfer_l1(torch.from_numpy(vm), torch.from_numpy(vd)).item() < 1e-6
    assert ((gm < 0) == (gd < 0)).mean() > 0.999
    cells = _straddling_cells(gd, 0.0)  # every corner of every cell the surface crosses is evaluated exactly
    for a in (0, 1):
        for b in (0, 1):
            for c in (0, 1):
                sl = (slice(a, a + 64), slice(b, b + 64), slice(c, c + 64))
                np.testing.assert_allclose(gm[sl][cells], gd[sl][cells], atol=1e-6)
    assert ((gm < 0) == (gd < 0)).mean() > 0.999


def test_extraction_errors():
    with pytest.raises(InvalidInputError, match="does not cross"):
        marching_cubes(dense_grid(lambda x: sphere_sdf(x, 5.0), 8))
    with pytest.raises(InvalidInputError, match="power of two"):
        mise_grid(lambda x: sphere_sdf(x, 0.5), 100)
