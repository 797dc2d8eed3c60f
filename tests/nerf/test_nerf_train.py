"""End-to-end NeRF: lego training reaches > 20 dB, resume after a kill, CLI commands, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from human3d.cli.nerf import app
from human3d.data.paths import shared_data_dir
from human3d.errors import DatasetError, ModelFileError
from human3d.nerf import NerfTrainer, preset

LEGO = shared_data_dir() / "nerf_lego_400"

# CPU test setting: 100x100 images, a small hash grid and ~16k samples per step
E2E = {"data.downscale": 4, "run.max_steps": 250, "optim.target_samples": 2**14, "field.n_levels": 12,
       "field.max_resolution": 512, "estimator.render_step_size": 0.01, "estimator.resolution": 64,
       "estimator.warmup_fraction": 0.5, "estimator.update_fraction": 0.25, "run.checkpoint_every": 125,
       "run.log_every": 50}


@pytest.fixture(autouse=True)
def _restore_threads():
    # the fast preset sets torch's thread count process-wide: give other tests their setting back
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def lego_run(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("nerf") / "lego"
        trainer = NerfTrainer(out, LEGO, config=preset("fast", **E2E))
        summary = trainer.train(progress=False)
        yield trainer, summary
    finally:
        torch.set_num_threads(n)


@pytest.mark.slow
def test_lego_end_to_end_psnr(lego_run):
    trainer, summary = lego_run
    assert summary["step"] == 250
    with pytest.warns(UserWarning, match="val"):
        m = trainer.evaluate("test", max_views=4)
    assert m["split"] == "val" and m["n_views"] == 4  # lego_400 has no test split: val is the test split
    print(f"lego 100x100 after {summary['step']} steps ({summary['elapsed_s']:.0f} s): val PSNR {m['psnr']:.2f} dB")
    assert m["psnr"] > 20.0, m
    assert 0.5 < m["ssim"] <= 1.0
    d = trainer.out / "eval" / "val"
    saved = json.loads((d / "metrics.json").read_text())
    assert saved["psnr"] == pytest.approx(m["psnr"]) and saved["lpips"] is None
    assert len(list(d.glob("*.png"))) == 4
    log = [json.loads(line) for line in (trainer.out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [50, 100, 150, 200, 250] and log[-1]["psnr_ema"] > log[0]["psnr_ema"]


@pytest.mark.slow
def test_cli_eval_render_orbit_mesh(lego_run, tmp_path):
    import imageio.v2 as imageio
    import trimesh

    trainer, _ = lego_run
    run = trainer.out
    runner = CliRunner()
    r = runner.invoke(app, ["eval", str(run), "--max-views", "1"])
    assert r.exit_code == 0, r.output
    assert "PSNR" in r.output
    video = tmp_path / "orbit.mp4"
    r = runner.invoke(app, ["render", str(run), "--orbit", "4", "--video", str(video), "--fps", "4"])
    assert r.exit_code == 0, r.output
    frames = imageio.mimread(str(video), format="FFMPEG")
    assert len(frames) == 4 and frames[0].shape == (100, 100, 3)
    # the object is in view: a rendered orbit frame is not all background (white)
    assert (np.asarray(frames[0]).astype(float).mean(-1) < 200).mean() > 0.05
    ply = tmp_path / "scene.ply"
    r = runner.invoke(app, ["mesh", str(run), "--out", str(ply), "--resolution", "64"])
    assert r.exit_code == 0, r.output
    m = trimesh.load(ply)
    assert len(m.vertices) > 100 and len(m.faces) > 100
    # lego occupies roughly [-0.7, 0.7] x [-1.2, 1.2] x [-0.4, 1.1]: the mesh must lie inside the scene box
    assert (np.abs(m.vertices) <= 1.5 + 1e-4).all() and 1.0 < m.extents.max() < 3.0, (m.bounds, m.extents)


def _tiny_config(**kw):
    return preset("fast", **{**{"data.downscale": 16, "run.max_steps": 24, "optim.target_samples": 2**11,
                                "optim.num_rays": 256, "field.n_levels": 4, "field.max_resolution": 64,
                                "field.log2_table_size": 12, "estimator.resolution": 32,
                                "estimator.render_step_size": 0.02, "estimator.update_every": 4,
                                "estimator.warmup_steps": 8, "run.checkpoint_every": 8}, **kw})  # fmt: skip


class _Kill(Exception):
    pass


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, one_thread):
    full = NerfTrainer(tmp_path / "full", LEGO, config=_tiny_config())
    full.train(progress=False)

    def kill_at_13(trainer, info):
        if info["step"] == 13:
            raise _Kill()

    killed = NerfTrainer(tmp_path / "killed", LEGO, config=_tiny_config())
    with pytest.raises(_Kill):
        killed.train(callback=kill_at_13, progress=False)
    resumed = NerfTrainer(tmp_path / "killed", LEGO, config=_tiny_config())
    assert resumed.step == 8  # the last checkpoint before the kill
    resumed.train(progress=False)
    assert resumed.step == full.step == 24
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
    assert resumed.num_rays == full.num_rays
    # a run folder reopened for rendering sees the final checkpoint
    again = NerfTrainer.from_run(tmp_path / "killed")
    assert again.step == 24


def test_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        NerfTrainer(tmp_path / "run", tmp_path / "nothing", config=_tiny_config())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="neither Blender"):
        NerfTrainer(tmp_path / "run", tmp_path / "empty", config=_tiny_config())
    with pytest.raises(ModelFileError, match="not a NeRF run"):
        NerfTrainer.from_run(tmp_path / "empty")
    runner = CliRunner()
    r = runner.invoke(app, ["train", str(tmp_path / "nothing"), "--out", str(tmp_path / "r2"), "--no-progress"])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = runner.invoke(app, ["train", str(LEGO), "--preset", "nope", "--out", str(tmp_path / "r3")])
    assert r.exit_code == 2 and "preset" in r.output
    # a corrupt checkpoint is reported as such
    run = tmp_path / "run_ok"
    tr = NerfTrainer(run, LEGO, config=_tiny_config(**{"run.max_steps": 1}))
    tr.train(progress=False)
    (run / "checkpoint.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="corrupt"):
        NerfTrainer.from_run(run)
    r = runner.invoke(app, ["eval", str(run)])
    assert r.exit_code == 2 and "corrupt" in r.output


def test_pe_nerf_baseline_trains_a_step(tmp_path, one_thread):
    cfg = preset("nerf", **{"data.downscale": 16, "run.max_steps": 2, "optim.num_rays": 64, "pe.n_coarse": 16,
                            "pe.n_fine": 16, "pe.hidden_dim": 32, "run.checkpoint_every": 2})  # fmt: skip
    tr = NerfTrainer(tmp_path / "pe", LEGO, config=cfg)
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    info = tr.train(progress=False)
    assert tr.step == 2 and np.isfinite(info["loss"]) and info["samples"] == 64 * (16 + 32)
    assert any(not torch.equal(before[k], v) for k, v in tr.model.state_dict().items())


def test_trains_on_a_colmap_scene(tmp_path, one_thread, synthetic_colmap):
    from human3d.data import colmap

    root = tmp_path / "scene"
    model = synthetic_colmap(root)
    colmap.write_model(model, root / "sparse" / "0", binary=True)
    tr = NerfTrainer(tmp_path / "run", root, config=_tiny_config(**{"run.max_steps": 3, "data.downscale": 1}))
    assert tr.train_split.format == "colmap" and tr.train_split.alphas is None
    # near/far and the box come from the sparse points (points lie in [-1, 1]^3, cameras at distance ~4)
    assert 2.0 < tr.far < 8.0 and 0 < tr.near < 3.5
    assert torch.allclose(tr.model.aabb, tr.train_split.scene_bounds)
    tr.train(progress=False)
    m = tr.evaluate("test", write_images=False)
    assert m["split"] == "test" and m["n_views"] == 2 and np.isfinite(m["psnr"])
    r = CliRunner().invoke(app, ["render", str(tmp_path / "run"), "--split", "test"])
    assert r.exit_code == 0, r.output
    pngs = sorted((tmp_path / "run" / "renders" / "test").glob("*.png"))
    assert len(pngs) == 2
    import cv2

    assert cv2.imread(str(pngs[0])).shape == (30, 40, 3)


def test_cli_train_then_resume(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["train", str(LEGO), "--out", str(out), "--downscale", "16", "--no-progress"]
    r = runner.invoke(app, args + ["--steps", "2"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["step"] == 2
    r = runner.invoke(app, args + ["--steps", "4"])
    assert r.exit_code == 0, r.output
    assert "resuming" in r.output and json.loads(r.output.strip().splitlines()[-1])["step"] == 4


def test_resume_extends_the_run_and_refuses_a_changed_model(tmp_path, one_thread):
    from human3d.errors import InvalidInputError

    out = tmp_path / "run"
    NerfTrainer(out, LEGO, config=_tiny_config(**{"run.max_steps": 4})).train(progress=False)
    more = NerfTrainer(out, overrides={"run.max_steps": 6})  # data and config come from the run folder
    assert more.resumed and more.step == 4
    assert more.train(progress=False)["step"] == 6
    with pytest.raises(InvalidInputError, match="field.n_levels"):
        NerfTrainer(out, overrides={"field.n_levels": 8})


def test_sigint_saves_a_checkpoint_that_evaluates_and_resumes(tmp_path, one_thread):
    import os
    import signal

    from human3d.train import TrainingInterrupted

    def interrupt_at_3(trainer, info):
        if info["step"] == 3:
            os.kill(os.getpid(), signal.SIGINT)

    out = tmp_path / "run"
    tr = NerfTrainer(out, LEGO, config=_tiny_config(**{"run.checkpoint_every": 100}))
    with pytest.raises(TrainingInterrupted, match="SIGINT.*checkpoint saved") as e:
        tr.train(callback=interrupt_at_3, progress=False)
    assert e.value.step == 3 and e.value.checkpoint.is_file()
    again = NerfTrainer.from_run(out)
    assert again.step == 3
    m = again.evaluate("test", max_views=1, write_images=False)
    assert np.isfinite(m["psnr"])


def test_cli_interrupt_exits_130_with_the_checkpoint_path(tmp_path, monkeypatch):
    import os
    import signal

    original = NerfTrainer.train_step

    def step_then_interrupt(self):
        info = original(self)
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return info

    monkeypatch.setattr(NerfTrainer, "train_step", step_then_interrupt)
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", str(LEGO), "--out", str(out), "--downscale", "16", "--steps", "50",
                                 "--no-progress"])  # fmt: skip
    assert r.exit_code == 130, r.output
    assert "checkpoint saved" in r.output and str(out / "checkpoint.safetensors") in r.output
    assert NerfTrainer.from_run(out).step == 2
