"""People to crop: a :class:`PersonPool` (images + one row per person) from synthetic batches or COCO files, and
batched person-centred crops with augmentation (:func:`sample_crops`).

Keypoints are COCO-17 ``(u, v, flag)`` in **continuous pixels** of their image (flag 2 visible, 1 labelled but
hidden, 0 unlabelled; COCO files store pixel indices and are shifted by +0.5 on reading, as in
:mod:`human3d.data.keypoints`). Images of a pool are stored as one ``uint8`` tensor padded at the bottom/right to
the largest size (padding reads as black, as outside an image).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from human3d.errors import DatasetError, InvalidInputError
from human3d.pose2d.crops import (
    apply_affine,
    box_to_centre_side,
    boxes_from_keypoints,
    crop_matrices,
    flip_permutation,
    half_body_boxes,
    invert_affine,
    warp_images,
)

__all__ = ["PersonPool", "pool_from_synth", "load_coco_pool", "concat_pools", "Augment", "sample_crops"]


@dataclass
class PersonPool:
    """Images and the people in them (``M`` people over ``N`` images)."""

    images: torch.Tensor  # [N, H, W, 3] uint8 (padded to the largest image)
    image_index: torch.Tensor  # [M] int64, the person's image
    keypoints: torch.Tensor  # [M, K, 3] float32 (u, v, flag), continuous pixels
    boxes: torch.Tensor  # [M, 4] float32 (x, y, w, h) person box
    areas: torch.Tensor  # [M] float32 person area in pixels (COCO's segment area; OKS scale)

    def __len__(self) -> int:
        return int(self.image_index.shape[0])


def pool_from_synth(batch, min_keypoints: int = 5) -> PersonPool:
    """Every present person of a :class:`~human3d.synth.SynthBatch` with ``min_keypoints`` labelled COCO-17
    joints; the box is the mask's (the labelled keypoints' where the mask is empty)."""
    kp = batch.keypoints2d["coco17"].float()  # [B, P, K, 3]
    B, P = kp.shape[:2]
    boxes = batch.boxes.float()  # [B, P, 4]
    kbox = boxes_from_keypoints(kp.flatten(0, 1)).view(B, P, 4)
    boxes = torch.where((boxes[..., 2:] > 0).all(-1, keepdim=True), boxes, kbox)
    areas = batch.masks.flatten(2).sum(-1).float()
    keep = batch.present & ((kp[..., 2] > 0).sum(-1) >= min_keypoints) & (boxes[..., 2:] > 1).all(-1)
    b_idx = torch.arange(B)[:, None].expand(B, P)
    images = (batch.images.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return PersonPool(images, b_idx[keep], kp[keep], boxes[keep], areas[keep].clamp(min=1.0))


def concat_pools(pools: list[PersonPool]) -> PersonPool:
    """One pool from several (images padded to the largest)."""
    if not pools:
        raise InvalidInputError("pools: expected at least one PersonPool")
    H = max(p.images.shape[1] for p in pools)
    W = max(p.images.shape[2] for p in pools)
    imgs, idx, off = [], [], 0
    for p in pools:
        n, h, w, _ = p.images.shape
        imgs.append(torch.nn.functional.pad(p.images, (0, 0, 0, W - w, 0, H - h)))
        idx.append(p.image_index + off)
        off += n
    return PersonPool(torch.cat(imgs), torch.cat(idx), torch.cat([p.keypoints for p in pools]),
                      torch.cat([p.boxes for p in pools]), torch.cat([p.areas for p in pools]))  # fmt: skip


def load_coco_pool(json_path, image_dir=None, min_keypoints: int = 1) -> PersonPool:
    """People with at least ``min_keypoints`` labelled joints from a COCO person-keypoints file (``human3d synth
    make``'s ``annotations.json`` or COCO's own); images from ``image_dir`` (default: the JSON's folder, or its
    ``images/`` subfolder when the file name is not found there)."""
    from human3d.data.keypoints import load_image

    json_path = Path(json_path)
    try:
        doc = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"COCO file '{json_path}': unreadable ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list) or "images" not in doc:
        raise DatasetError(f"COCO file '{json_path}': expected 'images' and 'annotations' lists")
    folders = [Path(image_dir)] if image_dir is not None else [json_path.parent, json_path.parent / "images"]
    by_id = {im["id"]: im for im in doc["images"]}
    pools = []
    anns_of: dict = {}
    for a in doc["annotations"]:
        if a.get("iscrowd", 0) or "keypoints" not in a:
            continue
        kp = np.asarray(a["keypoints"], dtype=np.float32).reshape(-1, 3)
        if kp.shape[0] != 17 or int((kp[:, 2] > 0).sum()) < min_keypoints:
            continue
        anns_of.setdefault(a["image_id"], []).append(a)
    for img_id, anns in anns_of.items():
        if img_id not in by_id:
            raise DatasetError(f"COCO file '{json_path}': annotation for unknown image id {img_id}")
        name = by_id[img_id]["file_name"]
        path = next((f / name for f in folders if (f / name).is_file()), None)
        if path is None:
            raise DatasetError(f"COCO file '{json_path}': image '{name}' not found in {[str(f) for f in folders]}")
        img = torch.from_numpy(load_image(path))[None]  # [1, H, W, 3]
        kp = torch.tensor(np.stack([np.asarray(a["keypoints"], dtype=np.float32).reshape(17, 3) for a in anns]))
        kp[..., :2] += 0.5  # pixel indices -> continuous pixels
        kp[kp[..., 2] <= 0] = 0.0
        boxes = torch.tensor([a["bbox"] if "bbox" in a else [0, 0, 0, 0] for a in anns], dtype=torch.float32)
        kbox = boxes_from_keypoints(kp)
        boxes = torch.where((boxes[:, 2:] > 0).all(-1, keepdim=True), boxes, kbox)
        areas = torch.tensor([float(a.get("area", 0.0)) for a in anns], dtype=torch.float32)
        areas = torch.where(areas > 0, areas, boxes[:, 2] * boxes[:, 3])
        pools.append(PersonPool(img, torch.zeros(len(anns), dtype=torch.long), kp, boxes, areas.clamp(min=1.0)))
    if not pools:
        raise DatasetError(f"COCO file '{json_path}': no person with at least {min_keypoints} labelled keypoints")
    return concat_pools(pools)


@dataclass
class Augment:
    """Random crop parameters (HRNet / SimpleBaseline's recipe); all zero = the plain crop used for evaluation."""

    rotation: float = 0.0  # degrees: U(-rotation, rotation) with probability rotation_prob
    rotation_prob: float = 0.6
    scale: float = 0.0  # side * clip(1 + scale * N(0, 1), 1 - scale, 1 + scale)
    shift: float = 0.0  # centre moved by U(-shift, shift) * side on each axis
    flip: float = 0.0  # probability of a horizontal flip (left/right joints swapped)
    half_body: float = 0.0  # probability of cropping the upper or lower body (when it has >= 3 joints)
    colour: float = 0.0  # brightness / contrast jitter: x -> (x - 0.5) * c + 0.5 + b, c, b ~ 1 +- colour, +- colour/2


def sample_crops(pool: PersonPool, idx: torch.Tensor, size: int, padding: float = 1.25,
                 augment: Augment | None = None, generator: torch.Generator | None = None):  # fmt: skip
    """Crops of the people ``idx`` [B] -> ``(images [B, 3, S, S] float in [0, 1], keypoints [B, K, 3] in crop
    pixels (flag kept; left/right swapped where flipped), A [B, 2, 3] crop -> image, flipped [B] bool)``."""
    a = augment or Augment()
    g = generator
    B = int(idx.shape[0])
    kp = pool.keypoints[idx].clone()  # [B, K, 3]
    box = pool.boxes[idx].clone()
    pad = torch.full((B,), float(padding))

    def u(*shape):
        return torch.rand(*shape, generator=g)

    if a.half_body > 0:
        hb, ok = half_body_boxes(kp, u(B) < 0.5)
        use = ok & (u(B) < a.half_body)
        box = torch.where(use[:, None], hb, box)
        pad = torch.where(use, 1.5 * padding, pad)  # a half body's joints sit near its box edges
    centre, side = box_to_centre_side(box, 1.0)
    side = side * pad
    if a.scale > 0:
        side = side * (1 + a.scale * torch.randn(B, generator=g)).clamp(1 - a.scale, 1 + a.scale)
    if a.shift > 0:
        centre = centre + (2 * u(B, 2) - 1) * a.shift * side[:, None]
    rot = None
    if a.rotation > 0:
        rot = torch.where(u(B) < a.rotation_prob, (2 * u(B) - 1) * math.radians(a.rotation), torch.zeros(B))
    flip = (u(B) < a.flip) if a.flip > 0 else torch.zeros(B, dtype=torch.bool)
    A = crop_matrices(centre, side, size, rot, flip)
    imgs = pool.images[pool.image_index[idx]].permute(0, 3, 1, 2).float() / 255.0  # [B, 3, H, W]
    crops = warp_images(imgs, A, size)
    if a.colour > 0:
        c = 1 + (2 * u(B, 1, 1, 1) - 1) * a.colour
        b = (2 * u(B, 1, 1, 1) - 1) * a.colour / 2
        crops = ((crops - 0.5) * c + 0.5 + b).clamp(0, 1)
    uv = apply_affine(invert_affine(A), kp[..., :2])
    out = torch.cat([uv, kp[..., 2:]], -1)
    if flip.any():
        perm = flip_permutation("coco17")
        out = torch.where(flip[:, None, None], out[:, perm], out)
    return crops, out, A, flip
