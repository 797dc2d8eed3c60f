"""Flow models: a RealNVP-style flow for vectors and a multiscale Glow for images, on a standard normal base.

Both map data x to latents z (``forward(x) -> (z, logdet)``, z flattened to [B, D]) and back (``inverse(z) -> x``).
Exact log-likelihood by the change of variables:  log p(x) = log N(z; 0, I) + log|det ∂z/∂x|.
Sampling with temperature T draws z ~ N(0, T^2 I) and inverts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from generative.errors import InvalidInputError

from ..nn import check_data, randn
from .layers import (
    ActNorm,
    AffineCoupling,
    AffineCoupling2d,
    InvertibleLinearLU,
    Permutation,
    SplitPrior,
    Squeeze,
)

LOG_2PI = math.log(2.0 * math.pi)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over all non-batch dims: [B, ...] -> [B]."""
    return -0.5 * (z.reshape(z.shape[0], -1) ** 2 + LOG_2PI).sum(-1)


class Flow(nn.Module):
    """Base class: a chain ``self.layers`` of invertible layers on data of shape ``self.data_shape``.

    Subclasses may override ``forward``/``inverse`` (Glow does, to flatten its multiscale latents).
    """

    data_shape: tuple[int, ...]
    cond_dim: int = 0

    def _check(self, x, cond, name="x"):
        check_data(x, name, self.data_shape)
        if self.cond_dim:
            if cond is None:
                raise InvalidInputError(f"cond: this flow is conditional; pass vectors [B, {self.cond_dim}]")
            check_data(cond, "cond", (self.cond_dim,))
            if cond.shape[0] != x.shape[0]:
                raise InvalidInputError(f"cond: has {cond.shape[0]} rows, expected {x.shape[0]} like {name}")
        elif cond is not None:
            raise InvalidInputError("cond: this flow is unconditional (cond_dim=0) but got a condition")

    @property
    def dim(self) -> int:
        return math.prod(self.data_shape)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, *data_shape] -> (z [B, D], log|det ∂z/∂x| [B])."""
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x, cond)
            logdet = logdet + ld
        return x.reshape(x.shape[0], -1), logdet

    def inverse(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """z [B, D] -> x [B, *data_shape]."""
        x = z.reshape(z.shape[0], *self.data_shape)
        for layer in reversed(self.layers):
            x = layer.inverse(x, cond)
        return x

    def log_prob(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log p(x[|c]) [B] in nats."""
        self._check(x, cond)
        z, logdet = self(x, cond)
        return standard_normal_log_prob(z) + logdet

    def loss(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Mean negative log-likelihood (nats per example)."""
        return -self.log_prob(x, cond).mean()

    @torch.no_grad()
    def sample(
        self,
        n: int,
        cond: torch.Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """n samples [n, *data_shape]: z ~ N(0, temperature^2 I), x = f^{-1}(z)."""
        ref = next(self.parameters())
        if self.cond_dim:
            check_data(cond, "cond", (self.cond_dim,))
            if cond.shape[0] != n:
                raise InvalidInputError(f"cond: has {cond.shape[0]} rows, expected n={n}")
        z = temperature * randn((n, self.dim), generator, ref.device, ref.dtype)
        return self.inverse(z, cond)


# ------------------------------------------------------------------------------------------------ RealNVP
@dataclass
class RealNVPConfig:
    """Configuration of :class:`RealNVP` (vectors)."""

    dim: int = 2
    """Data dimension D (e.g. 63 for 21 joints × axis-angle)."""
    num_layers: int = 8
    """Number of blocks; each is [ActNorm] -> mixing -> affine coupling."""
    hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of each coupling MLP."""
    activation: str = "silu"
    """Coupling MLP activation."""
    cond_dim: int = 0
    """Size of condition vectors (0: unconditional)."""
    actnorm: bool = True
    """Use ActNorm (data-dependent init) at the start of each block."""
    mixing: str = "lu"
    """Between couplings: ``"lu"`` (learned invertible linear layer, LU-parameterised), ``"reverse"`` or
    ``"random"`` (fixed permutations)."""
    scale: str = "tanh"
    """Coupling scale: ``"tanh"`` (soft-clamped log-scale) or ``"sigmoid"`` (Glow)."""
    clamp: float = 2.0
    """Bound of the log-scale for ``scale="tanh"``."""


class RealNVP(Flow):
    """RealNVP-style flow for vectors [B, D] with LU-linear mixing (the 1×1 "conv" of Glow for vectors)."""

    def __init__(self, config: RealNVPConfig | None = None):
        super().__init__()
        self.config = cfg = config or RealNVPConfig()
        if cfg.mixing not in ("lu", "reverse", "random"):
            raise InvalidInputError(f"mixing: expected 'lu', 'reverse' or 'random', got {cfg.mixing!r}")
        if cfg.dim < 1:
            raise InvalidInputError(f"dim: expected >= 1, got {cfg.dim}")
        self.data_shape = (int(cfg.dim),)
        self.cond_dim = int(cfg.cond_dim)
        layers: list[nn.Module] = []
        for _ in range(cfg.num_layers):
            if cfg.actnorm:
                layers.append(ActNorm(cfg.dim))
            if cfg.mixing == "lu":
                layers.append(InvertibleLinearLU(cfg.dim))
            elif cfg.mixing == "reverse":
                layers.append(Permutation(cfg.dim))
            else:
                layers.append(Permutation(cfg.dim, torch.randperm(cfg.dim)))
            layers.append(AffineCoupling(cfg.dim, cfg.hidden, cfg.cond_dim, cfg.activation, cfg.scale, cfg.clamp))
        if cfg.actnorm:
            layers.append(ActNorm(cfg.dim))
        self.layers = nn.ModuleList(layers)


# --------------------------------------------------------------------------------------------------- Glow
@dataclass
class GlowConfig:
    """Configuration of :class:`Glow` (images)."""

    image_shape: tuple[int, int, int] = (1, 8, 8)
    """(C, H, W); H and W must be divisible by 2**levels."""
    levels: int = 2
    """Number of scales L (squeeze, K steps, split — no split after the last)."""
    steps_per_level: int = 4
    """K: flow steps (ActNorm, invertible 1×1 conv, affine coupling) per level."""
    hidden_channels: int = 64
    """Width of the coupling conv nets."""
    cond_dim: int = 0
    """Size of condition vectors (0: unconditional), fed to every coupling."""
    scale: str = "tanh"
    """Coupling scale: ``"tanh"`` (soft-clamped log-scale; the most stable when sampling) or ``"sigmoid"`` (Glow)."""
    learned_split_prior: bool = True
    """Factored-out halves get a learned conditional Gaussian prior (else N(0, I))."""


class Glow(Flow):
    """Multiscale Glow [B, C, H, W] -> z [B, C·H·W].

    Level l: Squeeze -> K × (ActNorm, InvertibleLinearLU as 1×1 conv, AffineCoupling2d) -> Split (l < L-1).
    ``z`` concatenates the factored-out (standardised) halves of levels 0..L-2, then the last level's output,
    each flattened in [C, H, W] order.
    """

    def __init__(self, config: GlowConfig | None = None):
        super().__init__()
        self.config = cfg = config or GlowConfig()
        C, H, W = (int(s) for s in cfg.image_shape)
        if H % (2**cfg.levels) or W % (2**cfg.levels):
            raise InvalidInputError(f"image_shape: H, W must be divisible by 2**levels={2**cfg.levels}, got {H}x{W}")
        self.data_shape = (C, H, W)
        self.cond_dim = int(cfg.cond_dim)
        self.levels = nn.ModuleList()
        self.splits = nn.ModuleList()
        self._out_shapes: list[tuple[int, int, int]] = []  # factored-out shapes, then the final shape
        c, h, w = C, H, W
        for lvl in range(cfg.levels):
            c, h, w = 4 * c, h // 2, w // 2
            steps: list[nn.Module] = [Squeeze()]
            for _ in range(cfg.steps_per_level):
                steps += [
                    ActNorm(c),
                    InvertibleLinearLU(c),
                    AffineCoupling2d(c, cfg.hidden_channels, cfg.cond_dim, cfg.scale),
                ]
            self.levels.append(nn.ModuleList(steps))
            if lvl < cfg.levels - 1:
                self.splits.append(SplitPrior(c) if cfg.learned_split_prior else nn.Identity())
                self._out_shapes.append((c - c // 2, h, w))
                c = c // 2
        self._out_shapes.append((c, h, w))

    def forward(self, x, cond=None):
        logdet = x.new_zeros(x.shape[0])
        outs = []
        for lvl, steps in enumerate(self.levels):
            for layer in steps:
                x, ld = layer(x, cond)
                logdet = logdet + ld
            if lvl < len(self.levels) - 1:
                split = self.splits[lvl]
                if isinstance(split, SplitPrior):
                    x, ld = split(x, cond)
                    logdet = logdet + ld
                keep = x.shape[1] // 2
                outs.append(x[:, keep:].flatten(1))
                x = x[:, :keep]
        outs.append(x.flatten(1))
        return torch.cat(outs, 1), logdet

    def inverse(self, z, cond=None):
        B = z.shape[0]
        sizes = [math.prod(s) for s in self._out_shapes]
        pieces = list(torch.split(z, sizes, dim=1))
        x = pieces[-1].reshape(B, *self._out_shapes[-1])
        for lvl in range(len(self.levels) - 1, -1, -1):
            if lvl < len(self.levels) - 1:
                x = torch.cat([x, pieces[lvl].reshape(B, *self._out_shapes[lvl])], 1)
                split = self.splits[lvl]
                if isinstance(split, SplitPrior):
                    x = split.inverse(x, cond)
            for layer in reversed(self.levels[lvl]):
                x = layer.inverse(x, cond)
        return x
