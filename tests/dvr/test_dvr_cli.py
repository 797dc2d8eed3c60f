"""``human3d dvr``: make-renders, train (progress, checkpoint, resume), eval (PSNR / SSIM / mask IoU), render
(split and orbit), mesh (watertight), and exit code 2 with a message on bad input."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from human3d.cli.main import app
from human3d.implicit.sampling import is_watertight, load_mesh

runner = CliRunner()


def _ok(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return r


def test_dvr_cli_end_to_end(tmp_path, one_thread):
    data = tmp_path / "sphere"
    import trimesh

    mesh = tmp_path / "ico.obj"
    trimesh.creation.icosphere(subdivisions=3).export(mesh)
    _ok(["dvr", "make-renders", str(mesh), "--views", "12", "--test-views", "2", "--size", "24", "--out", str(data)])
    assert (data / "transforms_train.json").is_file() and (data / "mesh.obj").is_file()
    run = tmp_path / "run"
    common = ["dvr", "train", str(data), "--preset", "tiny", "--out", str(run), "--no-progress"]
    _ok(common + ["--steps", "5"])
    _ok(common + ["--steps", "10"])  # resumes and extends the run
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 10
    r = _ok(["dvr", "eval", str(run), "--no-images"])
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert m["n_views"] == 2 and 0.0 <= m["mask_iou"] <= 1.0 and m["psnr"] > 0
    _ok(["dvr", "render", str(run), "--split", "test"])
    assert len(list((run / "renders" / "test").glob("*.png"))) == 2
    _ok(["dvr", "render", str(run), "--orbit", "2", "--video", str(tmp_path / "o.mp4")])
    assert (tmp_path / "o.mp4").stat().st_size > 0
    _ok(["dvr", "mesh", str(run), "--out", str(tmp_path / "m.obj"), "--resolution", "32"])
    assert is_watertight(load_mesh(tmp_path / "m.obj")[1])
    # a changed model on resume is refused (exit 2, names the field)
    r = runner.invoke(app, common + ["--set", "field.hidden=16"])
    assert r.exit_code == 2 and "field.hidden" in r.output


def test_dvr_cli_bad_input(tmp_path):
    r = runner.invoke(app, ["dvr", "train", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = runner.invoke(app, ["dvr", "mesh", str(tmp_path / "norun"), "--out", str(tmp_path / "m.obj")])
    assert r.exit_code == 2 and "run folder" in r.output
    r = runner.invoke(app, ["dvr", "make-renders", str(tmp_path / "missing.obj"), "--out", str(tmp_path / "d")])
    assert r.exit_code == 2 and "missing.obj" in r.output
    r = runner.invoke(app, ["dvr", "mesh", str(tmp_path), "--out", str(tmp_path / "m.txt")])
    assert r.exit_code == 2 and "--out" in r.output
