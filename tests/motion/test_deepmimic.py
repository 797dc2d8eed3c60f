"""DeepMimic JSON motions: the shipped clips parse as MANIFEST.tsv says, the column layout is the README's, a
hand-written pose gives closed-form joint positions, keyframes resample by slerp, bad files give clear errors,
and the retargeted walk looks like a walk on Anny."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from human3d.motion.retarget import ANNY_ROLES, SPECS, calibrate, detect_spec, retarget, segment_directions
from human3d.motion.deepmimic import read_deepmimic, read_deepmimic_skeleton
from human3d.motion.mocap import HOLDOUT, build_pose_dataset, list_clips, load_motion
from human3d.data.paths import shared_data_dir
from human3d.errors import DatasetError
from human3d.geometry.rotations import axis_angle_to_matrix, quaternion_to_matrix

MORE = shared_data_dir() / "mocap_bvh_more"
DM = MORE / "deepmimic_humanoid3d"
SKEL = DM / "skeleton_humanoid3d.txt"
WALK = DM / "humanoid3d_walk.txt"
F64 = torch.float64


def _manifest() -> dict[str, dict]:
    with open(MORE / "MANIFEST.tsv", newline="") as f:
        return {r["path"]: r for r in csv.DictReader(f, delimiter="\t") if r["path"].startswith("deepmimic")}


def _rz(theta: float) -> torch.Tensor:
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=F64)


def _ry(theta: float) -> torch.Tensor:
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=F64)


def test_every_clip_parses_as_the_manifest_says():
    rows = _manifest()
    assert len(rows) == 15 and sum(int(r["frames"]) for r in rows.values()) == 1483
    eye = torch.eye(3, dtype=F64)
    for rel, row in rows.items():
        path = MORE / rel
        dur = torch.tensor([f[0] for f in json.loads(path.read_text())["Frames"]], dtype=F64)
        length = float(dur.sum())  # the last keyframe's duration is 0: the clip lasts sum(durations)
        keys = read_deepmimic(path, fps=None)
        assert keys.num_frames == int(row["frames"]), rel
        assert keys.num_frames / length == pytest.approx(float(row["fps"]), abs=0.01), rel  # MANIFEST's rate
        assert keys.num_joints == 15 and keys.names[0] == "root"
        R = keys.rotations
        torch.testing.assert_close(R @ R.transpose(-1, -2), eye.expand_as(R))  # quaternions normalised
        assert bool((torch.linalg.det(R) > 0.999).all())
        m = read_deepmimic(path)  # 30 fps, slerp-resampled
        assert m.fps == 30.0 and m.num_frames == math.floor(length * 30 + 0.05) + 1, rel
        torch.testing.assert_close(m.rotations[0], keys.rotations[0])
        torch.testing.assert_close(m.root_positions[0], keys.root_positions[0])
    # The walk's raw quaternions are unit (to the file's 6 decimals) and its keyframes are 1/30 s apart.
    frames = torch.tensor(json.loads(WALK.read_text())["Frames"], dtype=F64)
    for c in (4, 8, 12, 16, 21, 25, 30, 35, 39):
        assert float((frames[:, c : c + 4].norm(dim=-1) - 1).abs().max()) < 1e-5
    assert read_deepmimic(WALK).num_frames == 39  # 38 intervals of 0.033332 s: the last keyframe is kept


def test_columns_follow_the_readme_layout():
    """Oracle: the README's explicit layout (knees/elbows between their neighbours), hard-coded as column
    indices, against the reader's layout derived from the character file."""
    frames = torch.tensor(json.loads(WALK.read_text())["Frames"], dtype=F64)
    m = read_deepmimic(WALK, fps=None)
    quat = {"chest": 8, "neck": 12, "right_hip": 16, "right_ankle": 21, "right_shoulder": 25,
            "left_hip": 30, "left_ankle": 35, "left_shoulder": 39, "root": 4}  # fmt: skip
    angle = {"right_knee": 20, "right_elbow": 29, "left_knee": 34, "left_elbow": 43}
    for name, c in quat.items():
        torch.testing.assert_close(m.rotations[:, m.index(name)], quaternion_to_matrix(frames[:, c : c + 4]))
    for name, c in angle.items():
        R = m.rotations[:, m.index(name)]
        torch.testing.assert_close(R, torch.stack([_rz(float(a)) for a in frames[:, c]]))  # about local z
    assert bool((frames[:, 20] <= 0).all() and (frames[:, 29] >= 0).all())  # knees flex < 0, elbows > 0
    torch.testing.assert_close(m.root_positions, frames[:, 1:4])
    for name in ("right_wrist", "left_wrist"):  # fixed joints
        torch.testing.assert_close(m.rotations[:, m.index(name)], torch.eye(3, dtype=F64).expand(39, 3, 3))


def _pose_row(dt=0.1, root=(1.0, 0.9, 2.0), yaw=0.0, r_knee=0.0, r_elbow=0.0, l_knee=0.0, neck=None):
    """A 44-value frame in the README order; identity quaternions except the root yaw (about +Y) and the neck."""
    ident = [1.0, 0.0, 0.0, 0.0]
    rq = [math.cos(yaw / 2), 0.0, math.sin(yaw / 2), 0.0]
    nq = ident if neck is None else neck
    # dt, root pos, root quat, chest, neck, r hip, r knee, r ankle, r shoulder, r elbow, l hip, l knee, l ankle, ...
    return [dt, *root, *rq, *ident, *nq, *ident, r_knee, *ident, *ident, r_elbow, *ident, l_knee, *ident, *ident, 0.0]


def _write(tmp_path: Path, frames, name="m.txt", **extra) -> Path:
    p = tmp_path / name
    p.write_text(json.dumps({"Loop": "none", "Frames": frames, **extra}))
    return p


def test_hand_written_pose_closed_form(tmp_path):
    """90 degree right knee and right elbow, the body turned 90 degrees left (facing -Z): ankle and wrist positions
    by hand from the character's offsets."""
    sk = read_deepmimic_skeleton(SKEL)
    assert sk.frame_width == 44
    p = _write(tmp_path, [_pose_row(dt=0.0, yaw=math.pi / 2, r_knee=-math.pi / 2, r_elbow=math.pi / 2)])
    m = read_deepmimic(p, skeleton=SKEL, fps=None)
    pos, _ = m.forward_kinematics()
    J = {n: pos[0, i] for i, n in enumerate(m.names)}
    root = torch.tensor([1.0, 0.9, 2.0], dtype=F64)
    # Ry(90): (x, y, z) -> (z, y, -x). Right hip 0.084887 along +Z (right); thigh 0.421546 and shin 0.40987 down.
    hip = root + torch.tensor([0.084887, 0.0, 0.0], dtype=F64)
    knee = hip + torch.tensor([0.0, -0.421546, 0.0], dtype=F64)
    # Knee -90 degrees about local z: the shin (0, -L, 0) turns to (-L, 0, 0) (backwards), then Ry(90): +Z.
    ankle = knee + torch.tensor([0.0, 0.0, 0.40987], dtype=F64)
    torch.testing.assert_close(J["right_hip"], hip)
    torch.testing.assert_close(J["right_knee"], knee)
    torch.testing.assert_close(J["right_ankle"], ankle)
    # Right shoulder (-0.02405, 0.2435, 0.18311) from the chest (0.236151 above the root); elbow 0.274788 below;
    # elbow +90 degrees: the forearm (0, -0.258947, 0) turns forward (+x local), i.e. -Z after the yaw.
    sh = root + torch.tensor([0.18311, 0.236151 + 0.2435, 0.02405], dtype=F64)
    torch.testing.assert_close(J["right_shoulder"], sh)
    torch.testing.assert_close(J["right_elbow"], sh + torch.tensor([0.0, -0.274788, 0.0], dtype=F64))
    torch.testing.assert_close(J["right_wrist"], sh + torch.tensor([0.0, -0.274788, -0.258947], dtype=F64))
    # The straight left leg: ankle right below the left hip.
    torch.testing.assert_close(J["left_ankle"], root + torch.tensor([-0.084887, -0.831416, 0.0], dtype=F64))
    assert detect_spec(m.names).name == "deepmimic"
    assert set(SPECS) == {"cmu_3dsmax", "cmu_mb", "cmu_daz", "fair1", "mixamo", "bandai"}  # BVH rigs unchanged


def test_resampling_is_slerp_at_constant_rate(tmp_path):
    """Uneven keyframes (0.1 s then 0.3 s): knee angles and root positions interpolate linearly in time, the root
    yaw by slerp (constant angular speed)."""
    rows = [
        _pose_row(dt=0.1, root=(0.0, 0.9, 0.0), yaw=0.0, r_knee=0.0),
        _pose_row(dt=0.3, root=(0.2, 0.9, 0.0), yaw=0.4, r_knee=-0.4),
        _pose_row(dt=0.0, root=(0.8, 0.9, 0.0), yaw=1.6, r_knee=-0.8),
    ]
    m = read_deepmimic(_write(tmp_path, rows), skeleton=SKEL, fps=10)
    assert m.num_frames == 5 and m.fps == 10.0
    t = torch.arange(5, dtype=F64) / 10
    knee = torch.where(t <= 0.1, -4.0 * t, -0.4 - 0.4 * (t - 0.1) / 0.3)
    yaw = torch.where(t <= 0.1, 4.0 * t, 0.4 + 1.2 * (t - 0.1) / 0.3)
    x = torch.where(t <= 0.1, 2.0 * t, 0.2 + 0.6 * (t - 0.1) / 0.3)
    torch.testing.assert_close(m.rotations[:, m.index("right_knee")], torch.stack([_rz(float(a)) for a in knee]))
    torch.testing.assert_close(m.rotations[:, 0], torch.stack([_ry(float(a)) for a in yaw]))
    torch.testing.assert_close(m.root_positions[:, 0], x)
    keys = read_deepmimic(_write(tmp_path, rows, "k.txt"), skeleton=SKEL, fps=None)
    assert keys.num_frames == 3 and keys.fps == pytest.approx(2 / 0.4)


def test_bad_files_raise_clear_errors(tmp_path):
    good = _pose_row()
    cases = {
        "not_json.txt": ("{'Frames': [", "malformed JSON"),
        "no_frames.txt": (json.dumps({"Loop": "none"}), "'Frames'"),
        "empty.txt": (json.dumps({"Frames": []}), "empty"),
        "short_row.txt": (json.dumps({"Frames": [good, good[:43]]}), "row 1 has 43 values, expected 44"),
        "nan.txt": (json.dumps({"Frames": [good, [*good[:5], float("nan"), *good[6:]]]}), "NaN/inf"),
        "text.txt": (json.dumps({"Frames": [[*good[:3], "x", *good[4:]]]}), "non-numeric"),
        "zero_quat.txt": (json.dumps({"Frames": [[*good[:8], 0, 0, 0, 0, *good[12:]]]}), "zero quaternion.*chest"),
        "neg_dt.txt": (json.dumps({"Frames": [[-0.1, *good[1:]], good]}), "durations must be > 0"),
    }
    for name, (text, match) in cases.items():
        p = tmp_path / name
        p.write_text(text)
        with pytest.raises(DatasetError, match=match) as e:
            read_deepmimic(p, skeleton=SKEL)
        assert name in str(e.value)
    with pytest.raises(DatasetError, match="does not exist"):
        read_deepmimic(tmp_path / "missing.txt", skeleton=SKEL)
    with pytest.raises(DatasetError, match="does not exist"):  # default character file beside the motion
        read_deepmimic(_write(tmp_path, [good]))
    bad_sk = tmp_path / "sk.txt"
    bad_sk.write_text(json.dumps({"Skeleton": {"Joints": [{"ID": 0, "Name": "root"}]}}))
    with pytest.raises(DatasetError, match="malformed DeepMimic character"):
        read_deepmimic(_write(tmp_path, [good]), skeleton=bad_sk)


def test_clip_registry_is_opt_in():
    base = list_clips()
    assert base == list_clips(include_deepmimic=False) and not any(c.rig == "deepmimic" for c in base)
    more = [c for c in list_clips(include_deepmimic=True) if c.rig == "deepmimic"]
    assert len(more) == 15 and all(c.licence == "MIT" for c in more)
    assert [c.name for c in more if c.split == "val"] == ["humanoid3d_walk"] and "humanoid3d_walk" in HOLDOUT
    assert all(c.split == "train" for c in more if c.name != "humanoid3d_walk")
    # load_motion tells the DeepMimic .txt (JSON) from the expmap .txt (CSV).
    assert load_motion(WALK).names[0] == "root"
    assert load_motion(MORE / "cmu_expmap_li2018/train/walking/walking_1_stride4.txt").names[0] == "Hips"


@pytest.fixture(scope="module")
def body():
    from human3d.body.anny import AnnyBody

    return AnnyBody(skinning="lbs")


def test_retargeted_walk_looks_like_a_walk(body):
    """Oracle: AnnyBody's forward pass on the retargeted pose (limb directions vs the DeepMimic FK) and gait
    figures: feet alternate in front, knees bend forwards and only flex, the body stays upright and walks forward."""
    m = read_deepmimic(WALK)
    cal = calibrate(m)
    r = retarget(m, calibration=cal, forearm_twist="none")
    with torch.no_grad():
        out = body(global_orient=r.global_orient, body_pose=r.body_pose, transl=r.transl)
    J, n = out.joints.double(), body.joint_names
    pos, _ = m.forward_kinematics()
    for role in ("upperarm.L", "upperarm.R", "forearm.L", "forearm.R", "thigh.L", "thigh.R", "shin.L", "shin.R"):
        da = segment_directions(J, n, [ANNY_ROLES[role][1]])[:, 0]
        dm = segment_directions(pos, m.names, [cal.spec.bones[role].calib])[:, 0]
        assert float((da * dm).sum(-1).min()) > 0.95, role
    da = segment_directions(J, n, [("spine05", "neck01")])[:, 0]
    dm = segment_directions(pos, m.names, [("root", "neck")])[:, 0]
    assert float((da * dm).sum(-1).min()) > 0.9
    # Feet: the DeepMimic foot box is flat at rest, so Anny's foot turns exactly as the ankle frame does, from
    # its zero pose (canonical left/up/forward = DeepMimic -Z/+Y/+X), without data re-levelling.
    assert cal.foot_pitches == {}
    M = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]], dtype=F64)  # canonical -> DeepMimic
    with torch.no_grad():
        zero = body(body.default_params(1)).joints.double()
    _, rot = m.forward_kinematics()
    for s, side in (("L", "left"), ("R", "right")):
        d0 = segment_directions(zero, n, [(f"foot.{s}", f"toe3-1.{s}")])[0, 0]
        want = rot[:, m.index(f"{side}_ankle")] @ M @ d0
        got = segment_directions(J, n, [(f"foot.{s}", f"toe3-1.{s}")])[:, 0]
        assert float((got * want).sum(-1).min()) > 0.9999, s  # < 0.8 deg (falling back to the shin: 3.9 deg)

    fwd = torch.tensor([1.0, 0.0, 0.0], dtype=F64)  # the character walks along +X
    ahead = {s: (J[:, n.index(f"foot.{s}")] - J[:, 0]) @ fwd for s in "LR"}  # ankle ahead of the pelvis
    assert float(torch.corrcoef(torch.stack([ahead["L"], ahead["R"]]))[0, 1]) < -0.8  # feet alternate
    d = ahead["L"] - ahead["R"]
    assert float(d.max()) > 0.2 and float(d.min()) < -0.2
    bp = r.body_pose.view(-1, 103, 3).double()
    for s in "LR":
        knee = bp[:, n.index(f"lowerleg01.{s}") - 1, 0]  # flexion about Anny's lateral axis
        assert float((knee > -0.1).float().mean()) > 0.95 and float(knee.max()) > 0.8
        hip, kn, an = (J[:, n.index(b)] for b in (f"upperleg01.{s}", f"lowerleg01.{s}", f"foot.{s}"))
        bent = knee > 0.5
        assert int(bent.sum()) >= 5 and bool((((kn - (hip + an) / 2) @ fwd)[bent] > 0.03).all())  # knee forwards
    assert bool((J[:, n.index("head"), 1] > J[:, 0, 1] + 0.45).all())  # upright
    travel = r.transl[-1].double() - r.transl[0].double()
    assert float(travel @ fwd) > 1.0 and float(travel.norm()) < 1.05 * float(travel @ fwd)  # ~1.24 m forward
    face = axis_angle_to_matrix(r.global_orient.double())[:, :, 2]  # Anny's canonical forward (+Z) in the world
    assert float((face @ fwd).min()) > 0.9  # Anny faces where the character walks


def test_pose_dataset_pipeline():
    clips = [c for c in list_clips(include_deepmimic=True) if c.name in ("humanoid3d_walk", "humanoid3d_run")]
    ds = build_pose_dataset(clips)
    frames = {c.name: read_deepmimic(MORE.parent / c.path).num_frames for c in clips}
    assert ds.x.shape[0] == sum(frames.values()) and bool(torch.isfinite(ds.x).all())
    assert ds.subset("val").shape[0] == frames["humanoid3d_walk"] == 39
    assert ds.subset("train").shape[0] == frames["humanoid3d_run"] == 25
