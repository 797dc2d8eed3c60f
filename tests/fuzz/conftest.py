"""Fixtures of the fuzz suite: one folder of good and bad inputs, built once per session (tiny scenes, images,
keypoint and parameter files, point clouds), shared by every case of ``test_fuzz_cli.py`` and ``test_fuzz_data.py``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fuzz_inputs import write_jpeg, blender_scene, colmap_scene, openpose_doc


@pytest.fixture(scope="session")
def fz(tmp_path_factory, anny_model):
    """The shared folder of inputs: ``fz.path / name`` (see the names below)."""
    d = tmp_path_factory.mktemp("fuzz")
    (d / "a_file").write_text("a file where a folder is expected\n")
    # images
    whole = write_jpeg(d / "photo.jpg")
    (d / "photo.json").write_text(json.dumps(openpose_doc(xy=None)))
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("hello, I am a text file\n")
    (d / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    for name in ("empty", "text"):
        (d / f"{name}.json").write_text(json.dumps(openpose_doc(xy=None)))
    # keypoint files
    (d / "kp_list.json").write_text(json.dumps([1, 2, 3]))
    (d / "kp_strings.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": ["1"] * 75}]}))
    (d / "kp_outside.json").write_text(json.dumps(openpose_doc(xy=(5000.0, 20.0), conf=2.0)))
    (d / "kp_bad.json").write_text('{"people": [')
    (d / "kp_coco_other.json").write_text(json.dumps({"images": [{"id": 7, "file_name": "other.jpg"},
                                                                 {"id": 9, "file_name": "more.jpg"}],
                                                      "annotations": [{"image_id": 7, "keypoints": [1, 2, 2] * 17}]}))
    (d / "kp_nan.json").write_text('{"people": [{"pose_keypoints_2d": [' + ", ".join(["NaN"] * 75) + "]}]}")
    # parameter files
    (d / "params_bytes.npz").write_bytes(np.random.default_rng(0).bytes(300))
    (d / "params_list.json").write_text("[1, 2]")
    (d / "params.pkl").write_bytes(b"\x80\x04garbage")
    from human3d.body.io import save_params

    save_params(d / "params.json", {}, anny_model)  # a valid one-body file (rest pose)
    doc = json.loads((d / "params.json").read_text())
    name = next(iter(doc["params"]))
    doc["params"][name] = [[float("nan")] * len(np.ravel(doc["params"][name]))]
    (d / "params_nan.json").write_text(json.dumps(doc))
    # scenes
    blender_scene(d / "blender")
    colmap_scene(d / "colmap")
    # point clouds
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(200, 3))
    np.savetxt(d / "cloud.xyz", pts)
    (d / "cloud_nan.xyz").write_text("nan 0 0\n" + "\n".join(" ".join(map(str, p)) for p in pts[:20]) + "\n")
    (d / "cloud_empty.xyz").write_text("")
    header = "ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    (d / "cloud_cut.ply").write_text(header + "0 0 0\n1 1 1\n")
    (d / "cloud_nan.ply").write_text(header + "0 0 0\nnan 1 1\n2 2 2\n3 3 3\n4 4 4\n")
    return d
