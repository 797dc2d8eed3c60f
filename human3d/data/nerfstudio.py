"""nerfstudio's ``transforms.json``: writer and reader.

Layout (https://docs.nerf.studio/quickstart/data_conventions.html)::

    {"camera_model": "OPENCV", "fl_x": .., "fl_y": .., "cx": .., "cy": .., "w": .., "h": ..,
     "k1": 0, "k2": 0, "p1": 0, "p2": 0, "camera_angle_x": ..,
     "frames": [{"file_path": "images/a.png", "transform_matrix": [[4 x 4]]}, ...]}

* ``transform_matrix`` is an **OpenGL camera-to-world** matrix (camera x right, y up, z backward), nerfstudio's and
  Blender's convention. Our cameras are OpenCV (x right, y down, z forward): ``c2w_gl = c2w_cv @ diag(1, -1, -1, 1)``
  (the flip is its own inverse). The world frame is written as it is (no axis swap or rescale).
* Intrinsics are in pixels of the image files, with pixel centres at ``(j + 0.5, i + 0.5)`` (the same ``cx``/``cy``
  as COLMAP and :mod:`human3d.geometry`). When the cameras do not share intrinsics and size they go into each frame
  (``fl_x``, ``w``... per frame, which nerfstudio and our Blender loader read) and the top-level ones are left out.
* ``camera_angle_x = 2 atan(w / (2 fl_x))`` is added so that Blender-style loaders read the file; ours
  (:func:`human3d.data.scenes.load_blender_scene`) prefers ``fl_x``/``fl_y``/``cx``/``cy`` when present.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from human3d.errors import DatasetError, InvalidInputError
from human3d.io_utils import atomic_write_text

__all__ = ["OPENCV_TO_OPENGL", "write_transforms", "read_transforms", "relative_file_paths", "TransformsCameras"]

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
"""Right-multiply an OpenCV camera-to-world by this to get the OpenGL one (and back)."""



@dataclass
class TransformsCameras:
    """Cameras read from a ``transforms.json``: ``K`` [N, 3, 3], OpenCV camera-to-world ``c2w`` [N, 4, 4],
    ``sizes`` [N, 2] (w, h) and the frames' ``file_paths`` as written."""

    K: np.ndarray
    c2w: np.ndarray
    sizes: np.ndarray
    file_paths: list[str]
    meta: dict


def write_transforms(path, K, camera_to_world, width, height, file_paths: Sequence[str],
                     camera_model: str = "OPENCV", extra: dict | None = None) -> Path:  # fmt: skip
    """Write ``path`` (atomically) in nerfstudio's layout.

    Args:
        K: [N, 3, 3] or [3, 3] intrinsics in pixels of the files.
        camera_to_world: [N, 4, 4] (or [N, 3, 4]) **OpenCV** camera-to-world poses; written as OpenGL.
        width, height: image size of the files: ints, or one per frame ([N]; per-frame ``w``/``h`` when they differ).
        file_paths: one path per frame, as it should appear in the file (relative to the file's folder, or absolute).
        camera_model: nerfstudio's camera model name (``OPENCV`` with zero distortion for pinhole cameras).
        extra: more top-level keys (e.g. a ``generator`` note).
    """
    c2w = np.asarray(camera_to_world, np.float64)
    if c2w.ndim != 3 or c2w.shape[1:] not in ((4, 4), (3, 4)):
        raise InvalidInputError(f"write_transforms: camera_to_world must be [N, 4, 4], got {c2w.shape}")
    if c2w.shape[1] == 3:
        c2w = np.concatenate([c2w, np.broadcast_to([[[0.0, 0, 0, 1]]], (len(c2w), 1, 4))], 1)
    n = len(c2w)
    K = np.broadcast_to(np.asarray(K, np.float64), (n, 3, 3))
    if len(file_paths) != n:
        raise InvalidInputError(f"write_transforms: {len(file_paths)} file paths for {n} cameras")
    if not (np.isfinite(c2w).all() and np.isfinite(K).all()):
        raise InvalidInputError("write_transforms: non-finite camera values")
    wh = np.stack(np.broadcast_arrays(np.asarray(width), np.asarray(height)), -1).reshape(-1, 2)
    wh = np.broadcast_to(wh, (n, 2)).astype(np.int64)
    intr = np.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]], -1)  # [N, 4]
    shared = bool(np.allclose(intr, intr[:1], rtol=1e-7, atol=1e-9)) and bool((wh == wh[:1]).all())
    gl = c2w @ OPENCV_TO_OPENGL
    body: dict = {"camera_model": camera_model}
    if shared:
        fx, fy, cx, cy = (float(v) for v in intr[0])
        w, h = (int(v) for v in wh[0])
        body.update({"fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": w, "h": h,
                     "camera_angle_x": 2.0 * math.atan(w / (2.0 * fx)),
                     "camera_angle_y": 2.0 * math.atan(h / (2.0 * fy))})  # fmt: skip
    body.update({"k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0})
    body.update(extra or {})
    frames = []
    for i in range(n):
        fr: dict = {"file_path": str(file_paths[i]), "transform_matrix": gl[i].tolist()}
        if not shared:
            fr.update(dict(zip(("fl_x", "fl_y", "cx", "cy"), (float(v) for v in intr[i]))))
            fr.update({"w": int(wh[i, 0]), "h": int(wh[i, 1])})
        frames.append(fr)
    body["frames"] = frames
    return atomic_write_text(Path(path), json.dumps(body, indent=2) + "\n")


def relative_file_paths(paths: Sequence, base) -> list[str]:
    """Image paths as written in a transforms file at ``base``: relative to it when possible, else absolute."""
    base = Path(base).resolve()
    out = []
    for p in paths:
        p = Path(p).resolve()
        try:
            out.append(os.path.relpath(p, base))
        except ValueError:  # another drive (Windows)
            out.append(str(p))
    return out


def read_transforms(path) -> TransformsCameras:
    """Read a nerfstudio / Blender ``transforms.json`` -> OpenCV cameras (top-level or per-frame intrinsics)."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"transforms file '{path}' cannot be read as JSON: {e}") from e
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list) or not meta["frames"]:
        raise DatasetError(f"transforms file '{path}': expected an object with a non-empty 'frames' list")
    Ks, c2w, sizes, files = [], [], [], []
    for i, fr in enumerate(meta["frames"]):
        get = lambda k: fr.get(k, meta.get(k))  # noqa: E731 - per-frame value, else the shared one
        try:
            w, h = int(get("w")), int(get("h"))
            if get("fl_x") is not None:
                fx = float(get("fl_x"))
                fy = float(get("fl_y") if get("fl_y") is not None else fx)
            else:
                fx = fy = 0.5 * w / math.tan(0.5 * float(get("camera_angle_x")))
            cx = float(get("cx") if get("cx") is not None else w / 2)
            cy = float(get("cy") if get("cy") is not None else h / 2)
            m = np.asarray(fr["transform_matrix"], np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetError(f"transforms file '{path}': frame {i} lacks w/h, fl_x or transform_matrix ({e})") from None
        if m.shape != (4, 4):
            raise DatasetError(f"transforms file '{path}': frame {i} transform_matrix has shape {m.shape}, expected 4x4")
        Ks.append([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
        c2w.append(m @ OPENCV_TO_OPENGL)
        sizes.append((w, h))
        files.append(str(fr.get("file_path", "")))
    return TransformsCameras(np.asarray(Ks), np.stack(c2w), np.asarray(sizes), files, meta)
