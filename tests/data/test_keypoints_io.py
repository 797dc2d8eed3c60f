"""Keypoint files (OpenPose BODY_25 / COCO-18, COCO keypoint JSON, folders) and image helpers: formats, the +0.5
pixel convention, confidences, multiple people, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from human3d.data.keypoints import (
    exif_focal_px,
    image_size,
    load_image,
    load_keypoint_inputs,
    parse_coco,
    parse_openpose,
)
from human3d.data.paths import shared_data_dir
from human3d.errors import DatasetError

SHARED = shared_data_dir() / "coco_keypoints_mini"


def _openpose(people: list[list[float]]) -> dict:
    return {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": p} for p in people]}


def _image(path: Path, w: int = 40, h: int = 30) -> Path:
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)
    return path


def test_openpose_body25_and_coco18_two_people():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 100, (25, 3)).round(2)
    a[:, 2] = rng.uniform(0, 1, 25)
    a[3, 2] = 0.0  # missing
    b = rng.uniform(0, 100, (18, 3))
    b[:, 2] = 1.7  # out-of-range confidence is clipped
    people = parse_openpose(_openpose([a.flatten().tolist()]))
    assert len(people) == 1 and people[0].skeleton == "body25"
    kp = people[0].keypoints
    np.testing.assert_allclose(kp[:, 2], a[:, 2], atol=1e-6)
    ok = a[:, 2] > 0
    np.testing.assert_allclose(kp[ok, :2], a[ok, :2] + 0.5, atol=1e-4)  # pixel index -> continuous
    assert (kp[~ok, :2] == 0).all()
    two = parse_openpose(_openpose([a.flatten().tolist(), b.flatten().tolist()]))
    assert [p.skeleton for p in two] == ["body25", "openpose_coco18"]
    assert [p.index for p in two] == [0, 1]
    assert (two[1].keypoints[:, 2] == 1.0).all()


def test_openpose_nan_coordinates_become_missing_with_warning():
    vals = [10.0, 20.0, 0.9] * 25
    vals[3:6] = [float("nan"), 5.0, 0.8]
    warnings: list[str] = []
    (p,) = parse_openpose(_openpose([vals]), warnings=warnings)
    assert p.keypoints[1, 2] == 0 and np.isfinite(p.keypoints).all()
    assert p.num_valid == 24
    assert warnings and "NaN" in warnings[0]


@pytest.mark.parametrize(
    "doc, match",
    [
        ({"people": [{"pose_keypoints_2d": [1.0, 2.0]}]}, "expected 75 or 54 values"),
        ({"people": [{"face_keypoints_2d": []}]}, "pose_keypoints_2d"),
        ({"people": [{"pose_keypoints_2d": ["a"] * 75}]}, "flat list of numbers"),
        ({"persons": []}, "not an OpenPose file"),
    ],
)
def test_openpose_malformed(doc, match):
    with pytest.raises(DatasetError, match=match):
        parse_openpose(doc, "f.json")


def test_coco_groups_by_image_with_visibility_flags():
    d = json.loads((SHARED / "test_coco.json").read_text())
    table = parse_coco(d)
    assert set(table) == {785, 40083, 196141, 197388}
    assert [len(table[k]["people"]) for k in (785, 40083, 196141, 197388)] == [1, 3, 5, 5]
    ann = next(a for a in d["annotations"] if a["image_id"] == 785)
    raw = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)
    kp = table[785]["people"][0].keypoints
    np.testing.assert_array_equal(kp[:, 2], (raw[:, 2] > 0).astype(np.float32))
    np.testing.assert_allclose(kp[raw[:, 2] > 0, :2], raw[raw[:, 2] > 0, :2] + 0.5, atol=1e-4)
    for ann in d["annotations"]:  # every person's count of labelled keypoints survives
        p = next(q for q in table[ann["image_id"]]["people"] if q.source_id == ann["id"])
        assert p.num_valid == ann["num_keypoints"]
        assert p.bbox == pytest.approx(tuple(ann["bbox"]))
    assert table[785]["width"] == 640 and table[785]["file_name"] == "000000000785.jpg"


def test_coco_results_list_and_crowd():
    res = [{"image_id": 7, "category_id": 1, "keypoints": [5.0, 6.0, 0.3] * 17, "score": 0.9},
           {"image_id": 7, "keypoints": [1.0, 1.0, 1.0] * 17, "iscrowd": 1}]  # fmt: skip
    table = parse_coco(res)
    assert len(table[7]["people"]) == 1
    assert table[7]["people"][0].keypoints[0].tolist() == pytest.approx([5.5, 6.5, 0.3])


def test_load_inputs_coco_file_for_folder_and_single_image(tmp_path):
    items = load_keypoint_inputs(SHARED, SHARED / "test_coco.json")
    assert [i.name for i in items] == ["000000000785", "000000040083", "000000196141", "000000197388"]
    assert all(i.error is None for i in items)
    assert sum(len(i.people) for i in items) == 14
    (one,) = load_keypoint_inputs(SHARED / "000000000785.jpg", SHARED / "test_coco.json")
    assert len(one.people) == 1 and one.width == 640 and one.height == 425
    # an image the COCO file does not know is reported, not fatal
    extra = tmp_path / "imgs"
    extra.mkdir()
    _image(extra / "000000000785.jpg")
    _image(extra / "unknown.jpg")
    items = load_keypoint_inputs(extra, SHARED / "test_coco.json")
    assert [i.error is None for i in items] == [True, False]
    assert "unknown.jpg" in items[1].error


def test_folder_with_json_beside_each_image(tmp_path):
    _image(tmp_path / "a.jpg")
    _image(tmp_path / "b.png")
    _image(tmp_path / "c.jpg")
    _image(tmp_path / "d.jpg")
    (tmp_path / "a.json").write_text(json.dumps(_openpose([[10.0, 10.0, 1.0] * 25, [5.0, 5.0, 0.5] * 18])))
    (tmp_path / "b_keypoints.json").write_text(json.dumps(_openpose([[3.0, 4.0, 1.0] * 25])))
    (tmp_path / "c.json").write_text("{not json")
    items = {i.name: i for i in load_keypoint_inputs(tmp_path)}
    assert len(items["a"].people) == 2 and items["a"].error is None
    assert len(items["b"].people) == 1 and items["b"].keypoint_file.name == "b_keypoints.json"
    assert "not valid JSON" in items["c"].error and "c.json" in items["c"].error
    assert "no keypoint file" in items["d"].error


def test_single_bad_inputs_raise_naming_the_file(tmp_path):
    img = _image(tmp_path / "x.jpg")
    bad = tmp_path / "x.json"
    bad.write_text('{"people": [')
    with pytest.raises(DatasetError, match=r"x\.json.*not valid JSON"):
        load_keypoint_inputs(img, bad)
    with pytest.raises(DatasetError, match="does not exist"):
        load_keypoint_inputs(tmp_path / "missing.jpg", bad)
    with pytest.raises(DatasetError, match="does not exist"):
        load_keypoint_inputs(img, tmp_path / "missing.json")
    other = tmp_path / "y.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(DatasetError, match="neither OpenPose"):
        load_keypoint_inputs(img, other)
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_keypoint_inputs(img)  # the malformed x.json beside x.jpg
    with pytest.raises(DatasetError, match="no keypoint file"):
        load_keypoint_inputs(_image(tmp_path / "z.jpg"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        load_keypoint_inputs(empty)


def test_unreadable_image_and_size(tmp_path):
    p = tmp_path / "broken.jpg"
    p.write_bytes(b"this is not a jpeg")
    with pytest.raises(DatasetError, match="broken.jpg"):
        load_image(p)
    with pytest.raises(DatasetError, match="broken.jpg"):
        image_size(p)
    good = _image(tmp_path / "ok.png", 40, 30)
    assert image_size(good) == (40, 30)
    assert load_image(good).shape == (30, 40, 3)


def test_exif_focal_in_35mm(tmp_path):
    im = Image.fromarray(np.zeros((300, 400, 3), np.uint8))
    exif = Image.Exif()
    exif_ifd = exif.get_ifd(0x8769)
    exif_ifd[0xA405] = 50  # FocalLengthIn35mmFilm
    p = tmp_path / "e.jpg"
    im.save(p, exif=exif)
    f = exif_focal_px(p, 400, 300)
    assert f == pytest.approx(50 / 36 * 400)
    assert exif_focal_px(_image(tmp_path / "n.png"), 40, 30) is None
    assert not math.isnan(f)
