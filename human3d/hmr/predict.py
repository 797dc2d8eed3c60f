"""HMR inference: the shipped regressor (:func:`load_hmr`), batch prediction from images and person keypoints or
boxes (:func:`predict_people`), and the initializer contract of fitting (:func:`hmr_initializer`).

Conventions: images ``[H, W, 3]`` uint8 RGB; keypoints ``[P, K, 3]`` (u, v, confidence) in continuous pixels, any
skeleton (only their box is used: the crop is the box of the confident keypoints, padded by
:data:`~human3d.hmr.model.CROP_PADDING`); boxes ``[P, 4]`` (x, y, w, h) pixels; intrinsics ``K`` ``[3, 3]`` OpenCV.
The outputs are the body model's parameters in the **camera frame** (OpenCV: x right, y down, z forward), the
translation from the weak-perspective camera with the image's own focal length ``K[0, 0]`` and principal point
(:func:`~human3d.hmr.model.weak_to_perspective`) -- ``human3d fit``'s camera (identity extrinsics).
The shipped weights are for Anny (phenotypes); SMPL-family models are refused with a clear error.
"""

from __future__ import annotations

import importlib.resources
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from human3d.errors import InvalidInputError, ModelFileError
from human3d.hmr.model import (HMRNet, crop_images, keypoint_boxes, load_hmr_file, person_crop, to_model_params,
                               weak_to_perspective)  # fmt: skip

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
    family = getattr(model, "family", None)
    if family != getattr(net, "model_family", "anny") or model.shape_param != "phenotypes":
        raise InvalidInputError(f"body_model: the HMR weights are for Anny; got a {family!r} model (SMPL-family "
                                "regression is not trained: fit it with `human3d fit` instead)")  # fmt: skip
    from human3d.fitting.priors import pose_space

    if pose_space(model).num_groups != net.n_groups:
        raise InvalidInputError(f"body_model: {pose_space(model).num_groups} pose groups, the weights have "
                                f"{net.n_groups}")  # fmt: skip


@torch.no_grad()
def predict_people(net: HMRNet, model, images: list, image_index, K, keypoints=None, boxes=None,
                   all_iterations: bool = False) -> dict[str, torch.Tensor]:  # fmt: skip
    """Parameters of ``P`` persons from one forward pass.

    Args:
        net: an :class:`HMRNet` (:func:`load_hmr`); model: its Anny :class:`~human3d.body.model.BodyModel`.
        images: list of ``[H, W, 3]`` uint8 arrays; image_index: ``[P]`` ints, person -> image.
        K: ``[P, 3, 3]`` (or ``[3, 3]`` for all) intrinsics of each person's image.
        keypoints: ``[P, K, 3]`` pixels (their confident box is the crop) or boxes ``[P, 4]`` (x, y, w, h).
        all_iterations: also return ``"iterations"``: the parameters after each IEF iteration (a list).
    Returns ``{global_orient [P, 3], body_pose [P, Jp*3], phenotypes [P, 6], transl [P, 3]}`` (camera frame).
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
    if keypoints is not None:
        kp = torch.as_tensor(keypoints, dtype=torch.float32)
        if kp.ndim != 3 or kp.shape[0] != P or kp.shape[2] != 3 or not bool(torch.isfinite(kp).all()):
            raise InvalidInputError(f"keypoints: expected finite [{P}, K, 3] (u, v, confidence), got "
                                    f"{list(kp.shape)}")  # fmt: skip
        centre, side = person_crop(kp)
    elif boxes is not None:
        bx = torch.as_tensor(boxes, dtype=torch.float32)
        if bx.shape != (P, 4) or not bool(torch.isfinite(bx).all()) or bool((bx[:, 2:] <= 0).any()):
            raise InvalidInputError(f"boxes: expected [{P}, 4] (x, y, w, h) with positive sizes, got {list(bx.shape)}")
        centre, side = person_crop(boxes=bx)
    else:
        raise InvalidInputError("predict_people: give keypoints [P, K, 3] or boxes [P, 4]")
    S = net.config.crop_size
    crops = torch.zeros(P, 3, S, S)
    for i, im in enumerate(imgs):
        sel = (idx == i).nonzero().flatten()
        if sel.numel():
            x = torch.from_numpy(im).permute(2, 0, 1)[None].float().div(255.0).expand(sel.numel(), -1, -1, -1)
            crops[sel] = crop_images(x, centre[sel], side[sel], S)
    space = pose_space(model)
    out = []
    for theta in net(crops):
        dec = net.decode(theta)
        out.append(to_model_params(dec, space, "phenotypes", weak_to_perspective(dec["cam"], centre, side, Km)))
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
    :class:`InvalidInputError` for a non-Anny model or bad inputs; weights are loaded once, here.
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
        return predict_people(net, body_model, [image], [0] * P, Km, boxes=boxes)

    return initializer

