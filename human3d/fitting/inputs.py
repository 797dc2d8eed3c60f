"""SMPLify's inputs: keypoints, cameras, image sizes, masks and starting parameters, checked and cleaned.

:func:`prepare_inputs` turns what :func:`~human3d.fitting.smplify.smplify` is given into a :class:`FitInputs`:
keypoints ``[B, K, 3]`` (u, v, confidence; OpenCV pixels, centres at ``j + 0.5``) with NaN/inf coordinates and
keypoints farther outside the image than ``outside_margin`` made missing (confidence 0), intrinsics and
world-to-camera extrinsics per person, and per person whether it can be fitted (``min_keypoints`` confident
keypoints spanning ``min_extent_px``) or why not. Bad input raises :class:`~human3d.errors.InvalidInputError`
naming the argument.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from human3d.body.skeletons import convert_keypoints, skeleton_names
from human3d.errors import InvalidInputError, check_tensor
from human3d.fitting.config import SMPLifyConfig
from human3d.fitting.losses import keypoint_scale
from human3d.geometry.cameras import Cameras

__all__ = ["FitInputs", "prepare_inputs"]

_SKELETON_BY_K = {17: "coco17", 25: "body25", 18: "openpose_coco18"}


@dataclass
class FitInputs:
    """Checked inputs of one :func:`~human3d.fitting.smplify.smplify` call (``b`` = the ``b``-th input person)."""

    keypoints: torch.Tensor  # [B, K, 3] cleaned (u, v, confidence); missing = confidence 0 and (0, 0)
    skeleton: str  # "coco17" or "body25" (OpenPose COCO-18 is converted to BODY_25)
    K: torch.Tensor  # [B, 3, 3] intrinsics (model dtype and device)
    world_to_camera: torch.Tensor  # [B, 4, 4]
    sizes: torch.Tensor | None  # [B, 2] image (W, H) or None
    masks: tuple[list, list[bool]] | None  # ([H, W] float tensor or None per person, mask shared with others)
    init: dict[str, torch.Tensor] | None  # given starting parameters [B, ...] (only the names given)
    dropped: torch.Tensor  # [B] keypoints made missing (NaN coordinates or outside the image)
    skip_reason: list[str | None]  # why a person cannot be fitted (None: fitted)
    keypoints3d: torch.Tensor | None = None  # [B, K, 3] root-relative (mid-hip) camera-frame 3D targets (m) or None
    keypoints3d_weight: torch.Tensor | None = None  # [B] the 3D term's weight per person (with keypoints3d)

    @property
    def fitted(self) -> torch.Tensor:
        """[B] bool: the persons that are fitted."""
        return torch.tensor([r is None for r in self.skip_reason], device=self.keypoints.device)

    def subset(self, idx: torch.Tensor) -> "FitInputs":
        """The inputs of persons ``idx`` [N] (long)."""
        ii = [int(i) for i in idx]
        masks = None if self.masks is None else ([self.masks[0][i] for i in ii], [self.masks[1][i] for i in ii])
        return FitInputs(
            keypoints=self.keypoints[idx], skeleton=self.skeleton, K=self.K[idx],
            world_to_camera=self.world_to_camera[idx], sizes=None if self.sizes is None else self.sizes[idx],
            masks=masks, init=None if self.init is None else {k: v[idx] for k, v in self.init.items()},
            dropped=self.dropped[idx], skip_reason=[self.skip_reason[i] for i in ii],
            keypoints3d=None if self.keypoints3d is None else self.keypoints3d[idx],
            keypoints3d_weight=None if self.keypoints3d_weight is None else self.keypoints3d_weight[idx],
        )  # fmt: skip


def prepare_inputs(model, keypoints2d, camera, skeleton, cfg: SMPLifyConfig, image_size=None, masks=None,
                   init=None) -> FitInputs:  # fmt: skip
    """Check and clean :func:`~human3d.fitting.smplify.smplify`'s arguments (see there) for ``model``."""
    kp_in, skeleton = _as_keypoints(keypoints2d, skeleton)
    dtype, device = model.dtype, model.faces.device
    kp_in = kp_in.to(device)
    B = kp_in.shape[0]
    K, w2c, cam_size = _as_camera(camera, B, dtype)
    K, w2c = K.to(device), w2c.to(device)
    if image_size is None and cam_size is not None:
        image_size = cam_size
    sizes = None
    if image_size is not None:
        sizes = torch.as_tensor(image_size, dtype=torch.float32, device=device).reshape(-1, 2).expand(B, 2)
        if not bool(torch.isfinite(sizes).all() and (sizes > 0).all()):
            raise InvalidInputError(f"image_size: expected positive (W, H), got {image_size}")
    if skeleton == "openpose_coco18":
        kp_in, skeleton = convert_keypoints(kp_in, "openpose_coco18", "body25"), "body25"
    if masks is not None:
        masks = _check_masks(masks, B, sizes)
    kp, dropped = _clean_keypoints(kp_in, sizes, cfg)
    init_full = None
    if init is not None:
        raw = {k: torch.as_tensor(v).to(device) for k, v in init.items()}
        # rows with NaN/inf mean "no init for this person" (kept as NaN; smplify's init hypothesis skips them)
        full = model.validate_params({k: torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0) for k, v in raw.items()})
        init_full = {}
        for k in init:
            v = full[k].to(dtype)
            bad = ~torch.isfinite(raw[k].reshape(v.shape[0], -1)).all(-1)
            init_full[k] = torch.where(bad.reshape(-1, *[1] * (v.dim() - 1)), torch.full_like(v, float("nan")), v)
    return FitInputs(kp, skeleton, K, w2c, sizes, masks, init_full, dropped, _skip_reasons(kp, cfg, kp_in, sizes))


def _as_keypoints(keypoints2d, skeleton: str | None) -> tuple[torch.Tensor, str]:
    if isinstance(keypoints2d, np.ndarray):
        keypoints2d = torch.from_numpy(np.ascontiguousarray(keypoints2d))
    if not isinstance(keypoints2d, torch.Tensor):
        raise InvalidInputError(f"keypoints2d: expected a tensor [B, K, 3], got {type(keypoints2d).__name__}")
    kp = keypoints2d.detach().to(torch.float32)
    if kp.dim() == 2:
        kp = kp[None]
    check_tensor(kp, "keypoints2d", (None, None, 3), finite=False)
    if kp.shape[0] == 0:
        raise InvalidInputError("keypoints2d: empty batch (no persons)")
    if skeleton is None:
        skeleton = _SKELETON_BY_K.get(kp.shape[1])
        if skeleton is None:
            raise InvalidInputError(
                f"keypoints2d: cannot tell the skeleton from K={kp.shape[1]} keypoints; expected 17 (COCO), "
                "25 (OpenPose BODY_25) or 18 (OpenPose COCO-18), or pass skeleton="
            )
    names = skeleton_names(skeleton)
    if len(names) != kp.shape[1]:
        raise InvalidInputError(f"keypoints2d: skeleton {skeleton!r} has {len(names)} keypoints, got {kp.shape[1]}")
    return kp, skeleton


def _as_camera(camera, B: int, dtype) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int] | None]:
    """-> K [B, 3, 3], world_to_camera [B, 4, 4], (W, H) or None."""
    size = None
    if isinstance(camera, Cameras):
        K, w2c, size = camera.K, camera.world_to_camera, (int(camera.width), int(camera.height))
    elif isinstance(camera, torch.Tensor):
        K = camera if camera.dim() == 3 else camera[None]
        check_tensor(K, "camera", (None, 3, 3))
        w2c = torch.eye(4, dtype=K.dtype, device=K.device).expand(K.shape[0], 4, 4)
    else:
        raise InvalidInputError(f"camera: expected Cameras or intrinsics K [B, 3, 3], got {type(camera).__name__}")
    if K.shape[0] == 1 and B > 1:
        K, w2c = K.expand(B, 3, 3), w2c.expand(B, 4, 4)
    if K.shape[0] != B:
        raise InvalidInputError(f"camera: {K.shape[0]} cameras for {B} persons (give 1 or one per person)")
    if not bool((K[:, 0, 0] > 0).all() and (K[:, 1, 1] > 0).all()):
        raise InvalidInputError("camera: focal lengths K[0,0], K[1,1] must be positive")
    return K.to(dtype), w2c.to(dtype), size


def _clean_keypoints(kp, sizes, cfg: SMPLifyConfig):
    """NaN/inf -> missing; outside the image (beyond the margin) -> missing. Returns kp, dropped [B]."""
    kp = kp.clone()
    conf = kp[..., 2]
    bad = ~torch.isfinite(kp).all(-1) | ~torch.isfinite(conf)
    conf = torch.nan_to_num(conf, nan=0.0, posinf=0.0, neginf=0.0).clamp(0.0, 1.0)
    dropped = bad & (torch.nan_to_num(kp[..., 2], nan=1.0) != 0)
    if sizes is not None:
        W, H = sizes[:, 0:1], sizes[:, 1:2]  # [B, 1]
        m = cfg.outside_margin
        u, v = kp[..., 0], kp[..., 1]
        out = (u < -m * W) | (u > (1 + m) * W) | (v < -m * H) | (v > (1 + m) * H)
        out = out & ~bad & (conf > 0)
        dropped = dropped | out
        bad = bad | out
    conf = torch.where(bad, torch.zeros_like(conf), conf)
    kp[..., :2] = torch.where(bad[..., None], torch.zeros_like(kp[..., :2]), kp[..., :2])
    kp[..., 2] = conf
    return kp, dropped.sum(-1)


def _skip_reasons(kp, cfg: SMPLifyConfig, kp_in=None, sizes=None) -> list[str | None]:
    n = (kp[..., 2] > 0).sum(-1)
    ext = keypoint_scale(kp, min_scale=0.0)
    out = []
    for b in range(kp.shape[0]):
        if int(n[b]) == 0:
            out.append("no keypoints with confidence > 0" + _why_none(kp_in, sizes, b, cfg))
        elif int(n[b]) < cfg.min_keypoints:
            out.append(f"only {int(n[b])} keypoint(s) with confidence > 0 (need {cfg.min_keypoints})")
        elif float(ext[b]) < cfg.min_extent_px:
            out.append(f"keypoints span {float(ext[b]):.1f} px (need {cfg.min_extent_px})")
        else:
            out.append(None)
    return out



def _why_none(kp_in, sizes, b: int, cfg: SMPLifyConfig) -> str:
    """What the input held when no keypoint survived cleaning: keypoints outside the image, or NaN/inf ones."""
    if kp_in is None:
        return ""
    raw = kp_in[b]
    conf = torch.nan_to_num(raw[:, 2], nan=0.0, posinf=0.0, neginf=0.0)
    finite = torch.isfinite(raw).all(-1)
    n_bad = int((~finite & (torch.nan_to_num(raw[:, 2], nan=1.0) != 0)).sum())
    n_out = int((finite & (conf > 0)).sum())
    parts = []
    if n_out and sizes is not None:
        W, H = float(sizes[b, 0]), float(sizes[b, 1])
        parts.append(f"{n_out} keypoint(s) with confidence up to {float(conf.max()):g} lie outside the {W:g}x{H:g} "
                     f"image (expected u in [{-cfg.outside_margin * W:g}, {(1 + cfg.outside_margin) * W:g}], "
                     f"v in [{-cfg.outside_margin * H:g}, {(1 + cfg.outside_margin) * H:g}])")  # fmt: skip
    if n_bad:
        parts.append(f"{n_bad} keypoint(s) have NaN/inf values")
    return f" inside the image: {'; '.join(parts)}" if parts else ""


def _check_masks(masks, B: int, sizes) -> tuple[list, list[bool]]:
    """Validate ``masks`` (see :func:`smplify`) -> B entries (a float32 ``[H, W]`` tensor or None) and, per
    person, whether the same mask object was given to another person too (a shared mask)."""
    if isinstance(masks, np.ndarray):
        masks = torch.from_numpy(np.ascontiguousarray(masks))
    if isinstance(masks, torch.Tensor):
        if masks.dim() == 2:
            masks = masks[None]
        if masks.dim() != 3:
            raise InvalidInputError(f"masks: expected [B, H, W] or a list of [H, W] masks, got {tuple(masks.shape)}")
        masks = list(masks)
    if not isinstance(masks, (list, tuple)):
        raise InvalidInputError(f"masks: expected a tensor [B, H, W] or a list, got {type(masks).__name__}")
    if len(masks) != B:
        raise InvalidInputError(f"masks: expected {B} entries (one per person, None for none), got {len(masks)}")
    ids = [id(m) for m in masks]
    shared = [m is not None and ids.count(id(m)) > 1 for m in masks]
    out = []
    for b, m in enumerate(masks):
        if m is None:
            out.append(None)
            continue
        if isinstance(m, np.ndarray):
            m = torch.from_numpy(np.ascontiguousarray(m))
        if not isinstance(m, torch.Tensor):
            raise InvalidInputError(f"masks[{b}]: expected a [H, W] tensor/array or None, got {type(m).__name__}")
        if m.dim() != 2 or m.shape[0] < 2 or m.shape[1] < 2:
            raise InvalidInputError(f"masks[{b}]: expected [H, W] (H, W >= 2), got shape {tuple(m.shape)}")
        m = m.detach().to(torch.float32)
        if not bool(torch.isfinite(m).all()):
            raise InvalidInputError(f"masks[{b}]: contains NaN or inf")
        lo, hi = float(m.min()), float(m.max())
        if lo < 0.0 or hi > 1.0:
            raise InvalidInputError(f"masks[{b}]: values must lie in [0, 1] (bool or float; divide 8-bit masks by "
                                    f"255), got [{lo:g}, {hi:g}]")  # fmt: skip
        if sizes is not None:
            W, H = int(round(float(sizes[b, 0]))), int(round(float(sizes[b, 1])))
            if tuple(m.shape) != (H, W):
                raise InvalidInputError(f"masks[{b}]: is {m.shape[1]}x{m.shape[0]} (WxH), the image is {W}x{H}; "
                                        "give masks at the image's resolution")  # fmt: skip
        if not bool((m > 0.5).any()):
            raise InvalidInputError(f"masks[{b}]: empty (no pixel > 0.5); pass None for a person without a mask")
        out.append(m)
    return out, shared
