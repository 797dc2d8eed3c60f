"""Learned gradient descent (human3d.fitting.lgd): its gradient input, its training, and that the shipped network
at 4 stages beats 4 steps of plain gradient descent and of Adam on held-out synthetic keypoints."""

from __future__ import annotations

import pytest
import torch

from human3d.errors import InvalidInputError
from human3d.fitting import SMPLifyConfig, smplify
from human3d.fitting.inputs import prepare_inputs
from human3d.fitting.lgd import gradient_descent, load_lgd, weights_dir
from human3d.fitting.optim import Progress
from human3d.fitting.stages import init_camera, make_problem, restart_poses, stage_rigid
from human3d.fitting.synthetic import make_synthetic_set
from human3d.metrics import pa_mpjpe


def _problem(model, syn, cfg):
    inputs = prepare_inputs(model, syn.keypoints2d, syn.K, "coco17", cfg)
    pb = make_problem(model, inputs, None, cfg, Progress(False, 0))
    rigid = stage_rigid(pb, *init_camera(pb))
    return pb, rigid, restart_poses(pb, 1)[0]


def test_gradient_input_matches_finite_differences(anny_model, one_thread, lgd_gradient_check):
    syn = make_synthetic_set(anny_model, 3, seed=11)
    pb, rigid, g0 = _problem(anny_model, syn, SMPLifyConfig(camera_iters=10, threads=None))
    lgd_gradient_check(pb, rigid, g0, torch.Generator().manual_seed(0), trials=2)


def test_lgd_beats_gradient_descent_and_adam_at_four_steps(anny_model, one_thread):
    """Held-out people (CMU 131_03, never in LGD's training clips): LGD's 4 learned stages against 4 iterations of
    Adam SMPLify (its default schedule) and 4 steps of plain gradient descent (the best of a step-size grid)."""
    net = load_lgd()
    assert len(net.stages) == 4
    syn = make_synthetic_set(anny_model, 32, seed=3)
    gt = syn.keypoints3d

    def err(params):
        with torch.no_grad():
            return pa_mpjpe(anny_model(params).keypoints["coco17"], gt).mean() * 1000

    # (no hypothesis retries: four updates each, nothing more)
    lgd = smplify(anny_model, syn.keypoints2d, syn.K, prior="simple", optimizer="lgd", retry_hypotheses=())
    adam = smplify(anny_model, syn.keypoints2d, syn.K, prior="simple", body_iters=4, retry_hypotheses=())
    pb, rigid, g0 = _problem(anny_model, syn, SMPLifyConfig(threads=None))
    gd = min(err(gradient_descent(pb, rigid, g0, 4, lr).params(pb, rigid.R_body)) for lr in (1e-4, 1e-3, 1e-2, 3e-2))
    e_lgd, e_adam = err(lgd.params), err(adam.params)
    assert e_lgd < e_adam and e_lgd < gd, (e_lgd, e_adam, gd)
    assert lgd.iterations == 40 + 4


def test_lgd_refuses_what_it_was_not_trained_for(anny_model):
    syn = make_synthetic_set(anny_model, 2, seed=1, skeleton="body25")
    with pytest.raises(InvalidInputError, match="COCO-17"):
        smplify(anny_model, syn.keypoints2d, syn.K, prior="simple", optimizer="lgd")
    with pytest.raises(InvalidInputError, match="optimizer"):
        SMPLifyConfig(optimizer="sgd")


def test_trainer_runs_and_its_weights_load(tmp_path, one_thread):
    import json

    from human3d.hmr.lgd_trainer import LGDTrainer, preset

    tr = LGDTrainer(tmp_path / "run", config=preset("tiny", **{"run.max_steps": 3, "optim.batch_size": 8}))
    tr.train(progress=False)
    w = tmp_path / "run" / "lgd.safetensors"
    assert w.is_file() and json.loads(w.with_suffix(".json").read_text())["steps"] == 3
    net = load_lgd(w)
    x = torch.randn(2, net.n_in)
    torch.testing.assert_close(net(0, x), tr.net.cpu()(0, x))
    card = json.loads((weights_dir() / "anny_lgd.json").read_text())
    assert not set(card["training_clips"]) & {"131_03", "60_15_scaled_30fps", "humanoid3d_walk"}
