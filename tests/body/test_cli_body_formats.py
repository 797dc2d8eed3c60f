"""`human3d body export` on other tools' parameter files and sequences, through the real CLI, checked against the
library on the same synthetic model files (and pygltflib / imageio for the animated outputs)."""

from __future__ import annotations

import pickle

import imageio.v2 as imageio
import numpy as np
import pygltflib
import smplx
import pytest
import torch
import trimesh
from typer.testing import CliRunner

from human3d.body.io import save_params
from human3d.body.param_formats import read_params
from human3d.body.smpl import SMPL, SMPLH
from human3d.cli.main import app
from human3d.synth import smpl_files as synth

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_models")
    rng = np.random.default_rng(0)
    amass = {"poses": rng.normal(size=(6, 156)) * 0.2, "trans": rng.normal(size=(6, 3)) * 0.1,
             "betas": rng.normal(size=16), "gender": np.array("male"), "mocap_framerate": np.array(60.0)}  # fmt: skip
    np.savez(root / "amass.npz", **amass)
    return {
        "smpl": synth.write_pickle(root / "SMPL_NEUTRAL.pkl", synth.make_model_data("smpl", seed=11)),
        "smplh": synth.write_pickle(root / "SMPLH_MALE.pkl", synth.make_model_data("smplh", num_shape=16, seed=12)),
        "amass": root / "amass.npz",
        "amass_arrays": amass,
    }


def _run(*args):
    res = runner.invoke(app, ["body", "export", *map(str, args)])
    return res


def test_smplx_named_npz_without_metadata(tmp_path, files):
    """The new user's case: an npz of smplx-named arrays only (no __meta__), family from body_pose's 69 values."""
    rng = np.random.default_rng(1)
    arrays = {"global_orient": rng.normal(size=(1, 3)) * 0.3, "body_pose": rng.normal(size=(1, 69)) * 0.3,
              "betas": rng.normal(size=(1, 10)), "transl": rng.normal(size=(1, 3))}  # fmt: skip
    np.savez(tmp_path / "p.npz", **arrays)
    res = _run("--params", tmp_path / "p.npz", "--model-path", files["smpl"], "--out", tmp_path / "b.obj",
               "--save-params", tmp_path / "used.pkl")  # fmt: skip
    assert res.exit_code == 0, res.output
    mesh = trimesh.load(tmp_path / "b.obj", process=False)
    with torch.no_grad():
        want = SMPL(files["smpl"])({k: torch.tensor(v, dtype=torch.float32) for k, v in arrays.items()}).vertices[0]
    np.testing.assert_allclose(np.asarray(mesh.vertices), want.numpy(), atol=1e-5)
    with open(tmp_path / "used.pkl", "rb") as f:
        used = pickle.load(f)  # the smplx layout: bare float32 arrays
    for k, v in arrays.items():
        np.testing.assert_allclose(used[k], v, rtol=1e-6, atol=1e-7)


def _amass_vertices(files, frames):
    model = SMPLH(files["smplh"], gender="male", num_betas=16, flat_hand_mean=True)
    p = read_params(files["amass"]).params
    with torch.no_grad():
        return model({k: v[frames] for k, v in p.items()}).vertices.numpy()


def test_amass_frame_all_frames_and_animated_glb(tmp_path, files):
    res = _run("--params", files["amass"], "--model-path", files["smplh"], "--frame", 3, "--out", tmp_path / "f3.ply")
    assert res.exit_code == 0, res.output
    want = _amass_vertices(files, [0, 2, 3, 4])
    np.testing.assert_allclose(trimesh.load(tmp_path / "f3.ply", process=False).vertices, want[2], atol=1e-5)

    res = _run("--params", files["amass"], "--model-path", files["smplh"], "--all-frames", "--stride", 2,
               "--no-video", "--no-progress", "--out", tmp_path / "seq")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "seq").iterdir()) == ["frame_00000.obj", "frame_00002.obj",
                                                                    "frame_00004.obj"]  # fmt: skip
    np.testing.assert_allclose(trimesh.load(tmp_path / "seq" / "frame_00004.obj", process=False).vertices, want[3],
                               atol=1e-5)  # fmt: skip

    res = _run("--params", files["amass"], "--model-path", files["smplh"], "--all-frames", "--stride", 2,
               "--out", tmp_path / "seq.glb")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "3 frames at 30 fps" in res.output  # mocap_framerate 60 / stride 2
    gltf = pygltflib.GLTF2().load(str(tmp_path / "seq.glb"))
    assert len(gltf.meshes[0].primitives[0].targets) == 3 and gltf.animations[0].samplers[0].interpolation == "STEP"


def test_sequence_video_of_a_batched_file(tmp_path, anny_model):
    g = torch.Generator().manual_seed(2)
    n_pose = anny_model.parameter_shapes()["body_pose"][0]
    params = {"body_pose": 0.3 * torch.randn(3, n_pose, generator=g)}
    save_params(tmp_path / "batch.npz", params, anny_model)
    res = _run("--params", tmp_path / "batch.npz", "--all-frames", "--fps", 5, "--out", tmp_path / "anim")
    assert res.exit_code == 0, res.output
    reader = imageio.get_reader(str(tmp_path / "anim" / "animation.mp4"))
    frames = [f for f in reader]
    assert len(frames) == 3 and reader.get_meta_data()["fps"] == 5
    assert (frames[0] < 200).any(-1).mean() > 0.02  # the body is drawn
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).max() > 50  # and it moves
    assert len(list((tmp_path / "anim").glob("frame_*.obj"))) == 3


@pytest.mark.parametrize(
    "make, args, needles",
    [
        (lambda d: np.savez(d / "a.npz", body_pose=np.zeros((1, 63))), [], ["a.npz", "cannot tell the body model",
                                                                         "--model"]),
        (lambda d: np.savez(d / "a.npz", body_pose=np.zeros((2, 69))), ["--index", "5"], ["--index/--frame", "2 bodies"]),
        (lambda d: np.savez(d / "a.npz", body_pose=np.zeros((1, 69))), ["--all-frames", "--render", "x.png"],
         ["--render"]),
        (lambda d: (d / "a.npz").write_bytes(b"\x00" * 64), [], ["a.npz", "not a valid .npz"]),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, files, make, args, needles):
    make(tmp_path)
    out = tmp_path / ("o" if "--all-frames" in args else "o.obj")
    res = _run("--params", tmp_path / "a.npz", "--model-path", files["smpl"], "--out", out, *args)
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert all(n in text for n in needles), text
    assert "Traceback" not in res.output and "allow_pickle" not in res.output


def test_smplifyx_result_with_hand_pca_matches_smplx(tmp_path):
    """An SMPLify-X result (.pkl, 12 PCA hand coefficients, 10 expressions, camera) exported by the CLI equals
    smplx's SMPL-X with the same PCA settings (use_pca, num_pca_comps=12, flat_hand_mean=False as SMPLify-X)."""
    model = synth.write_pickle(tmp_path / "SMPLX_NEUTRAL.pkl",
                               synth.make_model_data("smplx", num_shape=20, seed=13, dtype=np.float32))  # fmt: skip
    rng = np.random.default_rng(4)
    r = lambda *s: (rng.normal(size=s) * 0.3).astype(np.float32)  # noqa: E731
    result = {"camera_rotation": np.eye(3, dtype=np.float32)[None], "camera_translation": r(1, 3),
              "betas": r(1, 10), "global_orient": r(1, 3), "body_pose": r(1, 63), "left_hand_pose": r(1, 12),
              "right_hand_pose": r(1, 12), "jaw_pose": r(1, 3), "leye_pose": r(1, 3), "reye_pose": r(1, 3),
              "expression": r(1, 10)}  # fmt: skip
    with open(tmp_path / "000.pkl", "wb") as f:
        pickle.dump(result, f, protocol=2)
    res = _run("--params", tmp_path / "000.pkl", "--model-path", model, "--out", tmp_path / "x.obj")
    assert res.exit_code == 0, res.output
    ref = smplx.SMPLX(str(model), use_pca=True, num_pca_comps=12, num_betas=10, num_expression_coeffs=10, ext="pkl")
    with torch.no_grad():
        want = ref(**{k: torch.from_numpy(v) for k, v in result.items() if not k.startswith("camera")}).vertices[0]
    np.testing.assert_allclose(trimesh.load(tmp_path / "x.obj", process=False).vertices, want.numpy(), atol=1e-5)
