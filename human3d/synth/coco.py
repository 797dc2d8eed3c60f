"""Write synthetic batches as a standard COCO keypoint dataset: ``DIR/images/NNNNNNNNNNNN.jpg`` + ``DIR/annotations.json``.

The JSON is a plain COCO person-keypoints document (``images``, ``annotations``, ``categories``), readable by
:func:`human3d.data.keypoints.load_keypoint_inputs` and pycocotools. COCO stores *pixel indices*, so keypoints are
written as ``u - 0.5, v - 0.5`` (the reader adds 0.5 back; :mod:`human3d.data.keypoints`); visibility flags are
COCO's (2 visible, 1 labelled but hidden, 0 not labelled: outside the image, written as 0, 0, 0). Masks are
uncompressed RLE (column-major, pycocotools' convention).

Extra fields (ignored by COCO tools), per annotation: ``body25_keypoints`` (75 values, same convention),
``keypoints_3d`` (COCO-17, world frame, metres), ``joints_3d`` (Anny's 104 bone heads), ``body_params``
(``AnnyBody`` parameters that reproduce the person), ``pose_source`` (mocap / prior); per image: ``camera``
(``K`` and OpenCV ``world_to_camera``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from human3d.body.skeletons import COCO17, EDGES
from human3d.io_utils import atomic_path

__all__ = ["mask_to_rle", "rle_to_mask", "batch_records", "write_coco", "write_images", "make_dataset"]


def mask_to_rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE of a bool mask [H, W]: run lengths over the column-major pixels, starting with 0s."""
    flat = np.asarray(mask, dtype=np.uint8).reshape(-1, order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def rle_to_mask(rle: dict) -> np.ndarray:
    """Inverse of :func:`mask_to_rle` (uncompressed RLE only)."""
    h, w = rle["size"]
    vals = np.arange(len(rle["counts"])) % 2
    return np.repeat(vals, rle["counts"]).astype(bool).reshape((h, w), order="F")


def _coco_flat(kp: torch.Tensor) -> list[float]:
    """[K, 3] (u, v, flag) continuous pixels -> COCO's flat list (pixel indices; 0, 0, 0 where flag 0)."""
    out = kp.clone().double()
    out[:, :2] -= 0.5
    out[kp[:, 2] == 0] = 0.0
    vals = out.flatten().tolist()
    return [round(v, 3) if i % 3 != 2 else int(v) for i, v in enumerate(vals)]


def _rounded(t: torch.Tensor, nd: int = 5) -> list:
    return np.round(t.detach().double().cpu().numpy(), nd).tolist()


def batch_records(batch, first_image_id: int, first_ann_id: int, file_names: list[str]) -> tuple[list, list]:
    """COCO ``images`` and ``annotations`` entries of a :class:`~human3d.synth.SynthBatch` (people with a visible
    pixel only)."""
    images, anns = [], []
    B, P = batch.present.shape
    H, W = batch.images.shape[1:3]
    boxes = batch.boxes
    areas = batch.masks.flatten(2).sum(-1)
    ann_id = first_ann_id
    for b in range(B):
        img_id = first_image_id + b
        images.append({"id": img_id, "file_name": file_names[b], "width": int(W), "height": int(H),
                       "camera": {"K": _rounded(batch.cameras.K[b], 4),
                                  "world_to_camera": _rounded(batch.cameras.world_to_camera[b], 6)}})  # fmt: skip
        for p in range(P):
            if not bool(batch.present[b, p]) or int(areas[b, p]) == 0:
                continue
            kp = batch.keypoints2d["coco17"][b, p]
            anns.append({
                "id": ann_id, "image_id": img_id, "category_id": 1, "iscrowd": 0,
                "keypoints": _coco_flat(kp), "num_keypoints": int((kp[:, 2] > 0).sum()),
                "bbox": [float(v) for v in boxes[b, p].tolist()], "area": float(areas[b, p]),
                "segmentation": mask_to_rle(batch.masks[b, p].cpu().numpy()),
                "body25_keypoints": _coco_flat(batch.keypoints2d["body25"][b, p]),
                "keypoints_3d": _rounded(batch.keypoints3d["coco17"][b, p]),
                "joints_3d": _rounded(batch.joints3d[b, p], 4),
                "body_params": {k: _rounded(v[b, p], 6) for k, v in batch.params.items()},
                "pose_source": ["mocap", "prior"][int(batch.pose_source[b, p])],
                "person_slot": p,
            })  # fmt: skip
            ann_id += 1
    return images, anns


def write_coco(path, images: list, annotations: list, info: dict | None = None) -> Path:
    """Write the COCO document atomically; returns its path."""
    doc = {
        "info": {"description": "human3d synthetic humans (Anny)", **(info or {})},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO17),
                        "skeleton": [[a + 1, b + 1] for a, b in EDGES["coco17"]]}],  # fmt: skip
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
    return path


def write_images(images: torch.Tensor, paths: list[Path], quality: int = 92) -> None:
    """Write [B, H, W, 3] float RGB images in [0, 1] as JPEG/PNG files (atomically)."""
    import cv2

    arr = (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    for a, p in zip(arr, paths):
        with atomic_path(p) as tmp:
            if not cv2.imwrite(str(tmp), a[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality]):
                raise OSError(f"could not write image '{p}'")


def make_dataset(out, n: int, config=None, batch_size: int = 8, seed: int = 0, model=None, progress=None,
                 data_root=None) -> Path:  # fmt: skip
    """Render ``n`` synthetic images into ``out`` (``images/`` + ``annotations.json``); returns the JSON's path.

    ``progress``: an optional callable ``progress(k)`` told after each batch how many images it added. Batch ``i``
    uses seed ``seed + i``, so a dataset is reproducible.
    """
    from human3d.errors import InvalidInputError
    from human3d.synth.generator import SynthConfig, SynthGenerator

    if not (isinstance(n, int) and n >= 1):
        raise InvalidInputError(f"n: expected a positive number of images, got {n!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise InvalidInputError(f"batch_size: expected a positive int, got {batch_size!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"out: '{out}' exists and is not a folder")
    gen = SynthGenerator(model, config or SynthConfig(), data_root=data_root)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i, start in enumerate(range(0, n, batch_size)):
        k = min(batch_size, n - start)
        batch = gen.generate(k, seed=seed + i)
        names = [f"images/{start + j:012d}.jpg" for j in range(k)]
        write_images(batch.images, [out / nm for nm in names])
        im, an = batch_records(batch, start + 1, len(anns) + 1, names)
        images += im
        anns += an
        if progress is not None:
            progress(k)
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(gen.config).items()}
    return write_coco(out / "annotations.json", images, anns, {"config": cfg, "seed": seed})
