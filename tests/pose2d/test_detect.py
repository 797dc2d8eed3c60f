"""The shipped photo detector: BlazePose -> COCO-17 / BODY_25 mapping, PCK against COCO labels, ``human3d detect``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from human3d.body.skeletons import BODY25, COCO17
from human3d.data.paths import shared_data_dir
from human3d.pose2d.mediapipe_backend import BLAZEPOSE33, blazepose_to, mediapipe_status

MP_OK, MP_WHY = mediapipe_status()
needs_mp = pytest.mark.skipif(not MP_OK, reason=f"mediapipe cannot run here: {MP_WHY}")
COCO_MINI = shared_data_dir() / "coco_keypoints_mini"
needs_coco = pytest.mark.skipif(not (COCO_MINI / "test_coco.json").is_file(), reason="no shared COCO mini")


def _landmarks():
    """Landmark i at (10 i, 1000 + i) with visibility i / 40: every output says which landmark it came from."""
    i = np.arange(33, dtype=np.float32)
    return np.stack([10 * i, 1000 + i, i / 40], -1)


def test_mapping_to_coco17_hand_checked():
    out = blazepose_to(_landmarks(), "coco17")
    # hand-checked against the BlazePose landmark chart: nose 0, eyes 2/5, ears 7/8, shoulders 11/12, elbows 13/14,
    # wrists 15/16, hips 23/24, knees 25/26, ankles 27/28 (COCO order: left before right)
    expected = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
    assert out.shape == (17, 3)
    np.testing.assert_allclose(out[:, 0], 10 * np.array(expected))
    np.testing.assert_allclose(out[:, 2], np.array(expected) / 40)
    assert [BLAZEPOSE33[i] for i in expected] == COCO17


def test_mapping_to_body25_midpoints_and_feet():
    lm = _landmarks()
    out = blazepose_to(lm, "body25")
    at = {n: out[BODY25.index(n)] for n in BODY25}
    np.testing.assert_allclose(at["neck"], [0.5 * (110 + 120), 1000 + 11.5, 11 / 40])  # mid-shoulders, min conf
    np.testing.assert_allclose(at["mid_hip"], [0.5 * (230 + 240), 1000 + 23.5, 23 / 40])
    np.testing.assert_allclose(at["right_wrist"], lm[16])
    np.testing.assert_allclose(at["left_heel"], lm[29])
    np.testing.assert_allclose(at["right_big_toe"], lm[32])  # BlazePose's right foot index
    np.testing.assert_array_equal(at["left_small_toe"], 0)  # no counterpart: missing
    # batched input maps the same
    np.testing.assert_allclose(blazepose_to(np.stack([lm, lm]), "body25")[1], out)


def _coco_people():
    doc = json.loads((COCO_MINI / "test_coco.json").read_text())
    files = {im["id"]: im["file_name"] for im in doc["images"]}
    for a in doc["annotations"]:
        kp = np.asarray(a["keypoints"], np.float32).reshape(17, 3)
        if (kp[:, 2] > 0).any():
            kp[:, :2] += 0.5  # pixel indices -> continuous
            yield COCO_MINI / files[a["image_id"]], kp, a["bbox"], a["area"]


@needs_mp
@needs_coco
def test_mediapipe_pck_on_coco_mini():
    """Top-down at the labelled boxes (every labelled person of the 4 photos, 12 people): PCK@0.2 (box max side)
    >= 0.95; measured 0.994. The single-person skier on the whole image: mean error < 10 px (measured 7.2)."""
    from human3d.data.keypoints import load_image
    from human3d.pose2d.detect import Detector
    from human3d.pose2d.metrics import pck

    preds, gts, norms = [], [], []
    with Detector("mediapipe", "coco17") as det:
        for path, kp, box, _ in _coco_people():
            (p,) = det.detect(load_image(path), boxes=[box])
            preds.append(p.keypoints[:, :2])
            gts.append(kp)
            norms.append(max(box[2], box[3]))
        G = torch.tensor(np.array(gts))
        score = pck(torch.tensor(np.array(preds)), G[..., :2], G[..., 2], torch.tensor(norms), 0.2)
        assert score >= 0.95, score
        skier = COCO_MINI / "000000000785.jpg"
        (gt,) = [kp for path, kp, _, _ in _coco_people() if path == skier]
        people = det.detect(load_image(skier))
    assert len(people) == 1
    vis = gt[:, 2] > 0
    err = np.linalg.norm(people[0].keypoints[vis, :2] - gt[vis, :2], axis=-1).mean()
    assert err < 10.0, err


@needs_mp
@needs_coco
def test_several_people_found(tmp_path):
    """The 4-person COCO photo: erase-and-repeat + windows finds at least 3 of its 4 labelled people (OKS > 0.5)."""
    from human3d.data.keypoints import load_image
    from human3d.pose2d.detect import Detector
    from human3d.pose2d.metrics import oks

    path = COCO_MINI / "000000196141.jpg"
    with Detector("mediapipe", "coco17") as det:
        people = det.detect(load_image(path))
    matched = 0
    for p_, kp, _, area in (x for x in _coco_people() if x[0] == path):
        best = max(float(oks(torch.tensor(p.keypoints[None, :, :2]), torch.tensor(kp[None, :, :2]),
                             torch.tensor(kp[None, :, 2]), torch.tensor([area])).reshape(-1)[0]) for p in people)
        matched += best > 0.5
    assert matched >= 3, matched


@needs_mp
@needs_coco
def test_cli_detect_writes_json_fit_reads(tmp_path):
    from typer.testing import CliRunner

    from human3d.cli.main import app
    from human3d.data.keypoints import load_keypoint_inputs

    img = COCO_MINI / "000000000785.jpg"
    out = tmp_path / "kp.json"
    r = CliRunner().invoke(app, ["detect", str(img), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.with_suffix(".png").is_file()
    (item,) = load_keypoint_inputs(img, out)  # what human3d fit --keypoints reads
    assert item.error is None and len(item.people) == 1 and item.people[0].skeleton == "body25"
    r = CliRunner().invoke(app, ["detect", str(COCO_MINI), "--format", "coco", "--out", str(tmp_path / "all.json")])
    assert r.exit_code == 0, r.output
    items = load_keypoint_inputs(COCO_MINI, tmp_path / "all.json")
    assert len(items) == 4 and all(it.error is None and it.people for it in items)
    # a folder in OpenPose format is refused before any work, with exit code 2
    r = CliRunner().invoke(app, ["detect", str(COCO_MINI), "--out", str(tmp_path / "x.json")])
    assert r.exit_code == 2 and "--format" in r.output


def test_heatmap_backend_whole_image_one_person():
    from human3d.pose2d.detect import Detector

    rgb = np.full((96, 64, 3), 128, np.uint8)
    with Detector("heatmap", "body25") as det:
        (p,) = det.detect(rgb)
    assert p.keypoints.shape == (25, 3) and np.isfinite(p.keypoints).all()
    # the whole image is the person's box: its square crop (side = padding x 96, centred at (32, 48)) holds them
    half = 0.5 * det._meta["padding"] * 96
    on = p.keypoints[:, 2] > 0
    assert on.sum() >= 17  # the 17 COCO joints (+ midpoints); feet have no heatmap counterpart
    assert (np.abs(p.keypoints[on, 0] - 32) <= half + 1e-3).all() and (np.abs(p.keypoints[on, 1] - 48) <= half + 1e-3).all()
