"""The keypoint lifter (human3d.fitting.lift) and the 3D keypoint term of SMPLify: invariances and symmetry of the
lift (closed forms), the start it makes (exact on exact data), the energy term (closed form), and that the
shipped lifter and ``smplify(init="lift")`` beat their baselines on held-out synthetic people."""

from __future__ import annotations

import json
import math

import pytest
import torch

from human3d.errors import InvalidInputError, ModelFileError
from human3d.fitting import smplify
from human3d.fitting.energy import BODY_HEIGHT_M, keypoints3d_energy
from human3d.fitting.lift import (AUTO_WEIGHT_RESIDUALS, AUTO_WEIGHTS, KeypointLifter, LiftNetConfig,
                                  auto_keypoints3d_weight, lift_features, lift_keypoints, lift_residual, lift_start,
                                  load_lifter, mirror_keypoints2d, mirror_keypoints3d, placement, root_relative,
                                  sample_lift_batch, LiftDataConfig, _weights_dir, quantize_int8, save_lifter)  # fmt: skip
from human3d.fitting.synthetic import make_synthetic_set
from human3d.geometry.cameras import make_intrinsics, project_points
from human3d.geometry.rotations import axis_angle_to_matrix
from human3d.metrics import pa_mpjpe


def _kp(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    uv = 300 + 200 * torch.rand(n, 17, 2, generator=g)
    conf = (torch.rand(n, 17, generator=g) > 0.2).float()
    K = make_intrinsics(torch.full((n,), 900.0), torch.full((n,), 900.0), torch.full((n,), 480.0),
                        torch.full((n,), 360.0))  # fmt: skip
    return torch.cat([uv * conf[..., None], conf[..., None]], -1), K


def test_features_invariant_to_zoom_and_image_shift():
    """Zooming about the principal point (pixels and f scaled together) or moving the principal point with the
    keypoints leaves the features unchanged: the lift sees the person, not the image size."""
    kp, K = _kp()
    f0 = lift_features(kp, K)
    a, shift = 2.5, torch.tensor([37.0, -11.0])
    z = kp.clone()
    z[..., :2] = torch.where(kp[..., 2:3] > 0, K[:, None, :2, 2] + a * (kp[..., :2] - K[:, None, :2, 2]), kp[..., :2])
    Kz = K.clone()
    Kz[:, 0, 0] *= a
    Kz[:, 1, 1] *= a
    torch.testing.assert_close(lift_features(z, Kz), f0, atol=1e-5, rtol=1e-5)
    s = kp.clone()
    s[..., :2] = torch.where(kp[..., 2:3] > 0, kp[..., :2] + shift, kp[..., :2])
    Ks = K.clone()
    Ks[:, :2, 2] += shift
    torch.testing.assert_close(lift_features(s, Ks), f0, atol=1e-5, rtol=1e-5)


def test_flip_test_makes_the_lift_mirror_equivariant():
    """With the flip test, lifting the mirrored image gives the mirrored lift, for any network (here untrained)."""
    torch.manual_seed(0)
    net = KeypointLifter(LiftNetConfig(width=32, blocks=1))
    kp, K = _kp()
    Y = lift_keypoints(kp, K, net)
    Ym = lift_keypoints(mirror_keypoints2d(kp, K), K, net)
    torch.testing.assert_close(Ym, mirror_keypoints3d(Y), atol=1e-6, rtol=1e-5)
    assert not torch.allclose(lift_keypoints(kp, K, net, flip_test=False), Y)  # the average is not a no-op


def test_placement_and_start_are_exact_on_exact_data(anny_model):
    """The rest body turned by a known rotation and placed at a known position: the start recovers both (the
    torso matches exactly, the projections are exact)."""
    B = 4
    g = torch.Generator().manual_seed(1)
    aa = 0.8 * torch.randn(B, 3, generator=g)
    transl = torch.stack([0.3 * torch.randn(B, generator=g), 0.2 * torch.randn(B, generator=g),
                          4 + torch.rand(B, generator=g)], -1)  # fmt: skip
    p = {k: v.expand(B, *v.shape[1:]).clone() for k, v in anny_model.default_params(1).items()}
    p.update(global_orient=aa, transl=transl)
    with torch.no_grad():
        X = anny_model(p).keypoints["coco17"]
    K = make_intrinsics(torch.full((B,), 1000.0), torch.full((B,), 1000.0), torch.full((B,), 500.0),
                        torch.full((B,), 500.0))  # fmt: skip
    uv = project_points(X, K).uv
    kp = torch.cat([uv, torch.ones(B, 17, 1)], -1)
    Y = root_relative(X)
    torch.testing.assert_close(placement(Y, kp, K), X[:, 11:13].mean(1), atol=1e-4, rtol=1e-4)
    start = lift_start(anny_model, Y, kp, K)
    torch.testing.assert_close(axis_angle_to_matrix(start["global_orient"]), axis_angle_to_matrix(aa), atol=1e-4,
                               rtol=1e-4)  # fmt: skip
    torch.testing.assert_close(start["transl"], transl, atol=1e-4, rtol=1e-4)


def test_keypoints3d_energy_closed_form():
    g = torch.Generator().manual_seed(2)
    X = torch.randn(3, 17, 3, generator=g)
    w2c = torch.eye(4).expand(3, 4, 4)
    Y = root_relative(X)
    assert float(keypoints3d_energy(X + 5.0, Y, w2c, (11, 12)).abs().max()) < 1e-10  # translation-free
    d = torch.tensor([0.03, -0.04, 0.12])
    Yd = Y.clone()
    Yd[:, 0] += d  # the nose only (not a hip: the root is unchanged)
    expect = float((d**2).sum()) / 17 / BODY_HEIGHT_M**2
    torch.testing.assert_close(keypoints3d_energy(X, Yd, w2c, (11, 12)), torch.full((3,), expect))


def test_auto_weight_ramp_closed_form():
    """``keypoints3d_weight="auto"``: the low weight up to the first residual, the high one from the second, the
    geometric mean half-way (log-linear), monotone in between."""
    (r0, r1), (w0, w1) = AUTO_WEIGHT_RESIDUALS, AUTO_WEIGHTS
    r = torch.tensor([0.0, r0, 0.5 * (r0 + r1), r1, 1.0])
    torch.testing.assert_close(auto_keypoints3d_weight(r), torch.tensor([w0, w0, math.sqrt(w0 * w1), w1, w1]))
    ramp = auto_keypoints3d_weight(torch.linspace(r0, r1, 50))
    assert bool((ramp[1:] > ramp[:-1]).all())


def test_lift_residual_is_zero_on_exact_data_and_measures_the_noise():
    """The residual of 3D keypoints placed onto their own exact projections is 0; with Gaussian pixel noise of
    std ``sigma`` it approaches ``sigma / size`` (the placement absorbs 3 of the 34 degrees of freedom); it does not
    change when the image is zoomed (unit-free)."""
    g = torch.Generator().manual_seed(4)
    B = 64
    Y = root_relative(torch.randn(B, 17, 3, generator=g) * 0.3)
    t = torch.stack([0.2 * torch.randn(B, generator=g), 0.1 * torch.randn(B, generator=g), 5 + torch.rand(B, generator=g)], -1)
    K = make_intrinsics(torch.full((B,), 1000.0), torch.full((B,), 1000.0), torch.full((B,), 500.0),
                        torch.full((B,), 500.0))  # fmt: skip
    kp = torch.cat([project_points(Y + t[:, None], K).uv, torch.ones(B, 17, 1)], -1)
    assert float(lift_residual(Y, kp, K).max()) < 1e-5
    from human3d.fitting.lift import _box

    size = _box(kp)[1]
    noisy = kp.clone()
    noisy[..., :2] += 0.02 * size[:, None, None] * torch.randn(B, 17, 2, generator=g)
    rho = lift_residual(Y, noisy, K)
    expect = 0.02 * math.sqrt((34 - 3) / 34)
    assert abs(float(rho.mean()) - expect) < 0.1 * expect, (float(rho.mean()), expect)
    zoom = noisy.clone()
    zoom[..., :2] = 2 * (noisy[..., :2] - 500) + 500
    Kz = K.clone()
    Kz[:, 0, 0] *= 2
    Kz[:, 1, 1] *= 2
    torch.testing.assert_close(lift_residual(Y, zoom, Kz), rho, atol=1e-5, rtol=1e-3)


def test_per_person_3d_weights_enter_the_energy_per_person():
    """``body_energy`` with a ``[B]`` weight equals, person by person, the energy with that person's number."""
    from human3d.fitting.energy import Weights, body_energy

    g = torch.Generator().manual_seed(6)
    B = 3
    X = torch.randn(B, 17, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 5.0])
    K = make_intrinsics(torch.full((B,), 1000.0), torch.full((B,), 1000.0), torch.full((B,), 500.0),
                        torch.full((B,), 500.0))  # fmt: skip
    w2c = torch.eye(4).expand(B, 4, 4)
    target = torch.cat([project_points(X, K).uv + 3 * torch.randn(B, 17, 2, generator=g), torch.ones(B, 17, 1)], -1)
    Y = root_relative(X) + 0.05 * torch.randn(B, 17, 3, generator=g)
    w = Weights(sigma=(100.0,), pose_prior=(0.0,), shape=None, angle_limit=0.0, silhouette=0.0,
                silhouette_start=1.0)
    common = (X, K, w2c, target, torch.full((B,), 100.0), torch.zeros(B, 1, 3), torch.zeros(B, 3),
              torch.zeros(B, 1), None, None, None, w, 1.0)  # fmt: skip
    per = torch.tensor([0.0, 30.0, 1000.0])
    total = body_energy(*common, keypoints3d=Y, keypoints3d_weight=per)[0]
    for b in range(B):
        one = body_energy(*common, keypoints3d=Y, keypoints3d_weight=float(per[b]))[0]
        torch.testing.assert_close(total[b], one[b])
    base = body_energy(*common)[0]
    torch.testing.assert_close(total[0], base[0])
    assert float(total[2] - base[2]) > float(total[1] - base[1]) > 0


def test_auto_weights_rise_with_the_2d_noise_and_reach_the_fit(anny_model, one_thread):
    """On held-out synthetic people the shipped lifter's auto weights are the low weight for most persons with exact
    keypoints and higher for most with noise of 4 % of their size; ``smplify`` reports them per person, and an auto
    fit equals the fit with that person's number (the same energy)."""
    syn = make_synthetic_set(anny_model, 16, seed=7, noise_px=0.0, drop=0.0)
    from human3d.fitting.lift import _box

    kp = syn.keypoints2d
    noisy = kp.clone()
    noisy[..., :2] += 0.04 * _box(kp)[1][:, None, None] * torch.randn(kp[..., :2].shape, generator=torch.Generator().manual_seed(0))
    w_clean = auto_keypoints3d_weight(lift_residual(lift_keypoints(kp, syn.K), kp, syn.K))
    w_noisy = auto_keypoints3d_weight(lift_residual(lift_keypoints(noisy, syn.K), noisy, syn.K))
    assert float(w_clean.median()) < 2 * AUTO_WEIGHTS[0] < float(w_noisy.median()), (w_clean, w_noisy)
    kw = dict(prior="simple", body_iters=6, camera_iters=5, retry_hypotheses=(), init="lift")
    auto = smplify(anny_model, noisy[:2], syn.K[:2], **kw)
    torch.testing.assert_close(auto.keypoints3d_weight, w_noisy[:2], rtol=1e-4, atol=1e-3)
    assert auto.person(0)["keypoints3d_weight"] == pytest.approx(float(w_noisy[0]), rel=1e-4)
    fixed = smplify(anny_model, noisy[:1], syn.K[:1], keypoints3d_weight=float(auto.keypoints3d_weight[0]), **kw)
    torch.testing.assert_close(fixed.params["body_pose"][0], auto.params["body_pose"][0], atol=1e-4, rtol=1e-3)
    assert smplify(anny_model, noisy[:1], syn.K[:1], **kw).keypoints3d_weight is not None
    assert smplify(anny_model, kp[:1], syn.K[:1], prior="simple", body_iters=2, camera_iters=2,
                   retry_hypotheses=()).keypoints3d_weight is None  # no 3D term: none reported


def test_training_batch_targets_project_onto_their_keypoints():
    """A training pair is consistent: the target placed at the solved root reprojects onto the clean keypoints."""
    g = torch.Generator().manual_seed(3)
    body = root_relative(torch.randn(50, 17, 3, generator=g) * 0.3)
    data = LiftDataConfig(noise=(0.0, 0.0), drop=(0.0, 0.0))
    feats, Y, (kp, K) = sample_lift_batch(body, data, 8, g)
    assert feats.shape == (8, 54) and Y.shape == (8, 17, 3)
    t = placement(Y, kp, K)
    uv = project_points(Y + t[:, None], K).uv
    torch.testing.assert_close(uv, kp[..., :2], atol=1e-2, rtol=1e-4)
    # bone lengths survive the random turn and mirror (a rigid motion)
    d = (Y[:, 5] - Y[:, 7]).norm(dim=-1)
    assert float(d.min()) > 0


def test_keypoints3d_term_helps_smplify(anny_model, one_thread):
    """Oracle: the true 3D keypoints as the 3D term on noisy 2D keypoints lower the PA-MPJPE of the fit."""
    syn = make_synthetic_set(anny_model, 8, seed=5, noise_px=6.0)
    Y = root_relative(syn.keypoints3d)
    kw = dict(prior="simple", body_iters=25, camera_iters=20, retry_hypotheses=())
    base = smplify(anny_model, syn.keypoints2d, syn.K, **kw)
    with3d = smplify(anny_model, syn.keypoints2d, syn.K, keypoints3d=Y, **kw)

    def err(r):
        with torch.no_grad():
            return float(pa_mpjpe(anny_model(r.params).keypoints["coco17"], syn.keypoints3d).mean()) * 1000

    assert err(with3d) < 0.8 * err(base), (err(with3d), err(base))


def test_bad_inputs_are_refused(anny_model):
    syn = make_synthetic_set(anny_model, 2, seed=0)
    with pytest.raises(InvalidInputError, match="init"):
        smplify(anny_model, syn.keypoints2d, syn.K, init="hmr")
    with pytest.raises(InvalidInputError, match="keypoints3d"):
        smplify(anny_model, syn.keypoints2d, syn.K, keypoints3d=torch.zeros(2, 16, 3))
    bad = torch.zeros(2, 17, 3)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(InvalidInputError, match="keypoints3d"):
        smplify(anny_model, syn.keypoints2d, syn.K, keypoints3d=bad)
    with pytest.raises(InvalidInputError, match="COCO-17"):
        smplify(anny_model, torch.zeros(2, 25, 3), syn.K, init="lift")
    with pytest.raises(InvalidInputError, match=r"\[B, 17, 3\]"):
        lift_keypoints(torch.zeros(2, 25, 3), syn.K)
    with pytest.raises(InvalidInputError, match="NaN"):
        lift_keypoints(torch.full((2, 17, 3), float("nan")), syn.K)
    with pytest.raises(ModelFileError, match="not found"):
        load_lifter("/nonexistent/lift.safetensors")


def test_trainer_loss_falls(tmp_path, one_thread, monkeypatch, anny_model):
    """The tiny preset on a fixed pool: the training loss falls, and the exported weights load and lift."""
    from human3d.hmr import lift_trainer
    from human3d.hmr.lift_trainer import LiftTrainer, preset

    g = torch.Generator().manual_seed(0)
    pool = root_relative(torch.randn(256, 17, 3, generator=g) * 0.3)
    monkeypatch.setattr(lift_trainer, "pool_keypoints", lambda *a, **k: pool)
    tr = LiftTrainer(tmp_path / "run", config=preset("tiny", **{"run.max_steps": 150, "optim.lr": 3e-3}))
    losses = []
    tr.train(callback=lambda t, info: losses.append(info["loss"]), progress=False)
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
    net = load_lifter(tmp_path / "run" / "lift.safetensors")
    kp, K = _kp()
    assert lift_keypoints(kp, K, net).shape == (5, 17, 3)


# ------------------------------------------------------------------------------------------- the shipped weights
def test_shipped_card_matches_weights():
    card = json.loads((_weights_dir() / "anny_lift.json").read_text())
    net = load_lifter()
    assert card["kind"] == "lift" and card["model"] == "anny"
    assert card["n_parameters"] == sum(p.numel() for p in net.parameters())
    from human3d.motion.mocap import HOLDOUT

    assert not set(card["training_clips"]) & set(HOLDOUT)


def test_shipped_lifter_and_lift_fit_beat_baselines_on_held_out_people(anny_model, one_thread):
    """Held-out CMU 131_03 (never in the lifter's training clips), 2 px noise on ~500 px people: the lift beats
    the best rigid fit of a fixed mean pose (the 3D a lifter adds), and ``smplify(init="lift")`` (40 iterations,
    no retries) beats the default SMPLify at its 60 iterations on the mean and on the worst person."""
    syn = make_synthetic_set(anny_model, 24, seed=7)
    gt = syn.keypoints3d
    Y = lift_keypoints(syn.keypoints2d, syn.K)
    e_lift = pa_mpjpe(Y, gt) * 1000
    mean_pose = root_relative(gt).mean(0, keepdim=True).expand_as(gt)
    e_mean = pa_mpjpe(mean_pose, gt) * 1000
    assert float(e_lift.mean()) < 0.6 * float(e_mean.mean()), (float(e_lift.mean()), float(e_mean.mean()))

    def err(r):
        with torch.no_grad():
            return pa_mpjpe(anny_model(r.params).keypoints["coco17"], gt) * 1000

    lifted = err(smplify(anny_model, syn.keypoints2d, syn.K, prior="simple", init="lift", body_iters=40,
                         retry_hypotheses=()))  # fmt: skip
    default = err(smplify(anny_model, syn.keypoints2d, syn.K, prior="simple", retry_hypotheses=()))
    assert float(lifted.mean()) < float(default.mean()), (float(lifted.mean()), float(default.mean()))
    assert float(lifted.max()) < float(default.max()), (float(lifted.max()), float(default.max()))
    assert math.isfinite(float(lifted.mean()))


def test_fit_cli_init_lift(tmp_path):
    """``human3d fit --init lift`` on the example photo: the lift's start wins (it replaces the default start),
    the setting is recorded for --resume, and the fit reprojects onto the keypoints."""
    from typer.testing import CliRunner

    from human3d.assets import example_photo
    from human3d.cli.main import app

    image, kp_json = example_photo()
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["fit", str(image), "-k", str(kp_json), "--out", str(out), "--init", "lift",
                                 "--iters", "20", "--camera-iters", "10", "--prior", "simple", "--retries", "none",
                                 "--lift-weight", "100", "-q"])  # fmt: skip
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["settings"]["initializer"] == "lift" and s["settings"]["keypoints3d_weight"] == 100.0, s["settings"]
    people = [p for im in s["images"] for p in im["people"]]
    assert all(p["keypoints3d_weight"] == 100.0 for p in people), people
    assert people and all(p["hypothesis"]["winner"] == "init" for p in people), people
    assert all(p["reprojection_error_px"] < 0.05 * 500 for p in people)


def test_smplify_runs_under_no_grad(anny_model, one_thread):
    """Called inside ``torch.no_grad()`` (as evaluation code often is), smplify still optimises: the same result
    as outside it."""
    syn = make_synthetic_set(anny_model, 2, seed=1)
    kw = dict(prior="simple", body_iters=5, camera_iters=5, retry_hypotheses=(), init="lift")
    with torch.no_grad():
        a = smplify(anny_model, syn.keypoints2d, syn.K, **kw)
    b = smplify(anny_model, syn.keypoints2d, syn.K, **kw)
    torch.testing.assert_close(a.params["body_pose"], b.params["body_pose"])
    assert float(a.params["body_pose"].abs().max()) > 0


def test_fit_cli_lift_weight_needs_init_lift(tmp_path):
    from typer.testing import CliRunner

    from human3d.assets import example_photo
    from human3d.cli.main import app

    image, kp_json = example_photo()
    r = CliRunner().invoke(app, ["fit", str(image), "-k", str(kp_json), "--out", str(tmp_path / "o"),
                                 "--lift-weight", "100", "-q"])  # fmt: skip
    assert r.exit_code == 2 and "--lift-weight" in r.output and "--init default" in r.output, r.output
    for bad in ("heavy", "-3", "nan"):
        r = CliRunner().invoke(app, ["fit", str(image), "-k", str(kp_json), "--out", str(tmp_path / "o"),
                                     "--init", "lift", "--lift-weight", bad, "-q"])  # fmt: skip
        assert r.exit_code == 2 and "--lift-weight" in r.output and "'auto'" in r.output, r.output


def test_int8_weights_round_trip(tmp_path):
    """The stored weights: each linear weight within half a quantisation step of the original (the bound of
    rounding), everything else to float16 precision (the shipped weights' accuracy is checked below)."""
    torch.manual_seed(0)
    net = KeypointLifter(LiftNetConfig(width=64, blocks=1))
    w = net.net[0].weight.detach()
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and float(((q.float() * scale) - w).abs().sub(scale / 2).max()) <= 1e-7
    back = load_lifter(save_lifter(net, tmp_path / "l.safetensors", {"model": "anny"}))
    for (k, a), b in zip(net.state_dict().items(), back.state_dict().values()):
        tol = float(a.abs().max()) / 127 / 2 + 1e-6 if a.dim() == 2 else float(a.abs().max()) * 1e-3 + 1e-6
        assert float((a - b).abs().max()) <= tol, k
