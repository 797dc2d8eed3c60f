"""Surface metrics against brute force (torch.cdist) and closed forms (concentric spheres, overlapping balls)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from human3d.errors import InvalidInputError
from human3d.metrics import chamfer_l1, fscore, nearest_neighbors, normal_consistency, volumetric_iou


def _sphere_points(n, r, seed):
    g = torch.Generator().manual_seed(seed)
    p = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    return p * r, p


def test_chamfer_fscore_nc_against_brute_force():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(700, 3, generator=g, dtype=torch.float64), torch.rand(500, 3, generator=g, dtype=torch.float64)
    d = torch.cdist(x, y)
    dxy, dyx = d.min(1), d.min(0)
    assert chamfer_l1(x, y).item() == pytest.approx(0.5 * (dxy.values.mean() + dyx.values.mean()).item(), rel=1e-12)
    torch.testing.assert_close(nearest_neighbors(x, y)[1], dxy.indices)
    tau = 0.05
    p, r = (dxy.values < tau).double().mean().item(), (dyx.values < tau).double().mean().item()
    f, pp, rr = fscore(x, y, tau)
    assert (pp.item(), rr.item()) == (pytest.approx(p), pytest.approx(r))
    assert f.item() == pytest.approx(2 * p * r / (p + r))
    nx, ny = torch.randn(700, 3, generator=g, dtype=torch.float64), torch.randn(500, 3, generator=g, dtype=torch.float64)
    ux, uy = torch.nn.functional.normalize(nx, dim=-1), torch.nn.functional.normalize(ny, dim=-1)
    ref = 0.5 * ((ux * uy[dxy.indices]).sum(1).abs().mean() + (uy * ux[dyx.indices]).sum(1).abs().mean())
    assert normal_consistency(x, nx, y, ny).item() == pytest.approx(ref.item(), rel=1e-12)


def test_closed_forms_on_spheres():
    # concentric spheres r and r + e sampled along the same directions: every nearest distance is exactly e
    a, na = _sphere_points(20000, 1.0, 0)
    b, nb = _sphere_points(20000, 1.02, 0)
    assert chamfer_l1(a, b).item() == pytest.approx(0.02, rel=1e-9)
    assert normal_consistency(a, na, b, -nb).item() > 0.999  # orientation ignored
    assert fscore(a, b, 0.01)[0].item() == 0.0 and fscore(a, b, 0.05)[0].item() == 1.0
    # two unit balls at distance 1: lens volume pi (4 + d)(2 - d)^2 / 12 -> IoU 5/27
    g = torch.Generator().manual_seed(2)
    n = 200_000
    s = torch.rand(n, 3, generator=g, dtype=torch.float64) * torch.tensor([4.0, 2, 2]) - torch.tensor([1.5, 1, 1])
    ia, ib = s.norm(dim=-1) < 1, (s - torch.tensor([1.0, 0, 0])).norm(dim=-1) < 1
    lens = math.pi * 5 * 1 / 12
    exact = lens / (2 * 4 / 3 * math.pi - lens)
    assert volumetric_iou(ia, ib).item() == pytest.approx(exact, abs=4 * math.sqrt(exact / n) * 2)
    assert volumetric_iou(ia, ia).item() == 1.0


def test_metric_errors():
    with pytest.raises(InvalidInputError, match="non-empty"):
        chamfer_l1(np.zeros((0, 3)), np.zeros((4, 3)))
    with pytest.raises(InvalidInputError, match="NaN"):
        chamfer_l1(np.full((2, 3), np.nan), np.zeros((4, 3)))
    with pytest.raises(InvalidInputError, match="tau"):
        fscore(np.zeros((2, 3)), np.zeros((4, 3)), 0.0)
