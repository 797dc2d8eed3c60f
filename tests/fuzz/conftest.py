"""Fixtures of the fuzz suite: one folder of good and bad inputs, built once per session (tiny scenes, images,
keypoint and parameter files, point clouds), shared by every case of ``test_fuzz_cli.py`` and ``test_fuzz_data.py``."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest


def _png(path: Path, h: int = 16, w: int = 16, seed: int = 0, alpha: bool = False) -> Path:
    import cv2

    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 4 if alpha else 3), dtype=np.uint8))
    return path


def _jpeg(path: Path, h: int = 48, w: int = 64) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _orbit_c2w_gl(i: int, n: int) -> list:
    import torch

    from human3d.geometry import look_at

    ang = 2 * math.pi * i / n
    w2c = look_at(torch.tensor([[4 * math.cos(ang), 4 * math.sin(ang), 1.0]]), torch.zeros(1, 3),
                  torch.tensor([[0.0, 0.0, 1.0]]))  # fmt: skip
    return (torch.linalg.inv(w2c)[0] @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))).tolist()


def blender_scene(root: Path, n: int = 3, size: int = 16) -> dict:
    """A tiny Blender scene (train and test splits of ``n`` RGBA frames); returns the train transforms dict."""
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        (root / split).mkdir(exist_ok=True)
        frames = []
        for i in range(n):
            _png(root / split / f"r_{i}.png", size, size, seed=i, alpha=True)
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": _orbit_c2w_gl(i, n)})
        meta = {"camera_angle_x": 0.7, "frames": frames}
        (root / f"transforms_{split}.json").write_text(json.dumps(meta))
    return json.loads((root / "transforms_train.json").read_text())


def colmap_scene(root: Path, n: int = 4, W: int = 16, H: int = 12):
    """A tiny COLMAP scene (binary model in sparse/0, images/); returns the model."""
    import torch

    from human3d.data import colmap
    from human3d.geometry import look_at

    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, (30, 3))
    cams = {1: colmap.ColmapCamera(1, "PINHOLE", W, H, np.array([20.0, 20.0, W / 2, H / 2]))}
    images = {}
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ang = 2 * math.pi * i / n
        w2c = look_at(torch.tensor([[4 * math.cos(ang), 0.5, 4 * math.sin(ang)]], dtype=torch.float64),
                      torch.zeros(1, 3, dtype=torch.float64))[0].numpy()  # fmt: skip
        name = f"img_{i:02d}.png"
        images[i + 1] = colmap.ColmapImage(i + 1, colmap.rotmat_to_qvec(w2c[:3, :3]), w2c[:3, 3], 1, name)
        _png(root / "images" / name, H, W, seed=i)
    model = colmap.ColmapModel(cams, images, np.arange(1, 31), pts, rng.integers(0, 256, (30, 3)).astype(np.uint8),
                               np.zeros(30), [np.zeros((0, 2), np.int64) for _ in range(30)])  # fmt: skip
    colmap.write_model(model, root / "sparse" / "0", binary=True)
    return model


def openpose_doc(n: int = 25, xy=(30.0, 20.0), conf: float = 0.9) -> dict:
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(5, 40, (n, 2)) if xy is None else np.tile(xy, (n, 1)), np.full((n, 1), conf)], 1)
    return {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": kp.flatten().round(2).tolist()}]}


@pytest.fixture(scope="session")
def fz(tmp_path_factory, anny_model):
    """The shared folder of inputs: ``fz.path / name`` (see the names below)."""
    d = tmp_path_factory.mktemp("fuzz")
    (d / "a_file").write_text("a file where a folder is expected\n")
    # images
    whole = _jpeg(d / "photo.jpg")
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
