"""Parameter files of other tools (smplx names, SMPLify-X, AMASS, 4D-Humans), each built here in that tool's layout,
read back against the known parameters; bodies posed from them against smplx (the oracle) on the same synthetic
model files, with rotations converted independently by scipy."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import smplx
import torch
from scipy.spatial.transform import Rotation

from human3d.body.io import load_params
from human3d.body.param_formats import read_params
from human3d.body.smpl import SMPL, SMPLH
from human3d.errors import DatasetError, ModelFileError, UnsafePickleError
from human3d.synth import smpl_files as synth

TOL = 1e-5  # metres, float32


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "smpl": synth.write_pickle(root / "SMPL_NEUTRAL.pkl", synth.make_model_data("smpl", num_shape=10, seed=4)),
        "smplh": synth.write_pickle(root / "SMPLH_FEMALE.pkl", synth.make_model_data("smplh", num_shape=16, seed=5)),
    }


@pytest.fixture(scope="module")
def smpl_pair(model_files):
    """(ours, smplx) SMPL on the same synthetic file, loaded once."""
    return SMPL(model_files["smpl"]), smplx.SMPL(str(model_files["smpl"]))


def _pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # SMPLify-X and most fitting codes: protocol 2
    return path


def _smpl_arrays(B, seed=0):
    rng = np.random.default_rng(seed)
    return {"global_orient": rng.normal(size=(B, 3)) * 0.3, "body_pose": rng.normal(size=(B, 69)) * 0.3,
            "betas": rng.normal(size=(B, 10)), "transl": rng.normal(size=(B, 3))}  # fmt: skip


@pytest.mark.parametrize("suffix", [".npz", ".json", ".pkl"])
def test_smplx_named_files(tmp_path, suffix):
    want = _smpl_arrays(2, seed=1)
    path = tmp_path / f"p{suffix}"
    if suffix == ".npz":
        np.savez(path, **want)
    elif suffix == ".json":
        path.write_text(json.dumps({k: v.tolist() for k, v in want.items()}))
    else:
        _pickle(path, {k: v.astype(np.float32) for k, v in want.items()})
    got = read_params(path)
    assert got.model == "smpl" and got.meta["num_betas"] == 10 and got.meta["format"] == "smplx"
    assert set(got.params) == set(want)
    for k, v in want.items():
        np.testing.assert_allclose(got.params[k].numpy(), v, rtol=1e-6, atol=1e-7, err_msg=k)


def test_one_body_without_batch_axis_and_model_adaptation(tmp_path):
    rng = np.random.default_rng(2)
    one = {"global_orient": rng.normal(size=3), "body_pose": rng.normal(size=63), "betas": rng.normal(size=10)}
    np.savez(tmp_path / "one.npz", **one)
    with pytest.raises(DatasetError, match=r"one.npz.*cannot tell the body model.*63 values.*--model smplh / smplx"):
        read_params(tmp_path / "one.npz")
    got = read_params(tmp_path / "one.npz", model="smpl")  # SMPL: the two hand joints are added as zeros
    assert got.model == "smpl" and got.params["body_pose"].shape == (1, 69)
    np.testing.assert_allclose(got.params["body_pose"][0, :63].numpy(), one["body_pose"], rtol=1e-6)
    assert not got.params["body_pose"][0, 63:].any()
    assert read_params(tmp_path / "one.npz", model="smplx").params["body_pose"].shape == (1, 63)


def test_smplifyx_result_pkl(tmp_path):
    rng = np.random.default_rng(3)
    r = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    cam_R = Rotation.random(random_state=3).as_matrix()[None].astype(np.float32)
    # fit_single_frame.py: {'camera_' + name: ...} for camera.named_parameters() + body_model.named_parameters()
    result = {"camera_rotation": cam_R, "camera_translation": r(1, 3), "betas": r(1, 10), "global_orient": r(1, 3),
              "left_hand_pose": r(1, 12), "right_hand_pose": r(1, 12), "jaw_pose": r(1, 3), "leye_pose": r(1, 3),
              "reye_pose": r(1, 3), "expression": r(1, 10), "body_pose": r(1, 63)}  # fmt: skip
    got = read_params(_pickle(tmp_path / "000.pkl", result))
    assert got.model == "smplx" and got.meta["format"] == "smplify-x"
    assert got.meta["num_pca_comps"] == 12 and got.meta["num_betas"] == 10 and got.meta["num_expression_coeffs"] == 10
    np.testing.assert_allclose(got.meta["camera"]["rotation"], cam_R.reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(got.meta["camera"]["translation"], result["camera_translation"].reshape(-1))
    for k in set(result) - {"camera_rotation", "camera_translation"}:
        np.testing.assert_array_equal(got.params[k].numpy(), result[k], err_msg=k)
    assert not any(k.startswith("camera") for k in got.params)
    vposer = dict(result, body_pose=r(1, 32))  # SMPLify-X with use_vposer stores the latent code
    with pytest.raises(DatasetError, match=r"32 values: a VPoser latent code.*decoded axis-angle"):
        read_params(_pickle(tmp_path / "vp.pkl", vposer))


def _amass(N, width, seed=0):
    rng = np.random.default_rng(seed)
    return {"poses": rng.normal(size=(N, width)) * 0.3, "trans": rng.normal(size=(N, 3)),
            "betas": rng.normal(size=16), "gender": np.array("female"), "mocap_framerate": np.array(120.0),
            "dmpls": rng.normal(size=(N, 8))}  # fmt: skip


def test_amass_smplh_split_and_vertices_match_smplx(tmp_path, model_files):
    d = _amass(5, 156, seed=4)
    d["betas"][10:] = 0.0  # smplx uses at most 10 betas of a file with fewer than 300 shape components
    np.savez(tmp_path / "walk_poses.npz", **d)
    got = read_params(tmp_path / "walk_poses.npz")
    assert got.model == "smplh" and got.batch_size == 5
    assert got.meta == {"format": "amass", "flat_hand_mean": True, "fps": 120.0, "gender": "female",
                        "num_betas": 16, "model": "smplh"}  # fmt: skip
    p = {k: v.numpy() for k, v in got.params.items()}
    poses = d["poses"].astype(np.float32)
    # the AMASS convention (human_body_prior): root_orient = poses[:, :3], pose_body = poses[:, 3:66],
    # pose_hand = poses[:, 66:] (left hand 15 joints, then right hand 15 joints)
    np.testing.assert_array_equal(p["global_orient"], poses[:, :3])
    np.testing.assert_array_equal(p["body_pose"], poses[:, 3:66])
    np.testing.assert_array_equal(np.concatenate([p["left_hand_pose"], p["right_hand_pose"]], 1), poses[:, 66:])
    np.testing.assert_array_equal(p["transl"], d["trans"].astype(np.float32))
    np.testing.assert_array_equal(p["betas"], np.repeat(d["betas"][None].astype(np.float32), 5, 0))

    ours = SMPLH(model_files["smplh"], gender="female", num_betas=16, flat_hand_mean=True)
    ref = smplx.SMPLH(str(model_files["smplh"]), gender="female", num_betas=10, use_pca=False, flat_hand_mean=True,
                      ext="pkl")  # fmt: skip
    t = {k: torch.from_numpy(v) for k, v in p.items()}
    t["betas"] = t["betas"][:, :10]  # the other 6 are zero
    with torch.no_grad():
        r = ref(global_orient=t["global_orient"], body_pose=t["body_pose"], betas=t["betas"], transl=t["transl"],
                left_hand_pose=t["left_hand_pose"], right_hand_pose=t["right_hand_pose"])  # fmt: skip
        assert (ours(got.params).vertices - r.vertices).abs().max().item() < TOL


def test_amass_smplx_layout(tmp_path):
    d = _amass(3, 165, seed=5)
    d["surface_model_type"] = np.array("smplx")
    np.savez(tmp_path / "stageii.npz", **d)
    got = read_params(tmp_path / "stageii.npz")
    assert got.model == "smplx"
    poses = d["poses"].astype(np.float32)
    spans = {"global_orient": (0, 3), "body_pose": (3, 66), "jaw_pose": (66, 69), "leye_pose": (69, 72),
             "reye_pose": (72, 75), "left_hand_pose": (75, 120), "right_hand_pose": (120, 165)}  # fmt: skip
    for k, (a, b) in spans.items():
        np.testing.assert_array_equal(got.params[k].numpy(), poses[:, a:b], err_msg=k)
    np.savez(tmp_path / "bad.npz", **dict(d, poses=d["poses"][:, :100]))
    with pytest.raises(DatasetError, match=r"bad.npz.*'poses' has 100 columns; expected 156 .* or 165"):
        read_params(tmp_path / "bad.npz")


def _hmr_person(seed):
    """A 4D-Humans / PHALP per-person dict: rotation matrices, betas [10]; and the same rotations as rotvecs."""
    go = Rotation.random(1, random_state=seed)
    bp = Rotation.random(23, random_state=seed + 100)
    betas = np.random.default_rng(seed).normal(size=10).astype(np.float32)
    person = {"global_orient": go.as_matrix().astype(np.float32), "body_pose": bp.as_matrix().astype(np.float32),
              "betas": betas}  # fmt: skip
    return person, {"global_orient": go.as_rotvec().reshape(1, 3), "body_pose": bp.as_rotvec().reshape(1, 69),
                    "betas": betas[None]}  # fmt: skip


@pytest.mark.parametrize("suffix", [".pkl", ".npz"])
def test_4dhumans_rotation_matrices_match_smplx(tmp_path, smpl_pair, suffix):
    person, rotvec = _hmr_person(seed=7)
    path = tmp_path / f"person{suffix}"
    _pickle(path, person) if suffix == ".pkl" else np.savez(path, **person)
    got = read_params(path)
    assert got.model == "smpl" and got.meta["format"] == "4d-humans" and got.batch_size == 1
    ours, ref = smpl_pair
    with torch.no_grad():
        r = ref(**{k: torch.tensor(v, dtype=torch.float32) for k, v in rotvec.items()})
        assert (ours(got.params).vertices - r.vertices).abs().max().item() < TOL


def test_4dhumans_batches_and_lists(tmp_path):
    people = [_hmr_person(seed=s) for s in (1, 2, 3)]
    got = read_params(_pickle(tmp_path / "list.pkl", [p for p, _ in people]))
    assert got.batch_size == 3
    want = np.concatenate([rv["body_pose"] for _, rv in people])
    np.testing.assert_allclose(got.params["body_pose"].numpy(), want, atol=1e-5)
    batched = {"pred_smpl_params": {"global_orient": np.stack([p["global_orient"] for p, _ in people]),  # [B,1,3,3]
                                    "body_pose": np.stack([p["body_pose"] for p, _ in people]),  # [B,23,3,3]
                                    "betas": np.stack([p["betas"] for p, _ in people])}}  # fmt: skip
    got = read_params(_pickle(tmp_path / "hmr2.pkl", batched))
    np.testing.assert_allclose(got.params["body_pose"].numpy(), want, atol=1e-5)
    np.testing.assert_allclose(got.params["global_orient"].numpy(),
                               np.concatenate([rv["global_orient"] for _, rv in people]), atol=1e-5)  # fmt: skip
    sheared = dict(people[0][0], body_pose=people[0][0]["body_pose"] * 1.5)
    with pytest.raises(DatasetError, match=r"'body_pose' holds 3x3 matrices that are not rotations"):
        read_params(_pickle(tmp_path / "shear.pkl", sheared))


def test_bad_files_give_one_clear_line(tmp_path):
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    for reader in (read_params, load_params):
        with pytest.raises(DatasetError, match=r"random.npz': not a valid .npz file \(expected a zip archive") as e:
            reader(tmp_path / "random.npz")
        assert "allow_pickle" not in str(e.value)
    with pytest.raises(ModelFileError, match=r"random.npz: not a valid .npz model file \(expected a zip") as e:
        SMPL(tmp_path / "random.npz")  # the same bytes as a model file
    assert "allow_pickle" not in str(e.value)
    np.savez(tmp_path / "obj.npz", body_pose=np.array([{"a": 1}], dtype=object), betas=np.zeros(10))
    with pytest.raises(DatasetError, match=r"obj.npz: members \['body_pose'\] hold pickled Python objects"):
        load_params(tmp_path / "obj.npz")
    np.savez(tmp_path / "nan.npz", **dict(_smpl_arrays(1), transl=np.array([[0, np.nan, 0]])))
    with pytest.raises(DatasetError, match=r"nan.npz.*'transl' contains NaN/inf"):
        read_params(tmp_path / "nan.npz")
    np.savez(tmp_path / "none.npz", vertices=np.zeros((5, 3)))
    with pytest.raises(DatasetError, match=r"none.npz.*no body parameters found \(keys \['vertices'\]\)"):
        read_params(tmp_path / "none.npz")

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    _pickle(tmp_path / "evil.pkl", {"betas": Evil()})
    with pytest.raises(UnsafePickleError, match=r"evil.pkl.*refused to load global '(posix|os|nt)\.system'"):
        read_params(tmp_path / "evil.pkl")
    (tmp_path / "cut.pkl").write_bytes(pickle.dumps(_smpl_arrays(1), protocol=2)[:50])
    with pytest.raises(DatasetError, match=r"cut.pkl: not a readable parameter pickle"):
        read_params(tmp_path / "cut.pkl")
