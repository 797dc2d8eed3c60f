"""Metrics against independent references (skimage, scipy, closed forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree, procrustes
from scipy.spatial.transform import Rotation
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from human3d.errors import InvalidInputError
from human3d.metrics import (
    LPIPSUnavailableError,
    chamfer_distance,
    iou,
    lpips,
    lpips_available,
    mpjpe,
    pa_mpjpe,
    procrustes_align,
    psnr,
    ssim,
)


def _images(seed=0, shape=(2, 37, 45, 3)):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g)
    # smooth structure + noise so SSIM is neither ~0 nor ~1
    b = (a + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
    b = 0.5 * b + 0.5 * torch.roll(b, 1, dims=-2)
    return a, b


def test_psnr_matches_skimage():
    a, b = _images()
    ours = psnr(a, b)
    assert ours.shape == (2,)
    for i in range(2):
        ref = peak_signal_noise_ratio(b[i].double().numpy(), a[i].double().numpy(), data_range=1.0)
        assert ours[i].item() == pytest.approx(ref, abs=1e-4)
    assert psnr(a[0], a[0] * 0 + 0.5).shape == ()
    # closed form: constant error e -> PSNR = -20 log10(e)
    assert psnr(torch.zeros(4, 4, 1), torch.full((4, 4, 1), 0.1)).item() == pytest.approx(20.0, abs=1e-4)


def test_ssim_matches_skimage():
    a, b = _images()
    ours = ssim(a, b)
    for i in range(2):
        ref = structural_similarity(
            a[i].double().numpy(), b[i].double().numpy(), gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=1.0, channel_axis=-1,
        )  # fmt: skip
        assert ours[i].item() == pytest.approx(ref, abs=1e-5)
    assert ssim(a, a).allclose(torch.ones(2), atol=1e-6)
    with pytest.raises(InvalidInputError, match="win_size"):
        ssim(torch.rand(5, 5, 3), torch.rand(5, 5, 3))
    with pytest.raises(InvalidInputError, match="shapes differ"):
        ssim(a, b[..., :2])


def test_lpips_says_unavailable():
    assert lpips_available() is False
    with pytest.raises(LPIPSUnavailableError, match="offline"):
        lpips(torch.rand(8, 8, 3), torch.rand(8, 8, 3))


def test_mpjpe_closed_form():
    target = torch.zeros(2, 5, 3)
    pred = target.clone()
    pred[0, :, 0] = 0.03  # every joint 3 cm off
    pred[1, 0] = torch.tensor([0.0, 0.3, 0.4])  # one joint 0.5 m off
    assert torch.allclose(mpjpe(pred, target), torch.tensor([0.03, 0.1]))
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.allclose(mpjpe(pred, target, mask), torch.tensor([0.03, 0.0]))


def test_pa_mpjpe_matches_scipy_procrustes_and_closed_form():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(17, 3))
    R = Rotation.from_rotvec([0.3, -1.2, 0.7]).as_matrix()
    pred = 1.7 * target @ R.T + np.array([0.5, -2.0, 1.0]) + 0.01 * rng.normal(size=(17, 3))
    # scipy standardises both sets (centre, unit Frobenius norm) and aligns the second to the first
    mtx1, mtx2, _ = procrustes(target, pred)
    aligned = procrustes_align(torch.tensor(pred[None]), torch.tensor(target[None]))[0].numpy()
    mu, nrm = target.mean(0), np.linalg.norm(target - target.mean(0))
    assert np.allclose((aligned - mu) / nrm, mtx2, atol=1e-8)
    # an exact similarity transform of the target has zero PA-MPJPE but large MPJPE
    exact = torch.tensor(2.0 * target @ R.T + 3.0)[None].float()
    t = torch.tensor(target)[None].float()
    assert pa_mpjpe(exact, t).item() < 1e-5 and mpjpe(exact, t).item() > 1
    # a reflection is not a rotation: PA-MPJPE must stay positive for a mirrored skeleton
    assert pa_mpjpe(t * torch.tensor([-1.0, 1, 1]), t).item() > 0.1


def test_chamfer_matches_kdtree():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 3)), rng.normal(size=(250, 3)) + 0.2
    dx, _ = cKDTree(y).query(x)
    dy, _ = cKDTree(x).query(y)
    xt, yt = torch.tensor(x)[None].float(), torch.tensor(y)[None].float()
    assert chamfer_distance(xt, yt, chunk=64).item() == pytest.approx((dx**2).mean() + (dy**2).mean(), rel=1e-4)
    assert chamfer_distance(xt, yt, squared=False).item() == pytest.approx(dx.mean() + dy.mean(), rel=1e-4)
    assert chamfer_distance(xt, xt).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(InvalidInputError, match="non-empty"):
        chamfer_distance(xt[:, :0], yt)


def test_iou_closed_form():
    a = torch.zeros(2, 10, 10, dtype=torch.bool)
    b = torch.zeros(2, 10, 10, dtype=torch.bool)
    a[0, :5], b[0, :, :5] = True, True  # 25 / (50 + 50 - 25)
    a[1, :4], b[1, :4] = True, True
    out = iou(a, b)
    assert torch.allclose(out, torch.tensor([25 / 75, 1.0]))
    assert iou(torch.zeros(3, 3), torch.zeros(3, 3)).allclose(torch.ones(3))  # two empty masks
    occ = torch.rand(4, 4, 4)
    assert iou(occ, occ, dims=3).item() == pytest.approx(1.0)
    assert math.isclose(iou(torch.tensor([0.9, 0.2]), torch.tensor([0.6, 0.7]), dims=1).item(), 0.5)
