"""HMR's adversarial pose prior (Kanazawa et al., CVPR 2018): factorised per-joint discriminators plus one over
all joints, on rotation matrices.

Input ``x`` ``[B, J*3]``: one axis-angle per joint (e.g. Anny's 17 pose groups, 51-D, as the pose priors of
:mod:`generative.priors.pose`). Each joint's rotation matrix (Rodrigues, :func:`rotvec_to_matrix`) goes through a
shared embedding MLP (HMR's 1x1 convolutions, ``9 -> E -> E``); joint ``j``'s discriminator is a linear head on its
own embedding, and the all-joint discriminator an MLP on the concatenated embeddings. Logits ``[B, J + 1]``
(real > 0).

As a :class:`~generative.priors.base.Prior`: ``energy(x) = mean_k softplus(-logit_k(x)) = mean_k -log D_k(x)``
(lower = more plausible; differentiable in ``x``). ``log_prob`` is not exact (raises), and ``sample(n)`` runs
Langevin dynamics on the energy from the normalisation's Gaussian (``sample_steps``, ``sample_step``).

Training (:func:`discriminator_loss`, :func:`fit_adversarial_prior`): non-saturating GAN loss, real poses against
fakes -- a generator's outputs (HMR's regressor) and/or :func:`perturb_poses` (noise on a random subset of joints,
and joints swapped between poses, which only the all-joint discriminator can tell).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from generative.errors import InvalidInputError, check_tensor

from .base import BasePrior, register_model, register_prior

__all__ = ["FactorisedDiscriminatorConfig", "FactorisedDiscriminator", "AdversarialPosePrior", "rotvec_to_matrix",
           "discriminator_loss", "perturb_poses", "fit_adversarial_prior"]  # fmt: skip


def rotvec_to_matrix(r: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``[..., 3]`` -> rotation matrix ``[..., 3, 3]`` (Rodrigues; exact series near 0)."""
    th2 = (r * r).sum(-1, keepdim=True)[..., None]  # [..., 1, 1]
    th = th2.clamp_min(1e-12).sqrt()
    small = th2 < 1e-8
    a = torch.where(small, 1 - th2 / 6, torch.sin(th) / th)
    b = torch.where(small, 0.5 - th2 / 24, (1 - torch.cos(th)) / th2.clamp_min(1e-12))
    x, y, z = r.unbind(-1)
    o = torch.zeros_like(x)
    Kx = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*r.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=r.dtype, device=r.device).expand_as(Kx)
    return eye + a * Kx + b * (Kx @ Kx)


@dataclass
class FactorisedDiscriminatorConfig:
    """The discriminators."""

    n_joints: int = 17
    """Joints J (x has J*3 axis-angle values)."""
    embed: int = 32
    """Per-joint embedding width E (shared across joints)."""
    hidden: int = 256
    """Width of the all-joint discriminator's two hidden layers."""


class FactorisedDiscriminator(nn.Module):
    """``x`` [B, J*3] axis-angle -> logits [B, J + 1] (J per-joint discriminators, then the all-joint one)."""

    def __init__(self, config: FactorisedDiscriminatorConfig | None = None):
        super().__init__()
        self.config = c = config or FactorisedDiscriminatorConfig()
        if not (c.n_joints >= 1 and c.embed >= 1 and c.hidden >= 1):
            raise InvalidInputError(f"config: expected positive sizes, got {c}")
        J, E = c.n_joints, c.embed
        self.embed = nn.Sequential(nn.Linear(9, E), nn.LeakyReLU(0.2), nn.Linear(E, E), nn.LeakyReLU(0.2))
        self.joint_w = nn.Parameter(torch.randn(J, E) / math.sqrt(E))  # per-joint linear heads
        self.joint_b = nn.Parameter(torch.zeros(J))
        self.all_joints = nn.Sequential(nn.Linear(J * E, c.hidden), nn.LeakyReLU(0.2), nn.Linear(c.hidden, c.hidden),
                                        nn.LeakyReLU(0.2), nn.Linear(c.hidden, 1))  # fmt: skip
        self.dim = 3 * J

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, J = x.shape[0], self.config.n_joints
        R = rotvec_to_matrix(x.reshape(B, J, 3)).reshape(B, J, 9)
        e = self.embed(R)  # [B, J, E]
        per_joint = (e * self.joint_w).sum(-1) + self.joint_b  # [B, J]
        return torch.cat([per_joint, self.all_joints(e.reshape(B, -1))], -1)


register_model(FactorisedDiscriminator, FactorisedDiscriminatorConfig)


@register_prior
class AdversarialPosePrior(BasePrior):
    """HMR's adversarial prior over ``[B, J*3]`` axis-angles (module docstring). ``loc`` / ``scale``: the data
    normalisation the Langevin sampler starts from (the discriminator itself reads the raw rotations)."""

    def __init__(self, model: FactorisedDiscriminator, sample_steps: int = 100, sample_step: float = 0.01,
                 loc=None, scale=None):  # fmt: skip
        super().__init__(model.dim, loc, scale)
        self.model = model
        self.sample_steps, self.sample_step = int(sample_steps), float(sample_step)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, J*3]`` -> ``[B, J + 1]`` discriminator logits (real > 0)."""
        return self.model(self._check(x))

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, D] -> [B]``: mean over the J + 1 discriminators of ``-log D`` (lower = more plausible)."""
        return F.softplus(-self.logits(x)).mean(-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """``[B]`` realism score: ``-energy`` (higher = more like the training poses)."""
        return -self.energy(x)

    def _sample(self, n, generator):
        u = torch.randn(n, self.dim, generator=generator, device=self.loc.device)
        step = self.sample_step
        for _ in range(self.sample_steps):
            with torch.enable_grad():
                u = u.detach().requires_grad_(True)
                e = self.energy(self.denormalize(u)).sum()
                (g,) = torch.autograd.grad(e, u)
            noise = torch.randn(u.shape, generator=generator, device=u.device)
            u = u - step * g + math.sqrt(2 * step) * 0.1 * noise
        return u.detach()

    def options(self):
        return {"sample_steps": self.sample_steps, "sample_step": self.sample_step}


def discriminator_loss(prior: AdversarialPosePrior, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating GAN loss of the discriminators: ``softplus(-logit(real)) + softplus(logit(fake))``, averaged
    over samples and discriminators (``fake`` is detached)."""
    return F.softplus(-prior.logits(real)).mean() + F.softplus(prior.logits(fake.detach())).mean()


def perturb_poses(x: torch.Tensor, generator: torch.Generator | None = None, sigma: float = 0.6,
                  joint_fraction: float = 0.3, swap_fraction: float = 0.3) -> torch.Tensor:  # fmt: skip
    """Implausible versions of poses ``[B, J*3]``: Gaussian noise (``sigma`` rad per component) on a random
    ``joint_fraction`` of the joints; for a ``swap_fraction`` of the rows, instead, every joint taken from a random
    other pose (plausible joints, implausible combination)."""
    check_tensor(x, "x", (None, None), dtype_floating=True)
    B, D = x.shape
    if D % 3:
        raise InvalidInputError(f"x: expected [B, J*3] axis-angles, got {list(x.shape)}")
    J = D // 3
    g = generator
    xj = x.reshape(B, J, 3)
    pick = torch.rand(B, J, 1, generator=g, device=x.device) < joint_fraction
    noisy = xj + sigma * torch.randn(xj.shape, generator=g, device=x.device) * pick
    donors = torch.randint(0, B, (B, J), generator=g, device=x.device)
    swapped = xj[donors, torch.arange(J, device=x.device)[None]]  # [B, J, 3]
    swap = torch.rand(B, 1, 1, generator=g, device=x.device) < swap_fraction
    return torch.where(swap, swapped, noisy).reshape(B, D)


def fit_adversarial_prior(prior: AdversarialPosePrior, real: torch.Tensor, steps: int = 1000, batch_size: int = 256,
                          lr: float = 1e-3, generator: torch.Generator | None = None, fake_fn=None) -> list[float]:  # fmt: skip
    """Train ``prior``'s discriminators on ``real`` poses ``[N, J*3]`` against ``fake_fn(real_batch, generator)``
    (default :func:`perturb_poses`); Adam, ``steps`` steps. Returns the losses."""
    check_tensor(real, "real", (None, prior.dim), dtype_floating=True)
    fake_fn = fake_fn or perturb_poses
    opt = torch.optim.Adam(prior.model.parameters(), lr=lr, betas=(0.5, 0.999))
    losses = []
    prior.train()
    for _ in range(int(steps)):
        idx = torch.randint(0, real.shape[0], (min(batch_size, real.shape[0]),), generator=generator)
        r = real[idx.to(real.device)]
        loss = discriminator_loss(prior, r, fake_fn(r, generator))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    prior.eval()
    return losses
