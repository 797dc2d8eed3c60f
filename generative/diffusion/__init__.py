"""Denoising diffusion: noise schedules and schedulers (DDPM, DDIM) separate from denoisers (MLP, tiny UNet),
ε-prediction training and classifier-free guidance.

Example (vectors)::

    model = DiffusionModel(DiffusionConfig(data_shape=(63,), hidden=256, num_train_timesteps=1000))
    fit(model, poses, config=TrainConfig(steps=20000))
    x = model.sample(16, scheduler="ddim", num_steps=50, eta=0.0)
"""

from .models import MLPDenoiser, TinyUNet
from .pipeline import DiffusionConfig, DiffusionModel, epsilon_loss, sample_loop, v_loss
from .schedules import (
    DDIMScheduler,
    DDPMScheduler,
    NoiseScheduler,
    SchedulerOutput,
    cosine_alpha_bar,
    cosine_betas,
    linear_betas,
    make_betas,
    make_scheduler,
)

__all__ = [
    "DDIMScheduler",
    "DDPMScheduler",
    "DiffusionConfig",
    "DiffusionModel",
    "MLPDenoiser",
    "NoiseScheduler",
    "SchedulerOutput",
    "TinyUNet",
    "cosine_alpha_bar",
    "cosine_betas",
    "epsilon_loss",
    "linear_betas",
    "make_betas",
    "make_scheduler",
    "sample_loop",
    "v_loss",
]
