"""Bad images and keypoint files say which file failed and why: empty file, not an image, truncated (decoded
partially, a warning), COCO ids matching no image, top-level lists, strings for numbers, keypoints outside the
image. Oracles: files built here with a known defect, and PIL's decode of the intact file."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from human3d.data.keypoints import check_image, load_image, load_keypoint_inputs, parse_coco, parse_openpose
from human3d.errors import DatasetError


def _jpeg_bytes(w=64, h=48) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _openpose(n=25, value=(10.0, 12.0, 0.9)) -> str:
    return json.dumps({"people": [{"pose_keypoints_2d": list(value) * n}]})


def test_empty_and_non_image_files_are_named_with_the_reason(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello, I am a text file\n")
    for stem in ("empty", "text"):
        (tmp_path / f"{stem}.json").write_text(_openpose())
    with pytest.raises(DatasetError, match=r"empty\.jpg': empty file \(0 bytes"):
        load_image(tmp_path / "empty.jpg")
    with pytest.raises(DatasetError, match=r"text\.jpg': not an image \(24 bytes"):
        check_image(tmp_path / "text.jpg")
    items = {i.name: i for i in load_keypoint_inputs(tmp_path)}
    assert "empty file" in items["empty"].error and "empty.jpg" in items["empty"].error
    assert "not an image" in items["text"].error and "text.jpg" in items["text"].error


def test_truncated_jpeg_is_decoded_partially_with_a_warning(tmp_path):
    data = _jpeg_bytes()
    (tmp_path / "whole.jpg").write_bytes(data)
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "cut.json").write_text(_openpose())
    assert check_image(tmp_path / "whole.jpg") == []
    warnings: list[str] = []
    part = load_image(tmp_path / "cut.jpg", warnings)
    whole = load_image(tmp_path / "whole.jpg")
    assert part.shape == whole.shape == (48, 64, 3)
    assert len(warnings) == 1 and "cut.jpg': truncated, decoded partially" in warnings[0]
    np.testing.assert_array_equal(part[:8], whole[:8])  # the first MCU row decodes exactly as the intact file
    assert not np.array_equal(part[-8:], whole[-8:])  # the missing half is not there
    (item,) = load_keypoint_inputs(tmp_path / "cut.jpg")
    assert item.error is None and any("truncated, decoded partially" in w for w in item.warnings)


def test_coco_ids_matching_no_image_list_the_images_and_the_ids(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (20, 10)).save(tmp_path / name)
    doc = {"images": [{"id": 7, "file_name": "x.jpg"}, {"id": 9, "file_name": "y.jpg"}],
           "annotations": [{"image_id": 7, "keypoints": [1, 2, 2] * 17}]}  # fmt: skip
    (tmp_path / "k.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"k\.json' has no annotations for any of the 2 image\(s\) given "
                       r"\(a\.jpg, b\.jpg\); it holds image_id 7, 9 \(file names x\.jpg, y\.jpg\)"):
        load_keypoint_inputs(tmp_path, tmp_path / "k.json")
    Image.new("RGB", (20, 10)).save(tmp_path / "x.jpg")  # one matches: the others are reported per image
    items = {i.name: i for i in load_keypoint_inputs(tmp_path, tmp_path / "k.json")}
    assert items["x"].error is None and len(items["x"].people) == 1
    assert "no annotations for 'a.jpg'" in items["a"].error and "image_id 7, 9" in items["a"].error


@pytest.mark.parametrize(
    "doc, match",
    [
        ([1, 2, 3], r"results list: item\[0\]: expected an object with 'image_id' and 'keypoints', found a int \(1\)"),
        ([{"id": 3, "keypoints": []}], r"results list: item\[0\] has no 'image_id' \(found keys \['id', 'keypoints'\]\)"),
        ({"annotations": [{"image_id": 1, "keypoints": ["1"] * 51}]},
         r"annotations\[0\]\.keypoints: expected a flat list of numbers \(x, y, c triples\), found a str \('1'\) at position 0"),
        ({"annotations": [{"image_id": [1], "keypoints": [0] * 51}]}, r"image_id: expected an integer or string id, found a list of 1"),
        ({"images": [{"id": 1, "width": "640"}], "annotations": []}, r"images\[0\]\.width: expected a positive whole number of pixels, found a str"),
        ({"annotations": {"image_id": 1}}, r"not a COCO keypoint file .* found an object with keys \['image_id'\]"),
    ],
)
def test_coco_messages_say_what_was_found_and_what_was_expected(doc, match):
    with pytest.raises(DatasetError, match=match):
        parse_coco(doc, "k.json")


def test_openpose_message_names_the_value_found():
    with pytest.raises(DatasetError, match=r"people\[0\]\.pose_keypoints_2d: expected a flat list of numbers .*found a "
                       r"list of 2 at position 3"):  # fmt: skip
        parse_openpose({"people": [{"pose_keypoints_2d": [1, 2, 3, [4, 5]] + [0] * 71}]}, "f.json")
    with pytest.raises(DatasetError, match=r"found a bool \(True\) at position 0"):
        parse_openpose({"people": [{"pose_keypoints_2d": [True] * 75}]}, "f.json")


def test_keypoints_outside_the_image_are_reported_as_outside(anny_model):
    import torch

    from human3d.fitting.config import SMPLifyConfig
    from human3d.fitting.inputs import prepare_inputs

    kp = torch.zeros(2, 17, 3)
    kp[..., 0], kp[..., 1], kp[..., 2] = 5000.0, 10.0, 1.0  # far right of a 640x480 image, confident
    kp[1, :3, 0] = float("nan")
    K = torch.tensor([[[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]])
    reasons = prepare_inputs(anny_model, kp, K, "coco17", SMPLifyConfig(), image_size=(640, 480)).skip_reason
    m = SMPLifyConfig().outside_margin
    assert reasons[0] == (f"no keypoints with confidence > 0 inside the image: 17 keypoint(s) with confidence up to 1 "
                          f"lie outside the 640x480 image (expected u in [{-m * 640:g}, {(1 + m) * 640:g}], v in "
                          f"[{-m * 480:g}, {(1 + m) * 480:g}])")  # fmt: skip
    assert "14 keypoint(s) with confidence" in reasons[1] and "3 keypoint(s) have NaN/inf values" in reasons[1]
