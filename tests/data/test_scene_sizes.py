"""Scenes whose images come in several sizes: each image's intrinsics are scaled to one common size, so a scene
with half of its images downscaled 2x (intrinsics halved) gives the rays of the full-size scene; different aspect
ratios are refused naming the images. Oracle: the same scene written at full size, and smooth images (an image
downscaled and brought back matches the full-size one to a small tolerance)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from human3d.data import colmap
from human3d.data.scenes import load_blender_scene, load_colmap_scene
from human3d.errors import DatasetError
from human3d.geometry import look_at

W, H = 32, 24


def _smooth(i: int) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.stack([0.5 + 0.4 * np.sin(x / 9 + i), 0.5 + 0.4 * np.cos(y / 7 - i), np.full_like(x, 0.3)], -1)
    return (img * 255).round().astype(np.uint8)


def _blender(root, half: set[int], per_frame_focal: bool, n: int = 4):
    (root / "train").mkdir(parents=True)
    frames = []
    for i in range(n):
        ang = 2 * math.pi * i / n
        w2c = look_at(torch.tensor([[4 * math.cos(ang), 4 * math.sin(ang), 1.0]]), torch.zeros(1, 3),
                      torch.tensor([[0.0, 0.0, 1.0]]))  # fmt: skip
        c2w_gl = torch.linalg.inv(w2c)[0] @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
        img = _smooth(i)
        s = 2 if i in half else 1
        if s == 2:
            img = cv2.resize(img, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / "train" / f"r_{i}.png"), img[..., ::-1])
        fr = {"file_path": f"./train/r_{i}", "transform_matrix": c2w_gl.tolist()}
        if per_frame_focal:
            fr.update(w=W // s, h=H // s, fl_x=30.0 / s, fl_y=31.0 / s, cx=15.0 / s, cy=12.5 / s)
        frames.append(fr)
    meta = {"frames": frames} if per_frame_focal else {"camera_angle_x": 0.9, "frames": frames}
    (root / "transforms_train.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("per_frame_focal", [False, True], ids=["camera_angle_x", "per-frame fl_x"])
def test_blender_half_downscaled_images_give_the_full_size_rays(tmp_path, per_frame_focal):
    _blender(tmp_path / "full", set(), per_frame_focal)
    _blender(tmp_path / "mixed", {1, 3}, per_frame_focal)
    full, mixed = load_blender_scene(tmp_path / "full"), load_blender_scene(tmp_path / "mixed")
    assert (mixed.width, mixed.height) == (W, H)
    for a, b in zip(full.rays(), mixed.rays()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(full.images[[0, 2]], mixed.images[[0, 2]], atol=0, rtol=0)
    assert (full.images[[1, 3]] - mixed.images[[1, 3]]).abs().mean() < 0.02  # smooth: brought back closely
    half = load_blender_scene(tmp_path / "mixed", downscale=2)  # downscale applies to the common size
    assert (half.width, half.height) == (W // 2, H // 2)
    torch.testing.assert_close(half.cameras.K, full.cameras.K / torch.tensor([2.0, 2.0, 1.0])[:, None])


def test_blender_different_aspect_ratios_are_refused_naming_the_images(tmp_path):
    _blender(tmp_path, set(), False)
    cv2.imwrite(str(tmp_path / "train" / "r_2.png"), np.zeros((W, W, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"one aspect ratio .*: 'train/r_2\.png' 32x32 differ from 32x24$"):
        load_blender_scene(tmp_path)
    meta = json.loads((tmp_path / "transforms_train.json").read_text())
    meta["w"], meta["h"] = W, H  # declared 32x24 but the file is 32x32
    (tmp_path / "transforms_train.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"r_2\.png' is 32x32, but its camera is 32x24"):
        load_blender_scene(tmp_path)


def test_colmap_camera_at_half_size_gives_the_full_size_rays(synthetic_colmap, tmp_path):
    full_root, mixed_root = tmp_path / "full", tmp_path / "mixed"
    model = synthetic_colmap(full_root)
    colmap.write_model(model, full_root / "sparse" / "0", binary=True)
    c = model.cameras[2]  # SIMPLE_PINHOLE f, cx, cy: every third image uses it
    model.cameras[2] = colmap.ColmapCamera(2, c.model, c.width // 2, c.height // 2, c.params / 2)
    colmap.write_model(model, mixed_root / "sparse" / "0", binary=True)
    (mixed_root / "images").mkdir()
    for im in model.images.values():
        img = cv2.imread(str(full_root / "images" / im.name))
        if im.camera_id == 2:
            img = cv2.resize(img, (c.width // 2, c.height // 2), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(mixed_root / "images" / im.name), img)
    for split in ("train", "test"):
        a, b = load_colmap_scene(full_root, split), load_colmap_scene(mixed_root, split)
        assert (b.width, b.height) == (a.width, a.height)
        for x, y in zip(a.rays(), b.rays()):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
    model.cameras[2] = colmap.ColmapCamera(2, c.model, c.width // 2, c.height, c.params / 2)  # another aspect
    colmap.write_model(model, mixed_root / "sparse" / "0", binary=True)
    with pytest.raises(DatasetError, match=r"one aspect ratio .*: 'img_001\.png' 20x30, 'img_004\.png' 20x30, 'img_007\.png' 20x30 differ from 40x30$"):
        load_colmap_scene(mixed_root, "all")
