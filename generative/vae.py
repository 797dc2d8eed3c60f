"""Variational autoencoders: VAE / β-VAE and a hierarchical (ladder-style, top-down) VAE.

Conventions: data ``x`` is [B, *data_shape] float32 (vectors [B, D] or images [B, C, H, W]); models flatten it to
[B, D] internally (MLP encoders/decoders). Log-densities are summed over data/latent dimensions (nats per example);
losses are averaged over the batch. Gaussians are diagonal and parameterised by mean and log-variance.

ELBO (single layer):   log p(x) >= E_q(z|x)[log p(x|z)] - KL(q(z|x) || N(0, I))         (KL analytic)
β-VAE loss:            -(E_q[log p(x|z)] - β KL)
IWAE bound:            log p(x) >= E[log 1/K Σ_k p(x, z_k) / q(z_k|x)],  z_k ~ q(z|x)   (tightens as K grows)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from generative.errors import InvalidInputError

from .nn import check_data, mlp, randn

LOG_2PI = math.log(2.0 * math.pi)


# ------------------------------------------------------------------------------------------- pure functions
def kl_diag_gaussians(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor | float = 0.0, logvar_p: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """KL(N(mu_q, diag e^logvar_q) || N(mu_p, diag e^logvar_p)), summed over the last dim: [..., Z] -> [...].

    KL = 1/2 Σ_j [ logvar_p - logvar_q + (e^logvar_q + (mu_q - mu_p)^2) / e^logvar_p - 1 ].
    Defaults of ``mu_p``/``logvar_p`` give the KL to the standard normal.
    """
    mu_p = torch.as_tensor(mu_p, dtype=mu_q.dtype, device=mu_q.device)
    logvar_p = torch.as_tensor(logvar_p, dtype=mu_q.dtype, device=mu_q.device)
    kl = 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) * torch.exp(-logvar_p) - 1.0)
    return kl.sum(-1)


def gaussian_log_prob(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor | float = 0.0) -> torch.Tensor:
    """log N(x; mu, diag e^logvar) summed over the last dim: [..., D] -> [...]."""
    logvar = torch.as_tensor(logvar, dtype=x.dtype, device=x.device)
    return (-0.5 * (LOG_2PI + logvar + (x - mu) ** 2 * torch.exp(-logvar))).sum(-1)


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x; sigmoid(logits)) summed over the last dim (x in {0, 1}): [..., D] -> [...]."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I): a sample of N(mu, diag e^logvar) differentiable in (mu, logvar)."""
    eps = randn(mu.shape, generator, mu.device, mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def _split_gaussian(h: torch.Tensor, lo: float = -30.0, hi: float = 20.0) -> tuple[torch.Tensor, torch.Tensor]:
    mu, logvar = h.chunk(2, dim=-1)
    return mu, logvar.clamp(lo, hi)


@dataclass
class ELBOTerms:
    """Per-example ELBO and its parts (all [B], nats)."""

    elbo: torch.Tensor
    """E_q[log p(x|z)] - KL (the bound itself, β = 1)."""
    log_likelihood: torch.Tensor
    """Monte Carlo estimate of E_q[log p(x|z)] (reconstruction term)."""
    kl: torch.Tensor
    """Total KL term (sum over latent layers for the hierarchical VAE)."""
    kl_per_layer: list[torch.Tensor] = field(default_factory=list)
    """Hierarchical VAE: KL of each layer, ordered z_1 (bottom) ... z_L (top)."""


# ------------------------------------------------------------------------------------------------ configs
@dataclass
class VAEConfig:
    """Configuration of :class:`VAE` (MLP encoder/decoder on flattened data)."""

    data_shape: tuple[int, ...] = (2,)
    """Shape of one example: ``(D,)`` for vectors (e.g. pose vectors, D=63), ``(C, H, W)`` for images."""
    latent_dim: int = 8
    """Dimension of z."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the encoder and decoder MLPs (``()`` gives affine maps)."""
    activation: str = "silu"
    """Activation between hidden layers (``silu``, ``relu``, ``gelu``, ``tanh``, ``leaky_relu``)."""
    likelihood: str = "gaussian"
    """``"gaussian"`` (diagonal) or ``"bernoulli"`` (binary data in {0, 1}, e.g. binarised images)."""
    decoder_variance: str = "shared"
    """Gaussian likelihood only: ``"fixed"`` (e^fixed_logvar), ``"shared"`` (a learned log-variance per data dim,
    independent of z) or ``"learned"`` (predicted by the decoder from z, softly bounded below by min_logvar)."""
    fixed_logvar: float = 0.0
    """Decoder log-variance for ``"fixed"``; initial value for ``"shared"``."""
    min_logvar: float = -9.0
    """Lower bound of the decoder log-variance (``"shared"``/``"learned"``), keeps the likelihood bounded."""
    beta: float = 1.0
    """Weight of the KL term in the training loss (β-VAE; 1 gives the ELBO)."""


@dataclass
class HierarchicalVAEConfig:
    """Configuration of :class:`HierarchicalVAE`."""

    data_shape: tuple[int, ...] = (2,)
    """Shape of one example (see :class:`VAEConfig`)."""
    latent_dims: tuple[int, ...] = (16, 8)
    """Latent sizes from the bottom z_1 (next to x) to the top z_L; at least two layers."""
    hidden: tuple[int, ...] = (256,)
    """Hidden widths of every MLP (bottom-up features, posteriors, top-down priors, decoder)."""
    activation: str = "silu"
    """Activation between hidden layers."""
    likelihood: str = "gaussian"
    """``"gaussian"`` or ``"bernoulli"``."""
    decoder_variance: str = "shared"
    """See :class:`VAEConfig`."""
    fixed_logvar: float = 0.0
    """See :class:`VAEConfig`."""
    min_logvar: float = -9.0
    """See :class:`VAEConfig`."""
    beta: float = 1.0
    """KL weight in the training loss."""


# ------------------------------------------------------------------------------------------- shared pieces
class _VAEBase(nn.Module):
    """Likelihood p(x|z_1) and input handling shared by the single-layer and hierarchical VAEs."""

    def _init_likelihood(self, cfg) -> int:
        if cfg.likelihood not in ("gaussian", "bernoulli"):
            raise InvalidInputError(f"likelihood: expected 'gaussian' or 'bernoulli', got {cfg.likelihood!r}")
        if cfg.decoder_variance not in ("fixed", "shared", "learned"):
            raise InvalidInputError(
                f"decoder_variance: expected 'fixed', 'shared' or 'learned', got {cfg.decoder_variance!r}"
            )
        self.data_shape = tuple(int(s) for s in cfg.data_shape)
        self.data_dim = math.prod(self.data_shape)
        d = self.data_dim
        if cfg.likelihood == "gaussian" and cfg.decoder_variance == "shared":
            self.dec_logvar = nn.Parameter(torch.full((d,), float(cfg.fixed_logvar)))
        return 2 * d if (cfg.likelihood == "gaussian" and cfg.decoder_variance == "learned") else d

    def _flat(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        check_data(x, name, self.data_shape)
        xf = x.reshape(x.shape[0], -1)  # [B, D]
        if self.config.likelihood == "bernoulli" and (bool((xf < 0).any()) or bool((xf > 1).any())):
            raise InvalidInputError(f"{name}: Bernoulli likelihood needs data in [0, 1]")
        return xf

    def _soft_floor(self, logvar: torch.Tensor) -> torch.Tensor:
        lo = self.config.min_logvar
        return lo + F.softplus(logvar - lo)

    def decoder_params(self, z1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decoder output for z_1 [..., Z1]: (loc, logvar) for Gaussian, (logits, None) for Bernoulli; [..., D]."""
        h = self.decoder(z1)
        cfg = self.config
        if cfg.likelihood == "bernoulli":
            return h, None
        if cfg.decoder_variance == "learned":
            loc, lv = h.chunk(2, dim=-1)
            return loc, self._soft_floor(lv)
        if cfg.decoder_variance == "shared":
            return h, self._soft_floor(self.dec_logvar).expand_as(h)
        return h, torch.full_like(h, float(cfg.fixed_logvar))

    def log_likelihood(self, xf: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        """log p(x|z_1) for flattened x [B, D] and z_1 [..., B, Z1] -> [..., B]."""
        loc, logvar = self.decoder_params(z1)
        if logvar is None:
            return bernoulli_log_prob(xf.expand_as(loc), loc)
        return gaussian_log_prob(xf, loc, logvar)

    def _decode_out(self, z1: torch.Tensor, mean: bool, generator=None) -> torch.Tensor:
        loc, logvar = self.decoder_params(z1)
        if logvar is None:
            p = torch.sigmoid(loc)
            x = p if mean else torch.bernoulli(p, generator=generator)
        else:
            x = loc if mean else reparameterize(loc, logvar, generator)
        return x.reshape(z1.shape[0], *self.data_shape)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Training loss: -(E_q[log p(x|z)] - β KL), averaged over the batch."""
        t = self.elbo(x)
        return -(t.log_likelihood - self.config.beta * t.kl).mean()


# ------------------------------------------------------------------------------------------------------ VAE
class VAE(_VAEBase):
    """VAE / β-VAE with diagonal Gaussian encoder q(z|x) and Gaussian or Bernoulli decoder p(x|z); p(z) = N(0, I)."""

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = cfg = config or VAEConfig()
        dec_out = self._init_likelihood(cfg)
        self.latent_dim = int(cfg.latent_dim)
        self.encoder = mlp(self.data_dim, cfg.hidden, 2 * self.latent_dim, cfg.activation)  # -> [mu, logvar]
        self.decoder = mlp(self.latent_dim, cfg.hidden, dec_out, cfg.activation)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): x [B, *data_shape] -> (mu [B, Z], logvar [B, Z])."""
        return _split_gaussian(self.encoder(self._flat(x)))

    def decode(self, z: torch.Tensor, mean: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """z [B, Z] -> x [B, *data_shape]: the decoder mean (Bernoulli: probabilities), or a sample if ``mean=False``."""
        return self._decode_out(z, mean, generator)

    def elbo(self, x: torch.Tensor, n_samples: int = 1, sample: bool = True) -> ELBOTerms:
        """ELBO per example with analytic KL and an ``n_samples`` Monte Carlo estimate of E_q[log p(x|z)].

        ``sample=False`` evaluates the reconstruction term at z = μ_q (deterministic; used by priors)."""
        xf = self._flat(x)
        mu, logvar = _split_gaussian(self.encoder(xf))  # [B, Z]
        if sample:
            z = reparameterize(mu.expand(n_samples, *mu.shape), logvar.expand(n_samples, *logvar.shape))  # [S, B, Z]
        else:
            z = mu[None]
        rec = self.log_likelihood(xf, z).mean(0)  # [B]
        kl = kl_diag_gaussians(mu, logvar)  # [B]
        return ELBOTerms(elbo=rec - kl, log_likelihood=rec, kl=kl, kl_per_layer=[kl])

    @torch.no_grad()
    def iwae_log_likelihood(self, x: torch.Tensor, k: int = 64, chunk: int = 256) -> torch.Tensor:
        """Importance-weighted estimate of log p(x) [B] with ``k`` samples of q(z|x) (a lower bound, exact as k->inf)."""
        xf = self._flat(x)
        mu, logvar = _split_gaussian(self.encoder(xf))
        logw = []
        for s in range(0, k, chunk):
            kk = min(chunk, k - s)
            z = reparameterize(mu.expand(kk, *mu.shape), logvar.expand(kk, *logvar.shape))  # [k, B, Z]
            logw.append(
                self.log_likelihood(xf, z) + gaussian_log_prob(z, torch.zeros_like(z)) - gaussian_log_prob(z, mu, logvar)
            )
        return torch.logsumexp(torch.cat(logw, 0), 0) - math.log(k)

    @torch.no_grad()
    def sample(
        self, n: int, temperature: float = 1.0, mean: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Decode z ~ N(0, temperature^2 I): [n, *data_shape] (decoder means unless ``mean=False``)."""
        ref = next(self.parameters())
        z = temperature * randn((n, self.latent_dim), generator, ref.device, ref.dtype)
        return self.decode(z, mean=mean, generator=generator)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean at the posterior mean: x -> decode(mu_enc(x))."""
        return self.decode(self.encode(x)[0])


# --------------------------------------------------------------------------------------- hierarchical VAE
class HierarchicalVAE(_VAEBase):
    """Hierarchical VAE with L >= 2 latent layers and a top-down prior.

    Generative model:  p(z_L) = N(0, I),  p(z_i | z_{i+1}) = N(mu_i(z_{i+1}), diag σ_i^2(z_{i+1})),  p(x | z_1).

    Inference path (top-down, sharing the generative order):
      bottom-up deterministic features  h_1 = f_1(x),  h_i = f_i(h_{i-1})  (i = 2..L);
      q(z_L | x) = N(g_L(h_L));   q(z_i | z_{i+1}, x) = N(g_i([h_i, z_{i+1}]))  for i = L-1 .. 1.

    Hierarchical ELBO (each inner KL is analytic given the sampled z_{i+1}; the outer expectation is one sample):
      E_q[log p(x|z_1)] - KL(q(z_L|x) || p(z_L)) - Σ_{i<L} E_q[ KL(q(z_i|z_{i+1},x) || p(z_i|z_{i+1})) ].
    """

    def __init__(self, config: HierarchicalVAEConfig | None = None):
        super().__init__()
        self.config = cfg = config or HierarchicalVAEConfig()
        if len(cfg.latent_dims) < 2:
            raise InvalidInputError(f"latent_dims: a hierarchical VAE needs >= 2 layers, got {cfg.latent_dims}")
        if not cfg.hidden:
            raise InvalidInputError("hidden: the hierarchical VAE needs at least one hidden width")
        dec_out = self._init_likelihood(cfg)
        self.latent_dims = tuple(int(z) for z in cfg.latent_dims)
        L, H, act = len(self.latent_dims), int(cfg.hidden[-1]), cfg.activation
        hid = tuple(cfg.hidden)
        self.bottom_up = nn.ModuleList(
            [mlp(self.data_dim, hid[:-1], H, act)] + [nn.Sequential(nn.SiLU(), mlp(H, hid[:-1], H, act)) for _ in range(L - 1)]
        )
        # posteriors: top g_L(h_L); lower g_i([h_i, z_{i+1}])
        self.posteriors = nn.ModuleList(
            [mlp(H + self.latent_dims[i + 1], hid, 2 * self.latent_dims[i], act) for i in range(L - 1)]
            + [mlp(H, hid, 2 * self.latent_dims[-1], act)]
        )
        # top-down priors p(z_i | z_{i+1}), i = 1..L-1
        self.priors = nn.ModuleList([mlp(self.latent_dims[i + 1], hid, 2 * self.latent_dims[i], act) for i in range(L - 1)])
        self.decoder = mlp(self.latent_dims[0], cfg.hidden, dec_out, act)

    def _features(self, xf: torch.Tensor) -> list[torch.Tensor]:
        hs = [self.bottom_up[0](xf)]
        for f in self.bottom_up[1:]:
            hs.append(f(hs[-1]))
        return hs  # L x [B, H]

    def _infer(self, xf: torch.Tensor, n_samples: int, sample: bool = True):
        """Top-down pass. Returns lists (bottom..top) of z [S, B, Zi], q params and p params (None for the top)."""
        hs = self._features(xf)
        L = len(self.latent_dims)
        S = n_samples
        zs, qs, ps = [None] * L, [None] * L, [None] * L
        mu, lv = _split_gaussian(self.posteriors[-1](hs[-1]))
        mu, lv = mu.expand(S, *mu.shape), lv.expand(S, *lv.shape)
        qs[-1], zs[-1] = (mu, lv), (reparameterize(mu, lv) if sample else mu)
        for i in range(L - 2, -1, -1):
            zup = zs[i + 1]  # [S, B, Z_{i+1}]
            h = hs[i].expand(S, *hs[i].shape)
            mu, lv = _split_gaussian(self.posteriors[i](torch.cat([h, zup], -1)))
            ps[i] = _split_gaussian(self.priors[i](zup))
            qs[i], zs[i] = (mu, lv), (reparameterize(mu, lv) if sample else mu)
        return zs, qs, ps

    def encode(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Posterior means/log-variances of every layer (bottom..top) along the mean path (z_{i+1} = its mean)."""
        zs, qs, _ = self._infer(self._flat(x), 1, sample=False)
        return [(m[0], v[0]) for m, v in qs]

    def elbo(self, x: torch.Tensor, n_samples: int = 1, sample: bool = True) -> ELBOTerms:
        """Hierarchical ELBO per example (see the class docstring), ``n_samples`` Monte Carlo samples of the path.

        ``sample=False`` follows the posterior means instead of samples (deterministic; used by priors)."""
        xf = self._flat(x)
        zs, qs, ps = self._infer(xf, n_samples if sample else 1, sample=sample)
        rec = self.log_likelihood(xf, zs[0]).mean(0)  # [B]
        kls = []
        for i, (q, p) in enumerate(zip(qs, ps)):
            if p is None:
                kls.append(kl_diag_gaussians(*q).mean(0))
            else:
                kls.append(kl_diag_gaussians(q[0], q[1], p[0], p[1]).mean(0))
        kl = torch.stack(kls, 0).sum(0)
        return ELBOTerms(elbo=rec - kl, log_likelihood=rec, kl=kl, kl_per_layer=kls)

    @torch.no_grad()
    def iwae_log_likelihood(self, x: torch.Tensor, k: int = 64, chunk: int = 256) -> torch.Tensor:
        """Importance-weighted log p(x) estimate [B]: log w = log p(x, z_1..L) - log q(z_1..L | x)."""
        xf = self._flat(x)
        logw = []
        for s in range(0, k, chunk):
            zs, qs, ps = self._infer(xf, min(chunk, k - s))
            lw = self.log_likelihood(xf, zs[0]) + gaussian_log_prob(zs[-1], torch.zeros_like(zs[-1]))
            for z, q, p in zip(zs, qs, ps):
                lw = lw - gaussian_log_prob(z, *q)
                if p is not None:
                    lw = lw + gaussian_log_prob(z, *p)
            logw.append(lw)
        return torch.logsumexp(torch.cat(logw, 0), 0) - math.log(k)

    @torch.no_grad()
    def sample(
        self, n: int, temperature: float = 1.0, mean: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Ancestral sampling z_L -> ... -> z_1 -> x (every layer's std scaled by ``temperature``)."""
        ref = next(self.parameters())
        z = temperature * randn((n, self.latent_dims[-1]), generator, ref.device, ref.dtype)
        for i in range(len(self.latent_dims) - 2, -1, -1):
            mu, lv = _split_gaussian(self.priors[i](z))
            z = mu + temperature * torch.exp(0.5 * lv) * randn(mu.shape, generator, ref.device, ref.dtype)
        return self._decode_out(z, mean, generator)

    def decode(self, z1: torch.Tensor, mean: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """z_1 [B, Z1] -> x [B, *data_shape] (decoder mean unless ``mean=False``)."""
        return self._decode_out(z1, mean, generator)
