"""MADE: masked autoencoder for distribution estimation (Germain et al. 2015), with order/connectivity re-sampling.

An ordering assigns each input dimension a degree m_0(d) in {1..D}; hidden unit k of layer l gets a degree
m_l(k) in [min m_{l-1}, D-1]. Masks: hidden  M_l[k, k'] = 1[m_l(k) >= m_{l-1}(k')],  output  M[d, k] = 1[m_0(d) > m_L(k)].
Hence output d depends only on inputs with smaller degree (earlier in the order), and
  log p(x) = Σ_d log p(x_d | x_{<d})    exactly, with Gaussian (μ_d, log σ_d) or Bernoulli (logit_d) conditionals.

Connectivity-agnostic training: a pool of ``num_masks`` mask sets (each with its own input order when
``resample_order``) is drawn once from ``seed``; every training batch uses a random one. ``log_prob`` without a
``mask_index`` evaluates the uniform mixture over the pool, log (1/K) Σ_k p_k(x) — still an exact, normalised density.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from generative.errors import InvalidInputError

from .nn import activation, check_data

LOG_2PI = math.log(2.0 * math.pi)


def made_degrees(
    dim: int, hidden: tuple[int, ...], order: torch.Tensor, generator: torch.Generator
) -> list[torch.Tensor]:
    """Degrees [m_0 (=order, values 1..D), m_1, ..., m_L] for one mask set."""
    degrees = [order.long()]
    for h in hidden:
        lo = int(degrees[-1].min())
        hi = max(dim - 1, lo)  # degrees in [lo, D-1]; D == 1 leaves no admissible dependency
        degrees.append(torch.randint(lo, hi + 1, (h,), generator=generator))
    return degrees


def made_masks(degrees: list[torch.Tensor]) -> list[torch.Tensor]:
    """Masks [out, in] for each hidden layer and the output layer (one output per input dimension)."""
    masks = [(degrees[i + 1][:, None] >= degrees[i][None, :]).float() for i in range(len(degrees) - 1)]
    masks.append((degrees[0][:, None] > degrees[-1][None, :]).float())
    return masks


@dataclass
class MADEConfig:
    """Configuration of :class:`MADE`."""

    dim: int = 2
    """Data dimension D."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths (at least one layer)."""
    output: str = "gaussian"
    """Conditionals: ``"gaussian"`` (mean and log-scale per dim) or ``"bernoulli"`` (binary data)."""
    num_masks: int = 1
    """Size of the mask pool (1: a single fixed MADE; > 1: connectivity-agnostic training)."""
    natural_order: bool = True
    """The first mask set uses the order 1..D (else a random order)."""
    resample_order: bool = True
    """Masks after the first also draw a new random input order (else only new hidden connectivity)."""
    activation: str = "relu"
    """Hidden activation."""
    cond_dim: int = 0
    """Size of condition vectors feeding every first-layer unit (unmasked); 0: unconditional."""
    max_log_scale: float = 7.0
    """Gaussian log-scales are soft-clamped to (-max, max)."""
    seed: int = 0
    """Seed of the mask pool (masks are also stored as buffers with the weights)."""


class MADE(nn.Module):
    """MADE with Gaussian or Bernoulli conditionals, exact ``log_prob``, sequential ``sample``."""

    def __init__(self, config: MADEConfig | None = None):
        super().__init__()
        self.config = cfg = config or MADEConfig()
        if cfg.output not in ("gaussian", "bernoulli"):
            raise InvalidInputError(f"output: expected 'gaussian' or 'bernoulli', got {cfg.output!r}")
        if not cfg.hidden:
            raise InvalidInputError("hidden: MADE needs at least one hidden layer")
        if cfg.num_masks < 1:
            raise InvalidInputError(f"num_masks: expected >= 1, got {cfg.num_masks}")
        D = self.dim = int(cfg.dim)
        self.data_shape = (D,)
        self.n_out = 2 if cfg.output == "gaussian" else 1
        dims = [D, *cfg.hidden]
        self.layers = nn.ModuleList([nn.Linear(dims[i], dims[i + 1]) for i in range(len(cfg.hidden))])
        self.out = nn.Linear(dims[-1], self.n_out * D)
        self.cond = nn.Linear(cfg.cond_dim, dims[1], bias=False) if cfg.cond_dim else None
        self.act = activation(cfg.activation)
        # mask pool
        g = torch.Generator().manual_seed(cfg.seed)
        orders, pools = [], [[] for _ in range(len(cfg.hidden) + 1)]
        for k in range(cfg.num_masks):
            if k == 0:
                order = torch.arange(1, D + 1) if cfg.natural_order else torch.randperm(D, generator=g) + 1
            else:
                order = torch.randperm(D, generator=g) + 1 if cfg.resample_order else orders[0]
            masks = made_masks(made_degrees(D, tuple(cfg.hidden), order, g))
            orders.append(order)
            for i, m in enumerate(masks):
                pools[i].append(m)
        self.register_buffer("orders", torch.stack(orders))  # [K, D] degrees 1..D
        for i, p in enumerate(pools):
            self.register_buffer(f"masks_{i}", torch.stack(p))  # [K, out, in]

    @property
    def num_masks(self) -> int:
        return int(self.orders.shape[0])

    def _mask(self, i: int, k: int) -> torch.Tensor:
        return getattr(self, f"masks_{i}")[k]

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None, mask_index: int = 0) -> torch.Tensor:
        """Conditional parameters for every dim: [B, D, 2] (μ, log σ) for Gaussian, [B, D, 1] logits for Bernoulli.

        Entry d depends only on inputs earlier than d in ``orders[mask_index]``."""
        h = x
        for i, layer in enumerate(self.layers):
            h = F.linear(h, layer.weight * self._mask(i, mask_index), layer.bias)
            if i == 0 and self.cond is not None:
                h = h + self.cond(cond)
            h = self.act(h)
        mo = self._mask(len(self.layers), mask_index).repeat(self.n_out, 1)  # [n_out*D, H]
        out = F.linear(h, self.out.weight * mo, self.out.bias)  # [B, n_out*D]
        out = out.reshape(x.shape[0], self.n_out, self.dim).transpose(1, 2)  # [B, D, n_out]
        if self.n_out == 2:
            m = self.config.max_log_scale
            out = torch.stack([out[..., 0], m * torch.tanh(out[..., 1] / m)], -1)
        return out

    def _check(self, x, cond):
        check_data(x, "x", self.data_shape)
        if self.cond is not None:
            if cond is None:
                raise InvalidInputError(f"cond: this MADE is conditional; pass vectors [B, {self.config.cond_dim}]")
            check_data(cond, "cond", (self.config.cond_dim,))
        elif cond is not None:
            raise InvalidInputError("cond: this MADE is unconditional (cond_dim=0) but got a condition")

    def _log_prob_k(self, x, cond, k):
        p = self(x, cond, k)
        if self.n_out == 2:
            mu, ls = p[..., 0], p[..., 1]
            return (-0.5 * LOG_2PI - ls - 0.5 * ((x - mu) * torch.exp(-ls)) ** 2).sum(-1)
        return -F.binary_cross_entropy_with_logits(p[..., 0], x, reduction="none").sum(-1)

    def log_prob(self, x: torch.Tensor, cond: torch.Tensor | None = None, mask_index: int | None = None) -> torch.Tensor:
        """Exact log p(x) [B]: of one mask set, or (``mask_index=None``) of the uniform mixture over the pool."""
        self._check(x, cond)
        if mask_index is not None or self.num_masks == 1:
            return self._log_prob_k(x, cond, mask_index or 0)
        lp = torch.stack([self._log_prob_k(x, cond, k) for k in range(self.num_masks)], 0)  # [K, B]
        return torch.logsumexp(lp, 0) - math.log(self.num_masks)

    def loss(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Mean NLL under one mask set drawn at random from the pool (order/connectivity re-sampling)."""
        self._check(x, cond)
        k = int(torch.randint(self.num_masks, ())) if self.num_masks > 1 else 0
        return -self._log_prob_k(x, cond, k).mean()

    @torch.no_grad()
    def sample(
        self,
        n: int,
        cond: torch.Tensor | None = None,
        mask_index: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """n samples [n, D] drawn dimension by dimension in the mask's order (D network passes).

        ``mask_index=None`` samples the mixture: each sample picks a mask set uniformly. ``temperature`` scales the
        Gaussian σ (Bernoulli: divides the logits)."""
        dev, dt = self.out.weight.device, self.out.weight.dtype
        if self.cond is not None:
            check_data(cond, "cond", (self.config.cond_dim,))
            if cond.shape[0] != n:
                raise InvalidInputError(f"cond: has {cond.shape[0]} rows, expected n={n}")
        elif cond is not None:
            raise InvalidInputError("cond: this MADE is unconditional (cond_dim=0) but got a condition")
        if mask_index is None:
            comp = torch.randint(self.num_masks, (n,), generator=generator).to(dev)
        else:
            comp = torch.full((n,), int(mask_index), device=dev)
        x = torch.zeros(n, self.dim, device=dev, dtype=dt)
        for k in comp.unique().tolist():
            sel = (comp == k).nonzero().squeeze(1)
            xk = torch.zeros(len(sel), self.dim, device=dev, dtype=dt)
            ck = cond[sel] if cond is not None else None
            for d in torch.argsort(self.orders[k]).tolist():
                p = self(xk, ck, k)[:, d]
                if self.n_out == 2:
                    e = torch.randn(len(sel), generator=generator).to(dev, dt)
                    xk[:, d] = p[:, 0] + temperature * p[:, 1].exp() * e
                else:
                    u = torch.rand(len(sel), generator=generator).to(dev, dt)
                    xk[:, d] = (u < torch.sigmoid(p[:, 0] / temperature)).float()
            x[sel] = xk
        return x
