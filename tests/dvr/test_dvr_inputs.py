"""DVR's data checks: masks from alpha or mask files, and clear errors for images without masks, empty masks and
NaN cameras; the multi-view generator's masks and cameras against the closed-form silhouette of a sphere."""

from __future__ import annotations

import json
import math
import shutil

import cv2
import numpy as np
import pytest

from human3d.data.scenes import load_scene
from human3d.dvr.config import preset
from human3d.dvr.data import split_masks
from human3d.dvr.trainer import DVRTrainer
from human3d.errors import DatasetError


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _strip_alpha(root, masks_dir=None):
    """Rewrite every PNG of the dataset as RGB; optionally write its alpha as DATA/masks/<sub>/<name>.png."""
    for p in sorted(root.glob("*/r_*.png")):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(p), img[..., :3])
        if masks_dir is not None:
            out = root / masks_dir / p.parent.name / p.name
            out.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out), img[..., 3])


def test_generator_masks_match_the_closed_form_sphere_silhouette(sphere_scene):
    """Rays of the loaded (Blender -> OpenCV) cameras hit the unit sphere exactly where the alpha mask is set."""
    s = load_scene(sphere_scene, "train")
    o, d = s.rays()  # [N, H, W, 3] unit directions
    b = -(o * d).sum(-1)
    hits = b * b - ((o * o).sum(-1) - 1.0) > 0  # ray-sphere discriminant
    mask = s.alphas[..., 0] > 0.5
    assert float((hits & mask).sum() / (hits | mask).sum()) > 0.97  # the icosphere is inscribed: rim pixels differ
    meta = json.loads((sphere_scene / "transforms_train.json").read_text())
    assert len(meta["frames"]) == 24 and math.isclose(meta["camera_angle_x"], 0.6911112070083618)


def test_masks_from_alpha_and_from_mask_files_agree(sphere_scene, tmp_path):
    alpha = split_masks(load_scene(sphere_scene, "train"), sphere_scene)
    root = _copy(sphere_scene, tmp_path / "files")
    _strip_alpha(root, "masks")
    s = load_scene(root, "train")
    assert s.alphas is None
    files = split_masks(s, root)
    assert (files - alpha).abs().max() < 1.0 / 255 + 1e-6


def test_images_without_masks_say_how_to_provide_them(sphere_scene, tmp_path):
    root = _copy(sphere_scene, tmp_path / "rgb")
    _strip_alpha(root)
    with pytest.raises(DatasetError, match=r"no alpha channel and no mask files .*RGBA images .*DATA/masks/"):
        DVRTrainer(tmp_path / "run", root, config=preset("tiny"))
    (root / "masks" / "train").mkdir(parents=True)
    cv2.imwrite(str(root / "masks" / "train" / "r_0.png"), np.full((32, 32), 255, np.uint8))
    with pytest.raises(DatasetError, match=r"23 image\(s\) of the train split have no mask file"):
        DVRTrainer(tmp_path / "run2", root, config=preset("tiny"))


def test_empty_masks_are_refused(sphere_scene, tmp_path):
    root = _copy(sphere_scene, tmp_path / "empty")
    p = root / "train" / "r_3.png"
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    img[..., 3] = 0
    cv2.imwrite(str(p), img)
    with pytest.raises(DatasetError, match=r"masks of 1 view\(s\) are empty .*r_3\.png"):
        DVRTrainer(tmp_path / "run", root, config=preset("tiny"))


def test_nan_cameras_are_refused(sphere_scene, tmp_path):
    root = _copy(sphere_scene, tmp_path / "nan")
    tf = root / "transforms_train.json"
    meta = json.loads(tf.read_text())
    meta["frames"][2]["transform_matrix"][0][3] = float("nan")
    tf.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"frame 2 .*non-finite pose"):
        DVRTrainer(tmp_path / "run", root, config=preset("tiny"))
    meta["frames"][2]["transform_matrix"][0][3] = 0.0
    meta["camera_angle_x"] = float("nan")
    tf.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"transforms_train\.json.*(camera_angle_x|focal length).*(finite|nan)"):
        DVRTrainer(tmp_path / "run2", root, config=preset("tiny"))


def test_depth_maps_match_the_closed_form_sphere_depth_and_feed_the_depth_loss(sphere_scene, tmp_path, one_thread):
    from human3d.dvr.data import split_depths

    s = load_scene(sphere_scene, "train")
    dm = split_depths(s, sphere_scene)  # [N, H, W] camera z
    o, d = s.rays()
    b = -(o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - 1.0)
    z = (b - disc.clamp_min(0).sqrt()) * (d * s.cameras.camera_to_world[:, None, None, :3, 2]).sum(-1)
    inner = (dm > 0) & (disc > 0.05)  # away from the rim, where the inscribed icosphere's facets are seen obliquely
    assert inner.sum() > 1000 and (dm - z)[inner].abs().max() < 0.01
    tr = DVRTrainer(tmp_path / "run", sphere_scene, config=preset("tiny", **{"loss.depth": 1.0, "run.max_steps": 2}))
    tr.before_train()
    info = tr.train_step()
    assert info["depth"] > 0 and np.isfinite(info["loss"])
