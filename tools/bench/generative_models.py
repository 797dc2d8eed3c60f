"""Benchmark of the generative models on small standard tasks: training time, held-out NLL / ELBO, sample MMD.

Tasks
  moons     2-D two moons (noise 0.05), 4000 train / 2000 test
  8gauss    2-D mixture of 8 Gaussians on a circle of radius 2 (σ = 0.1)
  digits    sklearn's bundled 8×8 digits (1797 images), dequantised x = (v + u)/17 - 0.5; 1500 train / 297 test.
            Without scikit-learn a synthetic 8×8 "blob" dataset of the same size is used instead (printed).
Columns
  train_s   wall-clock training time (this machine, ``--threads`` intra-op threads); sample_s: time to draw n_test samples
  nll       held-out negative log-likelihood, nats per example, mean and median over the test set (exact for
            Gaussians/flows/MADE; IWAE K=256 bound for VAEs; "-" for models without a likelihood). digits also report
            bits/dim of the discrete images from the mean (upper bound: (nll + 64 ln 17) / (64 ln 2)).
  elbo      held-out ELBO (VAEs, 16 samples), nats
  mmd       MMD² (RBF, median bandwidth × {0.5, 1, 2}) between n_test samples and the test set. Reference rows:
            "train split" (real data vs real data: the floor) and "noise" (uniform in the data's box).
Reference implementations in the same run (when scikit-learn is installed): GaussianMixture and KernelDensity.

Usage:  python tools/bench/generative_models.py [--tasks moons,8gauss,digits] [--scale 1.0] [--threads 2] [--models vae,flow]
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from generative import (  # noqa: E402
    GAN,
    MADE,
    VAE,
    DiffusionConfig,
    DiffusionModel,
    GANConfig,
    Glow,
    GlowConfig,
    HierarchicalVAE,
    HierarchicalVAEConfig,
    MADEConfig,
    RealNVP,
    RealNVPConfig,
    TrainConfig,
    VAEConfig,
    fit,
)
from generative.metrics import gaussian_nll, mmd_rbf  # noqa: E402

app = typer.Typer(help="Benchmark generative models (VAE, HVAE, RealNVP, Glow, MADE, diffusion, GAN) on toy sets.")


# ------------------------------------------------------------------------------------------------- datasets
def two_moons(n: int, g: torch.Generator, noise: float = 0.05) -> torch.Tensor:
    t = math.pi * torch.rand(n, generator=g)
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    return torch.stack([x, y], 1) + noise * torch.randn(n, 2, generator=g)


def eight_gaussians(n: int, g: torch.Generator, std: float = 0.1) -> torch.Tensor:
    k = torch.randint(0, 8, (n,), generator=g)
    ang = k.float() * (2 * math.pi / 8)
    return 2 * torch.stack([torch.cos(ang), torch.sin(ang)], 1) + std * torch.randn(n, 2, generator=g)


def digits(g: torch.Generator) -> tuple[torch.Tensor, str]:
    try:
        from sklearn.datasets import load_digits

        d = torch.tensor(load_digits().data, dtype=torch.float32)
        name = "digits (sklearn 8x8)"
    except ImportError:  # synthetic stand-in: 1-3 Gaussian blobs per image, quantised to 0..16
        n = 1797
        yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
        img = torch.zeros(n, 8, 8)
        for _ in range(3):
            c = 1.5 + 5 * torch.rand(n, 2, generator=g)
            on = (torch.rand(n, generator=g) < 0.7).float()
            img += on[:, None, None] * 16 * torch.exp(-((yy - c[:, 0, None, None]) ** 2 + (xx - c[:, 1, None, None]) ** 2) / 2)
        d = img.clamp(0, 16).round().reshape(n, 64)
        name = "synthetic blobs 8x8 (scikit-learn not installed)"
    d = d[torch.randperm(len(d), generator=g)]
    return (d + torch.rand(d.shape, generator=g)) / 17.0 - 0.5, name


# ---------------------------------------------------------------------------------------------------- rows
HEADER = [
    "| model                                  | train_s | sample_s |  nll mean |  nll med |    bpd |      elbo |       mmd |",
    "|----------------------------------------|--------:|---------:|----------:|---------:|-------:|----------:|----------:|",
]
MODEL_GROUPS = ("reference", "vae", "flow", "made", "diffusion", "gan")


def _row(name, train_s=None, sample_s=None, nll=None, elbo=None, mmd=None, image_dim=None):
    """``nll``: per-example NLL tensor [N] (mean and median are printed), ``elbo``: per-example ELBO tensor."""
    f = lambda v, w=9, p=3: ("-" if v is None else f"{v:.{p}f}").rjust(w)  # noqa: E731
    mean = None if nll is None else float(nll.mean())
    med = None if nll is None else float(nll.median())
    bpd = None if (nll is None or image_dim is None) else _bpd(mean, image_dim)
    el = None if elbo is None else float(elbo.mean())
    return (f"| {name:<38s} | {f(train_s, 7, 1)} | {f(sample_s, 8, 1)} | {f(mean)} | {f(med, 8)} | {f(bpd, 6, 3)} "
            f"| {f(el)} | {f(mmd, 9, 4)} |")


def _bpd(nll, dim):
    """Bits/dim of the discrete 0..16 images (upper bound) from the NLL of x = (v + u)/17 - 0.5."""
    return (nll + dim * math.log(17)) / (dim * math.log(2))


def _train(model, x, config):
    t = time.perf_counter()
    if isinstance(model, GAN):
        model.fit(x, config=config)
    else:
        fit(model, x, config=config)
    return model, time.perf_counter() - t


def _sample(fn):
    t = time.perf_counter()
    with torch.no_grad():
        s = fn()
    return s, time.perf_counter() - t


def _gaussian_nll_per_example(train, test, covariance):
    from generative.priors import GaussianPrior

    prior = GaussianPrior.fit(train.double(), covariance)
    return -prior.double().log_prob(test.double())


def run_task(task: str, scale: float, seed: int, models: tuple[str, ...] = MODEL_GROUPS) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    if task == "moons":
        train, test, label = two_moons(4000, g), two_moons(2000, g), "two moons (2-D)"
    elif task == "8gauss":
        train, test, label = eight_gaussians(4000, g), eight_gaussians(2000, g), "8 Gaussians (2-D)"
    else:
        x, label = digits(g)
        train, test = x[:1500], x[1500:]
    D = train.shape[1]
    image = task == "digits"
    idim = D if image else None
    n_eval = min(len(test), 1000)
    test_e = test[:n_eval]
    lo, hi = train.min(0).values, train.max(0).values
    rows = [f"\n### {label}: train {tuple(train.shape)}, test {tuple(test.shape)}\n", *HEADER]
    rows.append(_row("train split (data floor)", mmd=mmd_rbf(train[:n_eval], test_e)))
    rows.append(_row("noise (uniform box)", mmd=mmd_rbf(lo + (hi - lo) * torch.rand(n_eval, D, generator=g), test_e)))
    for cov in ("diag", "full"):
        t = time.perf_counter()
        nll = _gaussian_nll_per_example(train, test, cov)
        rows.append(_row(f"Gaussian ({cov})", time.perf_counter() - t, nll=nll, image_dim=idim))
    if "reference" in models:
        try:  # reference density estimators
            import numpy as np
            from sklearn.mixture import GaussianMixture
            from sklearn.neighbors import KernelDensity

            for name, est in [("sklearn GaussianMixture(10, full)", GaussianMixture(10, covariance_type="full", random_state=seed)),
                              ("sklearn KernelDensity", KernelDensity(bandwidth=0.1 if not image else 0.05))]:
                t = time.perf_counter()
                est.fit(train.numpy().astype(np.float64))
                secs = time.perf_counter() - t
                nll = -torch.tensor(est.score_samples(test.numpy().astype(np.float64)))
                s, ss = _sample(lambda: torch.tensor(
                    est.sample(n_eval)[0] if isinstance(est, GaussianMixture) else est.sample(n_eval, random_state=seed),
                    dtype=torch.float32))
                rows.append(_row(name, secs, ss, nll=nll, mmd=mmd_rbf(s, test_e), image_dim=idim))
        except ImportError:
            rows.append("| (scikit-learn not installed: no reference estimators) | | | | | | | |")

    def cfg(n, lr, bs=256, **kw):
        return TrainConfig(steps=max(10, int(n * scale)), batch_size=bs, lr=lr, progress=False, seed=seed, **kw)

    torch.manual_seed(seed)
    if "vae" in models:  # IWAE (K=256) NLL bound, ELBO (16 samples), samples from the likelihood (not decoder means)
        vaes = [
            ("VAE", VAE(VAEConfig(data_shape=(D,), latent_dim=2 if D == 2 else 8, hidden=(128, 128),
                                  decoder_variance="learned", fixed_logvar=-4.0))),
            ("Hierarchical VAE (2 layers)", HierarchicalVAE(HierarchicalVAEConfig(
                data_shape=(D,), latent_dims=(4, 2) if D == 2 else (16, 8), hidden=(128,), decoder_variance="learned",
                fixed_logvar=-4.0))),
        ]
        for name, model in vaes:
            model, secs = _train(model, train, cfg(2000, 2e-3, grad_clip=50.0))
            s, ss = _sample(lambda: model.sample(n_eval, mean=False))
            with torch.no_grad():
                nll = -model.iwae_log_likelihood(test_e, k=256)
                elbo = model.elbo(test_e, n_samples=16).elbo
            rows.append(_row(name, secs, ss, nll, elbo, mmd_rbf(s, test_e), idim))
    if "flow" in models:  # exact NLL
        if image:  # 1500 images: a small flow and few steps (larger/longer RealNVPs overfit badly: see README)
            flows = [("RealNVP (LU mixing, 4 blocks, 64)", RealNVP(RealNVPConfig(dim=D, num_layers=4, hidden=(64,))),
                      train, test, 300),
                     ("Glow (2 levels x 4 steps, 32 ch)",
                      Glow(GlowConfig(image_shape=(1, 8, 8), levels=2, steps_per_level=4, hidden_channels=32)),
                      train.reshape(-1, 1, 8, 8), test.reshape(-1, 1, 8, 8), 1000)]
        else:
            flows = [("RealNVP (LU mixing, 8 blocks)", RealNVP(RealNVPConfig(dim=D, num_layers=8, hidden=(128, 128))),
                      train, test, 2000)]
        for name, model, xtr, xte, n in flows:
            model, secs = _train(model, xtr, cfg(n, 1e-3, grad_clip=50.0))
            s, ss = _sample(lambda: model.sample(n_eval).reshape(n_eval, -1))
            with torch.no_grad():
                nll = -model.log_prob(xte)
            rows.append(_row(name, secs, ss, nll=nll, mmd=mmd_rbf(s, test_e), image_dim=idim))
    if "made" in models:  # exact NLL (mixture over the mask pool for the order-agnostic model)
        for name, nm in [("MADE", 1), ("MADE (order-agnostic, 8 masks)", 8)]:
            model = MADE(MADEConfig(dim=D, hidden=(256, 256) if D == 2 else (512,), num_masks=nm, natural_order=nm == 1))
            model, secs = _train(model, train, cfg(2000, 2e-3))
            s, ss = _sample(lambda: model.sample(n_eval))
            with torch.no_grad():
                nll = -model.log_prob(test)
            rows.append(_row(name, secs, ss, nll=nll, mmd=mmd_rbf(s, test_e), image_dim=idim))
    if "diffusion" in models:  # sample MMD with DDPM (1000 steps, 100 strided steps) and DDIM (50 steps, η = 0)
        clip = 0.5 if image else None  # digits live in [-0.5, 0.5]
        w = 256 if image else 128
        makers = [("Diffusion MLP (ε)", DiffusionConfig(data_shape=(D,), hidden=w, depth=3, clip_sample=clip), 3000),
                  ("Diffusion MLP (v)", DiffusionConfig(data_shape=(D,), hidden=w, depth=3, clip_sample=clip,
                                                        prediction_type="v"), 3000)]
        if image:
            makers.append(("Diffusion TinyUNet 16ch (ε)",
                           DiffusionConfig(data_shape=(1, 8, 8), base_channels=16, clip_sample=clip), 800))
        for name, dcfg, n in makers:
            xtr = train if len(dcfg.data_shape) == 1 else train.reshape(-1, 1, 8, 8)
            model, secs = _train(DiffusionModel(dcfg), xtr, cfg(n, 1e-3))
            samplers = [("DDPM 1000", dict(scheduler="ddpm")), ("DDPM 100", dict(scheduler="ddpm", num_steps=100)),
                        ("DDIM 50", dict(scheduler="ddim", num_steps=50))]
            for sampler, kw in samplers:
                s, ss = _sample(lambda: model.sample(n_eval, generator=torch.Generator().manual_seed(seed), **kw))
                rows.append(_row(f"{name}, {sampler}", secs, ss, mmd=mmd_rbf(s.reshape(n_eval, -1), test_e)))
    if "gan" in models:  # sample MMD
        for name, loss, k, n, lr in [("GAN (non-saturating)", "nonsaturating", 1, 3000, 1e-3),
                                     ("WGAN-GP (k=5)", "wgan-gp", 5, 6000, 2e-4)]:
            model = GAN(GANConfig(data_shape=(D,), latent_dim=2 if D == 2 else 16, gen_hidden=(128, 128),
                                  disc_hidden=(128, 128), loss=loss, d_steps=k))
            model, secs = _train(model, train, cfg(n, lr, betas=(0.5, 0.9)))
            s, ss = _sample(lambda: model.sample(n_eval))
            rows.append(_row(name, secs, ss, mmd=mmd_rbf(s, test_e)))
    return rows


@app.command()
def main(
    tasks: str = typer.Option("moons,8gauss,digits", help="Comma-separated tasks: moons, 8gauss, digits."),
    scale: float = typer.Option(1.0, help="Multiply every model's number of training steps (0.1 for a quick run)."),
    threads: int = typer.Option(2, help="torch intra-op threads (1 is fastest for these tiny networks on a busy box)."),
    seed: int = typer.Option(0, help="Seed of data splits, initialisation and training."),
    models: str = typer.Option(",".join(MODEL_GROUPS), help=f"Comma-separated model groups: {', '.join(MODEL_GROUPS)}."),
):
    """Print one markdown table per task."""
    groups = tuple(m.strip() for m in models.split(",") if m.strip())
    for m in groups:
        if m not in MODEL_GROUPS:
            raise typer.BadParameter(f"unknown model group {m!r}; expected some of {MODEL_GROUPS}")
    torch.set_num_threads(threads)
    print(f"# generative benchmark  (torch {torch.__version__}, {threads} thread(s), scale {scale}, seed {seed})")
    for task in tasks.split(","):
        if task not in ("moons", "8gauss", "digits"):
            raise typer.BadParameter(f"unknown task {task!r}")
        t = time.perf_counter()
        for line in run_task(task, scale, seed, groups):
            print(line, flush=True)
        print(f"\n({task}: {time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    app()
