"""HMR, LGD and the synthetic generator for the SMPL family, on the Anny-derived SMPL-format file (and a random
SMPL file whose root is off the origin): labels against the body model re-run and the camera projection,
visibility against an independent z-buffer, the camera-frame conversion against transformed vertices, a few
training steps lower the loss, mismatched weights give one clear error, LGD's gradient input against finite
differences and a briefly trained LGD against plain gradient descent."""

from __future__ import annotations

import pytest
import torch

from human3d.errors import InvalidInputError
from human3d.geometry.cameras import project_points, transform_points

S = 64


@pytest.fixture(scope="module")
def smpl_model(tmp_path_factory):
    from human3d.synth.smpl_files import anny_smpl_model

    return anny_smpl_model(tmp_path_factory.mktemp("smpl"))


@pytest.fixture(scope="module")
def batch(smpl_model):
    from human3d.synth import SynthConfig, SynthGenerator

    torch.set_num_threads(1)
    cfg = SynthConfig(size=S, max_people=3, prior_fraction=0.5, occluders=1.0, out_of_frame=0.3)
    return SynthGenerator(smpl_model, cfg).generate(6, seed=5)


def test_smpl_labels_agree_with_body_model_and_camera(batch, smpl_model):
    B, P = batch.present.shape
    params = {k: v.reshape(B * P, *v.shape[2:]) for k, v in batch.params.items()}
    assert params["betas"].shape == (B * P, 10) and bool((params["betas"].abs() <= 2).all())
    assert set(batch.pose_source.flatten().tolist()) == {0, 1}  # mocap and the SMPL pose prior
    with torch.no_grad():
        out = smpl_model(params)  # the stored parameters must reproduce the people
    X = out.keypoints["coco17"].view(B, P, -1, 3)
    torch.testing.assert_close(batch.keypoints3d["coco17"], X, atol=1e-4, rtol=0)
    proj = project_points(X.flatten(1, 2), batch.cameras.K, batch.cameras.world_to_camera)
    uv = proj.uv.view(B, P, -1, 2)
    lab = batch.keypoints2d["coco17"]
    on = lab[..., 2] > 0
    assert on.any()
    torch.testing.assert_close(lab[..., :2][on], uv[on], atol=1e-3, rtol=0)
    inside = proj.valid.view(B, P, -1) & (uv >= 0).all(-1) & (uv < S).all(-1) & batch.present[..., None]
    assert torch.equal(on, inside)
    torch.testing.assert_close(batch.joints3d, out.joints.view(B, P, -1, 3), atol=1e-4, rtol=0)


def test_smpl_visibility_agrees_with_zbuffer(batch, smpl_model):
    from human3d.render.rasterizer import rasterize_mesh

    B, P = batch.present.shape
    cams = batch.cameras
    params = {k: v.reshape(B * P, *v.shape[2:]) for k, v in batch.params.items()}
    with torch.no_grad():
        verts = smpl_model(params).vertices.view(B, P, -1, 3).float()
    alone = torch.stack([rasterize_mesh(verts[:, p], smpl_model.faces, cams).depth for p in range(P)], 1)
    scene = torch.where(alone > 0, alone, torch.full_like(alone, float("inf")))
    scene = torch.where(batch.present[..., None, None], scene, torch.full_like(scene, float("inf")))
    zmin, owner = scene.min(1)
    assert torch.equal(torch.isfinite(zmin), batch.depth > 0)
    kp = batch.keypoints2d["coco17"]
    z = transform_points(cams.world_to_camera, batch.keypoints3d["coco17"].flatten(1, 2))[..., 2].view_as(kp[..., 0])
    flag = kp[..., 2]
    j = kp[..., 0].floor().long().clamp(0, S - 1)
    i = kp[..., 1].floor().long().clamp(0, S - 1)
    lin = (i * S + j).flatten(1)
    zpix = zmin.flatten(1).gather(1, lin).view_as(z)
    opix = owner.flatten(1).gather(1, lin).view_as(z)
    occ = batch.occluder_mask.flatten(1).gather(1, lin).view_as(z)
    me = torch.arange(P)[None, :, None].expand_as(z)
    assert not ((flag == 2) & occ).any()
    vis = flag == 2
    own = (opix == me) & (zpix >= z - 0.15)
    assert vis.sum() > 20 and own[vis].float().mean() > 0.9, own[vis].float().mean()
    hidden = (flag > 0) & ~occ & (zpix < z - 0.3)  # a surface 0.3 m in front: hidden
    assert hidden.any() and (flag[hidden] == 1).all()


def test_camera_frame_turns_about_the_smpl_root(tmp_path):
    """A random SMPL file (root joint off the origin): the camera-frame parameters give the world vertices mapped
    by the camera (the conversion must turn about the pelvis, :func:`root_pivot`)."""
    from human3d.body.smpl import SMPL
    from human3d.geometry.rotations import axis_angle_to_matrix
    from human3d.hmr.trainer import camera_frame, root_pivot
    from human3d.synth.smpl_files import make_model_data, write_pickle

    data = make_model_data("smpl", seed=3)
    for k in ("v_template", "J"):  # a body standing on the ground: the pelvis 0.9 m above the origin
        data[k] = data[k] + [0.0, 0.9, 0.0]
    model = SMPL(write_pickle(tmp_path / "SMPL_NEUTRAL.pkl", data))
    g = torch.Generator().manual_seed(0)
    n = 3
    p = {"global_orient": torch.randn(n, 3, generator=g), "body_pose": 0.2 * torch.randn(n, 69, generator=g),
         "betas": torch.randn(n, 10, generator=g), "transl": torch.randn(n, 3, generator=g)}  # fmt: skip
    assert float(root_pivot(model, p).norm(dim=-1).min()) > 0.05  # the test means something
    w2c = torch.eye(4).repeat(n, 1, 1)
    w2c[:, :3, :3] = axis_angle_to_matrix(torch.randn(n, 3, generator=g))
    w2c[:, :3, 3] = torch.randn(n, 3, generator=g)
    with torch.no_grad():
        want = transform_points(w2c, model(p).vertices)
        got = model(camera_frame(p, w2c, root_pivot(model, p))).vertices
        wrong = model(camera_frame(p, w2c)).vertices  # about the origin: off by the pivot
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert float((wrong - want).abs().max()) > 1e-2


def _set_loss(tr) -> float:
    """HMR's supervised loss on the whole training set, no augmentation (a deterministic figure)."""
    from human3d.hmr.model import crop_keypoints
    from human3d.hmr.trainer import augment_crops, hmr_losses

    s = tr.batch(torch.arange(tr.train_set()["images"].shape[0]))
    crops, centre, side = augment_crops(s["images"], s["kp2d"], tr.config.net.crop_size, None)
    tr.net.eval()
    with torch.no_grad():
        thetas = tr.net(crops, crop_keypoints(s["kp2d"], centre, side))
        loss, _, _ = hmr_losses(tr.net, thetas, s, centre, side, tr.kp_fn, tr.space, tr.config.loss, tr.shape_name,
                                tr.shape_bounds)  # fmt: skip
    return float(loss)


@pytest.fixture(scope="module")
def smpl_hmr(smpl_model, tmp_path_factory):
    """A few HMR steps on a tiny set rendered with the SMPL file: (trainer, loss before, loss after)."""
    from human3d.hmr.trainer import HMRTrainer, preset

    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("hmr_smpl")
    cfg = preset("tiny", **{"data.model": str(smpl_model.model_file), "run.max_steps": 30, "optim.lr": 2e-3,
                            "data.kp_drop": 0.0, "data.kp_none": 0.0, "loss.adversarial": 0.0})  # fmt: skip
    tr = HMRTrainer(run, config=cfg)
    before = _set_loss(tr)
    tr.train(progress=False)
    return tr, before, _set_loss(tr)


def test_hmr_trains_on_the_smpl_family(smpl_hmr, smpl_model):
    import json

    import numpy as np

    from human3d.hmr.predict import load_hmr, predict_people

    tr, before, after = smpl_hmr
    assert after < 0.93 * before, (before, after)  # 7.5 -> 6.6 at 30 steps
    w = tr.out / "hmr.safetensors"
    card = json.loads(w.with_suffix(".json").read_text())
    assert (card["model"], card["shape_param"], card["n_shape"]) == ("smpl", "betas", 10)
    net = load_hmr(w)
    s = tr.train_set()
    imgs = [im.numpy() for im in s["images"][:3]]
    out = predict_people(net, smpl_model, imgs, np.arange(3), s["K"][:3], keypoints=s["kp2d"][:3])
    assert out["betas"].shape == (3, 10) and "phenotypes" not in out
    assert out["body_pose"].shape == (3, 69)


def test_mismatched_weights_give_one_clear_error(smpl_hmr, smpl_model, anny_model, tmp_path):
    import numpy as np

    from human3d.hmr.predict import hmr_initializer, load_hmr, predict_people
    from human3d.body.smpl import SMPL

    tr, _, _ = smpl_hmr
    w = tr.out / "hmr.safetensors"
    img = [np.zeros((64, 64, 3), np.uint8)]
    box = torch.tensor([[0.0, 0.0, 64.0, 64.0]])
    with pytest.raises(InvalidInputError, match="body_model: the HMR weights are for a 'smpl' model"):
        predict_people(load_hmr(w), anny_model, img, [0], torch.eye(3), boxes=box)
    with pytest.raises(InvalidInputError, match="body_model: the HMR weights are for a 'anny' model"):
        hmr_initializer(smpl_model)  # the shipped Anny weights
    five = SMPL(smpl_model.model_file, num_betas=5)  # the same file and family, 5 betas
    with pytest.raises(InvalidInputError, match="10 betas.*5 betas"):
        hmr_initializer(five, w)


def _problems(model, n, seed, cfg):
    from human3d.fitting.inputs import prepare_inputs
    from human3d.fitting.lgd import LGDDataConfig, model_mocap_poses, sample_problems, training_clips
    from human3d.fitting.optim import Progress
    from human3d.fitting.stages import init_camera, make_problem, restart_poses, stage_rigid
    from human3d.fitting.synthetic import mocap_anny_poses

    go, bp, _ = mocap_anny_poses(n, seed, ("131_03",) if seed else tuple(training_clips()[:3]), fps=10.0)
    go, bp = model_mocap_poses(model, go, bp)
    kp, K, params, X = sample_problems(model, go, bp, LGDDataConfig(noise_px=(1.0, 1.0), drop=(0.0, 0.0)),
                                       torch.Generator().manual_seed(seed))  # fmt: skip
    pb = make_problem(model, prepare_inputs(model, kp, K, "coco17", cfg), None, cfg, Progress(False, 0))
    rigid = stage_rigid(pb, *init_camera(pb))
    return pb, rigid, restart_poses(pb, 1)[0], X


def test_smpl_lgd_gradient_input_matches_finite_differences(smpl_model, lgd_gradient_check):
    """On the SMPL family the betas are LGD's shape variables; the gradient input matches finite differences."""
    from human3d.fitting import SMPLifyConfig
    from human3d.fitting.lgd import initial_state

    torch.set_num_threads(1)
    pb, rigid, g0, _ = _problems(smpl_model, 3, 11, SMPLifyConfig(camera_iters=10, threads=None))
    assert initial_state(pb, rigid, g0).z.shape[1] == 10
    lgd_gradient_check(pb, rigid, g0, torch.Generator().manual_seed(0))


def test_briefly_trained_smpl_lgd_beats_gradient_descent(smpl_model, anny_model, tmp_path):
    from human3d.fitting import SMPLifyConfig, smplify
    from human3d.fitting.lgd import gradient_descent, load_lgd
    from human3d.fitting.synthetic import make_synthetic_set
    from human3d.hmr.lgd_trainer import LGDTrainer, preset
    from human3d.metrics import pa_mpjpe

    torch.set_num_threads(1)
    tr = LGDTrainer(tmp_path / "lgd", config=preset("tiny", **{"data.model": str(smpl_model.model_file),
                                                              "run.max_steps": 25, "data.pool": 500}))  # fmt: skip
    tr.train(progress=False)
    w = tmp_path / "lgd" / "lgd.safetensors"
    assert load_lgd(w).model_family == "smpl"
    pb, rigid, g0, X = _problems(smpl_model, 16, 3, SMPLifyConfig(threads=None))

    def err(params):
        with torch.no_grad():
            return float(pa_mpjpe(smpl_model(params).keypoints["coco17"], X).mean()) * 1000

    from human3d.fitting.lgd import unroll

    with torch.no_grad():
        states, _, _ = unroll(load_lgd(w), pb, rigid, g0)
    lgd = err(states[-1].params(pb, rigid.R_body))
    gd = min(err(gradient_descent(pb, rigid, g0, 4, lr).params(pb, rigid.R_body)) for lr in (1e-4, 1e-3, 1e-2, 3e-2))

    assert lgd < gd, (lgd, gd)
    # Anny's shipped LGD on the SMPL file, and the SMPL LGD on Anny: one clear error
    syn = make_synthetic_set(smpl_model, 2, seed=1)
    with pytest.raises(InvalidInputError, match="trained for a 'anny' model"):
        smplify(smpl_model, syn.keypoints2d, syn.K, prior="simple", optimizer="lgd")
    syn = make_synthetic_set(anny_model, 2, seed=1)
    with pytest.raises(InvalidInputError, match="trained for a 'smpl' model"):
        smplify(anny_model, syn.keypoints2d, syn.K, prior="simple", optimizer="lgd", lgd_weights=str(w))


def test_cli_predict_and_fit_take_smpl_weights(smpl_hmr, smpl_model, tmp_path):
    """``human3d hmr predict --model smpl --model-path F --weights W`` writes SMPL parameters; the shipped Anny
    weights on that model, and the SMPL weights on Anny, exit with the one clear error."""
    from typer.testing import CliRunner

    from human3d.cli.main import app
    from human3d.render.overlay import save_png

    tr, _, _ = smpl_hmr
    w = str(tr.out / "hmr.safetensors")
    s = tr.train_set()
    save_png(tmp_path / "p.png", s["images"][0].numpy())
    common = [str(tmp_path / "p.png"), "--no-detect", "--no-overlays", "--no-progress"]
    smpl = ["--model", "smpl", "--model-path", str(smpl_model.model_file)]
    r = CliRunner().invoke(app, ["hmr", "predict", *common, *smpl, "--weights", w, "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    summary = __import__("json").loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["model"] == "smpl" and summary["persons"] == 1
    for args in (smpl, ["--weights", w]):  # shipped Anny weights on SMPL; SMPL weights on Anny
        r = CliRunner().invoke(app, ["hmr", "predict", *common, *args, "--out", str(tmp_path / "b")])
        assert r.exit_code != 0 and "body_model: the HMR weights are for a" in r.output, r.output
