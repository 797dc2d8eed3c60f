"""Heatmap codec: round trips against the known sub-pixel location and the argmax error's closed form."""

from __future__ import annotations

import math

import pytest
import torch

from human3d.errors import InvalidInputError
from human3d.pose2d.heatmaps import (
    decode_argmax,
    decode_dark,
    gaussian_targets,
    heatmap_to_image,
    image_to_heatmap,
    soft_argmax,
)

H, W = 64, 48


def _interior_points(n: int, seed: int = 0, margin: float = 10.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lo = torch.tensor([margin, margin])
    hi = torch.tensor([W - margin, H - margin])
    return (lo + (hi - lo) * torch.rand(1, n, 2, generator=g, dtype=torch.float64)).to(torch.float64)  # [1, n, 2]


def test_targets_are_unbiased_gaussians():
    uv = torch.tensor([[[10.3, 20.7]]], dtype=torch.float64)
    heat, w = gaussian_targets(uv, (H, W), sigma=2.0)
    i, j = 20, 10  # the cell containing (10.3, 20.7): centre (10.5, 20.5)
    expect = math.exp(-((10.5 - 10.3) ** 2 + (20.5 - 20.7) ** 2) / 8.0)
    assert heat.shape == (1, 1, H, W)
    assert heat[0, 0, i, j].item() == pytest.approx(expect, rel=1e-12)
    assert w.tolist() == [[1.0]]


def test_target_weights_zero_for_invisible_and_outside():
    uv = torch.tensor([[[5.0, 5.0], [5.0, 5.0], [-3.0, 5.0], [float("nan"), 1.0]]])
    heat, w = gaussian_targets(uv, (H, W), 2.0, visibility=torch.tensor([[2, 0, 2, 2]]))
    assert w.tolist() == [[1.0, 0.0, 0.0, 0.0]]
    assert heat[0, 1:].abs().max() == 0 and heat[0, 0].max() > 0.9


def test_dark_round_trips_subpixel_locations():
    uv = _interior_points(200)
    heat, _ = gaussian_targets(uv, (H, W), sigma=2.0)
    for blur in (None, 1.0):
        dec, score = decode_dark(heat, blur_sigma=blur)
        err = (dec - uv).norm(dim=-1)
        assert err.max() < 0.05, (blur, err.max())
    assert torch.all(score > 0.9)
    # float32 heatmaps as a network would give
    dec32, _ = decode_dark(heat.float())
    assert (dec32.double() - uv).norm(dim=-1).max() < 0.05


def test_plain_argmax_error_matches_closed_form():
    uv = _interior_points(500, seed=1)
    heat, _ = gaussian_targets(uv, (H, W), sigma=2.0)
    d = uv - (torch.floor(uv) + 0.5)  # offset from the containing cell's centre, in (-1/2, 1/2)
    dec0, _ = decode_argmax(heat, shift=0.0)
    torch.testing.assert_close((dec0 - uv).abs(), d.abs(), rtol=0, atol=1e-12)
    dec, _ = decode_argmax(heat)  # quarter shift
    torch.testing.assert_close((dec - uv).abs(), (d.abs() - 0.25).abs(), rtol=0, atol=1e-12)
    # uniform offsets: E| |d| - 1/4 | = 1/8 per axis (plain argmax: 1/4); 1000 samples -> s.e. ~ 0.0023
    assert (dec - uv).abs().mean().item() == pytest.approx(0.125, abs=0.01)
    assert (dec0 - uv).abs().mean().item() == pytest.approx(0.25, abs=0.015)


def test_soft_argmax_recovers_centre():
    uv = _interior_points(100, seed=2)
    heat, _ = gaussian_targets(uv, (H, W), sigma=2.0)
    # exact density: the sampling error (Poisson summation, ~exp(-2 pi^2 sigma^2)) is nil; what remains is the
    # Gaussian's tail cut by the map's border, >= 5 sigma away (~exp(-12.5) ~ 4e-6 of the mass)
    dec, _ = soft_argmax(heat, beta=None)
    assert (dec - uv).norm(dim=-1).max() < 1e-4
    # softmax of Gaussian logits (the log-heatmap) is the Gaussian renormalised, sigma / sqrt(beta) wide
    dec_b, _ = soft_argmax(torch.log(heat), beta=2.0)
    assert (dec_b - uv).norm(dim=-1).max() < 1e-4
    # differentiable (integral regression): gradient flows to the heatmap
    h = heat.clone().requires_grad_(True)
    soft_argmax(h, beta=10.0)[0].sum().backward()
    assert h.grad is not None and torch.isfinite(h.grad).all() and h.grad.abs().sum() > 0


def test_stride_maps_image_to_heatmap_exactly():
    uv_img = torch.tensor([[[100.0, 37.0]]])
    hm = image_to_heatmap(uv_img, 4.0)
    heat, _ = gaussian_targets(hm, (H, W))
    dec, _ = decode_dark(heat, blur_sigma=None)
    assert (heatmap_to_image(dec, 4.0) - uv_img).norm() < 0.05 * 4


def test_bad_arguments():
    uv = torch.zeros(1, 2, 2)
    with pytest.raises(InvalidInputError, match="size"):
        gaussian_targets(uv, (0, 10))
    with pytest.raises(InvalidInputError, match="sigma"):
        gaussian_targets(uv, (8, 8), sigma=-1.0)
    with pytest.raises(InvalidInputError, match="uv"):
        gaussian_targets(torch.zeros(2, 3), (8, 8))
    with pytest.raises(InvalidInputError, match="heatmaps"):
        decode_dark(torch.zeros(3, 8, 8))
    with pytest.raises(InvalidInputError, match="beta"):
        soft_argmax(torch.zeros(1, 1, 8, 8), beta=0.0)
