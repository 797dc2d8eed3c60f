"""Synthetic ground truth for fitting: real mocap poses on random shapes, seen by a known camera.

Poses come from BVH motion capture retargeted onto Anny (:mod:`human3d.motion.retarget`). For the SMPL family each
SMPL joint sits at the head of one Anny bone (:data:`SMPL_FROM_ANNY`: pelvis <- root, hips <- upper legs,
spine1/2/3 <- spine04/02/01, neck <- neck01, ...) and takes that bone's world rotation *relative to SMPL's rest
pose*: SMPL rests in a T-pose, Anny in an A-pose with bent elbows, so the retargeted rotations are taken relative
to Anny posed in a T-pose (:func:`anny_tpose`; :func:`smpl_pose_from_anny`). Bodies stand 3-5 m in front of an
OpenCV camera, turned by a random yaw (so some face away), projected with pixel noise; a fraction of keypoints is
dropped (confidence 0).

The SMPL model files are licensed and never in the repository; :func:`smpl_data_from_anny` builds an SMPL-format
model file from Anny instead (a real body with SMPL's 24 joints, kinematic tree, T-pose rest, keypoint vertex ids,
10 PCA shape components; no pose correctives), so that fitting an SMPL-format file can be checked against ground
truth like Anny. Its joints follow Anny's bone heads (~1.4 mm on held-out shapes), and posed with
:func:`smpl_pose_from_anny` its limb segments point where Anny's do (< 0.3 degrees; trunk and neck, which have
fewer joints than Anny's, within a few degrees).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from human3d.errors import DatasetError
from human3d.geometry.cameras import make_intrinsics, project_points
from human3d.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["SyntheticSet", "default_data_root", "mocap_anny_poses", "make_synthetic_set", "DEFAULT_CLIPS",
           "SMPL_FROM_ANNY", "anny_tpose", "smpl_pose_from_anny", "smpl_data_from_anny"]

# (path under the data root, BVH unit scale to metres). Only clips held out of every shipped pose prior
# (human3d.motion.mocap.HOLDOUT; the "simple" prior's statistics come from 01_01 and 14_14): 131_01 (walk) was
# dropped because the learned priors train on it.
DEFAULT_CLIPS = (
    ("cmu_mocap_bvh_subject131/131_03.bvh", 0.056444),  # start, hop, stop
)

# SMPL joint <- Anny bone: the joint sits at the bone's head and takes the bone's world rotation (relative to the
# T-pose, :func:`anny_tpose_world`). Anny has more trunk bones than SMPL: the spine (spine05..01) and the neck
# (neck01..03) are sampled; feet and hands are the middle toe / finger bases.
SMPL_FROM_ANNY = {
    "pelvis": "root", "left_hip": "upperleg01.L", "right_hip": "upperleg01.R", "spine1": "spine04",
    "left_knee": "lowerleg01.L", "right_knee": "lowerleg01.R", "spine2": "spine02", "left_ankle": "foot.L",
    "right_ankle": "foot.R", "spine3": "spine01", "left_foot": "toe3-1.L", "right_foot": "toe3-1.R",
    "neck": "neck01", "left_collar": "clavicle.L", "right_collar": "clavicle.R", "head": "head",
    "left_shoulder": "upperarm01.L", "right_shoulder": "upperarm01.R", "left_elbow": "lowerarm01.L",
    "right_elbow": "lowerarm01.R", "left_wrist": "wrist.L", "right_wrist": "wrist.R",
    "left_hand": "finger3-1.L", "right_hand": "finger3-1.R",
}  # fmt: skip
# SMPL's kinematic tree (parent of each joint but the pelvis).
_SMPL_PARENT = {
    "left_hip": "pelvis", "right_hip": "pelvis", "spine1": "pelvis", "left_knee": "left_hip",
    "right_knee": "right_hip", "spine2": "spine1", "left_ankle": "left_knee", "right_ankle": "right_knee",
    "spine3": "spine2", "left_foot": "left_ankle", "right_foot": "right_ankle", "neck": "spine3",
    "left_collar": "spine3", "right_collar": "spine3", "head": "neck", "left_shoulder": "left_collar",
    "right_shoulder": "right_collar", "left_elbow": "left_shoulder", "right_elbow": "right_shoulder",
    "left_wrist": "left_elbow", "right_wrist": "right_elbow", "left_hand": "left_wrist", "right_hand": "right_wrist",
}  # fmt: skip
# Arm segments straightened along +-X for the T-pose: (bone, bone at the segment's far end).
_TPOSE_SEGMENTS = (("upperarm01", "lowerarm01"), ("lowerarm01", "wrist"), ("wrist", "finger3-1"))


def default_data_root() -> Path:
    """The shared data folder (:func:`human3d.data.paths.shared_data_dir`: ``$HUMAN3D_DATA``, else
    ``../shared/data`` beside the checkout)."""
    from human3d.data.paths import shared_data_dir

    return shared_data_dir()


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


def _rig_calibrations(root: str, rig: str) -> dict:
    """Retarget calibrations of every clip of one rig group of the pose corpus (:func:`human3d.motion.mocap.list_clips`),
    made as the pose priors' training data makes them (:func:`human3d.motion.mocap.build_pose_dataset`: hinge twists
    pooled over the group's training clips, the group's reference clip first): {clip name: (ClipInfo, Calibration)}."""
    key = (root, rig)
    if key not in _CALIBRATIONS:
        from human3d.motion.retarget import anny_reference, calibrate_rig, detect_spec
        from human3d.motion.mocap import _GROUP_REFERENCE, list_clips, load_motion, trim_start

        clips = [c for c in list_clips(root, include_eval=False, include_deepmimic=True) if c.rig == rig]
        ref = _GROUP_REFERENCE.get(rig)
        clips.sort(key=lambda c: c.name != ref)  # reference clip first (stable)
        motions = [load_motion(Path(root) / c.path) for c in clips]
        motions = [trim_start(m) if c.t_pose_start else m for c, m in zip(clips, motions)]
        train = [c.split == "train" for c in clips]
        cals = calibrate_rig(motions, detect_spec(motions[0].names), anny_reference(),
                             hinge_clips=train if any(train) else None)  # fmt: skip
        _CALIBRATIONS[key] = {c.name: (c, m, cal) for c, m, cal in zip(clips, motions, cals)}
    return _CALIBRATIONS[key]


_CALIBRATIONS: dict = {}


def _named_clip(name: str, root: Path):
    """(Motion with its calibration T-pose trimmed, Calibration) of the corpus clip ``name`` (any rig)."""
    from human3d.motion.mocap import list_clips

    info = {c.name: c for c in list_clips(root, include_eval=False, include_deepmimic=True)}
    if name not in info:
        raise DatasetError(f"mocap clip '{name}' is not in the pose corpus under '{root}' "
                           f"(known: {', '.join(sorted(info)) or 'none'})")  # fmt: skip
    _, motion, cal = _rig_calibrations(str(root), info[name].rig)[name]
    return motion, cal


def named_clip_poses(names, data_root=None, fps: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Every frame at ``fps`` of the pose corpus' clips ``names``, retargeted onto Anny as
    :func:`mocap_anny_poses` does: ``(global_orient [n, 3], body_pose [n, 309])`` (float32, in clip order)."""
    from human3d.motion.retarget import retarget

    root = Path(data_root) if data_root is not None else default_data_root()
    gos, bps = [], []
    for name in names:
        motion, cal = _named_clip(name, root)
        r = retarget(motion.subsample(fps), calibration=cal)
        gos.append(r.global_orient.float())
        bps.append(r.body_pose.float())
    if not gos:
        raise DatasetError("named_clip_poses: no clip names given")
    return torch.cat(gos), torch.cat(bps)


def mocap_anny_poses(n: int, seed: int = 0, clips=DEFAULT_CLIPS, data_root=None, fps: float = 10.0):
    """``n`` random frames of retargeted mocap: (global_orient [n, 3], body_pose [n, 309], world [n, J, 3, 3]).

    ``clips``: entries ``(BVH path under the data root, unit scale)`` (retargeted with the clip's own calibration,
    as :data:`DEFAULT_CLIPS`), or clip names of the pose corpus (:func:`human3d.motion.mocap.list_clips`, any rig:
    CMU BVH / DAZ / expmap CSV, FAIR, ...; e.g. the held-out ``human3d.motion.mocap.HOLDOUT``), retargeted with their
    rig group's calibration as the priors' training data is (calibration T-pose trimmed). Frames at ``fps``.
    """
    from human3d.motion.retarget import retarget
    from human3d.motion.bvh import read_bvh

    root = Path(data_root) if data_root is not None else default_data_root()
    gos, bps, worlds = [], [], []
    for clip in clips:
        if isinstance(clip, str):
            motion, cal = _named_clip(clip, root)
            r = retarget(motion.subsample(fps), calibration=cal)
        else:
            rel, scale = clip
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


@torch.no_grad()
def anny_tpose(reference=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Anny in SMPL's rest pose (a T-pose): upper arms, forearms and hands straightened along +X (left) / -X
    (right) by minimal rotations, everything else as in Anny's zero pose (an A-pose with bent elbows).

    Returns ``world`` [J, 3, 3], each bone's world rotation relative to Anny's zero pose, and ``body_pose``
    [1, (J-1)*3], the AnnyBody pose (``global_orient`` zero) that puts Anny in it (float64, canonical frame).
    """
    from human3d.motion.retarget import anny_reference, minimal_rotation

    ref = reference if reference is not None else anny_reference()
    heads = ref.heads.double()  # [J, 3]
    eye = torch.eye(3, dtype=torch.float64)
    targets = {}
    for side, sign in (("L", 1.0), ("R", -1.0)):
        for bone, tail in _TPOSE_SEGMENTS:
            x = torch.tensor([sign, 0.0, 0.0], dtype=torch.float64)
            targets[ref.index(f"{bone}.{side}")] = (ref.index(f"{tail}.{side}"), x)
    world, local = [], []
    for c, p in enumerate(ref.parents):
        if p >= c:
            raise ValueError("anny_tpose: Anny's bones are expected parents first")
        Wp = world[p] if p >= 0 else eye
        Wc = Wp
        if c in targets:
            t, x = targets[c]
            Wc = minimal_rotation(Wp @ (heads[t] - heads[c]), x) @ Wp
        world.append(Wc)
        local.append(Wp.T @ Wc)  # "local-ref": relative rotation in world-aligned axes
    body_pose = matrix_to_axis_angle(torch.stack(local[1:]))[None].flatten(1)  # [1, (J-1)*3]
    return torch.stack(world), body_pose


def _smpl_pose_from_world(
    model, world: torch.Tensor, anny_names: list[str], rest: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """SMPL global_orient [n, 3], body_pose [n, Jp*3] whose joints turn like the mapped Anny bones.

    ``model``: an SMPL-family model (its joint names, parents and ``body_pose`` size), or None for SMPL.
    ``world`` [n, J_anny, 3, 3]: Anny bones' world rotations relative to Anny's zero pose; ``rest`` [J_anny, 3, 3]:
    the same for the SMPL model's rest pose (:func:`anny_tpose`; None: Anny's zero pose). SMPL joint ``j``
    mapped to bone ``b`` (:data:`SMPL_FROM_ANNY`) gets the global rotation ``world[b] rest[b]^T`` (its segment
    goes from the rest pose to the bone's posed direction); unmapped joints follow their parent.
    """
    if model is None:
        from human3d.body.smpl import SMPL_JOINT_NAMES

        names = list(SMPL_JOINT_NAMES)
        parents = [-1] + [names.index(_SMPL_PARENT[j]) for j in names[1:]]
        jp = len(names) - 1
    else:
        names = list(model.joint_names)
        parents = [int(p) for p in model.parents]
        jp = model.parameter_shapes()["body_pose"][0] // 3
    n = world.shape[0]
    eye = torch.eye(3, dtype=world.dtype).expand(n, 3, 3)
    G = []
    for j, name in enumerate(names):
        src = SMPL_FROM_ANNY.get(name)
        if src is not None:
            b = anny_names.index(src)
            G.append(world[:, b] if rest is None else world[:, b] @ rest[b].to(world).T)
        else:
            G.append(G[parents[j]] if parents[j] >= 0 else eye)
    local = [G[0]] + [G[parents[j]].transpose(-1, -2) @ G[j] for j in range(1, len(names))]
    rv = matrix_to_axis_angle(torch.stack(local, 1))  # [n, J, 3]
    return rv[:, 0], rv[:, 1 : 1 + jp].reshape(n, -1)


@torch.no_grad()
def smpl_pose_from_anny(
    global_orient: torch.Tensor, body_pose: torch.Tensor, model=None, reference=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert an AnnyBody pose (``global_orient`` [n, 3], ``body_pose`` [n, 103*3], "local-ref", canonical
    frame) into an SMPL-family pose (``global_orient`` [n, 3], ``body_pose`` [n, Jp*3]) in which each SMPL joint
    turns like the Anny bone :data:`SMPL_FROM_ANNY` maps to it, relative to SMPL's T-pose rest
    (:func:`anny_tpose`). ``model``: the SMPL-family model (None: SMPL). Float64 inside, returns the input dtype.
    """
    from human3d.motion.retarget import anny_reference

    ref = reference if reference is not None else anny_reference()
    n = global_orient.shape[0]
    D = axis_angle_to_matrix(torch.cat([global_orient[:, None], body_pose.reshape(n, -1, 3)], 1).double())
    world = [D[:, 0]]
    for c in range(1, len(ref.names)):
        world.append(world[ref.parents[c]] @ D[:, c])
    go, bp = _smpl_pose_from_world(model, torch.stack(world, 1), ref.names, anny_tpose(ref)[0])
    return go.to(global_orient.dtype), bp.to(body_pose.dtype)


def _smpl_joint_of_bone(ref) -> list[int]:
    """SMPL joint owning each Anny bone (its skinning weights go there): the joint of the nearest mapped ancestor
    (or the bone itself), except toes -> the foot joint and fingers / metacarpals -> the hand joint."""
    from human3d.body.smpl import SMPL_JOINT_NAMES

    joint_of = {b: SMPL_JOINT_NAMES.index(j) for j, b in SMPL_FROM_ANNY.items()}
    owner = []
    for i, name in enumerate(ref.names):
        side = {"L": "left", "R": "right"}.get(name.rsplit(".", 1)[-1])
        if side and name.startswith("toe"):
            owner.append(SMPL_JOINT_NAMES.index(f"{side}_foot"))
        elif side and name.startswith(("finger", "metacarpal")):
            owner.append(SMPL_JOINT_NAMES.index(f"{side}_hand"))
        else:
            b = i
            while ref.names[b] not in joint_of:
                b = ref.parents[b]
            owner.append(joint_of[ref.names[b]])
    return owner


@torch.no_grad()
def smpl_data_from_anny(num_betas: int = 10, samples: int = 64, seed: int = 0, regressor_size: int = 320,
                        dtype=None) -> dict:  # fmt: skip
    """Arrays of an SMPL-format model file (the official keys) derived from Anny: a real human body with SMPL's
    24 joints, kinematic tree and conventions, for testing SMPL code paths where the licensed files are absent.

    * ``v_template`` [V, 3]: the mean of ``samples`` Anny bodies (random phenotypes: gender uniform, age
      teen to older adult, the others in [0.2, 0.8]) in SMPL's rest pose, a T-pose (:func:`anny_tpose`);
      root joint at the origin; Anny's 13,718 vertices (not SMPL's 6,890), permuted so that the vertex indices of
      :data:`human3d.body.smpl.VERTEX_IDS` (nose, eyes, ears, toes, heels) are the Anny vertices nearest to
      Anny's own COCO keypoints; ``f``: Anny's triangles.
    * ``shapedirs`` [V, 3, num_betas]: principal components of those bodies, scaled by their standard deviation
      (betas ~ N(0, 1) span the sampled population, as SMPL's do).
    * ``J_regressor`` [24, V] (sparse, rows sum to one): joint ``j`` blends ``regressor_size`` template vertices
      around it (the nearest ones in each octant), weights fitted by ridge least squares so that it follows the
      head of the Anny bone :data:`SMPL_FROM_ANNY` maps to it across the sampled shapes (1.4 mm mean error on
      held-out shapes, 3 mm for the worst joint; unlike SMPL's regressor, some weights are negative).
    * ``weights`` [V, 24]: Anny's skinning weights summed per owning SMPL joint (:func:`_smpl_joint_of_bone`).
    * ``posedirs`` [V, 3, 207]: zeros (Anny has no pose correctives); ``kintree_table``: SMPL's tree.

    Poses map exactly for single-bone limbs: the SMPL joint rotating like its Anny bone (relative to the T-pose,
    :func:`smpl_pose_from_anny`) moves the same vertices about (within ~1 mm) the same point. Anny's trunk and neck have more
    bones than SMPL's, so there the derived model bends in fewer places than Anny would.
    """
    import numpy as np
    import scipy.sparse as sp

    from human3d.body.anny import AnnyBody
    from human3d.motion.retarget import anny_reference
    from human3d.body.smpl import SMPL_JOINT_NAMES, VERTEX_IDS

    dtype = np.float64 if dtype is None else dtype
    body = AnnyBody(skinning="lbs", dtype=torch.float64)
    ref = anny_reference()
    _, tpose = anny_tpose(ref)
    g = torch.Generator().manual_seed(seed)
    ph = 0.2 + 0.6 * torch.rand(samples, 6, generator=g, dtype=torch.float64)
    ph[:, 0] = torch.rand(samples, generator=g, dtype=torch.float64)  # gender
    ph[:, 1] = 0.5 + 0.4 * torch.rand(samples, generator=g, dtype=torch.float64)  # age: teen to older adult
    verts, heads = [], []
    for chunk in ph.split(64):
        p = body.default_params(chunk.shape[0])  # float64
        p["phenotypes"] = chunk
        p["body_pose"] = tpose.expand(chunk.shape[0], -1)
        out = body(p)
        verts.append(out.vertices)
        heads.append(out.joints)
    X = torch.cat(verts).numpy()  # [N, V, 3]
    H = torch.cat(heads).numpy()  # [N, 104, 3]
    N, V = X.shape[:2]
    mean = X.mean(0)  # [V, 3]
    D = (X - mean).reshape(N, -1)  # [N, V*3]
    ev, U = np.linalg.eigh(D @ D.T)  # PCA through the small Gram matrix: D = U S Vt, S^2 = ev
    U = U[:, ::-1][:, :num_betas]  # [N, num_betas] leading components
    shapedirs = (U.T @ D).T.reshape(V, 3, num_betas) / math.sqrt(N - 1)  # Vt^T S / sqrt(N-1): one std per beta
    betas = U * math.sqrt(N - 1)  # [N, num_betas] each sample's coefficients (unit variance)
    Xr = mean + np.einsum("vds,ns->nvd", shapedirs, betas)  # [N, V, 3] the samples as the linear model has them

    bones = [ref.index(SMPL_FROM_ANNY[j]) for j in SMPL_JOINT_NAMES]
    rows, cols, vals = [], [], []
    for j, b in enumerate(bones):
        target = H[:, b]  # [N, 3]
        # candidates: the nearest vertices in each octant around the joint, so that it lies inside their hull
        rel = mean - target.mean(0)  # [V, 3]
        octant = (rel > 0) @ np.array([1, 2, 4])  # [V]
        order = np.argsort((rel**2).sum(1))
        cand = np.concatenate([order[octant[order] == o][: regressor_size // 8] for o in range(8)])
        A = Xr[:, cand].transpose(0, 2, 1).reshape(N * 3, -1)  # [N*3, k]
        k = len(cand)
        # min |A w - y|^2 + lam |w - 1/k|^2  subject to  sum(w) = 1  (KKT system)
        lam = 1e-6 * np.trace(A.T @ A) / k
        kkt = np.block([[A.T @ A + lam * np.eye(k), np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
        w = np.linalg.solve(kkt, np.concatenate([A.T @ target.reshape(-1) + lam / k, [1.0]]))[:k]
        rows += [j] * k
        cols += cand.tolist()
        vals += w.tolist()
    J_regressor = sp.csr_matrix((vals, (rows, cols)), shape=(len(bones), V))

    owner = _smpl_joint_of_bone(ref)
    M = np.zeros((len(ref.names), len(SMPL_JOINT_NAMES)))
    M[np.arange(len(owner)), owner] = 1.0
    weights = body.anny.dense_vertex_bone_weights.double().numpy() @ M  # [V, 24]

    # Vertex order: SMPL's keypoint vertex ids pick the Anny vertices nearest Anny's COCO keypoints.
    kp = body.keypoint_weights.double().numpy() @ mean  # [23, 3]
    perm = np.arange(V)  # new index -> old index
    where = np.arange(V)  # old index -> new index
    picked = {}
    for name, new in VERTEX_IDS["smplh"].items():
        old = int(np.argmin(((mean - kp[body.keypoint_labels.index(name)]) ** 2).sum(1)))
        a, b = where[old], new  # swap the vertices at new positions a and b
        perm[a], perm[b] = perm[b], perm[a]
        where[perm[a]], where[perm[b]] = a, b
        picked[new] = old
    if any(perm[new] != old for new, old in picked.items()):  # pragma: no cover - two keypoints on one vertex
        raise ValueError("smpl_data_from_anny: keypoint vertices collide")
    faces = where[body.faces.numpy()].astype(np.uint32)
    J_regressor = sp.csc_matrix(J_regressor[:, perm])
    parents = [-1] + [SMPL_JOINT_NAMES.index(_SMPL_PARENT[j]) for j in SMPL_JOINT_NAMES[1:]]
    kintree = np.stack([np.array(parents, dtype=np.int64) % (2**32), np.arange(len(parents))]).astype(np.int64)
    v_template = mean[perm]
    return {
        "v_template": v_template.astype(dtype),
        "f": faces,
        "shapedirs": shapedirs[perm].astype(dtype),
        "posedirs": np.zeros((V, 3, 9 * (len(parents) - 1)), dtype),
        "J_regressor": J_regressor,
        "weights": weights[perm].astype(dtype),
        "kintree_table": kintree,
        "J": np.asarray(J_regressor @ v_template),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


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
    fps: float = 10.0,
) -> SyntheticSet:
    """``n`` synthetic persons for ``model`` (Anny or SMPL family): mocap pose, random shape, random yaw.

    ``clips`` / ``fps``: where the poses come from (:func:`mocap_anny_poses`)."""
    g = torch.Generator().manual_seed(seed + 1)
    go, bp, world = mocap_anny_poses(n, seed, clips, data_root, fps)
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
        from human3d.motion.retarget import anny_reference

        ref = anny_reference()
        go_s, bp_s = _smpl_pose_from_world(model, world, ref.names, anny_tpose(ref)[0])
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
