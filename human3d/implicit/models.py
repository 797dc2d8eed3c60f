"""Implicit-surface networks and their losses: IGR, a hash-grid SDF, the DeepSDF auto-decoder and an occupancy
network with a ResNet-PointNet encoder. All fields are **negative inside** and live in the unit ball
(:func:`~human3d.implicit.sampling.unit_sphere_normalization`); MLPs and encodings come from ``human3d.fields``.

Losses are pure functions of (model, batch); the networks are thin modules.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from human3d.errors import InvalidInputError
from human3d.fields import MLP, HashGridEncoding

__all__ = [
    "IGRNetwork",
    "HashGridSDF",
    "knn_sigma",
    "igr_loss",
    "DeepSDFDecoder",
    "AutoDecoder",
    "clamped_l1",
    "deepsdf_loss",
    "fit_latent",
    "ResnetPointNet",
    "OccupancyNetwork",
    "occupancy_loss",
]


def _softplus_mlp(in_dim: int, hidden: int, n_layers: int, skips: tuple[int, ...], beta: float) -> MLP:
    """fields.MLP with softplus(beta) activations, IGR's hidden init N(0, 2 / out) with zero biases, and a zero
    output layer (so the network starts as exactly the base shape it is added to)."""
    mlp = MLP(in_dim, 1, hidden, n_layers, skips=skips)
    mlp.act = nn.Softplus(beta=beta)
    for lin in mlp.hidden:
        nn.init.normal_(lin.weight, 0.0, math.sqrt(2.0 / lin.out_features))
        nn.init.zeros_(lin.bias)
    nn.init.zeros_(mlp.out.weight)
    nn.init.zeros_(mlp.out.bias)
    return mlp


class IGRNetwork(nn.Module):
    """IGR's SDF network (Gropp et al. 2020): softplus(beta=100) MLP with an input skip connection.

    Geometric initialisation, made exact: ``f(x) = (||x|| - radius) + g(x)`` with ``g`` the MLP whose output layer
    starts at zero, so ``f`` is the sphere SDF at step 0 whatever the width. (IGR's statistical init, last layer
    ``N(sqrt(pi/d), 1e-4)`` and bias ``-r``, gave a median ``(f + r) / ||x||`` of 0.58 on a 4x256 softplus net here
    because of the softplus offset ``ln2 / beta`` per unit and finite-width fluctuation.) x [N, 3] -> [N].
    """

    def __init__(self, hidden: int = 128, n_layers: int = 4, skip: int | None = 2, beta: float = 100.0,
                 radius: float = 0.5):
        super().__init__()
        if hidden < 1 or n_layers < 1 or radius <= 0:
            raise InvalidInputError(f"IGRNetwork: bad sizes (hidden={hidden}, n_layers={n_layers}, radius={radius})")
        self.radius = float(radius)
        self.mlp = _softplus_mlp(3, hidden, n_layers, (skip,) if skip else (), beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.norm(dim=-1) - self.radius + self.mlp(x)[..., 0]


class HashGridSDF(nn.Module):
    """Fast CPU SDF: multiresolution hash grid over the cube [-1, 1]^3 + a small softplus MLP, added to the
    sphere ``||x|| - radius`` (exact at step 0: the output layer starts at zero). x [N, 3] -> [N]."""

    def __init__(self, n_levels: int = 8, n_features_per_level: int = 2, log2_table_size: int = 15,
                 base_resolution: int = 8, max_resolution: int = 128, hidden: int = 32, n_layers: int = 1,
                 beta: float = 100.0, radius: float = 0.5):
        super().__init__()
        self.radius = float(radius)
        self.encoding = HashGridEncoding(n_levels, n_features_per_level, log2_table_size, base_resolution,
                                         max_resolution)
        self.mlp = _softplus_mlp(self.encoding.out_dim + 3, hidden, n_layers, (), beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x, self.encoding((x + 1.0) * 0.5)], -1)  # [N, 3 + L F]
        return x.norm(dim=-1) - self.radius + self.mlp(h)[..., 0]


def knn_sigma(points: np.ndarray, k: int = 50) -> np.ndarray:
    """Distance of each point [N, 3] to its k-th nearest neighbour (IGR's local perturbation scale) -> [N]."""
    from scipy.spatial import cKDTree

    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) < 2:
        raise InvalidInputError(f"points: expected at least 2 points [N, 3], got shape {p.shape}")
    k = min(k, len(p) - 1)
    d, _ = cKDTree(p).query(p, k=k + 1, workers=-1)
    return d[:, -1]


def _gradient(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """fn(x) [N] and d fn / dx [N, 3], differentiable (create_graph=True) for the eikonal / normal terms."""
    x = x.requires_grad_(True)
    y = fn(x)
    (g,) = torch.autograd.grad(y, x, torch.ones_like(y), create_graph=True)
    return y, g


def igr_loss(
    model: nn.Module,
    points: torch.Tensor,
    sigma: torch.Tensor,
    normals: torch.Tensor | None = None,
    eikonal_weight: float = 0.1,
    normal_weight: float = 1.0,
    global_fraction: float = 0.125,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """IGR loss on a batch of surface points [B, 3] (unit-sphere units) with local scales sigma [B] (k-NN
    distances) and optional unit normals [B, 3]:

    ``mean |f(x_i)| + normal_weight mean ||grad f(x_i) - n_i|| + eikonal_weight mean (||grad f(y)|| - 1)^2`` where
    ``y`` are the points perturbed by ``N(0, sigma_i^2)`` plus ``global_fraction * B`` uniform points in
    [-1.1, 1.1]^3. Returns (loss, floats per term).
    """
    B = points.shape[0]
    n_glob = max(1, int(B * global_fraction))
    local = points + torch.randn(points.shape, generator=generator, dtype=points.dtype) * sigma[:, None]
    glob = (torch.rand(n_glob, 3, generator=generator, dtype=points.dtype) * 2 - 1) * 1.1
    x = torch.cat([points, local, glob])  # [2B + G, 3]
    f, g = _gradient(model, x)
    manifold = f[:B].abs().mean()
    eik = ((g[B:].norm(dim=-1) - 1.0) ** 2).mean()
    loss = manifold + eikonal_weight * eik
    terms = {"manifold": manifold.item(), "eikonal": eik.item()}
    if normals is not None:
        nt = (g[:B] - normals).norm(dim=-1).mean()
        loss = loss + normal_weight * nt
        terms["normal"] = nt.item()
    terms["loss"] = loss.item()
    return loss, terms


# ------------------------------------------------------------------------------------------------ DeepSDF
class DeepSDFDecoder(nn.Module):
    """DeepSDF decoder ``f(z, x)``: MLP on [z, x] with an input skip connection (ReLU as in the paper; softplus
    when ``beta`` is given, for smooth normals). z [..., D], x [..., 3] -> [...]."""

    def __init__(self, latent_dim: int = 64, hidden: int = 128, n_layers: int = 4, skip: int | None = 2,
                 beta: float | None = 100.0):
        super().__init__()
        self.latent_dim = latent_dim
        self.mlp = MLP(latent_dim + 3, 1, hidden, n_layers, skips=(skip,) if skip else ())
        if beta is not None:
            self.mlp.act = nn.Softplus(beta=beta)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        z = z.expand(*x.shape[:-1], self.latent_dim)
        return self.mlp(torch.cat([z, x], -1))[..., 0]


class AutoDecoder(nn.Module):
    """DeepSDF auto-decoder: one latent code per training shape, ``codes ~ N(0, sigma^2)`` at init, and a shared
    decoder. forward(shape_ids [B], x [B, N, 3]) -> sdf [B, N]."""

    def __init__(self, n_shapes: int, latent_dim: int = 64, code_sigma: float = 0.01, **decoder_kwargs):
        super().__init__()
        if n_shapes < 1:
            raise InvalidInputError(f"n_shapes: expected >= 1, got {n_shapes}")
        self.code_sigma = float(code_sigma)
        self.codes = nn.Embedding(n_shapes, latent_dim)
        nn.init.normal_(self.codes.weight, 0.0, code_sigma)
        self.decoder = DeepSDFDecoder(latent_dim, **decoder_kwargs)

    def forward(self, shape_ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.codes(shape_ids)[:, None, :], x)


def clamped_l1(pred: torch.Tensor, target: torch.Tensor, delta: float = 0.1) -> torch.Tensor:
    """DeepSDF's ``mean |clamp(pred, -delta, delta) - clamp(target, -delta, delta)|``."""
    return (pred.clamp(-delta, delta) - target.clamp(-delta, delta)).abs().mean()


def deepsdf_loss(model: AutoDecoder, shape_ids: torch.Tensor, x: torch.Tensor, sdf: torch.Tensor,
                 delta: float = 0.1, code_reg: float = 1e-4) -> tuple[torch.Tensor, dict[str, float]]:
    """Clamped L1 on samples x [B, N, 3] / sdf [B, N] plus ``code_reg * mean ||z||^2 / sigma^2`` (the N(0, sigma^2)
    prior on the codes, DeepSDF's 1/sigma^2 weighting)."""
    data = clamped_l1(model(shape_ids, x), sdf, delta)
    reg = (model.codes(shape_ids) ** 2).sum(-1).mean() / model.code_sigma**2
    loss = data + code_reg * reg
    return loss, {"loss": loss.item(), "clamped_l1": data.item(), "code_reg": reg.item()}


def fit_latent(decoder: DeepSDFDecoder, x: torch.Tensor, sdf: torch.Tensor, steps: int = 300, lr: float = 5e-3,
               delta: float = 0.1, prior_energy=None, prior_weight: float = 1.0, code_sigma: float = 0.01,
               z0: torch.Tensor | None = None) -> torch.Tensor:
    """Test-time latent optimisation (DeepSDF inference): ``argmin_z clamped_l1(f(z, x), sdf) + prior_weight E(z)``
    with the decoder frozen. ``prior_energy(z [1, D]) -> [1]`` (e.g. a ``generative`` Prior's energy); the default is
    the Gaussian ``||z||^2 / (2 sigma^2)`` scaled by 1 / n_samples. x [N, 3], sdf [N] -> z [D]."""
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[0] != sdf.shape[0]:
        raise InvalidInputError(f"x, sdf: expected [N, 3] and [N] with N > 0, got {tuple(x.shape)}, {tuple(sdf.shape)}")
    z = (torch.zeros(1, decoder.latent_dim) if z0 is None else z0.detach().clone().reshape(1, -1)).requires_grad_(True)
    if prior_energy is None:
        def prior_energy(z):  # noqa: E306
            return (z**2).sum(-1) / (2 * code_sigma**2) / x.shape[0]
    opt = torch.optim.Adam([z], lr=lr)
    req = [p.requires_grad for p in decoder.parameters()]
    decoder.requires_grad_(False)
    try:
        for _ in range(steps):
            opt.zero_grad()
            loss = clamped_l1(decoder(z, x), sdf, delta) + prior_weight * prior_energy(z).sum()
            loss.backward()
            opt.step()
    finally:
        for p, r in zip(decoder.parameters(), req):
            p.requires_grad_(r)
    return z.detach()[0]


# ------------------------------------------------------------------------------------------ occupancy networks
class ResnetPointNet(nn.Module):
    """OccNet's ResNet-PointNet encoder: per-point ResNet blocks, each followed by max-pooling over the points and
    concatenation of the pooled feature to every point; the final max-pool gives the code. points [B, N, 3] ->
    c [B, c_dim]. Permutation invariant."""

    def __init__(self, c_dim: int = 128, hidden: int = 128, n_blocks: int = 5):
        super().__init__()
        self.fc_pos = nn.Linear(3, 2 * hidden)
        self.blocks = nn.ModuleList([MLP(2 * hidden, hidden, hidden, 1) for _ in range(n_blocks)])
        self.shortcuts = nn.ModuleList([nn.Linear(2 * hidden, hidden, bias=False) for _ in range(n_blocks)])
        self.fc_c = nn.Linear(hidden, c_dim)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        if points.ndim != 3 or points.shape[-1] != 3 or points.shape[1] == 0:
            raise InvalidInputError(f"points: expected a non-empty batch [B, N, 3], got {tuple(points.shape)}")
        h = self.fc_pos(points)  # [B, N, 2H]
        for i, (blk, sc) in enumerate(zip(self.blocks, self.shortcuts)):
            h = blk(F.relu(h)) + sc(h)  # [B, N, H]
            if i < len(self.blocks) - 1:
                h = torch.cat([h, h.amax(1, keepdim=True).expand_as(h)], -1)  # [B, N, 2H]
        return self.fc_c(F.relu(h.amax(1)))


class OccupancyNetwork(nn.Module):
    """Occupancy network: ResNet-PointNet code c of the input cloud, decoder MLP on [x, c] -> occupancy logit.
    ``field(c)`` gives a negative-inside callable ``-logit`` for mesh extraction (level 0 = probability 0.5)."""

    def __init__(self, c_dim: int = 128, hidden: int = 128, n_layers: int = 4, encoder_hidden: int = 128):
        super().__init__()
        self.encoder = ResnetPointNet(c_dim, encoder_hidden)
        self.decoder = MLP(3 + c_dim, 1, hidden, n_layers, skips=(n_layers // 2,) if n_layers > 2 else ())

    def logits(self, c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """c [B, C], x [B, M, 3] -> logits [B, M] (positive inside)."""
        return self.decoder(torch.cat([x, c[:, None, :].expand(-1, x.shape[1], -1)], -1))[..., 0]

    def forward(self, points: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.encoder(points), x)

    def field(self, c: torch.Tensor):
        """Negative-inside field of one code c [C] or [1, C]: x [N, 3] -> -logit [N]."""
        c = c.reshape(1, -1)
        return lambda x: -self.logits(c, x[None])[0]


def occupancy_loss(model: OccupancyNetwork, points: torch.Tensor, x: torch.Tensor, inside: torch.Tensor):
    """BCE of the predicted occupancy at query points x [B, M, 3] against inside [B, M] (bool or 0/1)."""
    loss = F.binary_cross_entropy_with_logits(model(points, x), inside.float())
    return loss, {"loss": loss.item()}
