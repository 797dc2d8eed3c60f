"""Normalizing flows: invertible layers (ActNorm, LU-parameterised 1×1 convolution / linear, affine coupling,
squeeze, split prior), a RealNVP-style flow for vectors and a multiscale Glow for images.

Layers map data -> latent: ``layer(x, cond) -> (y, log|det ∂y/∂x|)``, ``layer.inverse(y, cond) -> x``.
Models add the standard normal base: ``log_prob(x)`` (exact, nats), ``sample(n, temperature=...)``, ``loss(x)``.

Example (a pose-vector prior)::

    flow = RealNVP(RealNVPConfig(dim=63, num_layers=8, hidden=(256, 256)))
    fit(flow, poses, config=TrainConfig(steps=5000, lr=1e-3))
    nll = -flow.log_prob(poses)
"""

from .layers import (
    ActNorm,
    AffineCoupling,
    AffineCoupling2d,
    InvertibleLinearLU,
    Permutation,
    SplitPrior,
    Squeeze,
)
from .models import Flow, Glow, GlowConfig, RealNVP, RealNVPConfig, standard_normal_log_prob

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "AffineCoupling2d",
    "Flow",
    "Glow",
    "GlowConfig",
    "InvertibleLinearLU",
    "Permutation",
    "RealNVP",
    "RealNVPConfig",
    "SplitPrior",
    "Squeeze",
    "standard_normal_log_prob",
]
