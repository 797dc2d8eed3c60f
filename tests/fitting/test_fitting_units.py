"""SMPLify building blocks against closed forms and references: robust loss, limits, similar-triangles camera,
facing rotations, the mesh-free Anny keypoints (vs the full forward), hinge axes (vs SMPLify's table and geometry),
annealing and config validation."""

from __future__ import annotations

import math

import pytest
import torch

from human3d.synth import smpl_files as synth
from human3d.body.smpl import SMPL
from human3d.errors import InvalidInputError
from human3d.fitting.camera_init import (
    body_frame,
    choose_focal,
    default_focal,
    facing_rotations,
    similar_triangles_translation,
)
from human3d.fitting.config import PRIOR_WEIGHTS, SMPLifyConfig
from human3d.body.anny_keypoints import AnnyKeypoints
from human3d.fitting.losses import (
    geman_mcclure,
    hinge_limit_energy,
    keypoint_scale,
    reprojection_energy,
    reprojection_error_px,
)
from human3d.fitting.optim import anneal as _anneal
from human3d.fitting.priors import hinge_angles, make_pose_term, pose_space
from human3d.fitting.stages import perturbed_starts
from human3d.geometry.cameras import make_intrinsics, project_points
from human3d.geometry.rotations import axis_angle_to_matrix


@pytest.fixture(scope="module")
def smpl_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("smpl_fit_units")
    return SMPL(synth.write_pickle(root / "SMPL_NEUTRAL.pkl", synth.make_model_data("smpl", seed=0)))


def test_geman_mcclure_closed_form_and_limits():
    r2 = torch.tensor([0.0, 1e-6, 1.0, 4.0, 1e8])
    s = 2.0
    ref = s**2 * r2 / (s**2 + r2)
    assert torch.allclose(geman_mcclure(r2, s), ref)
    assert geman_mcclure(torch.tensor(1e-6), s) == pytest.approx(1e-6, rel=1e-4)  # quadratic near 0
    assert geman_mcclure(torch.tensor(1e12), s) == pytest.approx(s**2, rel=1e-6)  # saturates


def test_hinge_limit_energy_closed_form():
    a = torch.tensor([[-0.5, 0.0, 3.0]])
    lo = torch.tensor([-0.1, -0.1, -0.1])
    hi = torch.tensor([2.6, 2.6, 2.6])
    assert hinge_limit_energy(a, lo, hi).item() == pytest.approx(0.4**2 + 0.4**2)
    assert hinge_limit_energy(torch.tensor([[1.0]]), torch.tensor([-math.inf]), torch.tensor([math.inf])) == 0


def test_keypoint_scale_and_error():
    kp = torch.tensor([[[0.0, 0.0, 1.0], [30.0, 10.0, 1.0], [500.0, 500.0, 0.0]]])
    assert keypoint_scale(kp).item() == 30.0  # the missing keypoint does not count
    uv = kp[..., :2] + torch.tensor([3.0, 4.0])
    err = reprojection_error_px(uv, torch.ones(1, 3, dtype=torch.bool), kp)
    assert err.item() == pytest.approx(5.0)


def test_default_focal_and_choice():
    assert default_focal(640, 480) == pytest.approx(800.0)
    assert choose_focal(640, 480, 1000.0, 700.0) == (1000.0, "user")
    assert choose_focal(640, 480, None, 700.0) == (700.0, "exif")
    assert choose_focal(640, 480, None, None) == (pytest.approx(800.0), "default")


def test_similar_triangles_recovers_translation_exactly():
    # A flat (fronto-parallel) set of points: similar triangles are exact.
    g = torch.Generator().manual_seed(0)
    X = torch.rand(3, 6, 3, generator=g) - 0.5
    X[..., 2] = 0.0
    t_true = torch.tensor([[0.3, -0.2, 4.0], [-1.0, 0.5, 7.5], [0.0, 0.0, 2.0]])
    K = make_intrinsics(900.0, 900.0, 320.0, 240.0, batch_size=3)
    uv = project_points(X + t_true[:, None], K).uv
    t = similar_triangles_translation(uv, X, K, torch.ones(3, 6))
    assert torch.allclose(t, t_true, atol=1e-4)


def test_body_frame_and_facing_rotations():
    # SMPL-like model frame: Y up, facing +Z, left on +X.
    ls, rs = torch.tensor([[0.2, 0.5, 0.0]]), torch.tensor([[-0.2, 0.5, 0.0]])
    lh, rh = torch.tensor([[0.1, 0.0, 0.0]]), torch.tensor([[-0.1, 0.0, 0.0]])
    F = body_frame(ls, rs, lh, rh)
    assert torch.allclose(F[0], torch.eye(3), atol=1e-6)
    R = facing_rotations(F)  # [2, 1, 3, 3]
    ex, ey, ez = torch.eye(3)
    # facing the camera: left -> +x (image right), up -> -y (image up), forward -> -z (towards the camera)
    assert torch.allclose(R[0, 0] @ ex, ex) and torch.allclose(R[0, 0] @ ey, -ey) and torch.allclose(R[0, 0] @ ez, -ez)
    # flipped: turned by pi about the vertical: left -> -x, forward -> +z (away), still upright
    assert torch.allclose(R[1, 0] @ ex, -ex, atol=1e-6) and torch.allclose(R[1, 0] @ ey, -ey, atol=1e-6)
    assert torch.allclose(R[1, 0] @ ez, ez, atol=1e-6)
    assert torch.allclose(torch.linalg.det(R), torch.ones(2, 1))


def test_fast_anny_keypoints_match_full_forward(anny_model):
    f = anny_model.keypoint_function()
    assert isinstance(f, AnnyKeypoints) and f.ok
    g = torch.Generator().manual_seed(3)
    B = 3
    p = {"global_orient": torch.randn(B, 3, generator=g), "body_pose": 0.3 * torch.randn(B, 309, generator=g),
         "phenotypes": 0.1 + 0.8 * torch.rand(B, 6, generator=g), "transl": torch.randn(B, 3, generator=g)}  # fmt: skip
    ref = anny_model(p).keypoints
    got = f(p)
    for sk in ("coco17", "body25"):
        assert torch.allclose(got[sk], ref[sk], atol=2e-5), sk
    # gradients agree too (w.r.t. pose and phenotypes)
    w = torch.randn(B, 17, 3, generator=g)
    grads = []
    for fn in (lambda q: f(q)["coco17"], lambda q: anny_model(q).keypoints["coco17"]):
        q = {k: v.clone().requires_grad_(True) for k, v in p.items()}
        (fn(q) * w).sum().backward()
        grads.append([q[k].grad for k in ("body_pose", "phenotypes", "global_orient")])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=2e-3 * (1 + b.abs().max().item()))


def test_smpl_hinge_axes_match_smplify(smpl_model):
    # SMPLify (Bogo et al. 2016) penalises exp(pose[[55, 58, 12, 15]] * [1, -1, -1, -1]): left elbow y, right
    # elbow y, left knee x, right knee x of the 72-vector; bending the allowed way is the sign opposite the penalty.
    space = pose_space(smpl_model)
    expect = {"elbow.L": (1, -1.0), "elbow.R": (1, 1.0), "knee.L": (0, 1.0), "knee.R": (0, 1.0)}
    for h in space.hinges:
        axis, sign = expect[h.name]
        assert int(h.flex_axis.abs().argmax()) == axis, h.name
        assert math.copysign(1.0, float(h.flex_axis[axis])) == sign, h.name
        assert abs(float(h.flex_axis[axis])) > 0.98
    assert [space.group_names[h.group] for h in space.hinges] == ["left_elbow", "right_elbow", "left_knee", "right_knee"]


def test_anny_hinges_bend_the_right_way(anny_model):
    """Flexing by +angle about the found axis moves the ankle backwards (-z) and the wrist forwards (+z)."""
    space = pose_space(anny_model)
    names = anny_model.joint_names
    for h in space.hinges:
        groups = space.mean.new_zeros(1, space.num_groups, 3)
        groups[0, h.group] = 0.8 * h.flex_axis
        p0 = anny_model(anny_model.default_params(1))
        p1 = anny_model({"body_pose": space.body_pose(groups)})
        end = names.index(("wrist." if "elbow" in h.name else "foot.") + h.name[-1])
        dz = float(p1.joints[0, end, 2] - p0.joints[0, end, 2])
        assert (dz > 0.05) if "elbow" in h.name else (dz < -0.05), (h.name, dz)
        ang, lo, hi = hinge_angles(groups, space)
        assert float(ang[0, space.hinges.index(h), 0]) == pytest.approx(0.8, abs=1e-5)
        assert float(hinge_limit_energy(ang.reshape(1, -1), lo.flatten(), hi.flatten())) == 0.0
        groups[0, h.group] = -1.0 * h.flex_axis  # bending backwards is penalised
        ang, lo, hi = hinge_angles(groups, space)
        assert float(hinge_limit_energy(ang.reshape(1, -1), lo.flatten(), hi.flatten())) > 0.01


def test_pose_space_round_trip_and_prior_terms(anny_model, smpl_model):
    for model in (anny_model, smpl_model):
        space = pose_space(model)
        g = torch.randn(2, space.num_groups, 3)
        bp = space.body_pose(g)
        assert bp.shape == (2, model.parameter_shapes()["body_pose"][0])
        assert torch.allclose(space.groups_from_body_pose(bp), g, atol=1e-6)
        term = make_pose_term("simple", space, model)
        e = term.energy(g, bp)
        assert e.shape == (2,) and torch.isfinite(e).all()
        mean = space.mean[None].expand(2, -1, -1)
        assert (term.energy(mean, space.body_pose(mean)) < e).all()  # the mean is the most likely pose
    assert make_pose_term("none", space, smpl_model) is None
    with pytest.raises(InvalidInputError, match="prior"):
        make_pose_term("bogus", space, smpl_model)
    with pytest.raises(InvalidInputError, match="dim"):
        make_pose_term(type("P", (), {"dim": 5, "energy": lambda self, x: x.sum(-1)})(), space, smpl_model)


def test_anneal_and_config_validation():
    assert _anneal((1.0, 0.01), 0.0) == pytest.approx(1.0)
    assert _anneal((1.0, 0.01), 0.5) == pytest.approx(0.1)  # geometric midpoint
    assert _anneal((1.0, 0.1, 0.01), 1.0) == pytest.approx(0.01)
    assert _anneal((1.0, 0.0), 0.5) == pytest.approx(0.5)  # linear where a value is zero
    with pytest.raises(InvalidInputError, match="optimizer"):
        SMPLifyConfig(optimizer="sgd")
    with pytest.raises(InvalidInputError, match="body_iters"):
        SMPLifyConfig(body_iters=-1)
    with pytest.raises(InvalidInputError, match="unknown"):
        SMPLifyConfig().replace(bogus=1)
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.0]))
    assert torch.allclose(R, torch.eye(3))


def test_prior_schedules_and_restart_poses(anny_model):
    cfg = SMPLifyConfig()
    assert cfg.prior_weights("simple") == PRIOR_WEIGHTS["simple"]
    assert cfg.prior_weights("flow") == PRIOR_WEIGHTS["default"]
    assert cfg.replace(pose_prior_weights=(1.0, 0.5)).prior_weights("simple") == (1.0, 0.5)
    for bad in ({"restarts": 0}, {"adam_eps": 0.0}, {"lr_body_final": -1.0}, {"pose_prior_weights": ()}):
        with pytest.raises(InvalidInputError, match=next(iter(bad))):
            SMPLifyConfig(**bad)
    space = pose_space(anny_model)
    g0 = space.mean[None].expand(2, -1, -1)
    starts = perturbed_starts(g0, space, 3)
    assert len(starts) == 3 and starts[0] is g0
    limb = torch.tensor([any(k in n for k in ("upperarm", "lowerarm", "upperleg", "lowerleg")) for n in space.group_names])
    for g in starts[1:]:
        assert torch.equal(g[:, ~limb], g0[:, ~limb])  # trunk, head, hands, feet untouched
        assert (g[:, limb] - g0[:, limb]).abs().amax() > 0.01


def test_reprojection_energy_closed_form():
    """Normalised Geman-McClure: a keypoint at residual r (in units of the person's size s) costs
    (r^2 / sigma^2) / (1 + r^2 / sigma^2), at most 1; behind the camera it costs behind_penalty; weights and
    confidences multiply."""
    s, sigma = 200.0, 0.15
    target = torch.tensor([[[100.0, 100.0, 1.0], [50.0, 60.0, 0.5], [10.0, 10.0, 1.0], [0.0, 0.0, 0.0]]])
    pred = target[..., :2] + torch.tensor([[[6.0, 8.0], [0.0, 30.0], [1e6, 0.0], [5.0, 5.0]]])  # residual 10, 30 px
    valid = torch.tensor([[True, True, False, True]])
    scale = torch.tensor([s])
    e = reprojection_energy(pred, valid, target, scale, sigma)
    u = lambda r: (r / s) ** 2 / sigma**2  # noqa: E731
    ref = u(10.0) / (1 + u(10.0)) + 0.5 * u(30.0) / (1 + u(30.0)) + 1.0
    assert float(e) == pytest.approx(ref, rel=1e-6)
    w = torch.tensor([2.0, 1.0, 0.5, 1.0])
    e_w = reprojection_energy(pred, valid, target, scale, sigma, weights=w, behind_penalty=3.0)
    assert float(e_w) == pytest.approx(2 * u(10.0) / (1 + u(10.0)) + 0.5 * u(30.0) / (1 + u(30.0)) + 1.5, rel=1e-6)


def test_forward_validate_false_same_output_no_checks(smpl_model, anny_model):
    """forward(validate=False) gives the checked forward's numbers and skips the checks (no raise on NaN)."""
    for model in (smpl_model, anny_model):
        g = torch.Generator().manual_seed(1)
        p = {"global_orient": torch.randn(2, 3, generator=g) * 0.3,
             "body_pose": torch.randn(2, model.parameter_shapes()["body_pose"][0], generator=g) * 0.1,
             "transl": torch.randn(1, 3, generator=g)}  # fmt: skip
        a, b = model(p), model(p, validate=False)
        assert torch.equal(a.vertices, b.vertices) and torch.equal(a.keypoints["coco17"], b.keypoints["coco17"])
        assert torch.equal(model.keypoint_function()(p)["body25"], a.keypoints["body25"]) or model is anny_model
        bad = {**p, "transl": torch.full((2, 3), float("nan"))}
        with pytest.raises(InvalidInputError, match="transl"):
            model(bad)
        assert torch.isnan(model(bad, validate=False).vertices).all()


def test_fitting_uses_model_facts_not_family_names(anny_model):
    """A model under another family name fits the same: fitting reads BodyModel's facts (prior_family,
    pose_groups, hinge_joints, fit_shape_bounds, keypoint_function), never the family name."""
    import copy

    from human3d.fitting import smplify
    from human3d.fitting.synthetic import make_synthetic_set

    ds = make_synthetic_set(anny_model, 2, seed=3)
    renamed = copy.copy(anny_model)
    renamed.__dict__.pop("_h3d_pose_space", None)
    renamed.family = "my_anny_variant"
    cfg = SMPLifyConfig(camera_iters=5, body_iters=5)
    a = smplify(anny_model, ds.keypoints2d, ds.K, prior="simple", config=cfg)
    b = smplify(renamed, ds.keypoints2d, ds.K, prior="simple", config=cfg)
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k]), k
    assert pose_space(renamed).group_names == pose_space(anny_model).group_names
    renamed.prior_family = None
    renamed.__dict__.pop("_h3d_pose_space", None)
    with pytest.raises(InvalidInputError, match="fitting supports"):
        smplify(renamed, ds.keypoints2d, ds.K, prior="simple", config=cfg)
