"""Diffusion model = denoiser network + training noise schedule; sampling composes it with a scheduler object.

Training (ε-prediction):  t ~ U{0..T-1}, ε ~ N(0, I), x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε,
  loss = E ||ε_θ(x_t, t, c̃) - ε||^2  (mean over dims), c̃ = null condition with probability ``cond_drop_prob``.
Classifier-free guidance at sampling:  ε̃ = ε_θ(x_t, t, ∅) + w (ε_θ(x_t, t, c) - ε_θ(x_t, t, ∅)),
  w = ``guidance_scale`` (w = 1: plain conditional model, w = 0: unconditional, w > 1: stronger guidance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from generative.errors import InvalidInputError

from ..nn import check_cond, check_data, randn
from .models import MLPDenoiser, TinyUNet
from .schedules import DDIMScheduler, DDPMScheduler, NoiseScheduler, make_scheduler


def epsilon_loss(
    denoiser: Callable,
    scheduler: NoiseScheduler,
    x0: torch.Tensor,
    cond: torch.Tensor | None = None,
    drop: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """ε-prediction loss E ||ε_θ(x_t, t, c) - ε||^2 (mean over batch and dims); random t and ε unless given."""
    B = x0.shape[0]
    if t is None:
        t = torch.randint(0, scheduler.num_train_timesteps, (B,), device=x0.device)
    if noise is None:
        noise = torch.randn_like(x0)
    xt = scheduler.add_noise(x0, noise, t)
    return F.mse_loss(denoiser(xt, t, cond, drop), noise)


def v_loss(
    network: Callable,
    scheduler: NoiseScheduler,
    x0: torch.Tensor,
    cond: torch.Tensor | None = None,
    drop: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """v-prediction loss E ||v_θ(x_t, t, c) - v||^2 with v = sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x_0 (Salimans & Ho 2022).

    Since ε = sqrt(1 - ᾱ) x_t + sqrt(ᾱ) v, an error δ in v is an error sqrt(ᾱ) δ in ε: near t = T the implied ε is
    almost exact, which keeps deterministic DDIM sampling stable (errors in ε at high noise are amplified ~1/sqrt(ᾱ_T))."""
    B = x0.shape[0]
    if t is None:
        t = torch.randint(0, scheduler.num_train_timesteps, (B,), device=x0.device)
    if noise is None:
        noise = torch.randn_like(x0)
    xt = scheduler.add_noise(x0, noise, t)
    ab = scheduler.alphas_cumprod[t.cpu()].to(x0).reshape(-1, *([1] * (x0.dim() - 1)))
    target = ab.sqrt() * noise - (1 - ab).sqrt() * x0
    return F.mse_loss(network(xt, t, cond, drop), target)


@torch.no_grad()
def sample_loop(
    denoiser: Callable,
    scheduler: NoiseScheduler,
    shape: tuple[int, ...],
    cond: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    x_T: torch.Tensor | None = None,
    eta: float | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Run ``scheduler`` over its ``timesteps`` from x_T ~ N(0, I) of ``shape`` (or the given ``x_T``).

    With a condition and ``guidance_scale != 1`` the denoiser is evaluated on the conditional and null condition
    (one batched call) and combined by classifier-free guidance.
    """
    x = randn(shape, generator, device, dtype) if x_T is None else x_T.clone()
    B = shape[0]
    guided = cond is not None and guidance_scale != 1.0
    for t in scheduler.timesteps.tolist():
        tt = torch.full((B,), t, device=x.device, dtype=torch.long)
        if guided:
            drop = torch.cat([torch.zeros(B, dtype=torch.bool), torch.ones(B, dtype=torch.bool)]).to(x.device)
            e = denoiser(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([cond, cond]), drop)
            e_c, e_u = e.chunk(2)
            eps = e_u + guidance_scale * (e_c - e_u)
        else:
            eps = denoiser(x, tt, cond, None)
        if isinstance(scheduler, DDIMScheduler):
            x = scheduler.step(eps, t, x, eta=eta, generator=generator).prev_sample
        else:
            x = scheduler.step(eps, t, x, generator=generator).prev_sample
    return x


@dataclass
class DiffusionConfig:
    """Configuration of :class:`DiffusionModel`."""

    data_shape: tuple[int, ...] = (2,)
    """Shape of one example: ``(D,)`` uses the MLP denoiser, ``(C, H, W)`` the UNet (unless ``denoiser`` says)."""
    denoiser: str = "auto"
    """``"mlp"``, ``"unet"`` or ``"auto"`` (by the rank of data_shape)."""
    hidden: int = 256
    """MLP denoiser width."""
    depth: int = 3
    """MLP denoiser residual blocks."""
    base_channels: int = 32
    """UNet base channels."""
    time_embed_dim: int = 64
    """Size of the sinusoidal timestep embedding."""
    cond_dim: int = 0
    """Size of condition vectors (0: none)."""
    num_classes: int = 0
    """Number of class labels (0: none). Excludes ``cond_dim``."""
    cond_drop_prob: float = 0.1
    """Probability of replacing the condition by the null condition during training (classifier-free guidance)."""
    num_train_timesteps: int = 1000
    """T."""
    beta_schedule: str = "linear"
    """``"linear"`` or ``"cosine"``."""
    beta_start: float = 1e-4
    """First β of the linear schedule."""
    beta_end: float = 0.02
    """Last β of the linear schedule."""
    clip_sample: float | None = None
    """Clip x̂_0 to ±clip_sample while sampling (e.g. 1.0 for data scaled to [-1, 1]); None: no clipping."""
    prediction_type: str = "epsilon"
    """What the network outputs and is trained on: ``"epsilon"`` (ε-prediction loss, DDPM) or ``"v"``
    (v-prediction loss). Either way ``DiffusionModel.epsilon`` returns ε, so schedulers and priors are unchanged.
    ``"v"`` keeps deterministic DDIM (η = 0) stable with few training steps; see :func:`v_loss`."""


class DiffusionModel(nn.Module):
    """ε-prediction diffusion model: ``self.denoiser`` (an nn.Module) + the training schedule ``self.scheduler_config``.

    ``loss(x0, cond)`` trains it; ``sample(n, ...)`` builds a DDPM or DDIM scheduler (or uses the one given) and
    runs :func:`sample_loop`.
    """

    def __init__(self, config: DiffusionConfig | None = None):
        super().__init__()
        self.config = cfg = config or DiffusionConfig()
        if cfg.cond_dim > 0 and cfg.num_classes > 0:
            raise InvalidInputError("DiffusionConfig: give either cond_dim or num_classes, not both")
        if not 0.0 <= cfg.cond_drop_prob <= 1.0:
            raise InvalidInputError(f"cond_drop_prob: expected a probability, got {cfg.cond_drop_prob}")
        self.data_shape = tuple(int(s) for s in cfg.data_shape)
        kind = cfg.denoiser if cfg.denoiser != "auto" else ("mlp" if len(self.data_shape) == 1 else "unet")
        if kind == "mlp":
            self.denoiser = MLPDenoiser(
                math.prod(self.data_shape), cfg.hidden, cfg.depth, cfg.time_embed_dim, cfg.cond_dim, cfg.num_classes
            )
        elif kind == "unet":
            if len(self.data_shape) != 3:
                raise InvalidInputError(f"data_shape: the UNet denoiser needs (C, H, W), got {self.data_shape}")
            self.denoiser = TinyUNet(self.data_shape[0], cfg.base_channels, cfg.time_embed_dim, cfg.cond_dim, cfg.num_classes)
        else:
            raise InvalidInputError(f"denoiser: expected 'mlp', 'unet' or 'auto', got {cfg.denoiser!r}")
        if cfg.prediction_type not in ("epsilon", "v"):
            raise InvalidInputError(f"prediction_type: expected 'epsilon' or 'v', got {cfg.prediction_type!r}")
        self._flatten = kind == "mlp"
        self.scheduler = DDPMScheduler(**self.scheduler_config)  # training schedule (add_noise, ᾱ)

    @property
    def scheduler_config(self) -> dict:
        c = self.config
        return {
            "num_train_timesteps": c.num_train_timesteps,
            "beta_schedule": c.beta_schedule,
            "beta_start": c.beta_start,
            "beta_end": c.beta_end,
            "clip_sample": c.clip_sample,
        }

    @property
    def conditional(self) -> bool:
        return self.config.cond_dim > 0 or self.config.num_classes > 0

    def epsilon(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None, drop: torch.Tensor | None = None
    ) -> torch.Tensor:
        """ε_θ(x_t, t[, c]) with x_t [B, *data_shape], t [B] -> [B, *data_shape] (converted from v for ``"v"``)."""
        out = self.network(x_t, t, cond, drop)
        if self.config.prediction_type == "epsilon":
            return out
        ab = self.scheduler.alphas_cumprod[t.cpu()].to(x_t).reshape(-1, *([1] * (x_t.dim() - 1)))
        return (1 - ab).sqrt() * x_t + ab.sqrt() * out

    def network(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None, drop: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Raw denoiser output (ε or v by ``prediction_type``): [B, *data_shape]."""
        if self._flatten:
            return self.denoiser(x_t.reshape(x_t.shape[0], -1), t, cond, drop).reshape(x_t.shape)
        return self.denoiser(x_t, t, cond, drop)

    def loss(self, x0: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """ε-prediction (or v-prediction) loss with condition dropout (probability ``cond_drop_prob``)."""
        check_data(x0, "x0", self.data_shape)
        cond = check_cond(cond, "cond", x0.shape[0], self.config.cond_dim, self.config.num_classes)
        drop = None
        if cond is not None and self.config.cond_drop_prob > 0:
            drop = torch.rand(x0.shape[0], device=x0.device) < self.config.cond_drop_prob
        if self.config.prediction_type == "v":
            return v_loss(self.network, self.scheduler, x0, cond, drop)
        return epsilon_loss(self.network, self.scheduler, x0, cond, drop)

    def make_scheduler(self, kind: str = "ddpm", num_steps: int | None = None, **kwargs) -> NoiseScheduler:
        """A fresh ``"ddpm"``/``"ddim"`` scheduler on this model's training schedule with ``num_steps`` steps."""
        s = make_scheduler(kind, **self.scheduler_config, **kwargs)
        s.set_timesteps(num_steps or self.config.num_train_timesteps)
        return s

    @torch.no_grad()
    def sample(
        self,
        n: int,
        cond: torch.Tensor | None = None,
        scheduler: NoiseScheduler | str = "ddpm",
        num_steps: int | None = None,
        eta: float = 0.0,
        guidance_scale: float = 1.0,
        generator: torch.Generator | None = None,
        x_T: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n samples [n, *data_shape]. ``scheduler``: ``"ddpm"``, ``"ddim"`` (with ``eta``) or a scheduler object
        (its own timesteps are used). ``cond=None`` on a conditional model samples unconditionally (null condition)."""
        if cond is not None:
            cond = check_cond(cond, "cond", n, self.config.cond_dim, self.config.num_classes)
        if isinstance(scheduler, str):
            scheduler = self.make_scheduler(scheduler, num_steps, **({"eta": eta} if scheduler == "ddim" else {}))
        ref = next(self.parameters())
        return sample_loop(
            self.epsilon, scheduler, (n, *self.data_shape), cond, guidance_scale, generator, ref.device, x_T,
            eta=eta if isinstance(scheduler, DDIMScheduler) else None, dtype=ref.dtype,
        )
