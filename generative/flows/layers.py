"""Invertible layers of normalizing flows.

Every layer maps data towards the latent side and returns the log-determinant of its Jacobian:
``forward(x, cond=None) -> (y, logdet)`` with ``logdet`` = log|det ∂y/∂x| [B], and ``inverse(y, cond=None) -> x``.
Layers accept vectors [B, C] and (where stated) images [B, C, H, W]; for images the per-pixel channel maps contribute
``H * W`` times their channel log-determinant.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from generative.errors import InvalidInputError

from ..nn import mlp


def _channel_view(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a per-channel vector [C] over x [B, C] or [B, C, H, W]."""
    return v.view(1, -1, *([1] * (x.dim() - 2)))


def _pixels(x: torch.Tensor) -> int:
    return x.shape[2] * x.shape[3] if x.dim() == 4 else 1


class ActNorm(nn.Module):
    """Per-channel affine y = (x + loc) * exp(log_scale) with data-dependent initialisation (Glow).

    On the first forward pass in training mode (or an explicit ``initialize(x)``) ``loc``/``log_scale`` are set so that
    this batch's outputs have zero mean and unit variance per channel. The ``initialized`` buffer is saved with the
    weights, so a loaded model is not re-initialised. log|det| = H·W · Σ_c log_scale_c.
    """

    def __init__(self, num_features: int, eps: float = 1e-6):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(num_features))
        self.log_scale = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("initialized", torch.tensor(False))
        self.eps = eps

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        dims = [0] + list(range(2, x.dim()))
        mean = x.mean(dim=dims)
        std = x.std(dim=dims, unbiased=False) if x.numel() // x.shape[1] > 1 else torch.ones_like(mean)
        self.loc.copy_(-mean)
        self.log_scale.copy_(-torch.log(std.clamp_min(self.eps)))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not bool(self.initialized):
            self.initialize(x)
        y = (x + _channel_view(self.loc, x)) * _channel_view(self.log_scale.exp(), x)
        logdet = (self.log_scale.sum() * _pixels(x)).expand(x.shape[0])
        return y, logdet

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return y * _channel_view(torch.exp(-self.log_scale), y) - _channel_view(self.loc, y)


class InvertibleLinearLU(nn.Module):
    """Invertible channel mixing W = P L (U + diag(sign(s) e^{log|s|})) — a linear layer for vectors, an invertible
    1×1 convolution for images (Glow). P is a fixed permutation, L unit lower-triangular, U strictly upper-triangular.

    log|det| = Σ log|s| (times H·W for images). Initialised to a random rotation (seeded by the global RNG).
    """

    def __init__(self, num_features: int):
        super().__init__()
        c = num_features
        w = torch.linalg.qr(torch.randn(c, c, dtype=torch.float64))[0]
        P, L, U = torch.linalg.lu(w)
        s = torch.diagonal(U)
        self.register_buffer("perm", P.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(c, c), -1))
        self.lower = nn.Parameter((L * self.lower_mask.double()).float())
        self.upper = nn.Parameter(torch.triu(U, 1).float())
        self.log_s = nn.Parameter(torch.log(s.abs()).float())

    def weight(self) -> torch.Tensor:
        """W [C, C] (y = W x per vector / per pixel)."""
        eye = torch.eye(self.log_s.shape[0], device=self.log_s.device, dtype=self.log_s.dtype)
        L = self.lower * self.lower_mask + eye
        U = self.upper * self.lower_mask.T + torch.diag(self.sign_s * self.log_s.exp())
        return self.perm @ L @ U

    @staticmethod
    def _mix(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return F.conv2d(x, w[:, :, None, None])  # [B, C, H, W]
        return x @ w.T  # [B, C]

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        y = self._mix(x, self.weight())
        return y, (self.log_s.sum() * _pixels(x)).expand(x.shape[0])

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self._mix(y, torch.linalg.inv(self.weight()))


class Permutation(nn.Module):
    """Fixed permutation of the channels (log|det| = 0). ``perm=None`` reverses the order."""

    def __init__(self, num_features: int, perm: torch.Tensor | None = None):
        super().__init__()
        perm = torch.arange(num_features - 1, -1, -1) if perm is None else torch.as_tensor(perm).long()
        if sorted(perm.tolist()) != list(range(num_features)):
            raise InvalidInputError(f"perm: expected a permutation of 0..{num_features - 1}")
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x, cond=None):
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, y, cond=None):
        return y[:, self.inv_perm]


def _log_scale(raw: torch.Tensor, kind: str, clamp: float) -> torch.Tensor:
    """Coupling log-scale from the raw network output. ``"tanh"``: clamp · tanh(raw / clamp) in (-clamp, clamp);
    ``"sigmoid"`` (Glow): s = sigmoid(raw + 2), kept above e^{-clamp} so that the inverse (division by s) stays
    bounded when sampling drives raw far negative: s = e^{-clamp} + (1 - e^{-clamp}) sigmoid(raw + 2)."""
    if kind == "tanh":
        return clamp * torch.tanh(raw / clamp)  # soft clamp to (-clamp, clamp), identity near 0
    floor = math.exp(-clamp)
    return torch.log(floor + (1.0 - floor) * torch.sigmoid(raw + 2.0))


class AffineCoupling(nn.Module):
    """Affine coupling for vectors (RealNVP): x = [x_a, x_b], y_a = x_a, y_b = x_b · e^{log s} + t,
    (log s, t) = NN([x_a, c]). log|det| = Σ log s.

    ``scale="tanh"``: log s = clamp · tanh(h / clamp) (bounded, identity-friendly); ``"sigmoid"``: s = sigmoid(h + 2)
    (Glow). The last layer is zero-initialised, so a ``tanh`` coupling starts as the identity. ``cond_dim > 0`` makes
    it conditional on vectors c [B, cond_dim] (one-hot encode labels).
    """

    def __init__(
        self,
        dim: int,
        hidden: tuple[int, ...] = (128, 128),
        cond_dim: int = 0,
        activation: str = "silu",
        scale: str = "tanh",
        clamp: float = 2.0,
    ):
        super().__init__()
        if scale not in ("tanh", "sigmoid"):
            raise InvalidInputError(f"scale: expected 'tanh' or 'sigmoid', got {scale!r}")
        self.dim, self.cond_dim, self.scale, self.clamp = dim, cond_dim, scale, clamp
        self.d_a = dim // 2
        self.net = mlp(self.d_a + cond_dim, hidden, 2 * (dim - self.d_a), activation, zero_init_last=True)

    def _params(self, xa, cond):
        h = self.net(xa if self.cond_dim == 0 else torch.cat([xa, cond], -1))
        t, raw = h.chunk(2, dim=-1)
        return t, _log_scale(raw, self.scale, self.clamp)

    def forward(self, x, cond=None):
        xa, xb = x[:, : self.d_a], x[:, self.d_a :]
        t, log_s = self._params(xa, cond)
        return torch.cat([xa, xb * log_s.exp() + t], -1), log_s.sum(-1)

    def inverse(self, y, cond=None):
        ya, yb = y[:, : self.d_a], y[:, self.d_a :]
        t, log_s = self._params(ya, cond)
        return torch.cat([ya, (yb - t) * torch.exp(-log_s)], -1)


class AffineCoupling2d(nn.Module):
    """Affine coupling over channels for images [B, C, H, W] (Glow): the first C//2 channels condition the rest
    through conv3x3 -> ReLU -> conv1x1 -> ReLU -> conv3x3 (zero-initialised). A condition vector c [B, cond_dim] is
    broadcast over the pixels and concatenated as extra input channels."""

    def __init__(
        self, channels: int, hidden: int = 64, cond_dim: int = 0, scale: str = "tanh", clamp: float = 2.0
    ):
        super().__init__()
        if scale not in ("tanh", "sigmoid"):
            raise InvalidInputError(f"scale: expected 'tanh' or 'sigmoid', got {scale!r}")
        if channels < 2:
            raise InvalidInputError(f"channels: an image coupling needs >= 2 channels, got {channels}")
        self.c_a, self.cond_dim, self.scale, self.clamp = channels // 2, cond_dim, scale, clamp
        c_b = channels - self.c_a
        last = nn.Conv2d(hidden, 2 * c_b, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(
            nn.Conv2d(self.c_a + cond_dim, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(), last,
        )

    def _params(self, xa, cond):
        if self.cond_dim:
            xa = torch.cat([xa, cond[:, :, None, None].expand(-1, -1, *xa.shape[2:])], 1)
        t, raw = self.net(xa).chunk(2, dim=1)
        return t, _log_scale(raw, self.scale, self.clamp)

    def forward(self, x, cond=None):
        xa, xb = x[:, : self.c_a], x[:, self.c_a :]
        t, log_s = self._params(xa, cond)
        return torch.cat([xa, xb * log_s.exp() + t], 1), log_s.flatten(1).sum(-1)

    def inverse(self, y, cond=None):
        ya, yb = y[:, : self.c_a], y[:, self.c_a :]
        t, log_s = self._params(ya, cond)
        return torch.cat([ya, (yb - t) * torch.exp(-log_s)], 1)


class Squeeze(nn.Module):
    """Space-to-depth [B, C, H, W] -> [B, 4C, H/2, W/2] (each 2×2 block becomes 4 channels); log|det| = 0."""

    def forward(self, x, cond=None):
        B, C, H, W = x.shape
        if H % 2 or W % 2:
            raise InvalidInputError(f"Squeeze: height and width must be even, got {H}x{W}")
        y = x.reshape(B, C, H // 2, 2, W // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(B, 4 * C, H // 2, W // 2)
        return y, x.new_zeros(B)

    def inverse(self, y, cond=None):
        B, C4, h, w = y.shape
        C = C4 // 4
        return y.reshape(B, C, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(B, C, 2 * h, 2 * w)


class SplitPrior(nn.Module):
    """Glow's split with a learned conditional prior, written as a bijection.

    x [B, C, H, W] = [x_keep, x_out] (channel halves). x_out's prior N(μ(x_keep), σ(x_keep)^2) is expressed by
    standardising: ε = (x_out - μ) / σ, so the output [x_keep, ε] has a N(0, I) prior on ε;
    log|det| = -Σ log σ. μ, log σ come from a zero-initialised conv3x3 (standard normal at init).
    """

    def __init__(self, channels: int, clamp: float = 3.0):
        super().__init__()
        self.c_keep = channels // 2
        self.net = nn.Conv2d(self.c_keep, 2 * (channels - self.c_keep), 3, padding=1)
        nn.init.zeros_(self.net.weight)
        nn.init.zeros_(self.net.bias)
        self.clamp = clamp

    def _params(self, keep):
        mu, raw = self.net(keep).chunk(2, dim=1)
        return mu, self.clamp * torch.tanh(raw / self.clamp)

    def forward(self, x, cond=None):
        keep, out = x[:, : self.c_keep], x[:, self.c_keep :]
        mu, log_sigma = self._params(keep)
        return torch.cat([keep, (out - mu) * torch.exp(-log_sigma)], 1), -log_sigma.flatten(1).sum(-1)

    def inverse(self, y, cond=None):
        keep, eps = y[:, : self.c_keep], y[:, self.c_keep :]
        mu, log_sigma = self._params(keep)
        return torch.cat([keep, eps * log_sigma.exp() + mu], 1)
