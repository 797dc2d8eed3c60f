"""AnnyBody against anny's own forward (the oracle), finite differences, closed forms and trimesh."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import roma
import torch
import trimesh

from human3d.body import BodyModel, load_body_model
from human3d.body import cache as body_cache
from human3d.body.anny import ANNY_TO_CANONICAL, PHENOTYPE_LABELS, AnnyBody
from human3d.body.io import export_mesh, load_params, save_params
from human3d.body.skeletons import BODY25, COCO17
from human3d.errors import DatasetError, InvalidInputError

C64 = torch.tensor(ANNY_TO_CANONICAL, dtype=torch.float64)  # Anny (Z up, facing -Y) -> canonical (Y up, facing +Z)


@pytest.fixture(scope="module")
def oracle(anny_model):
    """anny's own model, float64, pure-torch skinning (built from the same cache the fixture configured)."""
    import anny

    model = anny.Anny(skinning_method="lbs")
    assert model.dtype == torch.float64 and model.pose_parameterization == "local-ref"
    # Identity root reference orientation: then every delta is C^T R C (see human3d.body.anny).
    assert torch.equal(model.reference_bone_orientations[0], torch.eye(3, dtype=torch.float64))
    return model, anny.KeypointsRegressor.coco(model)


@pytest.fixture(scope="module")
def anny64():
    return AnnyBody(dtype=torch.float64, skinning="lbs")


def _random_params(batch: int, seed: int, dtype=torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "global_orient": (0.8 * torch.randn(batch, 3, generator=g)).to(dtype),
        "body_pose": (0.3 * torch.randn(batch, 103, 3, generator=g)).to(dtype),
        "phenotypes": (0.05 + 0.9 * torch.rand(batch, 6, generator=g)).to(dtype),
        "transl": torch.randn(batch, 3, generator=g).to(dtype),
    }


def _oracle_forward(oracle, params):
    """anny's forward on deltas built here with roma, rotated into the canonical frame; float64."""
    model, regressor = oracle
    p = {k: v.to(torch.float64) for k, v in params.items()}
    batch = p["global_orient"].shape[0]
    rotvecs = torch.cat([p["global_orient"][:, None], p["body_pose"].reshape(batch, 103, 3)], 1)  # [B, 104, 3]
    deltas = torch.eye(4, dtype=torch.float64).repeat(batch, 104, 1, 1)
    deltas[..., :3, :3] = C64.T @ roma.rotvec_to_rotmat(rotvecs) @ C64
    out = model(deltas, p["phenotypes"])
    t = p["transl"][:, None]
    vertices = out["vertices"] @ C64.T + t
    joints = out["bone_poses"][..., :3, 3] @ C64.T + t
    keypoints = regressor(out) @ C64.T + t  # [B, 23, 3]
    return vertices, joints, keypoints, regressor.labels


# ---- agreement with anny ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 4])
def test_matches_anny_forward(anny_model, oracle, batch):
    params = _random_params(batch, seed=batch)
    out = anny_model(params)
    vertices, joints, keypoints, labels = _oracle_forward(oracle, params)
    assert out.vertices.shape == (batch, 13718, 3) and out.vertices.dtype == torch.float32
    assert out.joints.shape == (batch, 104, 3) and out.faces.shape == (27420, 3) and out.faces.dtype == torch.int64
    torch.testing.assert_close(out.vertices.double(), vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.joints.double(), joints, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.keypoints["coco17"].double(), keypoints[:, :17], atol=1e-5, rtol=0)
    named = dict(zip(labels, keypoints.unbind(1)))
    named["neck"] = 0.5 * (named["left_shoulder"] + named["right_shoulder"])
    named["mid_hip"] = 0.5 * (named["left_hip"] + named["right_hip"])
    body25 = torch.stack([named[n] for n in BODY25], 1)
    torch.testing.assert_close(out.keypoints["body25"].double(), body25, atol=1e-5, rtol=0)


def test_pure_torch_skinning_matches_anny(oracle):
    model = AnnyBody(skinning="lbs")
    assert model.skinning == "lbs"
    params = _random_params(2, seed=7)
    torch.testing.assert_close(model(params).vertices.double(), _oracle_forward(oracle, params)[0], atol=1e-5, rtol=0)


def test_float32_matches_float64(anny_model, anny64):
    params = _random_params(3, seed=11, dtype=torch.float64)
    v64 = anny64(params).vertices
    v32 = anny_model(params).vertices  # float64 inputs are converted to the model's dtype
    assert v64.dtype == torch.float64 and v32.dtype == torch.float32
    torch.testing.assert_close(v32.double(), v64, atol=1e-5, rtol=0)


def test_zero_pose_is_anny_reference_pose(anny_model, oracle):
    out = anny_model()  # every parameter at its default: zero pose, phenotypes 0.5, no translation
    model, _ = oracle
    ref = model(None)  # anny with identity deltas and default phenotypes
    torch.testing.assert_close(out.vertices[0].double(), ref["vertices"][0] @ C64.T, atol=1e-5, rtol=0)
    assert torch.allclose(out.joints[0, 0], torch.zeros(3), atol=1e-6)  # root joint at the origin
    torch.testing.assert_close(out.params["phenotypes"], torch.full((1, 6), 0.5))


# ---- gradients --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("skinning", ["lbs", "warp_lbs"])
def test_gradients_match_finite_differences(skinning):
    model = AnnyBody(dtype=torch.float64, skinning=skinning)
    params = _random_params(1, seed=3, dtype=torch.float64)
    params["body_pose"] = params["body_pose"].reshape(1, 309)
    params["phenotypes"] = torch.tensor([[0.3, 0.4, 0.3, 0.7, 0.6, 0.2]], dtype=torch.float64)  # off the anchors
    weights = torch.randn(1, 13718, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def loss(p):
        return (model(p).vertices * weights).sum()

    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    loss(leaves).backward()
    for name in ("global_orient", "body_pose", "phenotypes", "transl"):
        assert leaves[name].grad is not None and leaves[name].grad.abs().sum() > 0, name
    eps = 1e-6
    for name, index in [("body_pose", (0, 3 * 2 + 1)), ("body_pose", (0, 3 * 47)), ("global_orient", (0, 2)),
                        ("phenotypes", (0, 1)), ("phenotypes", (0, 3))]:  # fmt: skip
        plus = {k: v.clone() for k, v in params.items()}
        minus = {k: v.clone() for k, v in params.items()}
        plus[name][index] += eps
        minus[name][index] -= eps
        with torch.no_grad():
            fd = (loss(plus) - loss(minus)) / (2 * eps)
        torch.testing.assert_close(leaves[name].grad[index], fd, rtol=1e-5, atol=1e-5)


def test_warp_and_torch_gradients_agree(anny_model):
    lbs = AnnyBody(skinning="lbs")
    assert anny_model.skinning == "warp_lbs"  # "auto" picks warp on CPU (faster, tools/bench/body_anny.py)
    params = _random_params(2, seed=5)
    grads = []
    for model in (anny_model, lbs):
        leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        out = model(leaves)
        (out.vertices.square().sum() + out.keypoints["coco17"].sum()).backward()
        grads.append([leaves[k].grad for k in ("body_pose", "phenotypes")])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


# ---- conventions ------------------------------------------------------------------------------------------------
def test_global_orient_rotates_about_root_then_translates(anny_model):
    params = _random_params(2, seed=9)
    params["transl"] = torch.zeros(2, 3)
    base = anny_model({**params, "global_orient": torch.zeros(2, 3)})
    rot = roma.rotvec_to_rotmat(params["global_orient"])  # [B, 3, 3]
    t = torch.tensor([[0.3, -1.0, 2.0], [1.0, 0.5, -0.25]])
    out = anny_model({**params, "transl": t})
    # smplx semantics: R about the root joint (at the origin before transl), then + transl.
    root = base.joints[:, :1]  # [B, 1, 3]
    expect = (base.vertices - root) @ rot.transpose(1, 2) + root + t[:, None]
    torch.testing.assert_close(out.vertices, expect, atol=2e-5, rtol=0)
    torch.testing.assert_close(out.joints[:, 0], t, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        out.keypoints["coco17"], (base.keypoints["coco17"] - root) @ rot.transpose(1, 2) + root + t[:, None],
        atol=2e-5, rtol=0,
    )  # fmt: skip


def test_canonical_frame_y_up_facing_plus_z(anny_model):
    out = anny_model()
    kp = dict(zip(COCO17, out.keypoints["coco17"][0]))
    v = out.vertices[0]
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.4 < height < 1.9  # metres, Y up
    assert v[:, 1].argmax() != v[:, 1].argmin()
    assert kp["nose"][1] > kp["left_shoulder"][1] > kp["left_hip"][1] > kp["left_knee"][1] > kp["left_ankle"][1]
    assert kp["nose"][2] > kp["left_ear"][2] + 0.05  # face towards +Z
    assert kp["left_shoulder"][0] > 0.1 and kp["right_shoulder"][0] < -0.1  # left hand on +X (as SMPL)
    toes = out.keypoints["body25"][0, BODY25.index("left_big_toe")]
    heel = out.keypoints["body25"][0, BODY25.index("left_heel")]
    assert toes[2] > heel[2] + 0.1  # feet point forward (+Z)
    # The mesh is closed with outward (counter-clockwise) winding: positive signed volume (~body volume).
    mesh = trimesh.Trimesh(v.double().numpy(), out.faces.numpy(), process=False)
    assert mesh.is_watertight and 0.03 < mesh.volume < 0.1


def test_keypoints_sit_on_the_right_body_parts(anny_model):
    out = anny_model(_random_params(1, seed=2) | {"global_orient": torch.zeros(1, 3), "body_pose": torch.zeros(1, 309)})
    kp = dict(zip(COCO17, out.keypoints["coco17"][0]))
    joints = dict(zip(anny_model.joint_names, out.joints[0]))
    for side, s in (("left", "L"), ("right", "R")):
        assert torch.dist(kp[f"{side}_knee"], joints[f"lowerleg01.{s}"]) < 0.06
        assert torch.dist(kp[f"{side}_elbow"], joints[f"lowerarm01.{s}"]) < 0.06
        assert torch.dist(kp[f"{side}_wrist"], joints[f"wrist.{s}"]) < 0.06
        assert kp[f"{side}_eye"][1] > kp["nose"][1] and kp[f"{side}_eye"][2] < kp["nose"][2]
    assert torch.dist(kp["nose"], joints["head"]) < 0.25
    b25 = dict(zip(BODY25, out.keypoints["body25"][0]))
    torch.testing.assert_close(b25["neck"], 0.5 * (kp["left_shoulder"] + kp["right_shoulder"]))
    torch.testing.assert_close(b25["mid_hip"], 0.5 * (kp["left_hip"] + kp["right_hip"]))
    assert b25["left_heel"][1] < b25["left_ankle"][1]


def test_interface(anny_model):
    assert isinstance(anny_model, BodyModel) and anny_model.family == "anny"
    assert anny_model.joint_names[0] == "root" and anny_model.num_joints == 104
    assert anny_model.num_vertices == 13718 and anny_model.phenotype_labels == PHENOTYPE_LABELS
    shapes = anny_model.parameter_shapes()
    assert shapes == {"global_orient": (3,), "body_pose": (309,), "phenotypes": (6,), "transl": (3,)}
    d = anny_model.default_params(batch_size=2, requires_grad=True)
    assert d["phenotypes"].shape == (2, 6) and float(d["phenotypes"][0, 0].detach()) == 0.5
    assert d["body_pose"].requires_grad
    # body_pose [B, 103, 3] and [B, 309] are the same thing; batch-1 parameters broadcast.
    pose = 0.2 * torch.randn(2, 103, 3)
    a = anny_model(body_pose=pose, phenotypes=torch.full((1, 6), 0.3))
    b = anny_model(body_pose=pose.reshape(2, 309), phenotypes=torch.full((2, 6), 0.3))
    torch.testing.assert_close(a.vertices, b.vertices, atol=1e-6, rtol=0)


def test_batch_shared_phenotypes_get_gradient(anny_model):
    ph = torch.full((1, 6), 0.3, requires_grad=True)
    pose = 0.2 * torch.randn(3, 309)
    anny_model(body_pose=pose, phenotypes=ph).vertices[:, :, 1].sum().backward()
    ph2 = torch.full((3, 6), 0.3, requires_grad=True)
    anny_model(body_pose=pose, phenotypes=ph2).vertices[:, :, 1].sum().backward()
    torch.testing.assert_close(ph.grad[0], ph2.grad.sum(0), rtol=1e-4, atol=1e-4)


# ---- bad input --------------------------------------------------------------------------------------------------
def test_bad_input_errors(anny_model):
    with pytest.raises(InvalidInputError, match="body_pose"):
        anny_model(body_pose=torch.zeros(1, 100))
    with pytest.raises(InvalidInputError, match="global_orient"):
        anny_model(global_orient=torch.tensor([[0.0, float("nan"), 0.0]]))
    with pytest.raises(InvalidInputError, match="phenotypes"):
        anny_model(phenotypes=torch.zeros(1, 5))
    with pytest.raises(InvalidInputError, match=r"phenotypes.*weight"):
        anny_model(phenotypes=torch.tensor([[0.5, 0.5, 0.5, 1.2, 0.5, 0.5]]))
    with pytest.raises(InvalidInputError, match="betas"):
        anny_model(betas=torch.zeros(1, 10))
    with pytest.raises(InvalidInputError, match="batch size"):
        anny_model(global_orient=torch.zeros(2, 3), transl=torch.zeros(3, 3))
    with pytest.raises(InvalidInputError, match="transl"):
        anny_model(transl=[0.0, 0.0, 0.0])
    with pytest.raises(InvalidInputError, match="skinning"):
        AnnyBody(skinning="dqs")
    with pytest.raises(InvalidInputError, match="dtype"):
        AnnyBody(dtype=torch.int32)
    # age reaches down to -1/3 (newborn); the documented clamp maps everything into range.
    anny_model(phenotypes=torch.tensor([[0.5, -0.3, 0.5, 0.5, 0.5, 0.5]]))
    clamped = anny_model.clamp_phenotypes(torch.tensor([[-1.0, -1.0, 2.0, 0.5, 1.5, -0.1]]))
    torch.testing.assert_close(clamped, torch.tensor([[0.0, -1 / 3, 1.0, 0.5, 1.0, 0.0]]))


# ---- factory, cache ---------------------------------------------------------------------------------------------
def test_load_body_model_and_instant_rebuild(anny_model):
    model = load_body_model("anny")
    assert isinstance(model, AnnyBody) and model.skinning == anny_model.skinning
    # Built once per process: a new instance shares the loaded tensors instead of rebuilding.
    assert model.anny.blendshapes.data_ptr() == anny_model.anny.blendshapes.data_ptr()
    model.to(torch.float64)  # converting one instance leaves the others (and the shared fixture) alone
    assert model.dtype == torch.float64 and anny_model.dtype == torch.float32
    assert anny_model.anny.blendshapes.dtype == torch.float32
    with pytest.raises(InvalidInputError, match="name"):
        load_body_model("star")
    with pytest.raises(InvalidInputError, match="model_path"):
        load_body_model("smpl")
    with pytest.raises(InvalidInputError, match="model_path"):
        load_body_model("anny", model_path="x.pkl")


def test_cache_folders(monkeypatch, tmp_path, anny_model):
    import anny.paths
    import warp

    # warp was initialised (by the fixture) with its kernel cache in our folder, plus warp's version subfolder.
    assert Path(warp.config.kernel_cache_dir).parent == body_cache.warp_cache_dir()
    monkeypatch.delenv("ANNY_CACHE_DIR", raising=False)
    monkeypatch.delenv("WARP_CACHE_PATH", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert body_cache.anny_cache_dir() == tmp_path / "xdg" / "human3d" / "anny"
    assert body_cache.warp_cache_dir() == tmp_path / "xdg" / "human3d" / "warp"
    monkeypatch.setenv("ANNY_CACHE_DIR", str(tmp_path / "env"))
    assert body_cache.anny_cache_dir() == (tmp_path / "env").resolve()
    assert body_cache.anny_cache_dir(tmp_path / "arg") == (tmp_path / "arg").resolve()
    # The folder in use is the one the fixture's model was built from (and it holds the build).
    before = anny.paths.get_anny_cache_path()
    try:
        # ANNY_CACHE_DIR (read by anny.paths at import) does not override the folder we set.
        body_cache.configure_anny_cache(tmp_path / "arg")
        assert anny.paths.get_anny_cache_path() == (tmp_path / "arg").resolve()
    finally:
        anny.paths.set_anny_cache_path(before)
    assert before == anny_model.cache_dir and body_cache.anny_cache_ready(anny_model.cache_dir)
    assert not body_cache.anny_cache_ready(tmp_path / "empty")


def test_build_notice_logs_when_slow(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="human3d.body"):
        with body_cache.build_notice(tmp_path, slow=True):
            pass
    assert "Building the Anny body model once" in caplog.text and str(tmp_path) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="human3d.body"):
        with body_cache.build_notice(tmp_path, slow=False):
            pass
    assert caplog.text == ""


# ---- export -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_params_round_trip(anny_model, tmp_path, suffix):
    params = _random_params(2, seed=4)
    path = save_params(tmp_path / f"p{suffix}", params, anny_model)
    loaded = load_params(path, model=anny_model)
    assert loaded.model == "anny" and loaded.batch_size == 2
    assert loaded.meta["phenotype_labels"] == PHENOTYPE_LABELS and loaded.meta["joint_names"] == anny_model.joint_names
    for k, v in params.items():
        assert torch.equal(loaded.params[k], v.reshape(2, -1)), k
    torch.testing.assert_close(anny_model(loaded.params).vertices, anny_model(params).vertices)
    assert not list(tmp_path.glob(".p*"))  # no temporary file left behind


def test_params_load_errors(anny_model, tmp_path):
    good = save_params(tmp_path / "good.json", _random_params(1, seed=1), anny_model)
    doc = json.loads(good.read_text())
    with pytest.raises(DatasetError, match="does not exist"):
        load_params(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match="malformed JSON"):
        load_params(tmp_path / "bad.json")
    (tmp_path / "nokey.json").write_text(json.dumps({"model": "anny"}))
    with pytest.raises(DatasetError, match="missing key 'params'"):
        load_params(tmp_path / "nokey.json")
    wrong = dict(doc, params=dict(doc["params"], phenotypes=[[0.5] * 5]))
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    with pytest.raises(DatasetError, match="phenotypes"):
        load_params(tmp_path / "wrong.json")
    wrong = dict(doc, params=dict(doc["params"], body_pose=[[0.0] * 300]))
    (tmp_path / "wrong2.json").write_text(json.dumps(wrong))
    with pytest.raises(DatasetError, match="body_pose"):
        load_params(tmp_path / "wrong2.json", model=anny_model)
    ragged = dict(doc, params=dict(doc["params"], transl=[[0.0, 1.0], [0.0]]))
    (tmp_path / "ragged.json").write_text(json.dumps(ragged))
    with pytest.raises(DatasetError, match="transl"):
        load_params(tmp_path / "ragged.json")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DatasetError, match="npz"):
        load_params(tmp_path / "corrupt.npz")
    np.savez(tmp_path / "nometa.npz", transl=np.zeros((1, 3)))
    with pytest.raises(DatasetError, match="__meta__"):
        load_params(tmp_path / "nometa.npz")
    with pytest.raises(InvalidInputError, match="should end with"):
        save_params(tmp_path / "p.txt", {}, anny_model)
    with pytest.raises(InvalidInputError, match="body_pose"):
        save_params(tmp_path / "p.json", {"body_pose": torch.zeros(1, 5)}, anny_model)


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".glb"])
def test_export_mesh_round_trip(anny_model, tmp_path, suffix):
    out = anny_model(_random_params(1, seed=6))
    path = export_mesh(tmp_path / f"body{suffix}", out.vertices, out.faces)
    mesh = trimesh.load(path, force="mesh", process=False)
    assert mesh.vertices.shape == (13718, 3) and mesh.faces.shape == (27420, 3)
    np.testing.assert_array_equal(mesh.faces, out.faces.numpy())
    np.testing.assert_allclose(mesh.vertices, out.vertices[0].numpy(), atol=1e-5)


def test_export_mesh_errors(tmp_path):
    v, f = torch.zeros(3, 3), torch.tensor([[0, 1, 2]])
    with pytest.raises(InvalidInputError, match="should end with"):
        export_mesh(tmp_path / "a.stl", v, f)
    with pytest.raises(InvalidInputError, match="vertices"):
        export_mesh(tmp_path / "a.obj", torch.zeros(3, 2), f)
    with pytest.raises(InvalidInputError, match="faces"):
        export_mesh(tmp_path / "a.obj", v, torch.tensor([[0, 1, 3]]))
    assert not list(tmp_path.iterdir())


def test_load_body_model_smpl_family_and_params(tmp_path):
    from human3d.synth import smpl_files as smpl_synth

    from human3d.body.smpl import SMPL

    path = smpl_synth.write_pickle(tmp_path / "SMPL_FEMALE.pkl", smpl_synth.make_model_data("smpl", num_shape=16))
    model = load_body_model("smpl", model_path=path, gender="female", num_betas=12)
    assert isinstance(model, SMPL) and model.num_betas == 12 and model.gender == "female"
    g = torch.Generator().manual_seed(0)
    params = {"betas": torch.randn(2, 12, generator=g), "body_pose": 0.2 * torch.randn(2, 69, generator=g)}
    saved = save_params(tmp_path / "smpl.json", params, model)
    loaded = load_params(saved, model=model)
    assert loaded.model == "smpl" and loaded.meta["gender"] == "female" and loaded.meta["num_betas"] == 12
    torch.testing.assert_close(model(loaded.params).vertices, model(params).vertices)
    other = load_body_model("smpl", model_path=path, gender="female", num_betas=10)
    with pytest.raises(DatasetError, match="betas"):
        load_params(saved, model=other)
    anny_like = dict(json.loads(saved.read_text()), num_betas=10)
    (tmp_path / "bad.json").write_text(json.dumps(anny_like))
    with pytest.raises(DatasetError, match="num_betas"):
        load_params(tmp_path / "bad.json")
