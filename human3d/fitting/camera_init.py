"""Camera set-up for fitting: focal length choice, facing direction and depth from torso size.

Conventions: OpenCV camera (x right, y down, z forward), pixels as in :mod:`human3d.geometry.cameras`.
Body models are assumed to be upright in their own frame; which way is "up" and "forward" is *measured* from the
model's rest keypoints (shoulders and hips), so SMPL (Y-up, facing +Z) and Anny work alike.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "default_focal",
    "choose_focal",
    "body_frame",
    "facing_rotations",
    "similar_triangles_translation",
]


def default_focal(width: int, height: int) -> float:
    """Default focal length in pixels when neither ``--focal`` nor EXIF gives one: the image diagonal.

    ``f = sqrt(W^2 + H^2)``, i.e. a 53 degree diagonal field of view, as CLIFF (Li et al., ECCV 2022) and
    4DHumans/HMR2.0 assume for full images of unknown cameras. (SMPLify-X's and SPIN's ``5000 px`` is meant for
    224-px person *crops*, a 2.6 degree field of view, nearly orthographic; it is not a full-image default.)
    """
    return float(math.hypot(width, height))


def choose_focal(width: int, height: int, focal: float | None = None, exif_focal: float | None = None) -> tuple[float, str]:
    """``(focal_px, source)`` with source ``"user"``, ``"exif"`` or ``"default"`` (see :func:`default_focal`)."""
    if focal is not None:
        return float(focal), "user"
    if exif_focal is not None and math.isfinite(exif_focal) and exif_focal > 0:
        return float(exif_focal), "exif"
    return default_focal(width, height), "default"


def body_frame(left_shoulder, right_shoulder, left_hip, right_hip) -> torch.Tensor:
    """Orthonormal body frame ``[B, 3, 3]`` with columns (left, up, forward), from four points ``[B, 3]``.

    ``up`` runs from the hip midpoint to the shoulder midpoint; ``left`` from the right to the left shoulder
    (made orthogonal to ``up``); ``forward = left x up`` (the way the chest faces).
    """
    up = F.normalize(0.5 * (left_shoulder + right_shoulder) - 0.5 * (left_hip + right_hip), dim=-1)
    left = left_shoulder - right_shoulder + left_hip - right_hip
    left = F.normalize(left - (left * up).sum(-1, keepdim=True) * up, dim=-1)
    fwd = torch.cross(left, up, dim=-1)
    return torch.stack([left, up, fwd], dim=-1)


def facing_rotations(frame: torch.Tensor, yaws=(0.0, math.pi)) -> torch.Tensor:
    """Rotations ``[Y, B, 3, 3]`` taking the model frame to an upright camera-frame pose, one per yaw.

    Yaw 0 faces the camera: the body's left goes to image right (+x), up to image up (-y) and forward towards
    the camera (-z). Yaw ``pi`` turns the body about its vertical axis to face away (the flipped hypothesis).
    ``frame`` is the model's (left, up, forward) frame from :func:`body_frame`, ``[B, 3, 3]``.
    """
    cam = torch.tensor([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]], dtype=frame.dtype, device=frame.device)  # columns
    out = []
    for yaw in yaws:
        c, s = math.cos(yaw), math.sin(yaw)
        # yaw about the body's up axis, expressed in the (left, up, forward) basis
        Ry = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=frame.dtype, device=frame.device)
        out.append(cam @ Ry @ frame.transpose(-1, -2))  # model -> body basis -> yawed -> camera
    return torch.stack(out, 0)


def similar_triangles_translation(
    kp2d: torch.Tensor, model_kp_cam: torch.Tensor, K: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Camera-frame translation ``[B, 3]`` placing model keypoints over 2D keypoints (SMPLify's torso init).

    Depth comes from similar triangles: the weighted RMS spread of the model keypoints' camera-frame x/y
    (metres) over that of the 2D keypoints (pixels), times the focal length. The weighted 3D centroid is then put
    on the ray through the weighted 2D centroid at that depth.

    Args:
        kp2d: [B, K, 2] pixels. model_kp_cam: [B, K, 3] model keypoints in the camera frame with zero translation.
        K: [B, 3, 3] intrinsics. weights: [B, K] >= 0 (confidence times "use this keypoint"); each row needs two
            non-zero weights at distinct pixels (callers check).
    """
    w = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)  # [B, K]
    c2 = (w[..., None] * kp2d).sum(1)  # [B, 2]
    c3 = (w[..., None] * model_kp_cam).sum(1)  # [B, 3]
    s2 = ((w * ((kp2d - c2[:, None]) ** 2).sum(-1)).sum(-1)).clamp_min(1e-6).sqrt()  # [B] px
    s3 = ((w * ((model_kp_cam[..., :2] - c3[:, None, :2]) ** 2).sum(-1)).sum(-1)).clamp_min(1e-8).sqrt()  # [B] m
    f = 0.5 * (K[:, 0, 0] + K[:, 1, 1])
    depth = f * s3 / s2  # [B] depth of the centroid
    x = (c2[:, 0] - K[:, 0, 2]) / K[:, 0, 0] * depth
    y = (c2[:, 1] - K[:, 1, 2]) / K[:, 1, 1] * depth
    target = torch.stack([x, y, depth], dim=-1)
    return target - c3
