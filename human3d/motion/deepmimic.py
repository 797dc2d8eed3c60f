"""DeepMimic motion files (``data/motions/humanoid3d_*.txt`` of xbpeng/DeepMimic) as a :class:`Motion`.

Format (DeepMimic README, "Mocap Data"; checked against the character file ``humanoid3d.txt``):

* The motion is JSON: ``{"Loop": "wrap" | "none", "Frames": [[...], ...], ...}``; every ``Frames`` row is one
  keyframe. Its values follow the character's joints **in joint-ID order** (parents before children), after the
  keyframe's duration: ``duration (s)``, then per joint its parameters: the root ``position (3, metres, world)``
  and ``quaternion (4, w x y z, world)``; a ``spherical`` joint a local quaternion ``(w, x, y, z)``; a
  ``revolute`` joint one angle (radians) about its **local z axis**; a ``fixed`` joint nothing. For humanoid3d:
  ``[dt, root pos(3), root quat(4), chest(4), neck(4), right_hip(4), right_knee(1), right_ankle(4),
  right_shoulder(4), right_elbow(1), left_hip(4), left_knee(1), left_ankle(4), left_shoulder(4), left_elbow(1)]``
  = 44 values (the knees and elbows sit *between* their joints' neighbours, not grouped at the end).
* The character file (``{"Skeleton": {"Joints": [...]}}``) gives each joint's ``Parent``, ``Type`` and its head
  offset ``AttachX/Y/Z`` in the parent's frame (metres). The humanoid3d character is Y up, faces **+X**, its
  right side on **+Z**; its rest pose (all rotations identity) stands with straight legs and the arms hanging
  down. The knees flex with negative angles (limits [-pi, 0]), the elbows with positive ones ([0, pi]).
* Keyframe ``i`` is at time ``t_i = sum(duration[:i])`` (DeepMimic's ``cMotion``): the last row's duration is not
  used (0 in every shipped clip) and the clip lasts ``t_{K-1}``. Durations may vary within a clip (``roll``), so
  :func:`read_deepmimic` resamples to a constant rate by default: rotations by geodesic interpolation (slerp, as
  DeepMimic blends its frames), root position linearly.
* Quaternions are normalised (several shipped clips store them up to ~40 % off unit length); a (near-)zero
  quaternion is an error.

Rotations act on column vectors; float64 like the BVH reader.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch

from human3d.errors import DatasetError, InvalidInputError, check_file
from human3d.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle, quaternion_to_matrix
from human3d.motion.bvh import Motion

__all__ = [
    "DeepMimicSkeleton",
    "read_deepmimic_skeleton",
    "parse_deepmimic",
    "read_deepmimic",
    "resample_keyframes",
    "SKELETON_FILE",
]

SKELETON_FILE = "skeleton_humanoid3d.txt"
"""Default character file, looked up beside the motion file."""

# Parameters per joint type (the root has 7: position + quaternion).
_PARAMS = {"spherical": 4, "revolute": 1, "fixed": 0}

# End sites (metres, joint frame) for joints that end a chain, from the humanoid3d body shapes: the head sphere's
# centre above the neck joint, the front of the foot box at sole height. They only serve as direction targets
# (the neck's); wrists carry a hand sphere centred on the joint, so they get none.
_END_SITES = {"neck": (0.0, 0.175, 0.0), "right_ankle": (0.1335, -0.05, 0.0), "left_ankle": (0.1335, -0.05, 0.0)}


@dataclasses.dataclass
class DeepMimicSkeleton:
    """The joint tree of a DeepMimic character file."""

    names: list[str]
    """Joint names in ID order (root first)."""
    parents: list[int]
    """Parent index per joint (-1 for the root)."""
    types: list[str]
    """``"none"`` (root), ``"spherical"``, ``"revolute"`` or ``"fixed"`` per joint."""
    offsets: torch.Tensor
    """``[J, 3]`` joint head offsets in the parent's frame (metres); the root's is zero."""
    source: str = ""
    """The character file, for error messages."""

    @property
    def frame_width(self) -> int:
        """Values per ``Frames`` row: duration + root (7) + the joints' parameters."""
        return 1 + 7 + sum(_PARAMS[t] for t in self.types[1:])

    def children_of(self, joint: int) -> list[int]:
        return [c for c, p in enumerate(self.parents) if p == joint]


def _skeleton_from_json(data, source: str) -> DeepMimicSkeleton:
    try:
        joints = sorted(data["Skeleton"]["Joints"], key=lambda j: int(j["ID"]))
        ids = [int(j["ID"]) for j in joints]
        names = [str(j["Name"]) for j in joints]
        parents = [int(j["Parent"]) for j in joints]
        types = [str(j["Type"]) for j in joints]
        offsets = [[float(j["AttachX"]), float(j["AttachY"]), float(j["AttachZ"])] for j in joints]
        thetas = [[float(j.get(f"AttachTheta{a}", 0.0)) for a in "XYZ"] for j in joints]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DatasetError(f"{source}: malformed DeepMimic character file ({type(e).__name__}: {e})") from None
    if not joints:
        raise DatasetError(f"{source}: the character has no joints")
    if ids != list(range(len(ids))):
        raise DatasetError(f"{source}: joint IDs must be 0..{len(ids) - 1}, got {ids}")
    if parents[0] != -1 or any(not 0 <= p < j for j, p in enumerate(parents) if j > 0):
        raise DatasetError(f"{source}: the root must be joint 0 and every parent must precede its child: {parents}")
    bad = [(n, t) for n, t in zip(names[1:], types[1:]) if t not in _PARAMS]
    if bad:
        raise DatasetError(f"{source}: unsupported joint types {bad} (supported: {sorted(_PARAMS)})")
    if any(abs(v) > 0 for th in thetas for v in th):
        raise DatasetError(f"{source}: joints with non-zero AttachTheta (rotated joint frames) are not supported")
    off = torch.tensor(offsets, dtype=torch.float64)
    off[0] = 0.0
    if not bool(torch.isfinite(off).all()):
        raise DatasetError(f"{source}: NaN/inf joint offsets")
    return DeepMimicSkeleton(names, parents, types, off, source)


def read_deepmimic_skeleton(path) -> DeepMimicSkeleton:
    """Read a DeepMimic character file (JSON with ``Skeleton.Joints``). Raises ``DatasetError``."""
    path = check_file(path, "DeepMimic character file", suffixes=(".txt", ".json"))
    return _skeleton_from_json(_load_json(path, "DeepMimic character file"), str(path))


def _load_json(path: Path, what: str):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read {what} ({e})") from None
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: malformed JSON in {what} ({e})") from None


def resample_keyframes(
    times: torch.Tensor, rotations: torch.Tensor, root_positions: torch.Tensor, fps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample keyframes at ``times`` [K] (increasing, seconds) every ``1 / fps`` s from ``times[0]`` to
    ``times[-1]`` (the last keyframe is kept when the span is within 5 % of a frame of a whole number of frames,
    as DeepMimic's 0.033332 s durations are): local rotations [K, J, 3, 3] by geodesic interpolation
    ``R_i exp(a log(R_i^T R_{i+1}))`` (slerp), root positions [K, 3] linearly. Returns ``([N, J, 3, 3], [N, 3])``."""
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise InvalidInputError(f"fps: expected a finite number > 0, got {fps!r}")
    K = times.shape[0]
    T = float(times[-1] - times[0])
    n = int(math.floor(T * fps + 0.05)) + 1  # a sample up to 0.05 frame past the end = the last keyframe
    t = times[0] + torch.arange(n, dtype=torch.float64) / fps  # [N]
    if K == 1:
        return rotations.expand(n, *rotations.shape[1:]).clone(), root_positions.expand(n, 3).clone()
    i = (torch.searchsorted(times, t, right=True) - 1).clamp(0, K - 2)  # [N] segment index
    a = ((t - times[i]) / (times[i + 1] - times[i])).clamp(0.0, 1.0)  # [N]
    R0, R1 = rotations[i], rotations[i + 1]  # [N, J, 3, 3]
    delta = matrix_to_axis_angle(R0.transpose(-1, -2) @ R1)  # [N, J, 3]
    R = R0 @ axis_angle_to_matrix(delta * a[:, None, None])
    p = root_positions[i] + (root_positions[i + 1] - root_positions[i]) * a[:, None]
    return R, p


def parse_deepmimic(
    data, skeleton: DeepMimicSkeleton, fps: float | None = 30.0, source: str = "<json>"
) -> Motion:
    """Build a :class:`Motion` from a parsed DeepMimic motion (``data``: the JSON object) on ``skeleton``.

    ``fps``: resample to this constant rate (default 30, the pose-dataset rate); None keeps the keyframes as they
    are, with ``Motion.fps`` their mean rate ``(K - 1) / duration`` (exact only when the durations are equal).
    """
    if not isinstance(data, dict) or "Frames" not in data:
        raise DatasetError(f"{source}: not a DeepMimic motion (expected a JSON object with 'Frames')")
    rows = data["Frames"]
    if not isinstance(rows, list) or not rows:
        raise DatasetError(f"{source}: 'Frames' is empty or not a list")
    W = skeleton.frame_width
    widths = {len(r) if isinstance(r, list) else -1 for r in rows}
    if widths != {W}:
        bad = next(k for k, r in enumerate(rows) if not isinstance(r, list) or len(r) != W)
        got = len(rows[bad]) if isinstance(rows[bad], list) else type(rows[bad]).__name__
        raise DatasetError(f"{source}: Frames row {bad} has {got} values, expected {W} for {skeleton.source}")
    try:
        a = torch.tensor(np.asarray(rows, dtype=np.float64))  # [K, W]
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{source}: non-numeric value in Frames ({e})") from None
    if not bool(torch.isfinite(a).all()):
        bad = int((~torch.isfinite(a)).any(1).nonzero()[0])
        raise DatasetError(f"{source}: NaN/inf in Frames (first at row {bad})")
    K, J = a.shape[0], len(skeleton.names)
    dur = a[:, 0]
    if bool((dur[:-1] <= 0).any()) or float(dur[-1]) < 0:
        bad = int((((dur <= 0) & (torch.arange(K) < K - 1)) | (dur < 0)).nonzero()[0])
        raise DatasetError(f"{source}: frame durations must be > 0 (the last >= 0), row {bad} has {float(dur[bad])}")
    times = torch.cat([torch.zeros(1, dtype=torch.float64), dur[:-1].cumsum(0)])  # [K] keyframe times

    rot = torch.eye(3, dtype=torch.float64).expand(K, J, 3, 3).clone()
    quat_cols: list[tuple[int, int]] = [(0, 4)]  # (joint, first column); the root quat follows its position
    rev_cols: list[tuple[int, int]] = []
    c = 8
    for j, t in enumerate(skeleton.types[1:], start=1):
        if t == "spherical":
            quat_cols.append((j, c))
        elif t == "revolute":
            rev_cols.append((j, c))
        c += _PARAMS[t]
    qj = [j for j, _ in quat_cols]
    q = torch.stack([a[:, c : c + 4] for _, c in quat_cols], 1)  # [K, Q, 4] wxyz
    qn = q.norm(dim=-1)
    if bool((qn < 1e-6).any()):
        k, m = (qn < 1e-6).nonzero()[0].tolist()
        raise DatasetError(f"{source}: zero quaternion for joint {skeleton.names[qj[m]]!r} in Frames row {k}")
    rot[:, qj] = quaternion_to_matrix(q / qn[..., None])
    if rev_cols:
        rj = [j for j, _ in rev_cols]
        ang = a[:, [c for _, c in rev_cols]]  # [K, R] radians about local z
        z = torch.zeros(K, len(rj), 3, dtype=torch.float64)
        z[..., 2] = ang
        rot[:, rj] = axis_angle_to_matrix(z)
    root = a[:, 1:4].clone()  # [K, 3] metres

    if fps is None:
        out_fps = (K - 1) / float(times[-1]) if K > 1 and float(times[-1]) > 0 else 30.0
    else:
        rot, root = resample_keyframes(times, rot, root, fps)
        out_fps = float(fps)
    end = torch.full((J, 3), float("nan"), dtype=torch.float64)
    for j, n in enumerate(skeleton.names):
        if n in _END_SITES and not skeleton.children_of(j):
            end[j] = torch.tensor(_END_SITES[n], dtype=torch.float64)
    return Motion(
        names=list(skeleton.names),
        parents=list(skeleton.parents),
        offsets=skeleton.offsets.clone(),
        end_offsets=end,
        rotations=rot,
        root_positions=root,
        fps=out_fps,
        source=source,
    )


def read_deepmimic(path, skeleton=None, fps: float | None = 30.0) -> Motion:
    """Read a DeepMimic motion file as a :class:`Motion` (see the module docstring for the format).

    ``skeleton``: the character file (path or :class:`DeepMimicSkeleton`); default ``skeleton_humanoid3d.txt``
    beside ``path``. ``fps``: constant output rate (keyframes resampled by slerp), or None to keep the keyframes.
    Raises ``DatasetError`` naming the file for unreadable/malformed JSON, wrong row widths, non-finite values,
    empty ``Frames``, non-positive durations or zero quaternions.
    """
    path = check_file(path, "DeepMimic motion file", suffixes=(".txt", ".json"))
    if skeleton is None:
        skeleton = Path(path).parent / SKELETON_FILE
    if not isinstance(skeleton, DeepMimicSkeleton):
        skeleton = read_deepmimic_skeleton(skeleton)
    data = _load_json(path, "DeepMimic motion file")
    return parse_deepmimic(data, skeleton, fps=fps, source=str(path))
