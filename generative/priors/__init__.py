"""Priors over vectors (e.g. body pose parameters) built on the generative models; see :mod:`generative.priors.base`.

``Prior`` protocol: ``energy(x) [B, D] -> [B]`` (differentiable, lower = more plausible), ``sample(n)``,
``log_prob(x)`` (exact for Gaussian, flow and MADE priors), ``dim``. Saved as safetensors + a JSON config.
"""

from .base import (
    MODEL_CLASSES,
    PRIOR_CLASSES,
    BasePrior,
    DiffusionPrior,
    DiscriminatorPrior,
    FlowPrior,
    GaussianPrior,
    MADEPrior,
    Prior,
    VAEPrior,
    load_prior,
    prior_config,
    register_model,
    register_prior,
    save_prior,
)

__all__ = [
    "MODEL_CLASSES",
    "PRIOR_CLASSES",
    "BasePrior",
    "DiffusionPrior",
    "DiscriminatorPrior",
    "FlowPrior",
    "GaussianPrior",
    "MADEPrior",
    "Prior",
    "VAEPrior",
    "load_prior",
    "prior_config",
    "register_model",
    "register_prior",
    "save_prior",
]
