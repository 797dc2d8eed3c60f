"""Pose2DTrainer on a fixed synthetic set: the trained net beats the mean-pose baseline on held-out synthetic
people; resume rebuilds the same pool and continues; the CLI trains, evaluates and refuses bad input."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from human3d.pose2d.crops import apply_affine
from human3d.pose2d.data import sample_crops
from human3d.pose2d.metrics import bbox_size, pck
from human3d.pose2d.train import DECODERS, Pose2DTrainer, chunk_seed, heatmap_loss

# a small net at 64^2 (16^2 heatmaps) on 96 rendered training images: ~20 s of training on one core
SMALL = {"data.synth_size": 96, "data.n_images": 96, "data.chunk": 32, "data.eval_images": 32, "data.crop_size": 64,
         "model.widths": [16, 24, 32, 48, 64], "model.deconv": [32, 32, 32], "model.sigma": 1.5,
         "augment.rotation": 0.0, "augment.half_body": 0.0, "augment.scale": 0.1,
         "optim.batch_size": 16, "optim.lr": 3e-3, "run.max_steps": 300, "run.log_every": 50,
         "run.checkpoint_every": 150, "run.threads": 1}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    n = torch.get_num_threads()
    out = tmp_path_factory.mktemp("pose2d") / "run"
    tr = Pose2DTrainer(out, overrides=SMALL)
    tr.train(progress=False)
    yield tr
    torch.set_num_threads(n)


def _mean_pose_pck(tr, alpha):
    """The baseline: every held-out person gets the mean training keypoint location per joint in crop pixels."""
    S, pad = tr.config.data.crop_size, tr.config.data.padding
    train, held = tr.pool(), tr.eval_pool()
    _, kp, _, _ = sample_crops(train, torch.arange(len(train)), S, pad)
    on = (kp[..., 2] > 0).float()
    mean = (kp[..., :2] * on[..., None]).sum(0) / on.sum(0)[:, None]  # [K, 2]
    _, _, A, _ = sample_crops(held, torch.arange(len(held)), S, pad)
    guess = apply_affine(A, mean[None].expand(len(held), -1, -1))
    gt = held.keypoints
    return pck(guess, gt[..., :2], gt[..., 2], bbox_size(held.boxes), alpha)


def test_trained_net_beats_the_mean_pose(trained):
    m = trained.evaluate()
    assert m["n_people"] >= 25 and m["n_joints"] > 300
    base = {a: _mean_pose_pck(trained, a) for a in (0.2, 0.1)}
    for d in DECODERS:
        assert m[d]["pck@0.2"] > base[0.2], (d, m[d], base)
        assert m[d]["pck@0.1"] > base[0.1] + 0.05, (d, m[d], base)
    assert (trained.out / "eval" / "metrics.json").is_file()
    rows = [json.loads(x) for x in (trained.out / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_resume_rebuilds_the_pool_and_continues(trained):
    again = Pose2DTrainer(trained.out, overrides={"run.max_steps": 303})
    assert again.resumed and again.step == 300
    assert again.chunks == [chunk_seed(0, c) for c in range(3)]
    for a, b in zip(trained.net.state_dict().values(), again.net.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(again.pool().keypoints, trained.pool().keypoints)  # same seeds, same people
    assert again.train(progress=False)["step"] == 303


def test_heatmap_loss_weights_and_stages():
    t = torch.zeros(1, 2, 4, 4)
    h = torch.ones(1, 2, 4, 4)
    w = torch.tensor([[1.0, 0.0]])  # the second joint is not labelled: its error does not count
    assert heatmap_loss([h], t, w).item() == pytest.approx(0.5 * 16 / 32)
    assert heatmap_loss([h, h, t], t, w).item() == pytest.approx(2 * 0.5 * 16 / 32)  # summed over stages


def test_cli_train_eval_and_bad_input(tmp_path):
    from human3d.cli.main import app

    run = tmp_path / "run"
    tiny = ["--set", "data.synth_size=64", "--set", "data.n_images=8", "--set", "data.chunk=8", "--set",
            "data.eval_images=4", "--set", "data.crop_size=64", "--set", "run.threads=1"]  # fmt: skip
    r = CliRunner().invoke(app, ["pose2d", "train", "--out", str(run), "--steps", "2", "--no-progress", *tiny])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["step"] == 2 and set(summary["pck@0.2"]) == set(DECODERS)
    r = CliRunner().invoke(app, ["pose2d", "eval", str(run)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["step"] == 2
    r = CliRunner().invoke(app, ["pose2d", "train", "--out", str(tmp_path / "bad"), "--set", "model.arch=resnet"])
    assert r.exit_code == 2 and "model.arch" in r.output
    r = CliRunner().invoke(app, ["pose2d", "eval", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_exported_weights_load_and_predict_the_same(trained, tmp_path):
    from human3d.errors import ModelFileError
    from human3d.pose2d.networks import load_network

    path = trained.export_weights(tmp_path / "w.safetensors")
    net, meta = load_network(path)
    assert meta["crop_size"] == 64 and meta["padding"] == 1.25
    x = torch.rand(2, 3, 64, 64)
    trained.net.eval()
    torch.testing.assert_close(net(x), trained.net(x), atol=0, rtol=0)
    (tmp_path / "bad.safetensors").write_bytes(b"nope")
    with pytest.raises(ModelFileError, match="bad.safetensors"):
        load_network(tmp_path / "bad.safetensors")
