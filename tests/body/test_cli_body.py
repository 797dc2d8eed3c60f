"""`human3d body export/info` through the real CLI (typer's CliRunner), checked against the library."""

import json

import numpy as np
import pytest
import torch
import trimesh
from typer.testing import CliRunner

from human3d.body.io import save_params
from human3d.cli.main import app
from human3d.synth.smpl_files import make_model_data, write_pickle

runner = CliRunner()


def test_help_lists_every_command():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("body", "fit", "demo"):
        assert cmd in res.output
    res = runner.invoke(app, ["body", "export", "--help"])
    for opt in ("--model", "--model-path", "--params", "--out", "--render"):
        assert opt in res.output


def test_export_anny_posed_mesh_matches_library(tmp_path, anny_model):
    g = torch.Generator().manual_seed(0)
    params = {
        "body_pose": 0.2 * torch.randn(1, anny_model.parameter_shapes()["body_pose"][0], generator=g),
        "phenotypes": torch.rand(1, 6, generator=g) * 0.6 + 0.2,
        "transl": torch.tensor([[0.1, 0.2, 0.3]]),
    }
    save_params(tmp_path / "p.json", params, anny_model)
    out = tmp_path / "body.ply"
    res = runner.invoke(
        app, ["body", "export", "--params", str(tmp_path / "p.json"), "--out", str(out), "--render", str(tmp_path / "b.png")]
    )
    assert res.exit_code == 0, res.output
    mesh = trimesh.load(out, process=False)
    with torch.no_grad():
        ref = anny_model(params).vertices[0].numpy()
    np.testing.assert_allclose(np.asarray(mesh.vertices), ref, atol=1e-5)
    import cv2

    img = cv2.imread(str(tmp_path / "b.png"))
    assert img.shape == (512, 512, 3)
    assert (img < 250).any(axis=-1).mean() > 0.05  # the body covers part of the white background


def test_info_json_anny(anny_model):
    res = runner.invoke(app, ["body", "info", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["vertices"] == anny_model.num_vertices
    assert info["parameters"]["body_pose"] == [3 * (anny_model.num_joints - 1)]


def test_export_smpl_from_synthetic_file(tmp_path):
    path = write_pickle(tmp_path / "SMPL_NEUTRAL.pkl", make_model_data("smpl"))
    out = tmp_path / "smpl.obj"
    res = runner.invoke(app, ["body", "export", "--model", "smpl", "--model-path", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(trimesh.load(out, process=False).vertices) == 6890


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--model", "smpl"], "model_path"),
        (["--model", "smpl", "--model-path", "/nonexistent/SMPL_NEUTRAL.pkl"], "nonexistent"),
        (["--params", "/nonexistent/p.json"], "nonexistent"),
    ],
)
def test_export_bad_input_is_one_clear_line(tmp_path, args, needle):
    res = runner.invoke(app, ["body", "export", "--out", str(tmp_path / "x.obj"), *args])
    assert res.exit_code == 2
    assert needle in res.output
    assert "Traceback" not in res.output


def test_export_malformed_params_json(tmp_path, anny_model):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = runner.invoke(app, ["body", "export", "--params", str(bad), "--out", str(tmp_path / "x.obj")])
    assert res.exit_code == 2 and "bad.json" in res.output
