"""SMPL / SMPL-H / SMPL-X against smplx (the oracle) on the same synthetic model files, plus bad input."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch

from human3d.synth import smpl_files as synth
import smplx
from human3d.body import lbs as L
from human3d.body.smpl import SMPL, SMPLH, SMPLX, VERTEX_IDS, create, find_model_file
from human3d.body.skeletons import BODY25, COCO17
from human3d.errors import InvalidInputError, ModelFileError, UnsafePickleError

TOL = 1e-5  # metres, float32
CLASSES = {"smpl": SMPL, "smplh": SMPLH, "smplx": SMPLX}
REFS = {"smpl": smplx.SMPL, "smplh": smplx.SMPLH, "smplx": smplx.SMPLX}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Synthetic model files: SMPL (py2-protocol pickle + npz + chumpy-shaped pickle), SMPL-H, SMPL-X (v1.0
    layout, 10 betas + 10 expressions) and an SMPL-X 2020-style npz (300 betas + 100 expressions)."""
    root = tmp_path_factory.mktemp("smpl_models")
    out = {}
    smpl = synth.make_model_data("smpl", num_shape=10, seed=0)
    out["smpl"] = synth.write_pickle(root / "smpl" / "SMPL_NEUTRAL.pkl", smpl, protocol=2)
    out["smpl_npz"] = synth.write_npz(root / "npz" / "SMPL_NEUTRAL.npz", smpl)
    out["smpl_data"] = smpl
    out["smplh"] = synth.write_pickle(root / "smplh" / "SMPLH_FEMALE.pkl", synth.make_model_data("smplh", seed=1), 4)
    out["smplx"] = synth.write_pickle(
        root / "smplx" / "SMPLX_NEUTRAL.pkl", synth.make_model_data("smplx", num_shape=20, seed=2), 4
    )
    out["smplx2020"] = synth.write_npz(
        root / "x2020" / "SMPLX_NEUTRAL_2020.npz",
        synth.make_model_data("smplx", num_shape=400, seed=3, dtype=np.float32),
    )
    out["root"] = root
    return out


def _ref_model(family, path, **kw):
    kw.setdefault("use_pca", False) if family != "smpl" else None
    if family != "smpl":
        kw.setdefault("ext", path.suffix[1:])
    return REFS[family](str(path), **kw)


@pytest.fixture(scope="module")
def models(files):
    """(ours, smplx) per family, loaded once."""
    return {f: (CLASSES[f](files[f]), _ref_model(f, files[f])) for f in ("smpl", "smplh", "smplx")}


def _random_params(model, B, seed, scale=0.4):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(B, *s, generator=g) * scale for k, s in model.parameter_shapes().items()}


def _assert_matches(ours, ref, params, tol=TOL):
    out = ours(params)
    with torch.no_grad():
        r = ref(**params)
    J = ours.num_joints
    assert out.vertices.shape == r.vertices.shape
    assert (out.vertices - r.vertices).abs().max().item() < tol
    assert (out.joints - r.joints[:, :J]).abs().max().item() < tol
    return out, r


@pytest.mark.parametrize("family", ["smpl", "smplh", "smplx"])
@pytest.mark.parametrize("B", [1, 16])
def test_matches_smplx(models, family, B):
    ours, ref = models[family]
    out, r = _assert_matches(ours, ref, _random_params(ours, B, seed=B))
    # keypoints: smplx appends the vertex picks after the model joints (nose, reye, leye, rear, lear, LBigToe,
    # LSmallToe, LHeel, RBigToe, RSmallToe, RHeel); hips/limbs are SMPL joints; neck / mid-hip are midpoints.
    J = ours.num_joints
    extra = ["nose", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
             "left_heel", "right_big_toe", "right_small_toe", "right_heel"]  # fmt: skip
    named = {n: r.joints[:, J + i] for i, n in enumerate(extra)}
    joint_ids = dict(left_hip=1, right_hip=2, left_knee=4, right_knee=5, left_ankle=7, right_ankle=8,
                     left_shoulder=16, right_shoulder=17, left_elbow=18, right_elbow=19, left_wrist=20,
                     right_wrist=21)  # fmt: skip
    named.update({n: r.joints[:, j] for n, j in joint_ids.items()})
    named["neck"] = 0.5 * (named["left_shoulder"] + named["right_shoulder"])
    named["mid_hip"] = 0.5 * (named["left_hip"] + named["right_hip"])
    for skel, names in (("coco17", COCO17), ("body25", BODY25)):
        want = torch.stack([named[n] for n in names], 1)
        assert out.keypoints[skel].shape == (B, len(names), 3)
        assert (out.keypoints[skel] - want).abs().max().item() < TOL
    assert out.faces.dtype == torch.int64 and out.faces.shape == ref.faces_tensor.shape
    assert torch.equal(out.faces, ref.faces_tensor)
    assert len(ours.joint_names) == J == {"smpl": 24, "smplh": 52, "smplx": 55}[family]


def test_vertex_ids_are_smplx_tables():
    from smplx.vertex_ids import vertex_ids as ref

    keymap = {"nose": "nose", "right_eye": "reye", "left_eye": "leye", "right_ear": "rear", "left_ear": "lear",
              "left_big_toe": "LBigToe", "left_small_toe": "LSmallToe", "left_heel": "LHeel",
              "right_big_toe": "RBigToe", "right_small_toe": "RSmallToe", "right_heel": "RHeel"}  # fmt: skip
    for fam in ("smplh", "smplx"):
        assert {n: ref[fam][k] for n, k in keymap.items()} == VERTEX_IDS[fam]


def test_joint_names_match_smplx():
    from smplx.joint_names import JOINT_NAMES, SMPLH_JOINT_NAMES

    assert SMPLX.__mro__  # noqa
    from human3d.body.smpl import SMPL_JOINT_NAMES, SMPLH_JOINT_NAMES as OURS_H, SMPLX_JOINT_NAMES

    assert SMPLX_JOINT_NAMES == JOINT_NAMES[:55]
    assert OURS_H == SMPLH_JOINT_NAMES[:52]
    assert SMPL_JOINT_NAMES[:22] == JOINT_NAMES[:22] and SMPL_JOINT_NAMES[22:] == ["left_hand", "right_hand"]


def test_functional_lbs_matches_module(models):
    """lbs() from the raw arrays (no precomputation) = the module's fused path."""
    ours, _ = models["smpl"]
    params = ours.validate_params(_random_params(ours, 3, seed=7))
    out = ours._forward(params)
    pose = ours.full_pose(params).flatten(1)
    verts, joints = L.lbs(params["betas"], pose, ours.v_template, ours.shapedirs, ours.posedirs,
                          ours.J_regressor, ours.parents, ours.lbs_weights)  # fmt: skip
    t = params["transl"][:, None]
    assert (out.vertices - (verts + t)).abs().max() < TOL
    assert (out.joints - (joints + t)).abs().max() < TOL


def test_npz_gives_identical_output(files, models):
    ours, _ = models["smpl"]
    from_npz = SMPL(files["smpl_npz"])
    params = _random_params(ours, 4, seed=3)
    a, b = ours(params), from_npz(params)
    assert torch.equal(a.vertices, b.vertices) and torch.equal(a.joints, b.joints)


def test_chumpy_pickle_gives_identical_output(files, models, tmp_path, monkeypatch, install_fake_chumpy):
    """An official-style pickle (shapedirs a chumpy array, J_regressor sparse) loads without chumpy."""
    data = dict(files["smpl_data"])
    with monkeypatch.context() as m:
        ch = install_fake_chumpy(m)
        data["shapedirs"] = ch["Ch"](data["shapedirs"])
        data["v_template"] = ch["Ch"](data["v_template"])
        raw = pickle.dumps(data, protocol=4)
    assert b"chumpy.ch" in raw and b"scipy.sparse" in raw
    path = tmp_path / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl"
    path.write_bytes(raw)
    ours, _ = models["smpl"]
    chumpy_model = SMPL(tmp_path)  # folder lookup finds the official file name
    params = _random_params(ours, 2, seed=5)
    assert torch.equal(ours(params).vertices, chumpy_model(params).vertices)


def test_300_betas_and_100_expressions(files):
    """SMPL-X 2020 layout (shapedirs [V, 3, 400]): 300 betas then 100 expression components."""
    path = files["smplx2020"]
    ours = SMPLX(path, num_betas=300, num_expression_coeffs=100)
    ref = smplx.SMPLX(str(path), num_betas=300, num_expression_coeffs=100, use_pca=False, ext="npz")
    assert ours.parameter_shapes()["betas"] == (300,) and ours.parameter_shapes()["expression"] == (100,)
    params = _random_params(ours, 2, seed=11, scale=0.3)
    _assert_matches(ours, ref, params)
    with pytest.raises(InvalidInputError, match="301"):
        SMPLX(path, num_betas=301)


def test_hand_pca_and_flat_hand_mean(files):
    """PCA hand coefficients and a flat hand mean (the default test covers full axis-angle + the file's mean)."""
    path = files["smplh"]
    ours = SMPLH(path, gender="female", num_pca_comps=6, flat_hand_mean=True)
    ref = smplx.SMPLH(str(path), gender="female", use_pca=True, num_pca_comps=6, flat_hand_mean=True)
    assert ours.parameter_shapes()["left_hand_pose"] == (6,)
    _assert_matches(ours, ref, _random_params(ours, 3, seed=2))


def test_float64(models, files):
    _, ref = models["smpl"]
    ours64 = SMPL(files["smpl"], dtype=torch.float64)
    params = _random_params(ours64, 2, seed=9)
    out = ours64({k: v.double() for k, v in params.items()})
    assert out.vertices.dtype == torch.float64
    r = ref(**params)
    assert (out.vertices.float() - r.vertices).abs().max() < TOL


def test_folder_lookup_and_create(files, tmp_path):
    root = files["root"]
    assert find_model_file(root, "smpl", "neutral") == files["smpl"]
    assert find_model_file(root, "smplh", "female") == files["smplh"]
    # DIR/SMPL_MALE.pkl with other capitalisation, no family subfolder
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(files["smpl"], flat / "smpl_male.PKL")
    assert find_model_file(flat, "smpl", "MALE") == flat / "smpl_male.PKL"
    m = create(root, model_type="smplx")
    assert isinstance(m, SMPLX) and m.num_betas == 10 and m.num_expression_coeffs == 10
    assert isinstance(create(files["smplh"]), SMPLH)  # family read from the file (52 joints)
    assert isinstance(create(files["smpl_npz"]), SMPL)
    with pytest.raises(ModelFileError, match="SMPL-H female"):
        find_model_file(flat, "smplh", "female")
    with pytest.raises(InvalidInputError, match="gender"):
        SMPL(files["smpl"], gender="other")


# ---- bad input ----------------------------------------------------------------------------------------------------
def test_bad_parameters(models):
    ours, _ = models["smpl"]
    with pytest.raises(InvalidInputError, match="body_pose"):
        ours(body_pose=torch.zeros(2, 63))
    with pytest.raises(InvalidInputError, match="betas"):
        ours(betas=torch.zeros(1, 11))
    bad = torch.zeros(1, 10)
    bad[0, 3] = float("nan")
    with pytest.raises(InvalidInputError, match="betas.*NaN"):
        ours(betas=bad)
    with pytest.raises(InvalidInputError, match="transl"):
        ours(transl=torch.tensor([[0.0, float("inf"), 0.0]]))
    with pytest.raises(InvalidInputError, match="jaw_pose"):
        ours(jaw_pose=torch.zeros(1, 3))  # not an SMPL parameter
    with pytest.raises(InvalidInputError, match="batch size"):
        ours(global_orient=torch.zeros(3, 3), betas=torch.zeros(2, 10))


def test_bad_files(files, tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        SMPL(tmp_path / "missing" / "SMPL_NEUTRAL.pkl")
    rng = np.random.default_rng(0)
    for name in ("SMPL_NEUTRAL.pkl", "SMPL_MALE.npz"):
        p = tmp_path / name
        p.write_bytes(rng.bytes(5000))
        with pytest.raises(ModelFileError, match=name):
            SMPL(p)
    with pytest.raises(InvalidInputError, match="num_betas=11.*only 10"):
        SMPL(files["smpl_npz"], num_betas=11)
    data = dict(files["smpl_data"])
    del data["weights"]
    p = synth.write_pickle(tmp_path / "noweights.pkl", data, protocol=4)
    with pytest.raises(ModelFileError, match="'weights'"):
        SMPL(p)
    data = dict(files["smpl_data"], posedirs=files["smpl_data"]["posedirs"][:, :, :200])
    p = synth.write_pickle(tmp_path / "badposedirs.pkl", data, protocol=4)
    with pytest.raises(ModelFileError, match="posedirs"):
        SMPL(p)
    with pytest.raises(ModelFileError, match="24 joints"):
        SMPLX(files["smpl_npz"])  # an SMPL file given to SMPL-X
    with pytest.raises(InvalidInputError, match="num_pca_comps"):
        SMPL(files["smpl_npz"], num_pca_comps=6)


def test_malicious_model_pickle_is_refused(tmp_path):
    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    data = {"v_template": np.zeros((6890, 3)), "J": Evil(), "kintree_table": np.zeros((2, 24), np.int64)}
    synth.write_pickle(tmp_path / "SMPL_NEUTRAL.pkl", data)
    with pytest.raises(UnsafePickleError, match="system"):
        SMPL(tmp_path)
    assert not marker.exists()


# ---- gradients ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["smpl", "smplx"])
def test_gradients_reach_every_parameter(models, family):
    ours, _ = models[family]
    params = {k: v.requires_grad_() for k, v in ours.default_params(2).items()}  # zero pose: Rodrigues at 0
    params["body_pose"] = (torch.randn_like(params["body_pose"]) * 0.3).requires_grad_()
    out = ours(params)
    w = torch.randn_like(out.vertices)
    ((out.vertices * w).sum() + out.joints.sum() + out.keypoints["body25"].sum()).backward()
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_gradient_matches_finite_differences(files):
    """Directional derivative of a vertex-weighted loss: autograd vs central differences (float64)."""
    model = SMPL(files["smpl"], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    params = {k: torch.randn(1, *s, generator=g, dtype=torch.float64) * 0.3 for k, s in model.parameter_shapes().items()}
    dirs = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in params.items()}
    w = torch.randn(1, model.num_vertices, 3, generator=g, dtype=torch.float64)

    def loss(p):
        return (model(p).vertices * w).sum()

    leaf = {k: v.clone().requires_grad_() for k, v in params.items()}
    loss(leaf).backward()
    analytic = sum((leaf[k].grad * dirs[k]).sum() for k in params)
    eps = 1e-6
    plus = loss({k: v + eps * dirs[k] for k, v in params.items()})
    minus = loss({k: v - eps * dirs[k] for k, v in params.items()})
    numeric = (plus - minus) / (2 * eps)
    assert torch.allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


# ---- lbs building blocks ----------------------------------------------------------------------------------------------
def test_rodrigues_against_scipy_and_at_zero():
    from scipy.spatial.transform import Rotation

    rv = torch.randn(200, 3, dtype=torch.float64) * 2
    rv[:5] *= 1e-6  # near the Taylor branch
    rv[5] = 0
    want = torch.from_numpy(Rotation.from_rotvec(rv.numpy()).as_matrix())
    assert torch.allclose(L.batch_rodrigues(rv), want, atol=1e-12)
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    jac = torch.autograd.functional.jacobian(L.batch_rodrigues, x)  # d R / d r at 0 = generators of so(3)
    e = torch.eye(3, dtype=torch.float64)
    skew = torch.stack([torch.linalg.cross(e[i].expand(3, 3), e, dim=-1).T for i in range(3)], -1)
    assert torch.allclose(jac, skew)


def test_rigid_transform_against_per_joint_loop():
    torch.manual_seed(0)
    parents = synth.SMPLX_PARENTS
    J = len(parents)
    rot = L.batch_rodrigues(torch.randn(3, J, 3, dtype=torch.float64))
    joints = torch.randn(3, J, 3, dtype=torch.float64)
    posed, A = L.batch_rigid_transform(rot, joints, parents)
    # naive chain, one joint at a time
    G = [None] * J
    for j in range(J):
        local = torch.eye(4, dtype=torch.float64).repeat(3, 1, 1)
        local[:, :3, :3] = rot[:, j]
        local[:, :3, 3] = joints[:, j] - (joints[:, parents[j]] if j else 0)
        G[j] = local if j == 0 else G[parents[j]] @ local
    G = torch.stack(G, 1)
    assert torch.allclose(posed, G[..., :3, 3])
    point = joints + 0.1  # a rest-pose point near each joint, moved rigidly with that joint
    moved = (A[..., :3] @ point.unsqueeze(-1)).squeeze(-1) + A[..., 3]
    want = (G[..., :3, :3] @ (point - joints).unsqueeze(-1)).squeeze(-1) + G[..., :3, 3]
    assert torch.allclose(moved, want)
    with pytest.raises(ValueError, match="parent"):
        L.kinematic_levels([-1, 2, 0])


def test_skinning_gradcheck_including_double_backward():
    """The fused skinning kernel's hand-written backward vs finite differences (first and second order)."""
    g = torch.Generator().manual_seed(0)
    B, V, J = 2, 3, 2
    v_posed = torch.randn(B, V, 3, generator=g, dtype=torch.float64, requires_grad=True)
    transforms = torch.randn(B, J, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    transl = torch.randn(B, 3, generator=g, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(V, J, generator=g, dtype=torch.float64)
    weights = weights / weights.sum(1, keepdim=True)
    fn = lambda v, a, t: L.skinning(v, a, weights, t)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (v_posed, transforms, transl))
    assert torch.autograd.gradgradcheck(fn, (v_posed, transforms, transl))
    # and the closed form: sum_j w_vj (R_j v + t_j) + transl
    want = torch.einsum("vj,bjik,bvk->bvi", weights, transforms[..., :3], v_posed)
    want = want + torch.einsum("vj,bji->bvi", weights, transforms[..., 3]) + transl[:, None]
    assert torch.allclose(fn(v_posed, transforms, transl), want)
