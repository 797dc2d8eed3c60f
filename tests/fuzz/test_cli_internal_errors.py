"""Internal errors (a bug: any exception that is not an input error) exit 1 with one line naming it and
``--debug`` for the traceback, in every command: each row makes one function a command calls raise."""

from __future__ import annotations

import importlib

import pytest
from cli_contract import invoke

pytestmark = pytest.mark.fuzz

# (command line from the inputs folder d and an output folder o, "module:attribute" made to raise)
ROWS = [
    (lambda d, o: ["demo", "-q", "--out", o / "demo"], "human3d.fitting.pipeline:fit_images"),
    (lambda d, o: ["fit", d / "photo.jpg", "-q", "--out", o / "fit"], "human3d.fitting.pipeline:fit_images"),
    (lambda d, o: ["detect", d / "photo.jpg", "--out", o / "k.json"], "human3d.pose2d.detect:detect_keypoints"),
    (lambda d, o: ["body", "export", "--out", o / "b.obj"], "human3d.body.io:export_mesh"),
    (lambda d, o: ["body", "info"], "human3d.body:load_body_model"),
    (lambda d, o: ["synth", "make", "--out", o / "s", "--n", "1", "-q"], "human3d.synth.coco:make_dataset"),
    (lambda d, o: ["nerf", "train", d / "blender", "--out", o / "r", "--steps", "1"], "human3d.nerf.trainer:NerfTrainer.train"),
    (lambda d, o: ["splat", "train", d / "blender", "--out", o / "r", "--steps", "1",
                    "--set", "optim.ssim_lambda=0"],
     "human3d.splat.trainer:SplatTrainer.train"),
    (lambda d, o: ["implicit", "fit", d / "cloud.xyz", "--out", o / "r", "--steps", "1"],
     "human3d.implicit.trainer:SurfaceFitTrainer.train"),
    (lambda d, o: ["pose2d", "train", "--out", o / "r", "--steps", "1"], "human3d.pose2d.train:Pose2DTrainer.train"),
]


def _patch(monkeypatch, target: str):
    mod, _, attr = target.partition(":")
    obj = importlib.import_module(mod)
    *owners, name = attr.split(".")
    for o in owners:
        obj = getattr(obj, o)

    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(obj, name, boom)


@pytest.mark.parametrize("args, target", ROWS, ids=[t for _, t in ROWS])
def test_internal_error_exits_1_with_one_line_and_debug_shows_it(args, target, fz, tmp_path, monkeypatch):
    _patch(monkeypatch, target)
    r = invoke(args(fz, tmp_path))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "%|" not in ln]
    assert r.exit_code == 1, r.stderr
    assert lines == ["internal error: RuntimeError: boom (run `human3d --debug ...` for the traceback)"], r.stderr
    r = invoke(["--debug", *args(fz, tmp_path / "debug")])
    assert isinstance(r.exception, RuntimeError) and str(r.exception) == "boom"  # the traceback is not swallowed
