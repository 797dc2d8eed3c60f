"""Keypoint skeletons: names, drawing edges and conversions between COCO-17 and OpenPose BODY_25.

Index orders follow the original formats exactly, so arrays read from COCO / OpenPose JSON index into them.
"""

from __future__ import annotations

import torch

from human3d.errors import InvalidInputError

COCO17 = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip

# OpenPose BODY_25 (pose_keypoints_2d order of the BODY_25 model).
BODY25 = [
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
]  # fmt: skip

# OpenPose COCO-18 (the older OpenPose COCO model): BODY_25 without mid_hip and feet, different order.
OPENPOSE_COCO18 = [
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
]  # fmt: skip

# Keypoints that are not vertices/joints of a model but midpoints of two others (OpenPose convention).
MIDPOINTS = {"neck": ("left_shoulder", "right_shoulder"), "mid_hip": ("left_hip", "right_hip")}

SKELETONS = {"coco17": COCO17, "body25": BODY25, "openpose_coco18": OPENPOSE_COCO18}


def _edges(names: list[str], pairs: list[tuple[str, str]]) -> list[tuple[int, int]]:
    return [(names.index(a), names.index(b)) for a, b in pairs if a in names and b in names]


_LIMBS = [
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
    ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"), ("right_eye", "right_ear"),
    ("neck", "nose"), ("neck", "mid_hip"),
    ("left_ankle", "left_heel"), ("left_ankle", "left_big_toe"), ("left_big_toe", "left_small_toe"),
    ("right_ankle", "right_heel"), ("right_ankle", "right_big_toe"), ("right_big_toe", "right_small_toe"),
]  # fmt: skip

EDGES = {name: _edges(names, _LIMBS) for name, names in SKELETONS.items()}


def skeleton_names(skeleton: str) -> list[str]:
    """Keypoint names of ``skeleton`` ("coco17", "body25" or "openpose_coco18")."""
    if skeleton not in SKELETONS:
        raise InvalidInputError(f"skeleton: expected one of {sorted(SKELETONS)}, got {skeleton!r}")
    return SKELETONS[skeleton]


def gather_keypoints(named: dict[str, torch.Tensor], skeleton: str) -> torch.Tensor:
    """Assemble [B, K, D] keypoints of ``skeleton`` from a dict name -> [B, D] (midpoints derived if missing)."""
    out = []
    for name in skeleton_names(skeleton):
        if name in named:
            out.append(named[name])
        elif name in MIDPOINTS:
            a, b = MIDPOINTS[name]
            out.append(0.5 * (named[a] + named[b]))
        else:
            raise KeyError(f"keypoint '{name}' of skeleton '{skeleton}' is not provided by this model")
    return torch.stack(out, dim=1)


def convert_keypoints(kp: torch.Tensor, src: str, dst: str) -> torch.Tensor:
    """Re-order keypoints [B, K, C] (C = 2 or 3 with confidence last) from skeleton ``src`` to ``dst``.

    Keypoints ``dst`` has but ``src`` lacks get zeros (zero confidence); midpoints are derived when both ends
    are present (confidence = the smaller of the two).
    """
    src_names, dst_names = skeleton_names(src), skeleton_names(dst)
    out = kp.new_zeros(kp.shape[:-2] + (len(dst_names), kp.shape[-1]))
    for j, name in enumerate(dst_names):
        if name in src_names:
            out[..., j, :] = kp[..., src_names.index(name), :]
        elif name in MIDPOINTS and all(n in src_names for n in MIDPOINTS[name]):
            a, b = (kp[..., src_names.index(n), :] for n in MIDPOINTS[name])
            out[..., j, :2] = 0.5 * (a[..., :2] + b[..., :2])
            if kp.shape[-1] > 2:
                out[..., j, 2:] = torch.minimum(a[..., 2:], b[..., 2:])
    return out
