"""HMR inference: the shipped regressor (:func:`load_hmr`), batch prediction from images and person keypoints or
boxes (:func:`predict_people`), and the initializer contract of fitting (:func:`hmr_initializer`).

Conventions: images ``[H, W, 3]`` uint8 RGB; keypoints ``[P, K, 3]`` (u, v, confidence) in continuous pixels, any
skeleton (only their box is used: the crop is the box of the confident keypoints, padded by
:data:`~human3d.hmr.model.CROP_PADDING`); boxes ``[P, 4]`` (x, y, w, h) pixels; intrinsics ``K`` ``[3, 3]`` OpenCV.
The outputs are the body model's parameters in the **camera frame** (OpenCV: x right, y down, z forward), the
translation from the weak-perspective camera with the image's own focal length ``K[0, 0]`` and principal point
(:func:`~human3d.hmr.model.weak_to_perspective`) -- ``human3d fit``'s camera (identity extrinsics).
The shipped weights are for Anny (phenotypes). SMPL-family weights (betas) are trained by the user on their own
model file (``human3d hmr train --set data.model=PATH``; ``tools/bench/hmr.py --smpl``); weights whose family, shape
parameter, shape size or pose groups differ from the body model's are refused with one clear error.
"""

from __future__ import annotations

import importlib.resources
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from human3d.errors import InvalidInputError, ModelFileError
from human3d.hmr.model import (HMRNet, check_weights_match, crop_images, crop_keypoints, keypoint_boxes, load_hmr_file, person_crop,
                               shape_facts, to_model_params, weak_to_perspective)  # fmt: skip

__all__ = ["DEFAULT_WEIGHTS", "weights_dir", "load_hmr", "predict_people", "hmr_initializer", "check_image_array"]

DEFAULT_WEIGHTS = "anny_hmr"
"""Stem of the shipped weights in :func:`weights_dir` (``.safetensors`` + ``.json`` card)."""


def weights_dir() -> Path:
    """``human3d/hmr/weights`` (package data, found through :mod:`importlib.resources`)."""
    folder = importlib.resources.files("human3d.hmr") / "weights"
    if not isinstance(folder, Path):
        raise ModelFileError(f"HMR weights {folder!s}: expected a folder on disk (install unzipped)")
    return folder


@lru_cache(maxsize=4)
def _load(path: str) -> HMRNet:
    return load_hmr_file(path)


def load_hmr(weights=None) -> HMRNet:
    """The HMR regressor at ``weights`` (None: the shipped :data:`DEFAULT_WEIGHTS`), eval mode, cached per path."""
    p = Path(weights) if weights is not None else weights_dir() / f"{DEFAULT_WEIGHTS}.safetensors"
    return _load(str(p.resolve()))


def check_image_array(image, name: str = "image") -> np.ndarray:
    """``image`` must be an ``[H, W, 3]`` uint8 numpy array (raises :class:`InvalidInputError` otherwise)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        what = f"{type(image).__name__} {getattr(image, 'dtype', '')} {list(getattr(image, 'shape', []))}"
        raise InvalidInputError(f"{name}: expected an [H, W, 3] uint8 RGB numpy array, got {what}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise InvalidInputError(f"{name}: image of {image.shape[1]}x{image.shape[0]} px is too small (>= 8x8)")
    return image


def _check_model(net: HMRNet, model) -> None:
    check_weights_match(net, model, "HMR")


@torch.no_grad()
def predict_people(net: HMRNet, model, images: list, image_index, K, keypoints=None, boxes=None,
                   all_iterations: bool = False) -> dict[str, torch.Tensor]:  # fmt: skip
    """Parameters of ``P`` persons from one forward pass.

    Args:
        net: an :class:`HMRNet` (:func:`load_hmr`); model: the :class:`~human3d.body.model.BodyModel` it was trained for.
        images: list of ``[H, W, 3]`` uint8 arrays; image_index: ``[P]`` ints, person -> image.
        K: ``[P, 3, 3]`` (or ``[3, 3]`` for all) intrinsics of each person's image.
        keypoints: ``[P, K, 3]`` pixels, COCO-17 / BODY_25 / OpenPose COCO-18 (the network's keypoint input, and
            their confident box is the crop unless ``boxes``); boxes: ``[P, 4]`` (x, y, w, h) crops.
        all_iterations: also return ``"iterations"``: the parameters after each IEF iteration (a list).
    Returns ``{global_orient [P, 3], body_pose [P, Jp*3], phenotypes [P, 6] | betas [P, S], transl [P, 3]}``
    (camera frame).
    """
    from human3d.fitting.priors import pose_space

    _check_model(net, model)
    imgs = [check_image_array(im, f"images[{i}]") for i, im in enumerate(images)]
    idx = torch.as_tensor(np.asarray(image_index), dtype=torch.long).reshape(-1)
    P = idx.numel()
    if P and (int(idx.min()) < 0 or int(idx.max()) >= len(imgs)):
        raise InvalidInputError(f"image_index: expected indices in [0, {len(imgs)}), got {idx.tolist()}")
    Km = torch.as_tensor(K, dtype=torch.float32)
    if Km.shape == (3, 3):
        Km = Km.expand(P, 3, 3)
    if Km.shape != (P, 3, 3) or not bool(torch.isfinite(Km).all()) or bool((Km[:, 0, 0] <= 0).any()):
        raise InvalidInputError(f"K: expected finite [3, 3] or [{P}, 3, 3] intrinsics with a positive focal length, "
                                f"got {list(Km.shape)}")  # fmt: skip
    kp = None
    if keypoints is not None:
        kp = torch.as_tensor(keypoints, dtype=torch.float32)
        if kp.ndim != 3 or kp.shape[0] != P or kp.shape[2] != 3 or not bool(torch.isfinite(kp).all()):
            raise InvalidInputError(f"keypoints: expected finite [{P}, K, 3] (u, v, confidence), got "
                                    f"{list(kp.shape)}")  # fmt: skip
        kp = coco17(kp)
    if boxes is not None:
        bx = torch.as_tensor(boxes, dtype=torch.float32)
        if bx.shape != (P, 4) or not bool(torch.isfinite(bx).all()) or bool((bx[:, 2:] <= 0).any()):
            raise InvalidInputError(f"boxes: expected [{P}, 4] (x, y, w, h) with positive sizes, got {list(bx.shape)}")
        centre, side = person_crop(boxes=bx)
    elif kp is not None:
        centre, side = person_crop(kp)
    else:
        raise InvalidInputError("predict_people: give keypoints [P, K, 3] or boxes [P, 4]")
    kin = crop_keypoints(kp, centre, side) if kp is not None else None
    S = net.config.crop_size
    crops = torch.zeros(P, 3, S, S)
    for i, im in enumerate(imgs):
        sel = (idx == i).nonzero().flatten()
        if sel.numel():
            x = torch.from_numpy(im).permute(2, 0, 1)[None].float().div(255.0).expand(sel.numel(), -1, -1, -1)
            crops[sel] = crop_images(x, centre[sel], side[sel], S)
    space = pose_space(model)
    name, _, _, bounds = shape_facts(model)
    out = []
    for theta in net(crops, kin):
        dec = net.decode(theta)
        out.append(to_model_params(dec, space, name, weak_to_perspective(dec["cam"], centre, side, Km), bounds))
    res = dict(out[-1])
    if all_iterations:
        res["iterations"] = out
    return res


def hmr_initializer(body_model, weights=None):
    """The fitting initializer: ``initializer(image, keypoints, K) -> {name: [P, ...]}``.

    ``image`` ``[H, W, 3]`` uint8; ``keypoints`` ``[P, K, 3]`` (u, v, conf) pixels of the image's P persons
    (COCO-17 or BODY_25: only their box is read); ``K`` ``[3, 3]`` OpenCV intrinsics (tensor). Returns
    ``global_orient`` [P, 3] axis-angle, ``body_pose``, ``phenotypes`` and ``transl`` [P, 3] in the camera frame
    (what :func:`human3d.fitting.smplify` takes as ``init``), float32 on the CPU. Raises
    :class:`InvalidInputError` for a model the weights were not trained for or bad inputs; weights are loaded once, here.
    """
    net = load_hmr(weights)
    _check_model(net, body_model)

    def initializer(image, keypoints, K) -> dict[str, torch.Tensor]:
        check_image_array(image)
        kp = torch.as_tensor(keypoints, dtype=torch.float32)
        if kp.ndim != 3 or kp.shape[-1] != 3 or kp.shape[1] not in (17, 25):
            raise InvalidInputError(f"keypoints: expected [P, 17 or 25, 3] (u, v, confidence), got {list(kp.shape)}")
        Km = torch.as_tensor(K, dtype=torch.float32)
        if Km.shape != (3, 3):
            raise InvalidInputError(f"K: expected [3, 3] intrinsics, got {list(Km.shape)}")
        P = kp.shape[0]
        H, W = image.shape[:2]
        has = (kp[..., 2] > 0).any(1)
        whole = torch.tensor([0.0, 0.0, W, H]).expand(P, 4)  # a person without keypoints: the whole image
        boxes = torch.where(has[:, None], keypoint_boxes(kp), whole)
        return predict_people(net, body_model, [image], [0] * P, Km, keypoints=kp, boxes=boxes)

    return initializer



def coco17(kp: torch.Tensor) -> torch.Tensor:
    """Keypoints ``[P, K, 3]`` of COCO-17 (K = 17), BODY_25 (25) or OpenPose COCO-18 (18) -> COCO-17."""
    from human3d.body.skeletons import convert_keypoints

    names = {17: "coco17", 25: "body25", 18: "openpose_coco18"}
    if kp.shape[1] not in names:
        raise InvalidInputError(f"keypoints: expected 17 (COCO-17), 25 (BODY_25) or 18 (OpenPose COCO-18) per "
                                f"person, got {kp.shape[1]}")  # fmt: skip
    return kp if kp.shape[1] == 17 else convert_keypoints(kp, names[kp.shape[1]], "coco17")


def predict_files(images, keypoints=None, out_dir="outputs/hmr", weights=None, focal: float | None = None,
                  overlays: bool = True, progress: bool = True, detector=None, log=print,
                  body_model=None) -> dict:  # fmt: skip
    """``human3d hmr predict``: every person of ``images`` (a file or folder) from one forward pass; writes what
    ``human3d fit`` writes -- ``NAME/person_XX.npz`` / ``.json`` (smplx names), ``.obj``, ``_overlay.png``,
    ``NAME/overlay.png`` and ``summary.json`` -- and returns the summary.

    Persons come from ``keypoints`` (a JSON file or folder, :func:`human3d.data.keypoints.load_keypoint_inputs`),
    else ``detector(images)`` (the CLI passes the shipped photo detector), else each image is one person whose
    box is the whole image. The camera is ``human3d fit``'s: principal point at the centre, focal ``focal``, else
    EXIF, else the image diagonal (:func:`human3d.fitting.camera_init.choose_focal`)."""
    import json
    import time

    from human3d.body import load_body_model
    from human3d.body.io import export_mesh, save_params
    from human3d.data.keypoints import KeypointImage, exif_focal_px, load_image, load_keypoint_inputs
    from human3d.errors import DatasetError, Human3DError
    from human3d.fitting.camera_init import choose_focal
    from human3d.geometry.cameras import Cameras, make_intrinsics
    from human3d.io_utils import atomic_write_text

    t0 = time.perf_counter()
    log = log or (lambda *a, **k: None)
    out_dir = Path(out_dir)
    net = load_hmr(weights)
    body = body_model if body_model is not None else load_body_model("anny")  # the weights' model (checked)
    _check_model(net, body)
    if keypoints is not None:
        items = load_keypoint_inputs(images, keypoints)
    elif detector is not None:
        items = detector(images)
    else:
        items = []  # a JSON beside the image where there is one, else the whole image as one person
        for p in _image_files(images):
            beside = p.with_suffix(".json").is_file() or p.with_name(p.stem + "_keypoints.json").is_file()
            items.extend(load_keypoint_inputs(p, None) if beside else [KeypointImage(p.stem, p)])
    records, pix, owners, Ks, kps, boxes = [], [], [], [], [], []
    for item in items:
        rec = {"image": str(item.image_path) if item.image_path else None, "name": item.name,
               "error": item.error, "warnings": list(item.warnings), "people": []}  # fmt: skip
        records.append(rec)
        if item.error:
            continue
        try:
            img = load_image(item.image_path, rec["warnings"])
        except (DatasetError, TypeError) as e:
            rec["error"] = str(e) if isinstance(e, DatasetError) else f"no image file ({e})"
            continue
        H, W = img.shape[:2]
        f, src = choose_focal(W, H, focal, exif_focal_px(item.image_path, W, H))
        rec.update(width=int(W), height=int(H), focal_px=f, focal_source=src)
        people = [(p.index, p.keypoints) for p in item.people if p.num_valid > 0] if item.people else [(0, None)]
        pix.append(img)
        for index, k in people:
            owners.append((len(records) - 1, len(pix) - 1, index))
            Ks.append(make_intrinsics(f, f, W / 2.0, H / 2.0)[0])
            kps.append(k if k is None else coco17(torch.from_numpy(k)[None])[0])
            boxes.append(keypoint_boxes(torch.from_numpy(k)[None])[0] if k is not None
                         else torch.tensor([0.0, 0.0, W, H]))  # fmt: skip
    P = len(owners)
    t_pred = 0.0
    if P:
        t1 = time.perf_counter()
        kin = torch.stack([torch.zeros(17, 3) if k is None else k for k in kps])
        params = predict_people(net, body, pix, [o[1] for o in owners], torch.stack(Ks), keypoints=kin,
                                boxes=torch.stack(boxes))  # fmt: skip
        with torch.no_grad():
            out = body(params)
        t_pred = time.perf_counter() - t1
        log(f"predicted {P} person(s) in {t_pred:.2f} s")
    from tqdm.auto import tqdm

    per_image: dict[int, list] = {}
    for b, (ri, ii, index) in enumerate(tqdm(owners, desc="writing", unit="person", disable=not progress)):
        rec = records[ri]
        entry = {"index": index, "box_from": "keypoints" if kps[b] is not None else "whole image"}
        rec["people"].append(entry)
        folder, stem = out_dir / rec["name"], f"person_{index:02d}"
        try:
            one = {k: v[b : b + 1] for k, v in params.items()}
            files = {"params_npz": save_params(folder / f"{stem}.npz", one, body),
                     "params_json": save_params(folder / f"{stem}.json", one, body),
                     "mesh": export_mesh(folder / f"{stem}.obj", out.vertices[b], body.faces)}  # fmt: skip
            entry["files"] = {k: str(v.relative_to(out_dir)) for k, v in files.items()}
            entry["transl"] = [round(float(x), 4) for x in params["transl"][b]]
        except (Human3DError, OSError, ValueError) as e:
            entry["output_error"] = f"{type(e).__name__}: {e}"
        per_image.setdefault(ri, []).append((b, ii, entry))
    if overlays:
        from human3d.render.overlay import render_overlay, save_png

        for ri, rows in per_image.items():
            rec = records[ri]
            img = pix[rows[0][1]]
            H, W = img.shape[:2]
            cam = Cameras(torch.stack(Ks)[rows[0][0]][None], torch.eye(4)[None], W, H)
            combined = img
            for b, _, entry in rows:
                try:
                    kp = kps[b]
                    ov = render_overlay(img, out.vertices[b].float(), body.faces, cam, keypoints=kp)
                    p = save_png(out_dir / rec["name"] / f"person_{entry['index']:02d}_overlay.png", ov)
                    entry.setdefault("files", {})["overlay"] = str(p.relative_to(out_dir))
                    combined = render_overlay(combined, out.vertices[b].float(), body.faces, cam) if len(rows) > 1 else ov
                except (Human3DError, OSError, ValueError, RuntimeError) as e:
                    entry["output_error"] = f"overlay: {type(e).__name__}: {e}"
            try:
                rec["overlay"] = str(save_png(out_dir / rec["name"] / "overlay.png", combined).relative_to(out_dir))
            except (Human3DError, OSError, ValueError) as e:
                rec["warnings"].append(f"overlay: {type(e).__name__}: {e}")
    summary = {"method": "hmr", "model": body.family, "weights": str(weights) if weights else DEFAULT_WEIGHTS,
               "images": records, "persons": P, "predict_time_s": round(t_pred, 4),
               "seconds_per_person": round(t_pred / P, 5) if P else None,
               "total_time_s": round(time.perf_counter() - t0, 3),
               "camera": "OpenCV, identity extrinsics; principal point at the image centre; transl from the "
                         "weak-perspective camera with the image's focal"}  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2))
    return summary


def _image_files(images) -> list[Path]:
    """The image file ``images``, or the images of the folder ``images`` (sorted)."""
    from human3d.data.keypoints import IMAGE_SUFFIXES
    from human3d.errors import DatasetError

    p = Path(images).expanduser()
    if not p.exists():
        raise DatasetError(f"images: '{p}' does not exist")
    if not p.is_dir():
        return [p]
    out = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
    if not out:
        raise DatasetError(f"images: folder '{p}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return out
