"""Retargeting mocap to Anny: rotation helpers (closed forms), rig detection, and on real clips: AnnyBody's posed
bone directions match the mocap's, a T-pose gives horizontal arms, hinges stay hinges, a walk looks like a walk."""

from __future__ import annotations

import math

import pytest
import torch

from human3d.motion.retarget import (
    ANNY_ROLES,
    SPECS,
    calibrate,
    calibrate_rig,
    detect_spec,
    minimal_rotation,
    retarget,
    segment_directions,
    swing_twist,
    up_matrix,
)
from human3d.motion.bvh import read_bvh
from human3d.motion.mocap import load_motion, trim_start
from human3d.data.paths import shared_data_dir
from human3d.errors import InvalidInputError
from human3d.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

DATA = shared_data_dir()
MORE = DATA / "mocap_bvh_more"
WALK_EXPMAP = MORE / "cmu_expmap_li2018/train/walking/walking_1_stride4.txt"


@pytest.fixture(scope="module")
def body():
    from human3d.body.anny import AnnyBody

    return AnnyBody(skinning="lbs")


def test_minimal_rotation_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(200, 3, generator=g, dtype=torch.float64), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(200, 3, generator=g, dtype=torch.float64), dim=-1)
    R = minimal_rotation(a, b)
    torch.testing.assert_close((R @ a[..., None])[..., 0], b)
    rv = matrix_to_axis_angle(R)
    torch.testing.assert_close(rv.norm(dim=-1), torch.acos((a * b).sum(-1)))  # angle = arccos(a.b)
    torch.testing.assert_close((rv * a).sum(-1), torch.zeros(200, dtype=torch.float64))  # axis perpendicular
    Rm = minimal_rotation(a[:5], -a[:5])  # antiparallel: a half turn that still maps a to -a
    torch.testing.assert_close((Rm @ a[:5, :, None])[..., 0], -a[:5])
    torch.testing.assert_close(Rm @ Rm.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(5, 3, 3))


def test_swing_twist_decomposition():
    g = torch.Generator().manual_seed(1)
    R = axis_angle_to_matrix(torch.randn(100, 3, generator=g, dtype=torch.float64))
    n = torch.nn.functional.normalize(torch.randn(100, 3, generator=g, dtype=torch.float64), dim=-1)
    S, T = swing_twist(R, n)
    torch.testing.assert_close(S @ T, R)
    torch.testing.assert_close((T @ n[..., None])[..., 0], n)  # the twist keeps its axis
    torch.testing.assert_close((matrix_to_axis_angle(S) * n).sum(-1), torch.zeros(100, dtype=torch.float64))


def test_rig_detection():
    expected = {
        DATA / "cmu_mocap_bvh_subject131/131_01.bvh": "cmu_3dsmax",
        MORE / "cmu_bvh/01_01.bvh": "cmu_mb",
        MORE / "cmu_bvh/salsa/60_01_scaled_30fps.bvh": "cmu_daz",
        MORE / "animated_drawings_bvh/fair1_dab.bvh": "fair1",
        MORE / "animated_drawings_bvh/rokoko_jesse_dance.bvh": "mixamo",
        MORE / "bandai_namco_ds1_CC-BY-NC-ND-4.0/data/dataset-1_bow_angry_001.bvh": "bandai",
    }
    for path, name in expected.items():
        assert detect_spec(read_bvh(path).names).name == name, path
    assert detect_spec(load_motion(WALK_EXPMAP).names).name == "cmu_3dsmax"
    with pytest.raises(InvalidInputError, match="no known mocap rig"):
        detect_spec(["pelvis", "thigh", "shin"])
    assert set(SPECS) == {"cmu_3dsmax", "cmu_mb", "cmu_daz", "fair1", "mixamo", "bandai"}


CLIPS = [
    (DATA / "cmu_mocap_bvh_subject131/131_01.bvh", slice(400, 700, 25)),
    (MORE / "cmu_bvh/salsa/60_03_scaled_30fps.bvh", slice(50, 350, 25)),
    (MORE / "animated_drawings_bvh/fair1_zombie.bvh", slice(100, 700, 50)),
    (MORE / "bandai_namco_ds1_CC-BY-NC-ND-4.0/data/dataset-1_kick_normal_001.bvh", slice(0, 350, 30)),
    (WALK_EXPMAP, slice(1, None, 7)),
]


@pytest.mark.parametrize("path, frames", CLIPS, ids=lambda v: getattr(v, "stem", ""))
def test_posed_anny_bones_point_like_the_mocap(body, path, frames):
    """The oracle is AnnyBody's forward pass (not the retargeter's own chain): feed the body_pose and compare the
    posed segment directions with the mocap FK, for every mapped limb segment, on real frames."""
    m = load_motion(path)
    spec = detect_spec(m.names)
    cal = calibrate(m, spec)  # each clip on its own reference pose and hinge statistics
    sub = m.slice(frames)
    r = retarget(sub, calibration=cal)
    with torch.no_grad():
        out = body(global_orient=r.global_orient, body_pose=r.body_pose, transl=r.transl)
    pos, _ = sub.forward_kinematics()
    pos = pos @ up_matrix(spec.up).T
    checked = 0
    for role, bm in spec.bones.items():
        h, tail = ANNY_ROLES[role][1]
        if role in ("trunk", "neck") or role.startswith("foot") or tail is None or bm.calib is None:
            continue  # feet: neutral in the reference pose, not direction-matched (see NEUTRAL_AT_REFERENCE)
        if bm.calib[1].endswith(":end"):
            continue
        da = segment_directions(out.joints.double(), body.joint_names, [(h, tail)])[:, 0]
        dm = segment_directions(pos, m.names, [bm.calib])[:, 0]
        cos = (da * dm).sum(-1)
        assert float(cos.min()) > 0.95, (role, float(cos.min()))
        checked += 1
    assert checked >= 10
    # The trunk is matched by one tilt spread over five bones: direction close, not exact.
    da = segment_directions(out.joints.double(), body.joint_names, [("spine05", "neck01")])[:, 0]
    dm = segment_directions(pos, m.names, [spec.bones["trunk"].calib])[:, 0]
    assert float((da * dm).sum(-1).min()) > 0.9


def test_t_pose_gives_horizontal_arms_and_vertical_legs(body):
    """CMU MotionBuilder rest pose (all channels zero) is a T-pose: Anny's arms must come out horizontal."""
    m = read_bvh(MORE / "cmu_bvh/01_01.bvh", scale=SPECS["cmu_mb"].scale).to_motion()
    rest = m.slice(slice(0, 1))
    rest.rotations = torch.eye(3, dtype=torch.float64).expand_as(rest.rotations).clone()
    r = retarget(rest, calibration=calibrate(m, hinge=False))
    with torch.no_grad():
        J = body(global_orient=r.global_orient, body_pose=r.body_pose).joints[0]
    n = body.joint_names
    for s, sign in (("L", 1.0), ("R", -1.0)):
        arm = J[n.index(f"wrist.{s}")] - J[n.index(f"upperarm01.{s}")]
        assert abs(float(arm[1])) < 0.03 and float(arm[0]) * sign > 0.45  # horizontal, pointing sideways
        leg = J[n.index(f"foot.{s}")] - J[n.index(f"upperleg01.{s}")]
        assert float(leg[1]) < -0.7  # the leg points down
    head = J[n.index("head")]
    assert float(head[1]) > 0.5 and abs(float(head[0])) < 0.03  # upright


def _hinge_fraction(rotvecs: torch.Tensor, axis: torch.Tensor) -> float:
    ang = rotvecs.norm(dim=-1)
    return float((rotvecs @ axis).abs().sum() / ang.sum())


def test_elbows_and_knees_stay_hinges():
    m = load_motion(DATA / "cmu_mocap_bvh_subject131/131_01.bvh").subsample(30)
    r = retarget(m)
    bp = r.body_pose.view(-1, 103, 3).double()
    from human3d.motion.retarget import anny_reference

    ref = anny_reference()
    for s in ("L", "R"):
        knee = bp[:, ref.index(f"lowerleg01.{s}") - 1]
        assert _hinge_fraction(knee, torch.tensor([1.0, 0, 0], dtype=torch.float64)) > 0.9
        upper = ref.segment(f"upperarm01.{s}", f"lowerarm01.{s}")
        axis = torch.cross(upper, ref.segment(f"lowerarm01.{s}", f"wrist.{s}"), dim=0)
        elbow = bp[:, ref.index(f"lowerarm01.{s}") - 1]
        assert _hinge_fraction(elbow, axis / axis.norm()) > 0.9


def test_forearm_twist_options_keep_the_hand_direction(body):
    m = load_motion(DATA / "cmu_mocap_bvh_subject131/131_02.bvh").slice(slice(300, 900, 50))
    cal = calibrate(m)
    full = retarget(m, calibration=cal)
    none = retarget(m, calibration=cal, forearm_twist="none")
    n = body.joint_names
    lo2 = [n.index("lowerarm02.L") - 1, n.index("lowerarm02.R") - 1]
    assert float(none.body_pose.view(-1, 103, 3)[:, lo2].abs().max()) == 0.0
    assert float(full.body_pose.view(-1, 103, 3)[:, lo2].norm(dim=-1).max()) > 0.05
    with torch.no_grad():
        a = body(global_orient=full.global_orient, body_pose=full.body_pose).joints
        b = body(global_orient=none.global_orient, body_pose=none.body_pose).joints
    for s in ("L", "R"):
        da = segment_directions(a, n, [(f"wrist.{s}", f"finger3-1.{s}")])
        db = segment_directions(b, n, [(f"wrist.{s}", f"finger3-1.{s}")])
        assert float((da * db).sum(-1).min()) > 0.97  # dropping the pronation barely moves the hand's direction
    with pytest.raises(InvalidInputError, match="forearm_twist"):
        retarget(m, calibration=cal, forearm_twist="wrist")


def test_a_walk_looks_like_a_walk(body):
    """CMU walking (Li et al. exp-maps): legs swing in antiphase, knees only flex, feet alternate in front,
    the body stays upright and moves forward."""
    m = trim_start(load_motion(WALK_EXPMAP))
    r = retarget(m)
    bp = r.body_pose.view(-1, 103, 3)
    n = body.joint_names
    hip = {s: bp[:, n.index(f"upperleg01.{s}") - 1, 0] for s in "LR"}  # flexion about the canonical X axis
    corr = torch.corrcoef(torch.stack([hip["L"], hip["R"]]))[0, 1]
    assert float(corr) < -0.5
    for s in "LR":
        knee = bp[:, n.index(f"lowerleg01.{s}") - 1, 0]
        assert float((knee > -0.1).float().mean()) > 0.95 and float(knee.max()) > 0.6  # flexes, never hyperextends
    with torch.no_grad():
        out = body(global_orient=r.global_orient, body_pose=r.body_pose, transl=r.transl)
    J = out.joints
    # Body facing from the root rotation; feet alternate in front along it.
    R0 = axis_angle_to_matrix(r.global_orient.double())
    fwd = R0[:, :, 2]  # canonical +Z of the root
    d = ((J[:, n.index("foot.L")] - J[:, n.index("foot.R")]).double() * fwd).sum(-1)
    assert float(d.max()) > 0.2 and float(d.min()) < -0.2
    sign_changes = int(((d[1:] > 0) != (d[:-1] > 0)).sum())
    assert sign_changes >= 3
    assert bool((J[:, n.index("head"), 1] > J[:, 0, 1] + 0.4).all())  # upright
    feet = torch.minimum(J[:, n.index("foot.L"), 1], J[:, n.index("foot.R"), 1])
    assert bool((J[:, 0, 1] > feet + 0.6).all())
    travel = (r.transl[-1] - r.transl[0]).double()
    assert float(travel.norm()) > 1.5  # metres walked
    assert float((travel / travel.norm() * fwd.mean(0) / fwd.mean(0).norm()).sum()) > 0.8  # walks forwards


def test_calibrate_rig_shares_hinge_twists():
    paths = [MORE / "animated_drawings_bvh" / f"fair1_{n}.bvh" for n in ("dab", "jumping")]
    ms = [trim_start(load_motion(p)).subsample(15) for p in paths]
    cals = calibrate_rig(ms)
    assert len(cals) == len(ms) and cals[0] is not cals[1]  # own rest poses
    assert cals[0].hinge_twists and all(c.hinge_twists == cals[0].hinge_twists for c in cals)  # pooled twists
    assert set(cals[0].hinge_twists) <= {"upperarm.L", "upperarm.R", "thigh.L", "thigh.R"}
    with pytest.raises(InvalidInputError):
        calibrate_rig([])
    with pytest.raises(InvalidInputError, match="hinge_clips"):
        calibrate_rig(ms, hinge_clips=[True])
    assert all(math.isfinite(v) for v in cals[0].hinge_twists.values())
