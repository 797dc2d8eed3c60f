"""`human3d implicit fit | mesh | eval` end to end on spot (tiny settings), and bad input -> exit code 2."""

from __future__ import annotations

import json

import pytest
import trimesh
from typer.testing import CliRunner

from human3d.cli.main import app
from human3d.data.paths import shared_data_dir

SPOT = shared_data_dir() / "meshes_watertight" / "spot_triangulated.obj"


@pytest.mark.skipif(not SPOT.exists(), reason="shared mesh data not available")
def test_fit_mesh_eval(tmp_path, one_thread):
    r = CliRunner()
    run = tmp_path / "run"
    sets = ["n_points=3000", "batch_size=256", "hash_levels=4", "hash_max_resolution=32", "mesh_resolution=32"]
    res = r.invoke(app, ["implicit", "fit", str(SPOT), "--out", str(run), "--steps", "10", "--no-progress",
                         *sum((["--set", s] for s in sets), [])])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["step"] == 10
    res = r.invoke(app, ["implicit", "mesh", str(run), "--resolution", "32", "--out", str(tmp_path / "s.ply")])
    assert res.exit_code == 0, res.output
    assert len(trimesh.load(tmp_path / "s.ply", force="mesh").faces) > 100
    res = r.invoke(app, ["implicit", "eval", str(run), "--reference", str(SPOT), "--resolution", "32", "--n", "2000"])
    assert res.exit_code == 0, res.output
    m = json.loads((run / "metrics.json").read_text())
    assert {"chamfer_l1", "normal_consistency", "fscore", "iou"} <= set(m)


def test_bad_input_exit_code(tmp_path):
    res = CliRunner().invoke(app, ["implicit", "fit", str(tmp_path / "missing.ply"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = CliRunner().invoke(app, ["implicit", "mesh", str(tmp_path / "nope")])
    assert res.exit_code == 2
    res = CliRunner().invoke(app, ["implicit", "mesh", str(tmp_path / "nope"), "--out", str(tmp_path / "m.png")])
    assert res.exit_code == 2 and "--out" in res.output
