"""`human3d implicit train-shapes | complete | sample | mesh --shape` end to end (a micro Anny shape space), and
bad input -> exit code 2 with a message naming the problem."""

from __future__ import annotations

import json

import numpy as np
import trimesh
from typer.testing import CliRunner

from human3d.cli.main import app


def test_train_shapes_writes_a_run(tmp_path, one_thread):
    r = CliRunner()
    run = tmp_path / "run"
    sets = ["n_samples=2048", "latent_dim=4", "hidden=32", "n_layers=2", "points_per_shape=256",
            "flow_steps=30", "flow_hidden=16", "flow_layers=2", "mesh_resolution=32"]  # fmt: skip
    res = r.invoke(app, ["implicit", "train-shapes", "--family", "anny", "--n-shapes", "3", "--poses", "rest",
                         "--out", str(run), "--steps", "20", "--no-progress", *sum((["--set", s] for s in sets), [])])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["step"] == 20
    assert (run / "prior_flow.safetensors").is_file() and (run / "prior_gaussian.json").is_file()
    # resume: more steps on the same run (the cached samples are reused)
    res = r.invoke(app, ["implicit", "train-shapes", "--out", str(run), "--steps", "25", "--no-progress",
                         "--n-shapes", "3", "--poses", "rest", *sum((["--set", s] for s in sets), [])])
    assert res.exit_code == 0 and "resuming" in res.output, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["step"] == 25


def test_complete_sample_mesh(tiny_shape_run, tmp_path, one_thread):
    from human3d.implicit.completion import depth_view
    from human3d.implicit.shapes import anny_bodies

    r = CliRunner()
    run = tiny_shape_run.out
    _, v, f = anny_bodies(1, seed=9, poses="rest")
    view = depth_view(v[0], f, size=32)
    partial = tmp_path / "view.ply"
    trimesh.PointCloud(view.points).export(partial)
    cam = ",".join(f"{c:.6f}" for c in view.origin)
    for prior in ("gaussian", "flow"):
        out = tmp_path / f"body_{prior}.obj"
        res = r.invoke(app, ["implicit", "complete", str(run), str(partial), "--out", str(out), "--prior", prior,
                             "--camera", cam, "--steps", "5", "--resolution", "32"])  # fmt: skip
        assert res.exit_code == 0, res.output
        m = trimesh.load(out, force="mesh")
        assert m.is_watertight and m.bounds[1, 1] - m.bounds[0, 1] > 0.3  # a closed, body-sized surface (metres)
    res = r.invoke(app, ["implicit", "sample", str(run), "--n", "2", "--out", str(tmp_path / "s"), "--resolution",
                         "32", "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout.strip().splitlines()[-1])["meshes"]) == 2
    assert len(json.loads((tmp_path / "s" / "codes.json").read_text())["codes"]) == 2
    res = r.invoke(app, ["implicit", "mesh", str(run), "--shape", "1", "--resolution", "32", "--out",
                         str(tmp_path / "m.obj")])  # fmt: skip
    assert res.exit_code == 0 and len(trimesh.load(tmp_path / "m.obj", force="mesh").faces) > 50, res.output

    # bad inputs on the trained run
    bad = tmp_path / "nan.xyz"
    np.savetxt(bad, np.r_[np.zeros((20, 3)), [[np.nan, 0, 0]]])
    res = r.invoke(app, ["implicit", "complete", str(run), str(bad), "--out", str(tmp_path / "x.obj")])
    assert res.exit_code == 2 and "NaN" in res.output
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    res = r.invoke(app, ["implicit", "complete", str(run), str(empty), "--out", str(tmp_path / "x.obj")])
    assert res.exit_code == 2 and "empty.xyz" in res.output
    res = r.invoke(app, ["implicit", "complete", str(run), str(partial), "--prior", "vae"])
    assert res.exit_code == 2 and "--prior" in res.output
    res = r.invoke(app, ["implicit", "mesh", str(run), "--shape", "12", "--out", str(tmp_path / "m.obj")])
    assert res.exit_code == 2 and "0..11" in res.output


def test_wrong_run_kind_and_family(tmp_path):
    fit_run = tmp_path / "fit"
    fit_run.mkdir()
    (fit_run / "run.json").write_text(json.dumps({"kind": "implicit-fit", "config": {}}))
    (fit_run / "checkpoint.safetensors").write_bytes(b"")
    pts = tmp_path / "p.xyz"
    np.savetxt(pts, np.random.default_rng(0).normal(size=(50, 3)))
    r = CliRunner()
    res = r.invoke(app, ["implicit", "complete", str(fit_run), str(pts), "--out", str(tmp_path / "b.obj")])
    assert res.exit_code == 2 and "not a DeepSDF run" in res.output
    res = r.invoke(app, ["implicit", "sample", str(fit_run), "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and "not a DeepSDF run" in res.output
    res = r.invoke(app, ["implicit", "train-shapes", "--family", "meshes", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "folder of watertight meshes" in res.output
    res = r.invoke(app, ["implicit", "train-shapes", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r2")])
    assert res.exit_code == 2 and "not a folder of meshes" in res.output
