"""Noise schedules and samplers (schedulers), kept separate from the denoiser network (diffusers style).

Forward process (t = 0 .. T-1, 0-based like diffusers):
  q(x_t | x_{t-1}) = N(sqrt(1 - β_t) x_{t-1}, β_t I),   α_t = 1 - β_t,   ᾱ_t = Π_{s<=t} α_s,
  q(x_t | x_0)     = N(sqrt(ᾱ_t) x_0, (1 - ᾱ_t) I)      (``add_noise``).
Schedules:
  linear  β_t = linspace(β_start, β_end, T)                                    (Ho et al. 2020)
  cosine  ᾱ_t = f(t + 1) / f(0), f(u) = cos^2((u / T + s) / (1 + s) · π / 2),  via β_t = min(1 - ᾱ_t/ᾱ_{t-1}, 0.999)
          (Nichol & Dhariwal 2021; the clipping only bites at the last steps)
Samplers walk ``timesteps`` (descending, "leading" spacing T/n) and predict x_0 from the ε-prediction:
  x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t).
  DDPM (ancestral):  x_prev ~ N(μ̃(x_t, x̂_0), σ_t^2 I) with the posterior q(x_prev | x_t, x_0) of the (strided) chain.
  DDIM:  x_prev = sqrt(ᾱ_prev) x̂_0 + sqrt(1 - ᾱ_prev - σ^2) ε + σ z,
         σ = η sqrt((1 - ᾱ_prev) / (1 - ᾱ_t)) sqrt(1 - ᾱ_t / ᾱ_prev)   (η = 0: deterministic; η = 1: DDPM-like).
ᾱ_prev = 1 after the last step (``set_alpha_to_one``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from generative.errors import InvalidInputError

from ..nn import randn


def linear_betas(num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_t = linspace(beta_start, beta_end, T): [T] float64."""
    return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)


def cosine_alpha_bar(u: torch.Tensor | float, num_timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Continuous cosine ᾱ(u) = f(u) / f(0), f(u) = cos^2((u / T + s) / (1 + s) · π / 2), u in [0, T]."""
    u = torch.as_tensor(u, dtype=torch.float64)
    f = lambda v: torch.cos((v / num_timesteps + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return f(u) / f(torch.zeros((), dtype=torch.float64))


def cosine_betas(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """β_t = min(1 - ᾱ(t + 1) / ᾱ(t), max_beta) for the cosine ᾱ: [T] float64."""
    t = torch.arange(num_timesteps, dtype=torch.float64)
    ab = cosine_alpha_bar(t + 1, num_timesteps, s) / cosine_alpha_bar(t, num_timesteps, s)
    return (1.0 - ab).clamp(max=max_beta)


def make_betas(schedule: str, num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    if schedule == "linear":
        return linear_betas(num_timesteps, beta_start, beta_end)
    if schedule == "cosine":
        return cosine_betas(num_timesteps)
    raise InvalidInputError(f"beta_schedule: expected 'linear' or 'cosine', got {schedule!r}")


@dataclass
class SchedulerOutput:
    """Result of one sampler step."""

    prev_sample: torch.Tensor
    """x_{t_prev}, same shape as the input sample."""
    pred_original_sample: torch.Tensor
    """x̂_0 predicted at this step."""


def _gather(v: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """v[t] for t [B] (or scalar), reshaped to broadcast over ``like`` [B, ...], in like's dtype/device."""
    out = v[t.cpu().long()].to(device=like.device, dtype=like.dtype)
    return out.reshape(-1, *([1] * (like.dim() - 1))) if out.dim() else out


class NoiseScheduler:
    """Holds β/α/ᾱ (float64, CPU) and the inference timesteps; shared by :class:`DDPMScheduler` and
    :class:`DDIMScheduler`. Not an nn.Module: it has no parameters, its config is a plain dict (``to_dict``)."""

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        clip_sample: float | None = None,
    ):
        if num_train_timesteps < 1:
            raise InvalidInputError(f"num_train_timesteps: expected >= 1, got {num_train_timesteps}")
        self.num_train_timesteps = int(num_train_timesteps)
        self.beta_schedule, self.beta_start, self.beta_end = beta_schedule, float(beta_start), float(beta_end)
        self.clip_sample = clip_sample
        self.betas = make_betas(beta_schedule, self.num_train_timesteps, beta_start, beta_end)  # [T]
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)  # ᾱ_t, [T]
        self.set_timesteps(self.num_train_timesteps)

    def to_dict(self) -> dict:
        return {
            "num_train_timesteps": self.num_train_timesteps,
            "beta_schedule": self.beta_schedule,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "clip_sample": self.clip_sample,
        }

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose ``num_inference_steps`` timesteps, descending, evenly strided ("leading": 0, k, 2k, ... reversed)."""
        T = self.num_train_timesteps
        if not 1 <= num_inference_steps <= T:
            raise InvalidInputError(f"num_inference_steps: expected 1..{T}, got {num_inference_steps}")
        self.num_inference_steps = int(num_inference_steps)
        self.step_ratio = T // self.num_inference_steps
        self.timesteps = (torch.arange(self.num_inference_steps) * self.step_ratio).flip(0)  # [n] long

    def previous_timestep(self, t: int) -> int:
        return int(t) - self.step_ratio

    def alpha_bar(self, t: int) -> float:
        """ᾱ_t, with ᾱ_{-1} = 1."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Sample q(x_t | x_0): sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) noise. x0, noise [B, ...]; t [B] or int."""
        t = torch.as_tensor(t)
        ab = _gather(self.alphas_cumprod, t, x0)
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise

    def predict_original(self, eps: torch.Tensor, t: int, sample: torch.Tensor) -> torch.Tensor:
        """x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t) (clipped to ±clip_sample if set)."""
        ab = self.alpha_bar(t)
        x0 = (sample - math.sqrt(1.0 - ab) * eps) / math.sqrt(ab)
        if self.clip_sample is not None:
            x0 = x0.clamp(-self.clip_sample, self.clip_sample)
        return x0

    def _check_t(self, t) -> int:
        t = int(t)
        if not 0 <= t < self.num_train_timesteps:
            raise InvalidInputError(f"timestep: expected 0..{self.num_train_timesteps - 1}, got {t}")
        return t


class DDPMScheduler(NoiseScheduler):
    """Ancestral DDPM sampler. ``variance_type``: ``"fixed_small"`` (posterior variance β̃) or ``"fixed_large"`` (β)."""

    def __init__(self, *args, variance_type: str = "fixed_small", **kwargs):
        super().__init__(*args, **kwargs)
        if variance_type not in ("fixed_small", "fixed_large"):
            raise InvalidInputError(f"variance_type: expected 'fixed_small' or 'fixed_large', got {variance_type!r}")
        self.variance_type = variance_type

    def to_dict(self) -> dict:
        return {**super().to_dict(), "variance_type": self.variance_type}

    def step(
        self, model_output: torch.Tensor, t: int, sample: torch.Tensor, generator: torch.Generator | None = None
    ) -> SchedulerOutput:
        """One ancestral step x_t -> x_prev from the ε-prediction ``model_output`` (same shape as ``sample``)."""
        t = self._check_t(t)
        prev = self.previous_timestep(t)
        ab_t, ab_prev = self.alpha_bar(t), self.alpha_bar(prev)
        a_t = ab_t / ab_prev  # α of the strided step
        b_t = 1.0 - a_t
        x0 = self.predict_original(model_output, t, sample)
        # posterior mean of q(x_prev | x_t, x_0)
        c0 = math.sqrt(ab_prev) * b_t / (1.0 - ab_t)
        ct = math.sqrt(a_t) * (1.0 - ab_prev) / (1.0 - ab_t)
        mean = c0 * x0 + ct * sample
        if prev < 0:
            return SchedulerOutput(mean, x0)
        var = b_t * (1.0 - ab_prev) / (1.0 - ab_t) if self.variance_type == "fixed_small" else b_t
        noise = randn(sample.shape, generator, sample.device, sample.dtype)
        return SchedulerOutput(mean + math.sqrt(max(var, 0.0)) * noise, x0)


class DDIMScheduler(NoiseScheduler):
    """DDIM sampler (Song et al. 2021); ``eta`` = 0 gives the deterministic sampler."""

    def __init__(self, *args, eta: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.eta = float(eta)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "eta": self.eta}

    def step(
        self,
        model_output: torch.Tensor,
        t: int,
        sample: torch.Tensor,
        eta: float | None = None,
        generator: torch.Generator | None = None,
    ) -> SchedulerOutput:
        """One DDIM step x_t -> x_prev from the ε-prediction ``model_output``."""
        t = self._check_t(t)
        eta = self.eta if eta is None else float(eta)
        prev = self.previous_timestep(t)
        ab_t, ab_prev = self.alpha_bar(t), self.alpha_bar(prev)
        x0 = self.predict_original(model_output, t, sample)
        # re-derive ε from the (possibly clipped) x̂_0 so that the direction term is consistent
        eps = (sample - math.sqrt(ab_t) * x0) / math.sqrt(1.0 - ab_t) if self.clip_sample is not None else model_output
        sigma = eta * math.sqrt((1.0 - ab_prev) / (1.0 - ab_t)) * math.sqrt(max(1.0 - ab_t / ab_prev, 0.0))
        x_prev = math.sqrt(ab_prev) * x0 + math.sqrt(max(1.0 - ab_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            x_prev = x_prev + sigma * randn(sample.shape, generator, sample.device, sample.dtype)
        return SchedulerOutput(x_prev, x0)


def make_scheduler(kind: str, **config) -> NoiseScheduler:
    """``"ddpm"`` or ``"ddim"`` scheduler from keyword config (as in ``to_dict``)."""
    if kind == "ddpm":
        return DDPMScheduler(**config)
    if kind == "ddim":
        return DDIMScheduler(**config)
    raise InvalidInputError(f"scheduler: expected 'ddpm' or 'ddim', got {kind!r}")
