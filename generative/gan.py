"""Generative adversarial networks: non-saturating GAN and WGAN-GP, optionally conditional.

Conventions: data ``x`` [B, *data_shape] (vectors or small images, flattened inside MLPs). The discriminator returns
one logit per example [B] (for WGAN-GP the critic value). ``k = config.d_steps`` discriminator updates are made per
generator update; every discriminator update draws a fresh real batch.

Losses (l = discriminator logit, D = sigmoid(l)):
  discriminator (non-saturating GAN):  E_real[softplus(-l)] + E_fake[softplus(l)]  = -E log D(x) - E log(1 - D(G(z)))
  generator (non-saturating):          E_fake[softplus(-l)]                         = -E log D(G(z))
  critic (WGAN-GP):                    E_fake[f] - E_real[f] + λ E_x̂[(||∇_x̂ f(x̂)||_2 - 1)^2],
                                       x̂ = ε x_real + (1 - ε) x_fake, ε ~ U[0, 1] per example
  generator (WGAN):                    -E_fake[f]
  R1 penalty (optional, both losses):  γ/2 E_real[||∇_x l(x)||_2^2]  (Mescheder et al. 2018; zero-centred on the data)
The optimal non-saturating discriminator is D*(x) = p_data(x) / (p_data(x) + p_g(x)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from generative.errors import InvalidInputError

from .nn import ConditionEmbedding, check_cond, check_data, mlp, rand, randn
from .training import History, TrainConfig, make_optimizer, select_device, train_loop


# ------------------------------------------------------------------------------------------- pure functions
def discriminator_loss_nonsaturating(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-E log D(x_real) - E log(1 - D(x_fake)) with D = sigmoid(logit)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss -E log D(G(z))."""
    return F.softplus(-fake_logits).mean()


def critic_loss_wasserstein(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss E[f(fake)] - E[f(real)] (without the gradient penalty)."""
    return fake_scores.mean() - real_scores.mean()


def generator_loss_wasserstein(fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss -E[f(G(z))]."""
    return -fake_scores.mean()


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """R1 penalty E_real[||∇_x critic(x)||_2^2] (Mescheder et al. 2018, "Which training methods for GANs do actually
    converge?"): zero-centred on real data, it makes the logit flat on the data and smooth around it. ``critic`` maps
    [B, ...] -> [B]; the squared norm is over all non-batch dims; differentiable w.r.t. the critic's parameters."""
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.reshape(grad.shape[0], -1).pow(2).sum(1).mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty E[(||∇_x̂ critic(x̂)||_2 - 1)^2] on x̂ = eps * real + (1 - eps) * fake.

    ``critic`` maps [B, ...] -> [B]; ``eps`` [B] defaults to U[0, 1]. The gradient norm is over all non-batch dims.
    The result is differentiable w.r.t. the critic's parameters (``create_graph=True``).
    """
    if eps is None:
        eps = rand(real.shape[0], generator=generator, device=real.device, dtype=real.dtype)
    e = eps.reshape(-1, *([1] * (real.dim() - 1)))
    xh = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)
    scores = critic(xh)
    (grad,) = torch.autograd.grad(scores.sum(), xh, create_graph=True)
    norm = grad.reshape(grad.shape[0], -1).norm(dim=1)
    return ((norm - 1.0) ** 2).mean()


# ------------------------------------------------------------------------------------------------- config
@dataclass
class GANConfig:
    """Configuration of :class:`GAN` (MLP generator and discriminator on flattened data)."""

    data_shape: tuple[int, ...] = (2,)
    """Shape of one example: ``(D,)`` for vectors, ``(C, H, W)`` for images."""
    latent_dim: int = 16
    """Dimension of the generator's input noise z ~ N(0, I)."""
    gen_hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of the generator MLP."""
    disc_hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of the discriminator / critic MLP."""
    gen_activation: str = "silu"
    """Generator activation."""
    disc_activation: str = "leaky_relu"
    """Discriminator activation."""
    loss: str = "nonsaturating"
    """``"nonsaturating"`` (standard GAN with the non-saturating generator loss) or ``"wgan-gp"``."""
    gp_weight: float = 10.0
    """λ of the WGAN-GP gradient penalty."""
    d_steps: int = 1
    """k: discriminator updates per generator update."""
    cond_dim: int = 0
    """Size of condition vectors (0: none). Conditions are embedded and concatenated to G's and D's inputs."""
    num_classes: int = 0
    """Number of class labels (0: none); labels are embedded with ``nn.Embedding``. Excludes ``cond_dim``."""
    cond_embed_dim: int = 16
    """Size of the condition embedding."""
    aux_negative_fraction: float = 0.0
    """Fraction of each discriminator "fake" batch replaced by perturbed real examples (see
    ``auxiliary_negatives``). 0 gives the plain GAN; ~0.5 makes D a usable energy prior away from G's support."""
    aux_negative_std: float = 1.0
    """Typical noise std (data units) of the auxiliary negatives; each example's std is this × LogUniform(1/3, 3)."""
    r1_weight: float = 0.0
    """γ of the R1 penalty γ/2 E_real[||∇_x D(x)||^2] added to the discriminator loss (0: none)."""


class GAN(nn.Module):
    """Generator G(z[, c]) and discriminator D(x[, c]) with their losses, training step and ``fit``."""

    def __init__(self, config: GANConfig | None = None):
        super().__init__()
        self.config = cfg = config or GANConfig()
        if cfg.loss not in ("nonsaturating", "wgan-gp"):
            raise InvalidInputError(f"loss: expected 'nonsaturating' or 'wgan-gp', got {cfg.loss!r}")
        if cfg.cond_dim > 0 and cfg.num_classes > 0:
            raise InvalidInputError("GANConfig: give either cond_dim or num_classes, not both")
        if not 0.0 <= cfg.aux_negative_fraction <= 1.0:
            raise InvalidInputError(f"aux_negative_fraction: expected a fraction in [0, 1], got {cfg.aux_negative_fraction}")
        if cfg.r1_weight < 0:
            raise InvalidInputError(f"r1_weight: expected >= 0, got {cfg.r1_weight}")
        if cfg.d_steps < 1:
            raise InvalidInputError(f"d_steps: expected >= 1, got {cfg.d_steps}")
        self.data_shape = tuple(int(s) for s in cfg.data_shape)
        self.data_dim = math.prod(self.data_shape)
        self.latent_dim = int(cfg.latent_dim)
        self.g_cond = ConditionEmbedding(cfg.cond_dim, cfg.num_classes, cfg.cond_embed_dim)
        self.d_cond = ConditionEmbedding(cfg.cond_dim, cfg.num_classes, cfg.cond_embed_dim)
        e = self.g_cond.dim
        self.generator = mlp(self.latent_dim + e, cfg.gen_hidden, self.data_dim, cfg.gen_activation)
        self.discriminator = mlp(self.data_dim + e, cfg.disc_hidden, 1, cfg.disc_activation)
        self.register_buffer("d_updates", torch.zeros((), dtype=torch.long))

    @property
    def conditional(self) -> bool:
        return self.g_cond.dim > 0

    def _cond(self, cond, batch, name="cond"):
        return check_cond(cond, name, batch, self.config.cond_dim, self.config.num_classes)

    def generate(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """G(z[, c]): z [B, latent_dim] -> x [B, *data_shape] (differentiable)."""
        e = self.g_cond(cond, z.shape[0])
        return self.generator(torch.cat([z, e], -1)).reshape(z.shape[0], *self.data_shape)

    def discriminate(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """D(x[, c]) logit (critic value for WGAN-GP): x [B, *data_shape] -> [B]."""
        e = self.d_cond(cond, x.shape[0])
        return self.discriminator(torch.cat([x.reshape(x.shape[0], -1), e], -1)).squeeze(-1)

    def _noise(self, n, generator=None):
        ref = next(self.parameters())
        return randn((n, self.latent_dim), generator, ref.device, ref.dtype)

    def auxiliary_negatives(self, real: torch.Tensor) -> torch.Tensor:
        """Real examples perturbed by Gaussian noise whose std is ``aux_negative_std`` × LogUniform(1/3, 3) per example
        (extra "fake" examples that teach D to reject vectors off the data manifold, near and far)."""
        B = real.shape[0]
        scale = self.config.aux_negative_std * torch.exp(
            (2 * torch.rand(B, device=real.device, dtype=real.dtype) - 1) * math.log(3.0)
        )
        return real + scale.reshape(-1, *([1] * (real.dim() - 1))) * torch.randn_like(real)

    # ---------------------------------------------------------------------------------------------- losses
    def discriminator_loss(self, real: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """Discriminator/critic loss on a real batch and as many generated examples (generator frozen)."""
        with torch.no_grad():
            fake = self.generate(self._noise(real.shape[0]), cond)
            n_aux = int(round(self.config.aux_negative_fraction * real.shape[0]))
            if n_aux > 0:  # replace part of the generated batch by perturbed real examples
                fake = torch.cat([self.auxiliary_negatives(real[:n_aux]), fake[n_aux:]])  # rows stay aligned with cond
        lr, lf = self.discriminate(real, cond), self.discriminate(fake, cond)
        if self.config.loss == "nonsaturating":
            loss = discriminator_loss_nonsaturating(lr, lf)
            logs = {"d_loss": float(loss.detach())}
        else:
            gp = gradient_penalty(lambda x: self.discriminate(x, cond), real, fake)
            w = critic_loss_wasserstein(lr, lf)
            loss, logs = w + self.config.gp_weight * gp, {"d_loss": float(w.detach()), "gp": float(gp.detach())}
        if self.config.r1_weight > 0:
            r1 = r1_penalty(lambda x: self.discriminate(x, cond), real)
            loss = loss + 0.5 * self.config.r1_weight * r1
            logs["r1"] = float(r1.detach())
        return loss, logs

    def generator_loss(self, batch_size: int, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Generator loss on ``batch_size`` fresh samples (conditions ``cond`` [B] or [B, C] if conditional)."""
        lf = self.discriminate(self.generate(self._noise(batch_size), cond), cond)
        if self.config.loss == "nonsaturating":
            return generator_loss_nonsaturating(lf)
        return generator_loss_wasserstein(lf)

    def train_step(
        self,
        real: torch.Tensor,
        cond: torch.Tensor | None,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        grad_clip: float | None = None,
    ) -> dict:
        """One discriminator update on ``real``; every ``d_steps``-th call also one generator update."""
        cond = self._cond(cond, real.shape[0])
        opt_d.zero_grad(set_to_none=True)
        d_loss, logs = self.discriminator_loss(real, cond)
        d_loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.discriminator.parameters(), grad_clip)
        opt_d.step()
        self.d_updates += 1
        if int(self.d_updates) % self.config.d_steps == 0:
            opt_g.zero_grad(set_to_none=True)
            g_loss = self.generator_loss(real.shape[0], cond)
            g_loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.generator.parameters(), grad_clip)
            opt_g.step()
            logs["g_loss"] = float(g_loss.detach())
        return logs

    def generator_parameters(self):
        return [*self.generator.parameters(), *self.g_cond.parameters()]

    def discriminator_parameters(self):
        return [*self.discriminator.parameters(), *self.d_cond.parameters()]

    def fit(
        self,
        x: torch.Tensor,
        cond: torch.Tensor | None = None,
        config: TrainConfig | None = None,
        lr_g: float | None = None,
        lr_d: float | None = None,
    ) -> History:
        """Adversarial training on ``x`` [N, *data_shape] (and conditions ``cond``); ``config.steps`` counts
        discriminator updates. Optimizers: AdamW over G and D (``lr_g``/``lr_d`` override ``config.lr``)."""
        config = config or TrainConfig()
        check_data(x, "x", self.data_shape)
        self._cond(cond, x.shape[0])
        self.to(select_device(config.device))
        opt_g = make_optimizer(self.generator_parameters(), config, lr_g)
        opt_d = make_optimizer(self.discriminator_parameters(), config, lr_d)

        def step_fn(batch, step):
            real = batch[0]
            c = batch[1] if len(batch) > 1 else None
            return self.train_step(real, c, opt_g, opt_d, config.grad_clip)

        return train_loop(step_fn, (x, cond), {"gan": self}, {"generator": opt_g, "discriminator": opt_d}, config, "GAN")

    @torch.no_grad()
    def sample(
        self, n: int, cond: torch.Tensor | None = None, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n samples G(z), z ~ N(0, temperature^2 I): [n, *data_shape]."""
        cond = self._cond(cond, n)
        return self.generate(temperature * self._noise(n, generator), cond)
