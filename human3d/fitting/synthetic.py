"""Synthetic ground truth for fitting: real mocap poses on random shapes, seen by a known camera.

Poses come from BVH motion capture retargeted onto Anny (:mod:`human3d.body.retarget`); for the SMPL family the
retargeted per-bone *world* rotations are mapped onto the corresponding SMPL joints (pelvis <- root, hips <- upper
legs, spine1/2/3 <- spine05/03/01, ...). Bodies stand 3-5 m in front of an OpenCV camera, turned by a random yaw
(so some face away), projected with pixel noise; a fraction of keypoints is dropped (confidence 0).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from human3d.errors import DatasetError
from human3d.geometry.cameras import make_intrinsics, project_points
from human3d.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["SyntheticSet", "default_data_root", "mocap_anny_poses", "make_synthetic_set", "DEFAULT_CLIPS"]

# (path under the data root, BVH unit scale to metres). Only clips held out of every shipped pose prior
# (human3d.data.mocap.HOLDOUT; the "simple" prior's statistics come from 01_01 and 14_14): 131_01 (walk) was
# dropped because the learned priors train on it.
DEFAULT_CLIPS = (
    ("cmu_mocap_bvh_subject131/131_03.bvh", 0.056444),  # start, hop, stop
)

# SMPL joint <- Anny bone whose world rotation it takes.
_SMPL_FROM_ANNY = {
    "pelvis": "root", "left_hip": "upperleg01.L", "right_hip": "upperleg01.R", "spine1": "spine05",
    "left_knee": "lowerleg01.L", "right_knee": "lowerleg01.R", "spine2": "spine03", "left_ankle": "foot.L",
    "right_ankle": "foot.R", "spine3": "spine01", "left_foot": "foot.L", "right_foot": "foot.R",
    "neck": "neck03", "left_collar": "clavicle.L", "right_collar": "clavicle.R", "head": "head",
    "left_shoulder": "upperarm01.L", "right_shoulder": "upperarm01.R", "left_elbow": "lowerarm01.L",
    "right_elbow": "lowerarm01.R", "left_wrist": "wrist.L", "right_wrist": "wrist.R",
}  # fmt: skip


def default_data_root() -> Path:
    """``$HUMAN3D_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("HUMAN3D_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass
class SyntheticSet:
    """A batch of synthetic fitting problems (camera frame = world frame)."""

    keypoints2d: torch.Tensor  # [N, K, 3] noisy, partly dropped (u, v, confidence)
    clean2d: torch.Tensor  # [N, K, 2] noiseless projections
    K: torch.Tensor  # [N, 3, 3]
    width: int
    height: int
    params: dict[str, torch.Tensor]  # ground-truth model parameters
    keypoints3d: torch.Tensor  # [N, K, 3] ground-truth 3D keypoints (metres, camera frame)
    joints3d: torch.Tensor  # [N, J, 3] ground-truth model joints
    skeleton: str
    noise_px: float


def mocap_anny_poses(n: int, seed: int = 0, clips=DEFAULT_CLIPS, data_root=None, fps: float = 10.0):
    """``n`` random frames of retargeted mocap: (global_orient [n, 3], body_pose [n, 309], world [n, J, 3, 3])."""
    from human3d.body.retarget import retarget
    from human3d.data.bvh import read_bvh

    root = Path(data_root) if data_root is not None else default_data_root()
    gos, bps, worlds = [], [], []
    for rel, scale in clips:
        path = root / rel
        if not path.is_file():
            raise DatasetError(f"mocap clip '{path}' not found (set HUMAN3D_DATA to the shared data folder)")
        motion = read_bvh(path, scale=scale).to_motion().subsample(fps)
        r = retarget(motion)
        gos.append(r.global_orient)
        bps.append(r.body_pose)
        worlds.append(r.world.float())
    go, bp, world = torch.cat(gos), torch.cat(bps), torch.cat(worlds)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(go.shape[0], generator=g)[:n]
    if pick.numel() < n:
        pick = pick[torch.randint(0, pick.numel(), (n,), generator=g)]
    return go[pick], bp[pick], world[pick]


def _smpl_pose_from_world(model, world: torch.Tensor, anny_names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """SMPL global_orient [n, 3], body_pose [n, Jp*3] whose per-joint world rotations copy Anny's."""
    names = list(model.joint_names)
    parents = [int(p) for p in model.parents]
    jp = model.parameter_shapes()["body_pose"][0] // 3
    n = world.shape[0]
    eye = torch.eye(3).expand(n, 3, 3)
    G = []
    for j, name in enumerate(names):
        src = _SMPL_FROM_ANNY.get(name)
        if src is not None:
            G.append(world[:, anny_names.index(src)])
        else:
            G.append(G[parents[j]] if parents[j] >= 0 else eye)
    local = [G[0]] + [G[parents[j]].transpose(-1, -2) @ G[j] for j in range(1, len(names))]
    rv = matrix_to_axis_angle(torch.stack(local, 1))  # [n, J, 3]
    return rv[:, 0], rv[:, 1 : 1 + jp].reshape(n, -1)


@torch.no_grad()
def make_synthetic_set(
    model,
    n: int,
    seed: int = 0,
    noise_px: float = 2.0,
    drop: float = 0.2,
    skeleton: str = "coco17",
    width: int = 1000,
    height: int = 1000,
    focal: float = 1200.0,
    clips=DEFAULT_CLIPS,
    data_root=None,
) -> SyntheticSet:
    """``n`` synthetic persons for ``model`` (Anny or SMPL family): mocap pose, random shape, random yaw."""
    g = torch.Generator().manual_seed(seed + 1)
    go, bp, world = mocap_anny_poses(n, seed, clips, data_root)
    # Remove the clip's heading, keep its tilt; then face a random yaw and look through an OpenCV camera
    # (Y up -> image up: rotate pi about X).
    R_root = axis_angle_to_matrix(go)
    fwd = R_root[:, :, 2]
    heading = torch.atan2(fwd[:, 0], fwd[:, 2])
    yaw = torch.rand(n, generator=g) * 2 * math.pi
    Ry = axis_angle_to_matrix(torch.stack([torch.zeros(n), yaw - heading, torch.zeros(n)], -1))
    tilt = axis_angle_to_matrix(torch.stack([(torch.rand(n, generator=g) - 0.5) * 0.3, torch.zeros(n),
                                             torch.zeros(n)], -1))  # fmt: skip
    flip = axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0])).expand(n, 3, 3)
    R_cam = tilt @ flip @ Ry  # extra rotation applied to the whole (world-posed) body
    depth = 3.0 + 2.0 * torch.rand(n, generator=g)
    xy = (torch.rand(n, 2, generator=g) - 0.5) * 0.6
    params: dict[str, torch.Tensor] = {}
    if model.family == "anny":
        params["global_orient"] = matrix_to_axis_angle(R_cam @ R_root)
        params["body_pose"] = bp
        ph = 0.2 + 0.6 * torch.rand(n, 6, generator=g)
        ph[:, 1] = 0.5 + 0.4 * torch.rand(n, generator=g)  # age: teen to older adult
        params["phenotypes"] = ph
        world_R_root = R_cam @ R_root
    else:
        from human3d.body.retarget import anny_reference

        go_s, bp_s = _smpl_pose_from_world(model, world, anny_reference().names)
        params["global_orient"] = matrix_to_axis_angle(R_cam @ axis_angle_to_matrix(go_s))
        params["body_pose"] = bp_s
        nb = model.parameter_shapes()["betas"][0]
        params["betas"] = torch.randn(n, nb, generator=g) * 1.0
        world_R_root = None
    params["transl"] = torch.zeros(n, 3)
    out = model(params)
    root = out.joints[:, 0]
    params["transl"] = torch.cat([xy, depth[:, None]], 1) - root
    out = model(params)
    del world_R_root
    K = make_intrinsics(focal, focal, width / 2.0, height / 2.0, batch_size=n)
    X = out.keypoints[skeleton]
    proj = project_points(X, K)
    noisy = proj.uv + noise_px * torch.randn(proj.uv.shape, generator=g)
    conf = (torch.rand(proj.uv.shape[:2], generator=g) >= drop).float()
    kp = torch.cat([noisy * conf[..., None], conf[..., None]], -1)
    return SyntheticSet(kp, proj.uv, K, width, height, {k: v.clone() for k, v in params.items()}, X.clone(),
                        out.joints.clone(), skeleton, noise_px)  # fmt: skip
