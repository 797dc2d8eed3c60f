"""Shipped pose priors (package data): they load, score held-out real poses (whole clips never trained on) lower
than perturbed / random / reversed-knee poses, the flow's log-density is exact (autograd-Jacobian change of
variables), samples look like data and respect the hinge limits, gradients flow, and they drop into fitting.
The SMPL-family priors (``smpl_pose_<kind>``, SMPL ``body_pose`` of the first 21 joints) are checked the same way on
the held-out clips mapped onto SMPL's joints, and in a fit of the SMPL-format file derived from Anny."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from generative.priors.pose import (
    ANNY_PRIOR_GROUPS,
    POSE_PRIOR_KINDS,
    SMPL_PRIOR_JOINTS,
    PosePrior,
    load_pose_prior,
    pose_prior_path,
)
from human3d.motion.mocap import ClipInfo, build_pose_dataset
from human3d.errors import InvalidInputError, ModelFileError

MORE = "mocap_bvh_more"
# Held-out clips (human3d.motion.mocap.HOLDOUT): CMU subject 131 "hop" and CMU walking from the Li et al. split.
HELD_OUT = [
    ClipInfo("cmu_mocap_bvh_subject131/131_03.bvh", "cmu_3dsmax_bvh", "CMU", "val"),
    ClipInfo(f"{MORE}/cmu_expmap_li2018/train/walking/walking_5_stride4.txt", "cmu_expmap", "MIT/CMU", "val", True),
    ClipInfo(f"{MORE}/cmu_expmap_li2018/train/soccer/soccer_5_stride4.txt", "cmu_expmap", "MIT/CMU", "val", True),
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small-op loops (DDIM sampling: 50 steps of a small MLP) run ~50x slower with 2 intra-op threads on a busy
    2-core machine (threads spin on descheduled peers); one thread is the fast setting here."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def priors():
    return {k: load_pose_prior(k) for k in POSE_PRIOR_KINDS}


@pytest.fixture(scope="module")
def held_out():
    ds = build_pose_dataset(HELD_OUT, max_fps=6)
    return ds.x  # [N, 51]


@pytest.fixture(scope="module")
def body():
    from human3d.body.anny import AnnyBody

    return AnnyBody(skinning="lbs")


def _auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    d = neg[None, :] - pos[:, None]
    return float(((d > 0).float() + 0.5 * (d == 0).float()).mean())


def _group(name: str) -> int:
    return [n for n, _ in ANNY_PRIOR_GROUPS].index(name)


def test_shipped_priors_load_and_describe_their_vector(priors, body):
    from human3d.fitting.priors import pose_space

    space = pose_space(body)
    for kind, p in priors.items():
        path = pose_prior_path(kind)
        assert path.stat().st_size < 2_000_000, kind
        assert isinstance(p, PosePrior) and p.dim == 51 and p.kind == kind
        assert p.group_names == space.group_names  # same groups, same order as the fitting pose space
        assert p.body_pose_joints == body.joint_names[1:]
        torch.testing.assert_close(p.expand, space.expand)
        prov = p.provenance
        assert "mocap.cs.cmu.edu" in prov["credit"] and "NSF EIA-0196217" in prov["credit"]
        assert not any("dataset-1" in c for c in prov["train_clips"])  # Bandai Namco never trains
        assert not set(prov["train_clips"]) & set(prov["val_clips"])
        assert not any(q.requires_grad for q in p.parameters())  # frozen
    assert priors["gaussian"].exact_log_prob and priors["flow"].exact_log_prob
    assert not priors["vae"].exact_log_prob
    text = (pose_prior_path("flow").parent / "PROVENANCE.md").read_text()
    assert "NSF EIA-0196217" in text and "131_03" in text


def test_body_pose_mapping_round_trip(priors, held_out):
    p = priors["gaussian"]
    bp = p.to_body_pose(held_out)
    assert bp.shape == (held_out.shape[0], 309)
    torch.testing.assert_close(p.from_body_pose(bp), held_out)
    torch.testing.assert_close(p.from_body_pose(bp.view(-1, 103, 3)), held_out)
    # The trunk rotation is split equally over the five spine bones.
    j = p.body_pose_joints.index("spine03")
    torch.testing.assert_close(bp.view(-1, 103, 3)[:, j], held_out.view(-1, 17, 3)[:, _group("trunk")] / 5)
    with pytest.raises(InvalidInputError, match="body_pose"):
        p.from_body_pose(torch.zeros(2, 300))


def _reverse_knees(x: torch.Tensor) -> torch.Tensor:
    out = x.clone().view(x.shape[0], -1, 3)
    for s in "LR":
        out[:, _group(f"lowerleg01.{s}")] = torch.tensor([-1.0, 0.0, 0.0])  # shin swung 57 deg forwards
    return out.view(x.shape[0], -1)


@pytest.mark.parametrize("kind", POSE_PRIOR_KINDS)
def test_held_out_real_poses_beat_implausible_ones(priors, held_out, kind):
    """AUC >= 0.9: P(E(real held-out pose) < E(other pose)) against three kinds of implausible poses."""
    _assert_real_beats_implausible(priors[kind], held_out, _reverse_knees, kind)


def _assert_real_beats_implausible(p, x, reverse_knees, kind):
    """AUC >= 0.9 of real poses ``x`` against noise 0.3 rad, uniform random axis-angles and reversed knees."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        e_real = p.energy(x)
        e_noise = p.energy(x + 0.3 * torch.randn(x.shape, generator=g))
        e_rand = p.energy((torch.rand(x.shape, generator=g) * 2 - 1) * 1.5)
        e_knee = p.energy(reverse_knees(x))
    assert torch.isfinite(e_real).all()
    assert _auc(e_real, e_noise) >= 0.9, kind
    assert _auc(e_real, e_rand) >= 0.9, kind
    assert _auc(e_real, e_knee) >= 0.9, kind


def test_flow_log_prob_is_an_exact_change_of_variables(priors, held_out):
    """log p(x) = log N(f(u); 0, I) + log|det df/du| - sum(log scale), u = (x - loc) / scale, with the Jacobian
    from autograd and its log-determinant from torch.slogdet (independent of the flow's own log-det sums)."""
    fp = priors["flow"].prior
    flow = fp.model
    x = held_out[:3].double()
    flow64 = flow.double()
    try:
        for xi in x:
            u = (xi - fp.loc.double()) / fp.scale.double()
            z = flow64(u[None])[0][0]
            J = torch.autograd.functional.jacobian(lambda v: flow64(v[None])[0][0], u)
            sign, logdet = torch.linalg.slogdet(J)
            ref = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum() + logdet - torch.log(fp.scale.double()).sum()
            assert float(sign) != 0.0
            got = fp.log_prob(xi[None].float()).double()[0]
            assert abs(float(got - ref)) < 1e-3 * max(1.0, abs(float(ref)))
    finally:
        flow.float()
    # The Gaussian prior against torch.distributions.
    gp = priors["gaussian"].prior
    mvn = torch.distributions.MultivariateNormal(gp.mean.double(), scale_tril=gp.scale_tril.double())
    u = (held_out.double() - gp.loc.double()) / gp.scale.double()
    ref = mvn.log_prob(u) - torch.log(gp.scale.double()).sum()
    torch.testing.assert_close(gp.log_prob(held_out).double(), ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kind", POSE_PRIOR_KINDS)
def test_samples_look_like_data_and_respect_hinge_limits(priors, held_out, kind):
    p = priors[kind]
    s = p.sample(400, generator=torch.Generator().manual_seed(0))
    assert s.shape == (400, 51) and torch.isfinite(s).all()
    # Statistics of the training poses (stored at build time): each group's mean rotation angle within 0.25 rad
    # (observed: <= 0.18, the GAN); each coordinate's mean within max(1 training std, 0.15 rad) (observed: the GAN's
    # worst is 0.13 rad = 1.1 std on a clavicle coordinate of std 0.12).
    stats = p.provenance["train_stats"]
    mean, std = torch.tensor(stats["mean"]), torch.tensor(stats["std"])
    angle = s.view(-1, 17, 3).norm(dim=-1).mean(0)
    assert float((angle - torch.tensor(stats["group_angle_mean"])).abs().max()) < 0.25, kind
    assert bool(((s.mean(0) - mean).abs() < torch.clamp(std, min=0.15)).all()), kind
    # Under the exact flow density, learned priors' samples are about as likely as real held-out poses (median
    # sample energy below the held-out poses' 90th percentile); the Gaussian's, which ignores the correlations
    # between joints, only stay far below uniformly random poses.
    flow = priors["flow"]
    with torch.no_grad():
        e_s, e_d = flow.energy(s), flow.energy(held_out)
        e_r = flow.energy((torch.rand(s.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1) * 1.5)
    assert float(e_d.quantile(0.9)) < float(e_r.median())
    if kind == "gaussian":
        assert float(e_s.median()) < float(e_r.quantile(0.01)), kind
    else:
        assert float(e_s.median()) < float(e_d.quantile(0.9)), kind
    # Hinge limits of the fitting pose space (knee flexion in [-0.1, 2.6] rad about +X; 0.2 rad slack).
    for side in "LR":
        knee = s.view(-1, 17, 3)[:, _group(f"lowerleg01.{side}"), 0]
        assert float(((knee > -0.3) & (knee < 2.8)).float().mean()) > 0.95, kind


def test_energy_gradients_flow_and_match_finite_differences(priors, held_out):
    """Autograd directional derivatives against central differences, both in float64."""
    import copy

    x0 = held_out[:4].double()
    d = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    d = d / d.norm(dim=-1, keepdim=True)
    for kind, p32 in priors.items():
        if kind == "diffusion":
            continue  # a stop-gradient energy: see test_dposer_gradient_is_the_denoising_direction
        x = x0.float().requires_grad_(True)
        (g32,) = torch.autograd.grad(p32.energy(x).sum(), x)  # the shipped float32 prior: gradients flow
        assert torch.isfinite(g32).all() and float(g32.abs().sum()) > 0, kind
        p = copy.deepcopy(p32).double()
        x = x0.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(p.energy(x).sum(), x)
        h = 1e-6
        with torch.no_grad():
            fd = (p.energy(x0 + h * d) - p.energy(x0 - h * d)) / (2 * h)  # [B]
        an = (g * d).sum(-1)
        torch.testing.assert_close(an, fd, rtol=1e-4, atol=1e-6 * float(fd.abs().max()) + 1e-6, msg=kind)
        torch.testing.assert_close(g.float(), g32, rtol=1e-2, atol=1e-2 * float(g32.abs().max()), msg=kind)


def test_priors_drop_into_the_fitting_prior_slot(priors, body, held_out):
    from human3d.fitting.priors import make_pose_term, pose_space

    space = pose_space(body)
    groups = held_out[:5].view(5, 17, 3)
    bp = space.body_pose(groups)
    for kind in ("vae", "flow", "diffusion", "gan"):
        term = make_pose_term(kind, space, body)  # loads the shipped prior by kind name
        torch.testing.assert_close(term.energy(groups, bp), priors[kind].energy(held_out[:5]))
    term = make_pose_term(priors["gaussian"], space, body)  # a Prior object of dim 3 * groups
    torch.testing.assert_close(term.energy(groups, bp), priors["gaussian"].energy(held_out[:5]))


def test_bad_requests_raise_clear_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="kind"):
        load_pose_prior("made-up")
    with pytest.raises(InvalidInputError, match="anny"):
        load_pose_prior("flow", model="mano")
    with pytest.raises(ModelFileError, match="not found"):
        load_pose_prior("flow", root=tmp_path)
    src = pose_prior_path("gaussian")
    shutil.copy(src, tmp_path / src.name)
    cfg = json.loads(src.with_suffix(".json").read_text())
    del cfg["provenance"]["pose"]
    (tmp_path / src.with_suffix(".json").name).write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="provenance.pose"):
        load_pose_prior("gaussian", root=tmp_path)
    (tmp_path / src.with_suffix(".json").name).write_text("{not json")
    with pytest.raises(ModelFileError, match="JSON"):
        load_pose_prior("gaussian", root=tmp_path)
    with pytest.raises(InvalidInputError, match="x"):
        load_pose_prior("gaussian").energy(torch.zeros(2, 50))


def test_dposer_gradient_is_the_denoising_direction(priors, held_out):
    """The diffusion prior's gradient is DPoser's mean_k w_k (u - x0_k) / scale, w = abar / (1 - abar), x0_k the
    one-step denoised pose (recomputed here from the raw denoiser and the scheduler); its value is
    mean_k w_k |u - x0_k|^2 / 2; it is antithetic (each noise also as its negative); and -gradient points back
    from perturbed held-out poses towards the clean ones (mean cosine > 0.15; 0.27 measured), unlike the
    gradient of the backpropagated denoising loss (~0.06)."""
    p = priors["diffusion"].prior
    dm, T = p.model, p.model.config.num_train_timesteps
    assert p.antithetic and all(T * 0.05 <= t <= T * 0.3 for t in p.timesteps)
    K = p.t.shape[0]
    torch.testing.assert_close(p.noise[: K // 2], -p.noise[K // 2 :])
    x = held_out[:4]
    u = (x - p.loc) / p.scale
    ab = dm.scheduler.alphas_cumprod.float()[p.t]  # [K]
    with torch.no_grad():
        x0 = []
        for k in range(K):
            xt = ab[k].sqrt() * u + (1 - ab[k]).sqrt() * p.noise[k]
            eps = dm.epsilon(xt, torch.full((4,), int(p.t[k])))
            x0.append((xt - (1 - ab[k]).sqrt() * eps) / ab[k].sqrt())
        x0 = torch.stack(x0, 1)  # [4, K, D]
    w = (ab / (1 - ab))[None, :, None]
    xr = x.clone().requires_grad_(True)
    e = priors["diffusion"].energy(xr)
    (g,) = torch.autograd.grad(e.sum(), xr)
    torch.testing.assert_close(e, (w[..., 0] * 0.5 * ((u[:, None] - x0) ** 2).sum(-1)).mean(1), rtol=1e-4, atol=1e-4)
    ref = (w * (u[:, None] - x0)).mean(1) / p.scale
    torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    gen = torch.Generator().manual_seed(0)
    xn = (held_out + 0.1 * torch.randn(held_out.shape, generator=gen)).requires_grad_(True)
    (g,) = torch.autograd.grad(priors["diffusion"].energy(xn).sum(), xn)
    cos = torch.nn.functional.cosine_similarity(-g, held_out - xn.detach(), dim=-1)
    assert float(cos.mean()) > 0.15, float(cos.mean())


def test_gan_discriminator_gradient_points_back_to_real_poses(priors, smpl_priors, held_out, held_out_smpl):
    """The GAN prior's energy softplus(-D(x)) (non-saturating discriminator with a smooth SiLU MLP and an R1
    penalty, trained against its generator and noise-perturbed real poses) is a fitting prior: from held-out poses
    perturbed by 0.3 rad per coordinate, -gradient points back towards the clean pose (the known direction -n), mean
    cosine > 0.45 for both families (measured at build time: Anny 0.6, SMPL 0.7; the earlier leaky-ReLU
    discriminator without R1: Anny 0.32), and the energy rises along the perturbation (E(x + n) > E(x) for > 90 %)."""
    for fam, p, x in (("anny", priors["gan"], held_out), ("smpl", smpl_priors["gan"], held_out_smpl)):
        D = p.prior.model.config
        assert D.disc_activation == "silu" and D.r1_weight > 0 and 0 < D.aux_negative_fraction < 1, fam
        n = 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
        xn = (x + n).requires_grad_(True)
        e_n = p.energy(xn)
        (g,) = torch.autograd.grad(e_n.sum(), xn)
        cos = torch.nn.functional.cosine_similarity(-g, -n, dim=-1)
        assert float(cos.mean()) > 0.45, (fam, float(cos.mean()))
        with torch.no_grad():
            assert float((e_n.detach() > p.energy(x)).float().mean()) > 0.9, fam


def test_auto_prior_resolves_per_family(priors, body, held_out):
    """"auto" (the CLI default) is the shipped flow for Anny and for the SMPL family."""
    from human3d.fitting.config import PRIOR_WEIGHTS, SMPLifyConfig, default_prior
    from human3d.fitting.priors import make_pose_term, pose_space

    space = pose_space(body)
    term = make_pose_term("auto", space, body)
    assert term.name == "flow"  # so that SMPLifyConfig.prior_weights picks the flow's schedule
    assert SMPLifyConfig().prior_weights(term.name) == PRIOR_WEIGHTS["default"]
    groups = held_out[:3].view(3, 17, 3)
    torch.testing.assert_close(term.energy(groups, space.body_pose(groups)), priors["flow"].energy(held_out[:3]))
    assert [default_prior(f) for f in ("smpl", "smplh", "smplx")] == ["flow"] * 3
    with pytest.raises(InvalidInputError, match="family"):
        default_prior("mano")


# ---- SMPL family ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smpl_priors():
    return {k: load_pose_prior(k, model="smpl") for k in POSE_PRIOR_KINDS}


@pytest.fixture(scope="module")
def held_out_smpl(held_out, body):
    """The held-out Anny poses mapped onto SMPL's joints (as the SMPL priors' training poses were): Anny groups ->
    Anny body_pose (the fitting pose space) -> smpl_pose_from_anny -> the first 21 joints ``[N, 63]``."""
    from human3d.fitting.priors import pose_space
    from human3d.fitting.synthetic import smpl_pose_from_anny

    bp = pose_space(body).body_pose(held_out.view(-1, 17, 3))
    _, bp_s = smpl_pose_from_anny(torch.zeros(bp.shape[0], 3), bp)
    assert bp_s.shape == (held_out.shape[0], 69)
    return bp_s[:, :63]


@pytest.fixture(scope="module")
def smpl_file_model(tmp_path_factory):
    """An SMPL-format model file derived from Anny (the licensed SMPL files are absent), read by the SMPL loader."""
    from human3d.synth import smpl_files as synth
    from human3d.body.smpl import SMPL

    return SMPL(synth.write_pickle(tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.pkl", synth.make_model_from_anny()))


def _smpl_reverse_knees(x: torch.Tensor) -> torch.Tensor:
    out = x.clone().view(x.shape[0], 21, 3)
    for name in ("left_knee", "right_knee"):  # SMPL's knees flex about +X too (shin backwards): -1 rad is forwards
        out[:, SMPL_PRIOR_JOINTS.index(name)] = torch.tensor([-1.0, 0.0, 0.0])
    return out.view(x.shape[0], -1)


def test_smpl_priors_load_and_describe_their_vector(smpl_priors, smpl_file_model, priors):
    from human3d.body.smpl import SMPL_JOINT_NAMES
    from human3d.fitting.priors import pose_space

    space = pose_space(smpl_file_model)
    assert SMPL_PRIOR_JOINTS == list(SMPL_JOINT_NAMES[1:22])
    for kind, p in smpl_priors.items():
        assert pose_prior_path(kind, "smpl").stat().st_size < 2_000_000, kind
        assert isinstance(p, PosePrior) and p.dim == 63 and p.kind == kind and p.model_family == "smpl"
        assert p.group_names == space.group_names == SMPL_PRIOR_JOINTS  # the fitting pose space's 21 groups
        assert p.body_pose_joints == SMPL_PRIOR_JOINTS
        torch.testing.assert_close(p.expand, torch.eye(21))
        prov = p.provenance
        assert prov["pose"]["model"] == "smpl" and "SMPL body_pose" in prov["pose"]["representation"]
        assert "NSF EIA-0196217" in prov["credit"] and not set(prov["train_clips"]) & set(prov["val_clips"])
        assert prov["train_clips"] == priors[kind].provenance["train_clips"]  # the same mocap as Anny's
        assert not any(q.requires_grad for q in p.parameters())
    assert smpl_priors["flow"].exact_log_prob and not smpl_priors["gan"].exact_log_prob
    for fam in ("smplh", "smplx"):  # SMPL-H / SMPL-X share SMPL's 21 body joints and load the same files
        assert pose_prior_path("flow", fam) == pose_prior_path("flow", "smpl")
    text = (pose_prior_path("flow").parent / "PROVENANCE.md").read_text()
    assert "smpl_pose_" in text and "AMASS" in text
    # An Anny prior file is not an SMPL one.
    with pytest.raises(InvalidInputError, match="body_pose"):
        smpl_priors["flow"].from_body_pose(torch.zeros(2, 51))


@pytest.mark.parametrize("kind", POSE_PRIOR_KINDS)
def test_smpl_held_out_poses_beat_implausible_ones(smpl_priors, held_out_smpl, kind):
    """AUC >= 0.9 on the held-out clips mapped onto SMPL: P(E(real) < E(other)) against noise 0.3 rad, uniformly
    random axis-angles, and both knees bent forwards."""
    _assert_real_beats_implausible(smpl_priors[kind], held_out_smpl, _smpl_reverse_knees, kind)


def test_smpl_flow_nll_is_finite_and_exact(smpl_priors, held_out_smpl):
    """Finite NLL on every held-out pose; exact change of variables (autograd Jacobian, torch.slogdet) on three."""
    fp = smpl_priors["flow"].prior
    with torch.no_grad():
        nll = -smpl_priors["flow"].log_prob(held_out_smpl)
    assert torch.isfinite(nll).all()
    flow = fp.model
    flow64 = flow.double()
    try:
        for xi in held_out_smpl[:3].double():
            u = (xi - fp.loc.double()) / fp.scale.double()
            z = flow64(u[None])[0][0]
            J = torch.autograd.functional.jacobian(lambda v: flow64(v[None])[0][0], u)
            sign, logdet = torch.linalg.slogdet(J)
            ref = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum() + logdet - torch.log(fp.scale.double()).sum()
            assert float(sign) != 0.0
            got = fp.log_prob(xi[None].float()).double()[0]
            assert abs(float(got - ref)) < 1e-3 * max(1.0, abs(float(ref)))
    finally:
        flow.float()


def test_smpl_priors_take_smpl_and_smplh_body_pose(smpl_priors, held_out_smpl, smpl_file_model, tmp_path):
    """SMPL's body_pose (23 joints: the two hand joints ignored) and SMPL-H's (21) map to the same vector, and
    make_pose_term loads the SMPL prior for either family, scoring the fitting pose space's groups."""
    from human3d.synth import smpl_files as synth
    from human3d.body.smpl import SMPLH
    from human3d.fitting.priors import make_pose_term, pose_space

    p = smpl_priors["flow"]
    x = held_out_smpl[:5]
    bp69 = torch.cat([x, torch.randn(5, 6)], 1)  # hand joints: anything
    torch.testing.assert_close(p.from_body_pose(bp69), x)
    torch.testing.assert_close(p.from_body_pose(x.view(5, 21, 3)), x)
    smplh = SMPLH(synth.write_pickle(tmp_path / "SMPLH_NEUTRAL.pkl", synth.make_model_data("smplh")))
    for m, bp in ((smpl_file_model, bp69), (smplh, x)):
        space = pose_space(m)
        assert bp.shape[1] == 3 * space.n_pose_joints
        term = make_pose_term("flow", space, m)
        groups = space.groups_from_body_pose(bp)
        torch.testing.assert_close(term.energy(groups, bp), p.energy(x))


def test_smplify_with_the_smpl_flow_prior(smpl_file_model):
    """A fit of 4 persons of the derived SMPL-format file (held-out mocap 131_03) through the shipped SMPL flow:
    every person fitted near the 2 px keypoint noise, the 3D pose recovered (ground truth: the synthetic set)."""
    from human3d.fitting import smplify
    from human3d.fitting.synthetic import make_synthetic_set
    from human3d.metrics import pa_mpjpe

    model = smpl_file_model
    ds = make_synthetic_set(model, 4, seed=0)
    res = smplify(model, ds.keypoints2d, ds.K, prior="flow", image_size=(ds.width, ds.height))
    assert res.prior == "flow" and bool(res.fitted.all())
    assert float(res.reprojection_error_px.mean()) < 4.0, res.reprojection_error_px
    with torch.no_grad():
        X = model(res.params).keypoints["coco17"]
    pa = pa_mpjpe(X, ds.keypoints3d) * 1000
    # Measured 58.5 mm on these 4 (simple prior: 79 mm, no prior: 122 mm).
    assert float(pa.mean()) < 70.0, pa.tolist()
