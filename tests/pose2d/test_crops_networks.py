"""Crops and augmentation against closed forms (identity, exact mirror, rot90, a painted dot that must follow its
keypoint), flip pairs against the joint names, and the networks' shapes, size and growing receptive field."""

from __future__ import annotations

import math

import pytest
import torch

from human3d.body.skeletons import COCO17
from human3d.errors import InvalidInputError
from human3d.pose2d.crops import crop_matrices, flip_pairs, flip_permutation, half_body_boxes, warp_images
from human3d.pose2d.data import Augment, PersonPool, sample_crops

S = 32


def _image(seed=0):
    return torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(seed))


def _plain(flip=False, rot=0.0):
    return crop_matrices(torch.tensor([[S / 2, S / 2]]), torch.tensor([float(S)]), S,
                         torch.tensor([rot]), torch.tensor([flip]))  # fmt: skip


def test_flip_pairs_follow_the_names():
    want = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]  # COCO-17, by hand
    assert flip_pairs("coco17") == want
    perm = flip_permutation("coco17")
    for k, name in enumerate(COCO17):
        other = name.replace("left_", "R").replace("right_", "left_").replace("R", "right_")
        assert COCO17[int(perm[k])] == other
    assert torch.equal(perm[perm], torch.arange(17))


def test_identity_mirror_and_rot90_crops_are_exact():
    img = _image()
    torch.testing.assert_close(warp_images(img, _plain(), S), img, atol=1e-6, rtol=0)
    torch.testing.assert_close(warp_images(img, _plain(flip=True), S), img.flip(-1), atol=1e-6, rtol=0)
    # R = [[c, -s], [s, c]] at +90 degrees: crop[i, j] = img[j, S - 1 - i] = torch.rot90(img, 1)
    torch.testing.assert_close(warp_images(img, _plain(rot=math.pi / 2), S), torch.rot90(img, 1, (-2, -1)),
                               atol=1e-5, rtol=0)  # fmt: skip


def test_flip_swaps_left_and_right_in_closed_form():
    kp = torch.zeros(1, 17, 3)
    kp[0, :, 0] = torch.arange(17.0) + 3.25  # distinct u per joint
    kp[0, :, 1] = 2.0 * torch.arange(17.0) + 0.5
    kp[0, :, 2] = 2
    kp[0, 4, 2] = 1  # right ear labelled but hidden: the flag travels with the joint
    pool = PersonPool((_image() * 255).to(torch.uint8).permute(0, 2, 3, 1), torch.zeros(1, dtype=torch.long), kp,
                      torch.tensor([[0.0, 0.0, S, S]]), torch.tensor([float(S * S)]))  # fmt: skip
    crops, out, A, flipped = sample_crops(pool, torch.tensor([0]), S, padding=1.0, augment=Augment(flip=1.0))
    assert flipped.all()
    plain, _, _, _ = sample_crops(pool, torch.tensor([0]), S, padding=1.0)
    torch.testing.assert_close(crops, plain.flip(-1), atol=1e-6, rtol=0)
    for k in range(17):  # joint k of the flipped crop is the mirror image of joint perm[k]
        j = int(flip_permutation()[k])
        assert out[0, k, 0].item() == pytest.approx(S - kp[0, j, 0].item(), abs=1e-5)
        assert out[0, k, 1].item() == pytest.approx(kp[0, j, 1].item(), abs=1e-5)
        assert out[0, k, 2] == kp[0, j, 2]
    assert out[0, 3, 2] == 1  # left ear <- the hidden right ear


def test_augmented_keypoints_follow_the_image():
    """A bright dot painted at each person's keypoint lands, after a random augmented crop, at the crop pixel the
    transformed keypoint names (the image warp and the keypoint map agree)."""
    H = W = 64
    B = 24
    g = torch.Generator().manual_seed(1)
    uv = 16 + 32 * torch.rand(B, 2, generator=g)  # one dot per image, at a pixel centre
    uv = torch.floor(uv) + 0.5
    imgs = torch.zeros(B, H, W, 3, dtype=torch.uint8)
    imgs[torch.arange(B), uv[:, 1].long(), uv[:, 0].long()] = 255
    kp = torch.zeros(B, 17, 3)
    kp[:, :, :2] = uv[:, None]
    kp[:, :, 2] = 2
    pool = PersonPool(imgs, torch.arange(B), kp, torch.tensor([[8.0, 8.0, 48.0, 48.0]]).expand(B, 4),
                      torch.full((B,), 100.0))  # fmt: skip
    aug = Augment(rotation=40, rotation_prob=1.0, scale=0.2, shift=0.1, flip=0.5)
    crops, out, _, flipped = sample_crops(pool, torch.arange(B), 64, 1.0, aug, g)  # 1 image px ~ 1 crop px
    assert flipped.any() and (~flipped).any()
    lum = crops.mean(1)  # [B, S, S]
    best = lum.flatten(1).argmax(1)
    peak = torch.stack([best % 64, best // 64], -1).float() + 0.5
    assert (peak - out[:, 0, :2]).norm(dim=-1).max() < 1.5  # bilinear spread of a one-pixel dot


def test_half_body_boxes():
    kp = torch.zeros(2, 17, 3)
    kp[:, :, 0] = torch.arange(17.0)
    kp[:, :, 1] = 10 * torch.arange(17.0)
    kp[:, :, 2] = 2
    kp[1, :11, 2] = 0  # the second person has only its lower body labelled
    box, ok = half_body_boxes(kp, torch.tensor([True, True]))
    assert ok.all()
    torch.testing.assert_close(box[0], torch.tensor([0.0, 0.0, 10.0, 100.0]))  # joints 0..10
    torch.testing.assert_close(box[1], torch.tensor([11.0, 110.0, 5.0, 50.0]))  # falls back to 11..16


# ------------------------------------------------------------------------------------------------- networks
@pytest.mark.parametrize("arch", ["simple", "cpm"])
def test_networks_shapes(arch, one_thread):
    from human3d.pose2d.networks import build_network, count_parameters

    net = build_network(arch)
    outs = net.forward_stages(torch.rand(2, 3, 128, 128))
    assert len(outs) == (1 if arch == "simple" else 3)
    assert all(o.shape == (2, 17, 32, 32) for o in outs)
    assert net.eval()(torch.zeros(1, 3, 64, 96)).shape == (1, 17, 16, 24)  # any multiple of 32, stride 4
    n = count_parameters(net)
    assert (400_000 < n < 650_000) if arch == "simple" else (200_000 < n < 650_000)
    with pytest.raises(InvalidInputError, match="divisible by 32"):
        net(torch.zeros(1, 3, 100, 100))


def test_cpm_receptive_field_grows_with_stages(one_thread):
    """The gradient of a stage's centre output with respect to the input reaches further with every stage."""
    from human3d.pose2d.networks import CPM

    net = CPM(stages=3).eval()
    x = torch.rand(1, 3, 512, 512, requires_grad=True)
    extents = []
    for s in range(3):
        x.grad = None
        net.forward_stages(x)[s][0, :, 64, 64].sum().backward()
        cols = (x.grad.abs().sum((0, 1, 2)) > 0).nonzero()
        extents.append(int(cols.max() - cols.min() + 1))
    assert extents[0] < extents[1] < extents[2], extents
