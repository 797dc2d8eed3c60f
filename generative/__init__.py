"""generative: VAE, GAN, normalizing flows, diffusion and autoregressive models, and priors built on them.

Submodules: :mod:`generative.vae`, :mod:`generative.gan`, :mod:`generative.flows`, :mod:`generative.diffusion`,
:mod:`generative.autoregressive`, :mod:`generative.training` (``fit``, checkpoints), :mod:`generative.priors`,
:mod:`generative.metrics` (MMD, AUC, baselines).

Every model is built from a dataclass config, takes batch-first float32 tensors, and exposes ``loss(x[, cond])`` so
that ``generative.training.fit(model, x, config=TrainConfig(...))`` trains it (GANs: ``GAN.fit``).
"""

from . import autoregressive, diffusion, flows, gan, metrics, priors, training, vae
from .autoregressive import MADE, MADEConfig
from .diffusion import DDIMScheduler, DDPMScheduler, DiffusionConfig, DiffusionModel
from .flows import Glow, GlowConfig, RealNVP, RealNVPConfig
from .gan import GAN, GANConfig
from .training import (
    TrainConfig,
    fit,
    flatten_optimizer_state,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    select_device,
    unflatten_optimizer_state,
)
from .vae import VAE, HierarchicalVAE, HierarchicalVAEConfig, VAEConfig

__all__ = [
    "DDIMScheduler",
    "DDPMScheduler",
    "DiffusionConfig",
    "DiffusionModel",
    "GAN",
    "GANConfig",
    "Glow",
    "GlowConfig",
    "HierarchicalVAE",
    "HierarchicalVAEConfig",
    "MADE",
    "MADEConfig",
    "RealNVP",
    "RealNVPConfig",
    "TrainConfig",
    "VAE",
    "VAEConfig",
    "autoregressive",
    "diffusion",
    "fit",
    "flatten_optimizer_state",
    "flows",
    "gan",
    "load_checkpoint",
    "metrics",
    "priors",
    "save_checkpoint",
    "seed_everything",
    "select_device",
    "training",
    "unflatten_optimizer_state",
    "vae",
]
