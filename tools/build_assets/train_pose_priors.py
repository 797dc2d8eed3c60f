"""Train the shipped pose priors over Anny's pose groups (or SMPL's ``body_pose``) and write them to
``generative/priors/weights/`` (package data).

    .venv/bin/python tools/build_assets/train_pose_priors.py                 # all kinds, a few minutes on CPU
    .venv/bin/python tools/build_assets/train_pose_priors.py --kinds flow,vae --steps-scale 0.5
    .venv/bin/python tools/build_assets/train_pose_priors.py --family smpl   # SMPL-family body_pose priors

Pipeline: mocap clips (:func:`human3d.motion.mocap.list_clips`: CMU and MIT-licensed sets; Bandai Namco excluded,
it is CC BY-NC-ND and evaluation-only) -> retargeted to Anny (:mod:`human3d.motion.retarget`) at <= 30 fps -> the
51-D group axis-angle vectors of :mod:`generative.priors.pose` -> standardised with the training mean/std ->
one model per kind (:mod:`generative`), with checkpoints in ``--work-dir`` (resumed when present) -> frozen priors
saved as safetensors + JSON (provenance: clips, licences, CMU credit, held-out statistics) and ``PROVENANCE.md``.
Whole clips are held out (``human3d.motion.mocap.HOLDOUT``) for validation; their figures are printed at the end.

``--family smpl`` trains the same kinds with the same settings on the same poses mapped onto SMPL's joints
(:func:`smpl_body_vectors`: the first 21 ``body_pose`` joints, 63-D axis-angle in SMPL's own convention, relative
to its T-pose rest), written as ``smpl_pose_<kind>.*``. Only the normalisation differs: each component's scale is
floored at ``PriorTraining.smpl_scale_floor`` (SMPL's foot joints are never driven by the mocap and the elbows
hardly twist, so their standard deviations are ~0).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ANNY_CACHE_DIR", "/work/anny_cache")
os.environ.setdefault("WARP_CACHE_PATH", "/work/warp_cache")

import torch  # noqa: E402
import typer  # noqa: E402

from generative import (  # noqa: E402
    GAN,
    VAE,
    DiffusionConfig,
    DiffusionModel,
    GANConfig,
    RealNVP,
    RealNVPConfig,
    TrainConfig,
    VAEConfig,
    fit,
    seed_everything,
)
from generative.priors import (  # noqa: E402
    DiscriminatorPrior,
    FlowPrior,
    GaussianPrior,
    VAEPrior,
    save_prior,
)
from generative.priors.pose import (  # noqa: E402
    POSE_PRIOR_KINDS,
    DPoserPrior,
    PosePrior,
    load_pose_prior,
    pose_prior_path,
    pose_provenance,
)
from human3d.motion.mocap import CMU_CREDIT, build_pose_dataset, list_clips  # noqa: E402
from human3d.io_utils import atomic_path, atomic_write_text  # noqa: E402

app = typer.Typer(help="Train the pose priors (Gaussian, VAE, flow, diffusion, GAN) for Anny or SMPL on mocap.")


@dataclasses.dataclass
class PriorTraining:
    """Sizes and schedules of the shipped priors (each file stays well under 2 MB)."""

    vae_latent: int = 16
    """VAE latent size (VPoser uses 32 for 63-D SMPL poses)."""
    vae_hidden: tuple[int, ...] = (256, 256)
    """VAE encoder/decoder widths."""
    vae_steps: int = 5000
    """VAE optimisation steps (batch 256)."""
    flow_layers: int = 8
    """RealNVP blocks."""
    flow_hidden: tuple[int, ...] = (128, 128)
    """Coupling MLP widths."""
    flow_steps: int = 4000
    """Flow optimisation steps."""
    diffusion_hidden: int = 192
    """MLP denoiser width."""
    diffusion_depth: int = 3
    """MLP denoiser residual blocks."""
    diffusion_steps: int = 8000
    """Diffusion optimisation steps."""
    gan_steps: int = 5000
    """Discriminator updates of the GAN (8000 fitted no better on tools/bench/fit.py)."""
    gan_aux_negatives: float = 0.8
    """Fraction of the discriminator's fake batch made of noise-perturbed real poses (so that D also rejects poses
    far from the generator's support and works as an energy prior); the rest are generator samples. 0.8 gave a
    better fitting prior than 0.5 (the ratio p_data / p_fake that D learns is bounded near the data by
    1 / (generator fraction), so more noisy negatives leave D more range to rise towards the data)."""
    gan_aux_std: float = 1.0
    """Typical std (standardised units) of the auxiliary negatives' noise; each one's std is this x
    LogUniform(1/3, 3) (``GANConfig.aux_negative_std``)."""
    gan_activation: str = "silu"
    """Discriminator activation: smooth (SiLU), so that the energy's gradient varies smoothly with the pose (the
    leaky-ReLU discriminator's gradient is piecewise constant and pointed back towards held-out poses far less)."""
    gan_r1: float = 1.0
    """R1 penalty weight γ on the discriminator (``GANConfig.r1_weight``): flat on the data, smooth around it."""
    noise: float = 0.08
    """Std (radians) of Gaussian noise added to the training poses (fresh each step; the Gaussian adds its variance
    to the covariance). It puts a floor on the density's width where the data is degenerate: the elbow and wrist
    rotations have no twist component by construction, the knees almost none. Not used by the diffusion model."""
    lr: float = 1e-3
    """Adam learning rate (GAN: 2e-4)."""
    seed: int = 0
    """Seed of every run."""
    smpl_scale_floor: float = 0.08
    """SMPL family: lower bound (radians) of the per-component scale the poses are standardised with (Anny: 1e-3),
    equal to ``noise``. The foot joints have zero variance and the elbows' twist ~0.01 rad: with a small floor the
    training noise is many standard units wide there, the GAN's auxiliary negatives (unit-scale noise in
    standardised units) never leave the noisy real poses' spread, and its discriminator learned to score
    perturbed poses as *more* real (held-out AUC vs noise 0.2 with a 0.02 floor)."""


def _dataset(work: Path, rebuild: bool):
    cache = work / "pose_dataset.pt"
    if cache.is_file() and not rebuild:
        d = torch.load(cache, weights_only=True)
        return d
    t = time.time()
    ds = build_pose_dataset(list_clips(include_eval=False), progress=True)
    d = {
        "train": ds.subset("train"),
        "val": ds.subset("val"),
        "train_clips": ds.clip_names("train"),
        "val_clips": ds.clip_names("val"),
        "clips": [dataclasses.asdict(c) for c in ds.clips],
        "groups": [[n, list(m)] for n, m in ds.groups],
        "body_pose_joints": list(ds.body_pose_joints),
    }
    with atomic_path(cache) as tmp:
        torch.save(d, tmp)
    print(f"dataset: {d['train'].shape[0]} train / {d['val'].shape[0]} val poses ({time.time() - t:.0f} s)")
    return d


SMPL_BODY_JOINTS = 21
"""SMPL body_pose joints the SMPL-family priors score: the first 21 (SMPL-H / SMPL-X have only these; SMPL's two
hand joints are not driven by the mocap)."""


@torch.no_grad()
def smpl_body_vectors(x: torch.Tensor, groups: list, body_pose_joints: list[str], chunk: int = 2048) -> torch.Tensor:
    """Anny pose-group vectors ``[N, 51]`` -> SMPL ``body_pose`` of the first 21 joints ``[N, 63]`` (axis-angle,
    SMPL's own convention: rotation relative to the parent in world-aligned axes of its T-pose rest).

    Each vector is expanded to Anny's ``body_pose`` (group rotations split over their bones, as
    ``pose_space(AnnyBody()).body_pose``), then mapped onto SMPL's joints with
    :func:`human3d.fitting.synthetic.smpl_pose_from_anny` at a zero ``global_orient``.
    """
    from generative.priors.pose import body_pose_from_groups, group_expand_matrix
    from human3d.motion.retarget import anny_reference
    from human3d.fitting.synthetic import smpl_pose_from_anny

    E = group_expand_matrix([(n, list(m)) for n, m in groups], list(body_pose_joints))
    ref = anny_reference()
    out = []
    for i in range(0, x.shape[0], chunk):
        bp = body_pose_from_groups(x[i : i + chunk].double(), E)  # [n, 309]
        _, bp_s = smpl_pose_from_anny(torch.zeros(bp.shape[0], 3, dtype=bp.dtype), bp, reference=ref)  # [n, 69]
        out.append(bp_s[:, : 3 * SMPL_BODY_JOINTS].float())
    return torch.cat(out)


def _smpl_dataset(work: Path, rebuild: bool):
    """The Anny dataset of :func:`_dataset` with its poses mapped onto SMPL's first 21 body joints (cached)."""
    cache = work / "pose_dataset_smpl.pt"
    if cache.is_file() and not rebuild:
        return torch.load(cache, weights_only=True)
    d = dict(_dataset(work, rebuild))
    t = time.time()
    for split in ("train", "val"):
        d[split] = smpl_body_vectors(d[split].float(), d["groups"], d["body_pose_joints"])
    from human3d.body.smpl import SMPL_JOINT_NAMES

    names = list(SMPL_JOINT_NAMES[1 : 1 + SMPL_BODY_JOINTS])
    d["groups"] = [[n, [n]] for n in names]
    d["body_pose_joints"] = names
    with atomic_path(cache) as tmp:
        torch.save(d, tmp)
    print(f"SMPL dataset: {d['train'].shape[0]} train / {d['val'].shape[0]} val poses ({time.time() - t:.0f} s)")
    return d


def dataset(work: Path, rebuild: bool = False, family: str = "anny"):
    """Training / held-out pose vectors of ``family`` (``"anny"``: 51-D groups; ``"smpl"``: 63-D body_pose)."""
    if family == "anny":
        return _dataset(work, rebuild)
    if family == "smpl":
        return _smpl_dataset(work, rebuild)
    raise typer.BadParameter(f"--family: expected 'anny' or 'smpl', got {family!r}")


def _train(kind: str, x: torch.Tensor, loc, scale, cfg: PriorTraining, work: Path, steps_scale: float,
           ckpt_prefix: str = ""):
    u = (x - loc) / scale
    D = x.shape[1]
    seed_everything(cfg.seed)

    def tc(steps: int, lr: float = cfg.lr, **kw) -> TrainConfig:
        return TrainConfig(
            steps=max(1, int(steps * steps_scale)), batch_size=256, lr=lr, seed=cfg.seed, device="cpu",
            checkpoint=str(work / f"ckpt_{ckpt_prefix}{kind}.safetensors"), checkpoint_every=1000, progress=True, **kw,
        )  # fmt: skip

    sigma_u = cfg.noise / scale  # [D] noise std in normalised units

    def noisy_loss(m, xb):
        return m.loss(xb + sigma_u.to(xb) * torch.randn_like(xb))

    if kind == "gaussian":
        g = GaussianPrior.fit(u, covariance="full")
        L = g.scale_tril.double()
        cov = L @ L.T + torch.diag(sigma_u.double() ** 2)
        prior = GaussianPrior(D, covariance="full", loc=loc, scale=scale)
        prior.mean.copy_(g.mean)
        prior.scale_tril.copy_(torch.linalg.cholesky(cov).float())
        return prior
    if kind == "vae":
        model = VAE(VAEConfig(data_shape=(D,), latent_dim=cfg.vae_latent, hidden=cfg.vae_hidden))
        fit(model, u, config=tc(cfg.vae_steps, grad_clip=10.0), loss_fn=noisy_loss)
        return VAEPrior(model, energy="elbo", loc=loc, scale=scale)
    if kind == "flow":
        model = RealNVP(RealNVPConfig(dim=D, num_layers=cfg.flow_layers, hidden=cfg.flow_hidden))
        fit(model, u, config=tc(cfg.flow_steps, grad_clip=10.0), loss_fn=noisy_loss)
        return FlowPrior(model, loc=loc, scale=scale)
    if kind == "diffusion":
        model = DiffusionModel(
            DiffusionConfig(data_shape=(D,), hidden=cfg.diffusion_hidden, depth=cfg.diffusion_depth,
                            beta_schedule="cosine")
        )  # fmt: skip
        fit(model, u, config=tc(cfg.diffusion_steps))
        # DPoser's stop-gradient denoising energy over t in [0.05, 0.3] T (backpropagating through the denoiser
        # gave a gradient uncorrelated with the way back to the data: no better than no prior in fitting)
        return DPoserPrior(model, timesteps=(50, 100, 200, 300), noise_per_timestep=4, antithetic=True, loc=loc,
                           scale=scale)  # fmt: skip
    if kind == "gan":
        model = GAN(GANConfig(data_shape=(D,), latent_dim=16, gen_hidden=(256, 256), disc_hidden=(256, 256),
                              disc_activation=cfg.gan_activation, loss="nonsaturating", d_steps=1,
                              aux_negative_fraction=cfg.gan_aux_negatives, aux_negative_std=cfg.gan_aux_std,
                              r1_weight=cfg.gan_r1))  # fmt: skip
        g = torch.Generator().manual_seed(cfg.seed)
        real = torch.cat([u + sigma_u * torch.randn(u.shape, generator=g) for _ in range(2)])  # fixed noisy copies
        model.fit(real, config=tc(cfg.gan_steps, lr=2e-4, betas=(0.5, 0.999)))
        return DiscriminatorPrior(model, loc=loc, scale=scale)
    raise typer.BadParameter(f"unknown kind {kind!r}")


def _auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """P(energy(real) < energy(other)) (ties count half)."""
    d = neg[None, :] - pos[:, None]
    return float(((d > 0).float() + 0.5 * (d == 0).float()).mean())


def _reverse_knees(x: torch.Tensor, groups: list[str]) -> torch.Tensor:
    """Real poses with both knees bent the wrong way (shin forward: -1 rad about +X, the knee's flexion axis, in
    Anny's and SMPL's conventions alike)."""
    out = x.clone().view(x.shape[0], -1, 3)
    knees = ["lowerleg01.L", "lowerleg01.R"] if "lowerleg01.L" in groups else ["left_knee", "right_knee"]
    for name in knees:
        out[:, groups.index(name)] = torch.tensor([-1.0, 0.0, 0.0])
    return out.view(x.shape[0], -1)


@torch.no_grad()
def _evaluate(prior, val: torch.Tensor, groups: list[str], n: int = 1000) -> dict:
    g = torch.Generator().manual_seed(1)
    val = val[torch.randperm(val.shape[0], generator=g)[:n]]
    e_val = prior.energy(val)
    noisy = val + 0.3 * torch.randn(val.shape, generator=g)
    rand = (torch.rand(val.shape, generator=g) * 2 - 1) * 1.5
    out = {
        "val_energy_mean": float(e_val.mean()),
        "val_energy_std": float(e_val.std()),
        "auc_noise0.3": _auc(e_val, prior.energy(noisy)),
        "auc_random": _auc(e_val, prior.energy(rand)),
        "auc_reversed_knees": _auc(e_val, prior.energy(_reverse_knees(val, groups))),
    }
    for sig in (0.1, 0.3):  # -grad E from perturbed held-out poses vs the way back (-n): mean cosine
        n = sig * torch.randn(val.shape, generator=g)
        with torch.enable_grad():
            xn = (val + n).requires_grad_(True)
            (grad,) = torch.autograd.grad(prior.energy(xn).sum(), xn)
        out[f"grad_cos_noise{sig}"] = float(torch.nn.functional.cosine_similarity(-grad, -n, dim=-1).mean())
    if getattr(prior, "exact_log_prob", False):
        out["val_nll_per_dim"] = float(-prior.log_prob(val).mean() / val.shape[1])
    return out


def _results_table(results: dict) -> list[str]:
    lines = [
        "| kind | val energy mean | AUC vs noise 0.3 rad | AUC vs random | AUC vs reversed knees | val NLL/dim "
        "| gradient cosine 0.1 / 0.3 rad | size |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in POSE_PRIOR_KINDS:
        if kind not in results:
            continue
        r = results[kind]
        nll = f"{r['val_nll_per_dim']:.3f}" if "val_nll_per_dim" in r else "-"
        cos = f"{r['grad_cos_noise0.1']:.2f} / {r['grad_cos_noise0.3']:.2f}" if "grad_cos_noise0.3" in r else "-"
        lines.append(
            f"| {kind} | {r['val_energy_mean']:.3f} | {r['auc_noise0.3']:.3f} | {r['auc_random']:.3f} | "
            f"{r['auc_reversed_knees']:.3f} | {nll} | {cos} | {r['bytes'] / 1e6:.2f} MB |"
        )
    return lines


def _provenance_md(d: dict, results: dict, smpl_results: dict | None = None) -> str:
    """PROVENANCE.md: data, energies and held-out figures of the Anny priors (``results``) and, when built, the
    SMPL-family priors (``smpl_results``)."""
    lines = [
        "# Pose priors: provenance",
        "",
        "Files: `anny_pose_<kind>.safetensors` (weights) + `anny_pose_<kind>.json` (config, provenance), and",
        "`smpl_pose_<kind>.*` for the SMPL family, written by `tools/build_assets/train_pose_priors.py`",
        "(`--family smpl`); load with `generative.priors.pose.load_pose_prior(kind, model=\"anny\" | \"smpl\")`.",
        "",
        "**What they score.** Anny's 17 pose groups (trunk, neck, head; per side clavicle, shoulder, elbow, wrist,",
        "hip, knee, ankle) as axis-angles in AnnyBody's `body_pose` convention: a 51-D vector (see",
        "`generative/priors/pose.py`). The `smpl_pose_*` priors score SMPL's `body_pose` (below).",
        "",
        "**Data.** Motion capture retargeted to Anny (`human3d/motion/retarget.py`), subsampled to at most 30 fps.",
        "Only permissively licensed clips are used for training:",
        "",
        "- CMU Graphics Lab Motion Capture Database (subjects 1, 14, 60, 131 via cgspeed BVH conversions, and the",
        "  CMU split of Li et al. 2018 as exponential maps). " + CMU_CREDIT,
        "- facebookresearch/AnimatedDrawings `fair1_*` and `rokoko_jesse_dance` BVH (MIT licence).",
        "- The Bandai Namco Research Motion Dataset (CC BY-NC-ND 4.0) is **not** used for training; it serves only",
        "  for evaluation in `tools/bench/priors.py`.",
        "",
        f"Training poses: {d['train'].shape[0]} from {len(d['train_clips'])} clips. "
        f"Held-out whole clips ({d['val'].shape[0]} poses): {', '.join(d['val_clips'])}.",
        "",
        "Training clips: " + ", ".join(d["train_clips"]) + ".",
        "",
        "**Energies.** gaussian, flow: exact NLL; vae: -ELBO at the posterior mean; diffusion: `DPoserPrior`, DPoser's",
        "one-step denoising distance with a stop-gradient on the denoiser (t = 50, 100, 200, 300 of 1000, 4 antithetic",
        "noise pairs each; the denoiser weights are unchanged, only the energy was replaced, which took fitting from",
        "85 to 59 mm PA-MPJPE on `tools/bench/fit.py`); gan: softplus(-D(x)) of the discriminator, a non-saturating",
        "GAN's (SiLU MLP 256x256, R1 penalty γ = 1, its fake batches 20 % generator samples and 80 % real poses plus",
        "Gaussian noise of std LogUniform(1/3, 3) standardised units; HMR-style adversarial prior). The smooth",
        "activation, the R1 penalty and the larger share of noisy negatives replaced a leaky-ReLU discriminator",
        "(50 % noisy negatives, no R1) whose gradient pointed back to held-out poses far less (cosine with the way",
        "back from 0.3 rad noise 0.32 -> 0.6 on Anny) and which barely beat no prior in fitting (see the README).",
        "",
        "## Held-out figures at build time (Anny)",
        "",
        "Gradient cosine: mean cosine between -∇E at a held-out pose plus Gaussian noise n (0.1 or 0.3 rad per",
        "coordinate) and -n, the way back to the clean pose (how well the energy guides fitting; 1000 poses).",
        "",
    ]
    lines += _results_table(results)
    if smpl_results:
        lines += [
            "",
            "## SMPL family: `smpl_pose_<kind>`",
            "",
            "**What they score.** SMPL's `body_pose` of its first 21 joints (hips, spine1-3, knees, ankles, feet, neck,",
            "collars, head, shoulders, elbows, wrists; the joints SMPL, SMPL-H and SMPL-X share; SMPL's two hand",
            "joints are left out) as axis-angles in SMPL's own convention: each joint's rotation relative to its",
            "parent, in axes that are world-aligned in SMPL's T-pose rest. A 63-D vector, one group per joint.",
            "",
            "**Data.** The same training and held-out poses as the Anny priors, *mapped onto SMPL's joints*:",
            "each Anny pose is expanded to Anny's `body_pose` and converted with",
            "`human3d.fitting.synthetic.smpl_pose_from_anny` (each SMPL joint turns like the Anny bone it sits on,",
            "relative to Anny posed in SMPL's T-pose). Same kinds, sizes, schedules, training noise and DPoser energy",
            "as the Anny priors; the standardisation scale is floored at 0.08 rad, the training noise (the feet have",
            "zero variance).",
            "",
            "**Limits.** They were **not** trained on real SMPL fits or AMASS: the poses are Anny retargets, so what",
            "Anny's rig cannot express is absent (the feet never move relative to the ankles, the elbows and knees",
            "hardly twist, the trunk bends like Anny's five spine bones sampled at three SMPL joints). SMPL fits of",
            "real people (e.g. from other tools) that use those degrees of freedom score worse than they should.",
            "Measured in fitting only on the SMPL-format file derived from Anny",
            "(`human3d.fitting.synthetic.smpl_data_from_anny`, `tools/bench/fit.py --model smpl`).",
            "",
            "### Held-out figures at build time (SMPL)",
            "",
        ]
        lines += _results_table(smpl_results)
    return "\n".join(lines) + "\n"


@app.command()
def main(
    kinds: str = typer.Option(",".join(POSE_PRIOR_KINDS), help="Comma-separated kinds to train."),
    out_dir: Path = typer.Option(
        ROOT / "generative" / "priors" / "weights", help="Where the weights and PROVENANCE.md go."
    ),
    work_dir: Path = typer.Option(ROOT / ".cache" / "pose_priors", help="Dataset cache and training checkpoints."),
    rebuild_data: bool = typer.Option(False, help="Retarget the mocap again instead of using the cached dataset."),
    steps_scale: float = typer.Option(1.0, help="Multiply every training schedule (e.g. 0.1 for a smoke run)."),
    fresh: bool = typer.Option(False, help="Delete existing checkpoints first (no resume)."),
    threads: int = typer.Option(1, help="torch CPU threads (1 is fastest on a shared 2-core machine)."),
    family: str = typer.Option("anny", help="'anny': Anny's 17 pose groups (51-D); 'smpl': SMPL's body_pose, first "
                               "21 joints (63-D; used for SMPL, SMPL-H and SMPL-X)."),
) -> None:
    """Build the pose dataset (cached), train each prior kind (resuming from checkpoints), save them."""
    torch.set_num_threads(threads)
    work_dir.mkdir(parents=True, exist_ok=True)
    kinds_l = [k.strip() for k in kinds.split(",") if k.strip()]
    for k in kinds_l:
        if k not in POSE_PRIOR_KINDS:
            raise typer.BadParameter(f"--kinds: unknown kind {k!r}; expected from {list(POSE_PRIOR_KINDS)}")
    d = dataset(work_dir, rebuild_data, family)
    x, val = d["train"].float(), d["val"].float()
    cfg = PriorTraining()
    loc, scale = x.mean(0), x.std(0).clamp_min(1e-3 if family == "anny" else cfg.smpl_scale_floor)
    groups = [n for n, _ in d["groups"]]
    prefix = "" if family == "anny" else f"{family}_"
    results = {}
    res_files = {"anny": out_dir / "build_results.json", "smpl": out_dir / "build_results_smpl.json"}
    res_file = res_files[family]
    if res_file.is_file():
        results = json.loads(res_file.read_text())
    for kind in kinds_l:
        ckpt = work_dir / f"ckpt_{prefix}{kind}.safetensors"
        if fresh and ckpt.exists():
            ckpt.unlink()
        t = time.time()
        prior = _train(kind, x, loc, scale, cfg, work_dir, steps_scale, prefix).freeze()
        seconds = time.time() - t
        prev = results.get(kind, {}).get("training_seconds")
        if kind != "gaussian" and seconds < 5 and prev:  # resumed a finished run: keep the time that trained it
            seconds = float(prev)
        stats = _evaluate(prior, val, groups)
        prov = pose_provenance(
            [(n, m) for n, m in d["groups"]],
            d["body_pose_joints"],
            model=family,
            kind=kind,
            train_clips=d["train_clips"],
            val_clips=d["val_clips"],
            licences=["CMU mocap (credit below)", "MIT (facebookresearch/AnimatedDrawings)"],
            credit=CMU_CREDIT,
            excluded="Bandai Namco Research Motion Dataset (CC BY-NC-ND 4.0): evaluation only",
            train_poses=int(x.shape[0]),
            train_stats={
                "mean": [round(float(v), 5) for v in x.mean(0)],
                "std": [round(float(v), 5) for v in x.std(0)],
                "group_angle_mean": [round(float(v), 5) for v in x.view(x.shape[0], -1, 3).norm(dim=-1).mean(0)],
                "noise": 0.0 if kind == "diffusion" else cfg.noise,  # training noise (radians)
            },
            training_seconds=round(seconds, 1),
            held_out=stats,
        )
        path = pose_prior_path(kind, family, root=out_dir)
        save_prior(prior, path, provenance=prov)
        stats["bytes"] = path.stat().st_size
        stats["training_seconds"] = round(seconds, 1)
        results[kind] = stats
        print(f"{kind}: {json.dumps(stats)}")
        assert isinstance(load_pose_prior(kind, family, root=out_dir), PosePrior)  # loads through the public API
    atomic_write_text(res_file, json.dumps(results, indent=2) + "\n")
    both = {f: json.loads(p.read_text()) if p.is_file() else {} for f, p in res_files.items()}
    atomic_write_text(out_dir / "PROVENANCE.md", _provenance_md(d, both["anny"], both["smpl"]))


if __name__ == "__main__":
    app()
