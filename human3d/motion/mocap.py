"""Motion-capture corpora for pose priors: loaders beyond BVH, the clip registry with licences, and the pose
dataset (mocap retargeted to Anny, as the pose-prior group vectors).

Sources (read from ``$HUMAN3D_MOCAP_ROOT``, else :func:`human3d.data.paths.shared_data_dir`; never copied into the
repo):

=================================  ======================  ==============================  ==========
folder                             rig (retarget spec)     licence                         use
=================================  ======================  ==============================  ==========
cmu_mocap_bvh_subject131/          cmu_3dsmax              CMU (free, credit requested)    train
mocap_bvh_more/cmu_bvh/01_01.bvh   cmu_mb (frame 0 = T)    CMU                             train
mocap_bvh_more/cmu_bvh/14_14.bvh   cmu_3dsmax              CMU                             train
mocap_bvh_more/cmu_bvh/salsa/      cmu_daz                 CMU                             train
mocap_bvh_more/cmu_expmap_li2018/  cmu_3dsmax (T rest)     CMU data, MIT repo              train
mocap_bvh_more/animated_drawings*  fair1, mixamo           MIT                             train
mocap_bvh_more/bandai_namco_ds1*   bandai                  CC BY-NC-ND 4.0                 eval only
mocap_bvh_more/deepmimic_human*   deepmimic (JSON)        MIT                             opt-in
=================================  ======================  ==============================  ==========

Whole clips are held out for validation (``HOLDOUT``); Bandai Namco clips are evaluation-only and never enter
shipped weights. The 15 DeepMimic clips (:func:`~human3d.motion.deepmimic.read_deepmimic`, resampled to 30 fps;
``humanoid3d_walk`` held out) are listed only with ``list_clips(include_deepmimic=True)``: the shipped priors
were trained without them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch

from human3d.errors import DatasetError, InvalidInputError, check_file
from human3d.geometry.rotations import axis_angle_to_matrix
from human3d.motion.bvh import Motion, read_bvh
from human3d.motion.deepmimic import read_deepmimic
from human3d.motion.retarget import anny_reference, calibrate_rig, detect_spec, retarget

__all__ = [
    "CMU38_NAMES",
    "ClipInfo",
    "HOLDOUT",
    "mocap_root",
    "read_cmu_expmap",
    "read_deepmimic",
    "load_motion",
    "list_clips",
    "trim_start",
    "PoseDataset",
    "build_pose_dataset",
    "CMU_CREDIT",
]

CMU_CREDIT = (
    "The data used in this project was obtained from mocap.cs.cmu.edu. "
    "The database was created with funding from NSF EIA-0196217."
)

# Joint names of the CMU ASF 38-joint skeleton of Li et al. (2018), in the cgspeed 3dsMax-friendly BVH naming;
# None marks an end site (folded into its parent's End Site offset).
CMU38_NAMES: list[str | None] = [
    "Hips", "LHipJoint", "LeftHip", "LeftKnee", "LeftAnkle", "LeftToe", None,
    "RHipJoint", "RightHip", "RightKnee", "RightAnkle", "RightToe", None,
    "lowerback", "Chest", "Chest2", "lowerneck", "Neck", "Head", None,
    "LeftCollar", "LeftShoulder", "LeftElbow", "LeftWrist", "lhand", "LFingers", None, "LThumb", None,
    "RightCollar", "RightShoulder", "RightElbow", "RightWrist", "rhand", "RFingers", None, "RThumb", None,
]  # fmt: skip


def mocap_root() -> Path:
    """Folder holding ``cmu_mocap_bvh_subject131/`` and ``mocap_bvh_more/`` (``$HUMAN3D_MOCAP_ROOT`` or the shared
    data folder)."""
    from human3d.data.paths import shared_data_dir

    env = os.environ.get("HUMAN3D_MOCAP_ROOT")
    return Path(env) if env else shared_data_dir()


def read_cmu_expmap(path, skeleton=None, fps: float = 30.0, scale: float = 0.056444) -> Motion:
    """Read a CMU exponential-map CSV of Li et al. (2018) (117 values per row: root position in ASF units, then 38
    axis-angle triplets) with its skeleton JSON (``skeleton_cmu38_li2018.json``, default: beside the ``train/``
    folder). The source's forward kinematics uses row vectors (``R_i = expmap(r_i) R_parent``); as column-vector
    local rotations that is ``expmap(r_i)^T = expmap(-r_i)``. End joints become End Site offsets; Y is up."""
    path = check_file(path, "expmap file", suffixes=(".txt", ".csv"))
    if skeleton is None:
        skeleton = Path(path).parent.parent.parent / "skeleton_cmu38_li2018.json"
    skeleton = check_file(skeleton, "expmap skeleton", suffixes=(".json",))
    try:
        sk = json.loads(Path(skeleton).read_text())
        parents = [int(p) for p in sk["parent"]]
        offsets = torch.tensor(sk["offset_asf_units"], dtype=torch.float64) * scale
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{skeleton}: malformed skeleton JSON ({e})") from None
    if len(parents) != 38 or offsets.shape != (38, 3):
        raise DatasetError(f"{skeleton}: expected 38 joints, got {len(parents)}")
    try:
        data = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as e:
        raise DatasetError(f"{path}: malformed expmap CSV ({e})") from None
    if data.shape[1] != 117 or data.shape[0] == 0 or not np.isfinite(data).all():
        raise DatasetError(f"{path}: expected rows of 117 finite values, got shape {data.shape}")
    data = torch.from_numpy(data)
    rotvecs = data[:, 3:].reshape(-1, 38, 3)
    keep = [i for i, n in enumerate(CMU38_NAMES) if n is not None]
    remap = {old: new for new, old in enumerate(keep)}
    names = [CMU38_NAMES[i] for i in keep]
    new_parents = [remap[parents[i]] if parents[i] >= 0 else -1 for i in keep]
    end_offsets = torch.full((len(keep), 3), float("nan"), dtype=torch.float64)
    for i, n in enumerate(CMU38_NAMES):
        if n is None:
            end_offsets[remap[parents[i]]] = offsets[i]
    rotations = axis_angle_to_matrix(-rotvecs[:, keep])  # [F, J, 3, 3]
    return Motion(
        names=names,
        parents=new_parents,
        offsets=offsets[keep].clone(),
        end_offsets=end_offsets,
        rotations=rotations,
        root_positions=data[:, :3] * scale,
        fps=float(fps),
        source=str(path),
    )


def _is_json(path: Path) -> bool:
    """Whether the file's first non-blank character opens a JSON object (DeepMimic motions are ``.txt``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(256).lstrip()
    except OSError:
        return False
    return head.startswith(b"{")


def load_motion(path, scale: float | None = None) -> Motion:
    """Load a BVH (units from its detected rig unless ``scale`` is given), a CMU expmap CSV or a DeepMimic JSON
    motion (30 fps) as a :class:`Motion`."""
    p = Path(path)
    if p.suffix.lower() == ".bvh":
        if scale is None:
            head = read_bvh(p)
            scale = detect_spec(head.names).scale
        return read_bvh(p, scale=scale).to_motion()
    if p.suffix.lower() in (".txt", ".csv", ".json"):
        if p.suffix.lower() != ".csv" and _is_json(p):
            return read_deepmimic(p)
        return read_cmu_expmap(p)
    raise InvalidInputError(f"path: expected a .bvh or an expmap .txt file, got '{p}'")


@dataclasses.dataclass(frozen=True)
class ClipInfo:
    """One mocap clip of the pose corpus."""

    path: str
    """Path relative to :func:`mocap_root`."""
    rig: str
    """Rig group: clips of one group share one calibration (same skeleton and rest pose)."""
    licence: str
    """Licence tag: ``"CMU"``, ``"MIT"``, ``"MIT/CMU"`` or ``"CC-BY-NC-ND-4.0"``."""
    split: str
    """``"train"``, ``"val"`` (held-out whole clip) or ``"eval"`` (non-commercial evaluation-only data)."""
    t_pose_start: bool = False
    """The clip starts with a calibration T-pose: drop it, and the frames that hold it (see :func:`trim_start`)."""

    @property
    def name(self) -> str:
        return Path(self.path).stem


# Whole clips kept out of training (validation / test of the priors).
HOLDOUT = {
    "131_03",
    "60_15_scaled_30fps",
    "fair1_wave_hello",
    "basketball_5_stride4",
    "jumping_5_stride4",
    "running_5_stride4",
    "soccer_5_stride4",
    "walking_5_stride4",
    "humanoid3d_walk",
}


def trim_start(motion: Motion, tol: float = 0.1) -> Motion:
    """Drop the first frame and every following frame whose joint rotations all stay within ``tol`` radians of it
    (a held calibration T-pose)."""
    from human3d.geometry.rotations import matrix_to_axis_angle

    R0 = motion.rotations[:1, 1:]  # [1, J-1, 3, 3]
    dev = matrix_to_axis_angle(R0.transpose(-1, -2) @ motion.rotations[:, 1:]).norm(dim=-1).amax(-1)  # [F]
    moving = (dev > tol).nonzero()
    start = int(moving[0]) if len(moving) else motion.num_frames
    if start >= motion.num_frames:
        raise DatasetError(f"{motion.source}: the clip never leaves its first pose")
    return motion.slice(slice(start, None))


def list_clips(root=None, include_eval: bool = True, include_deepmimic: bool = False) -> list[ClipInfo]:
    """The corpus, clip by clip (only files present under ``root`` are listed).

    ``include_eval``: add the evaluation-only (non-commercial) Bandai Namco clips. ``include_deepmimic``: add the
    15 DeepMimic humanoid3d clips (MIT; rig ``"deepmimic"``; ``humanoid3d_walk`` is ``"val"``). Off by default so
    that the default corpus stays the one the shipped priors were trained on.
    """
    root = Path(root) if root is not None else mocap_root()
    more = "mocap_bvh_more"
    out: list[ClipInfo] = []

    def add(rel: str, rig: str, licence: str, t_pose_start: bool = False):
        if (root / rel).is_file():
            name = Path(rel).stem
            split = "eval" if licence.startswith("CC-BY-NC") else ("val" if name in HOLDOUT else "train")
            out.append(ClipInfo(rel, rig, licence, split, t_pose_start))

    for p in sorted((root / "cmu_mocap_bvh_subject131").glob("*.bvh")):
        add(str(p.relative_to(root)), "cmu_3dsmax_bvh", "CMU")
    add(f"{more}/cmu_bvh/14_14.bvh", "cmu_3dsmax_bvh", "CMU")
    add(f"{more}/cmu_bvh/01_01.bvh", "cmu_mb", "CMU", t_pose_start=True)
    for p in sorted((root / more / "cmu_bvh" / "salsa").glob("*.bvh")):
        add(str(p.relative_to(root)), "cmu_daz", "CMU", t_pose_start=True)
    for p in sorted((root / more / "cmu_expmap_li2018" / "train").glob("*/*.txt")):
        add(str(p.relative_to(root)), "cmu_expmap", "MIT/CMU", t_pose_start=True)
    for p in sorted((root / more / "animated_drawings_bvh").glob("fair1_*.bvh")):
        add(str(p.relative_to(root)), "fair1", "MIT", t_pose_start=True)
    add(f"{more}/animated_drawings_bvh/rokoko_jesse_dance.bvh", "mixamo", "MIT")
    if include_deepmimic:
        for p in sorted((root / more / "deepmimic_humanoid3d").glob("humanoid3d_*.txt")):
            add(str(p.relative_to(root)), "deepmimic", "MIT")
    if include_eval:
        for p in sorted((root / more).glob("bandai_namco_ds1_CC-BY-NC-ND-4.0/data/*.bvh")):
            add(str(p.relative_to(root)), "bandai", "CC-BY-NC-ND-4.0")
    return out


@dataclasses.dataclass
class PoseDataset:
    """Mocap poses retargeted to Anny, as pose-prior vectors (see :mod:`generative.priors.pose`)."""

    x: torch.Tensor
    """``[N, 3 * G]`` float32 group axis-angles."""
    clip: torch.Tensor
    """``[N]`` int64 index into ``clips`` of each row."""
    clips: list[ClipInfo]
    """The clips, in the order they were read."""
    groups: list[tuple[str, list[str]]]
    """The pose groups (names and their Anny bones)."""
    body_pose_joints: list[str]
    """AnnyBody's body_pose joint names."""

    def subset(self, split: str | tuple[str, ...]) -> torch.Tensor:
        """Rows of the clips whose ``split`` is ``split`` (or one of them)."""
        splits = (split,) if isinstance(split, str) else tuple(split)
        keep = torch.tensor([c.split in splits for c in self.clips], dtype=torch.bool)
        return self.x[keep[self.clip]] if len(self.clip) else self.x[:0]

    def clip_names(self, split: str | None = None) -> list[str]:
        return [c.name for c in self.clips if split is None or c.split == split]


# Rigs calibrated on one reference clip (their rest pose is not a human pose: bones along local axes), and the
# clip whose first frame is the neutral reference stance.
_GROUP_REFERENCE = {"bandai": "dataset-1_walk_normal_001", "mixamo": "rokoko_jesse_dance"}


def build_pose_dataset(
    clips: list[ClipInfo] | None = None,
    max_fps: float = 30.0,
    root=None,
    progress: bool = False,
) -> PoseDataset:
    """Retarget ``clips`` (default: :func:`list_clips`) to Anny and turn every frame (subsampled to ``max_fps``)
    into the pose-prior vector.

    Calibration: :func:`human3d.motion.retarget.calibrate_rig` per rig group (``ClipInfo.rig``), the hinge twists
    pooled over the group's training clips (all its clips when it has none, e.g. the evaluation-only Bandai set);
    rigs without a human rest pose use the first frame of ``_GROUP_REFERENCE``'s clip. Forearm twist is dropped
    (``forearm_twist="none"``), as in the fitting pose space.
    """
    from generative.priors.pose import ANNY_PRIOR_GROUPS, group_expand_matrix, groups_from_body_pose

    root = Path(root) if root is not None else mocap_root()
    clips = list_clips(root) if clips is None else list(clips)
    if not clips:
        raise DatasetError(f"no mocap clips found under '{root}'")
    anny = anny_reference()
    joints = anny.names[1:]
    E = group_expand_matrix(ANNY_PRIOR_GROUPS, joints)

    def load(c: ClipInfo) -> Motion:
        m = load_motion(root / c.path)
        return trim_start(m) if c.t_pose_start else m

    rigs: dict[str, list[int]] = {}
    for i, c in enumerate(clips):
        rigs.setdefault(c.rig, []).append(i)
    xs: list[torch.Tensor] = [None] * len(clips)  # type: ignore[list-item]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(clips), desc="retargeting mocap", unit="clip")
    for rig, members in rigs.items():
        ref = _GROUP_REFERENCE.get(rig)
        members = sorted(members, key=lambda i: clips[i].name != ref)  # reference clip first
        motions = [load(clips[i]) for i in members]
        train = [clips[i].split == "train" for i in members]
        cals = calibrate_rig(motions, detect_spec(motions[0].names), anny, hinge_clips=train if any(train) else None)
        for i, m, cal in zip(members, motions, cals):
            r = retarget(m.subsample(max_fps), calibration=cal, anny=anny, forearm_twist="none")
            xs[i] = groups_from_body_pose(r.body_pose.double(), E.double()).float()
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    idx = [torch.full((x.shape[0],), i, dtype=torch.int64) for i, x in enumerate(xs)]
    return PoseDataset(
        x=torch.cat(xs), clip=torch.cat(idx), clips=clips, groups=ANNY_PRIOR_GROUPS, body_pose_joints=joints
    )
