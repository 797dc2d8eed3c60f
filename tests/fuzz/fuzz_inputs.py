"""Builders of the fuzz suite's inputs (tiny scenes, images, keypoint documents); ``conftest.fz`` uses them."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np


def write_png(path: Path, h: int = 16, w: int = 16, seed: int = 0, alpha: bool = False) -> Path:
    import cv2

    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 4 if alpha else 3), dtype=np.uint8))
    return path


def write_jpeg(path: Path, h: int = 48, w: int = 64) -> bytes:
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
            write_png(root / split / f"r_{i}.png", size, size, seed=i, alpha=True)
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
        write_png(root / "images" / name, H, W, seed=i)
    model = colmap.ColmapModel(cams, images, np.arange(1, 31), pts, rng.integers(0, 256, (30, 3)).astype(np.uint8),
                               np.zeros(30), [np.zeros((0, 2), np.int64) for _ in range(30)])  # fmt: skip
    colmap.write_model(model, root / "sparse" / "0", binary=True)
    return model


def openpose_doc(n: int = 25, xy=(30.0, 20.0), conf: float = 0.9) -> dict:
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(5, 40, (n, 2)) if xy is None else np.tile(xy, (n, 1)), np.full((n, 1), conf)], 1)
    return {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": kp.flatten().round(2).tolist()}]}
