"""Denoiser networks ε_θ(x_t, t[, c]): a residual MLP for vectors and a small UNet for tiny images.

Signature shared by both: ``denoiser(x_t, t, cond=None, drop=None) -> ε̂`` with x_t [B, *data_shape], t [B]
(integer timesteps), cond labels [B] or vectors [B, cond_dim], and ``drop`` [B] bool selecting the learned null
condition (classifier-free guidance). ``cond=None`` on a conditional denoiser means "null condition everywhere".
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import ConditionEmbedding, timestep_embedding


class _TimeCondEmbedding(nn.Module):
    def __init__(self, width: int, time_embed_dim: int, cond_dim: int, num_classes: int):
        super().__init__()
        self.time_embed_dim = time_embed_dim
        self.time = nn.Sequential(nn.Linear(time_embed_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.cond = ConditionEmbedding(cond_dim, num_classes, width)

    def forward(self, t, cond, drop, batch):
        emb = self.time(timestep_embedding(t, self.time_embed_dim).to(self.time[0].weight.dtype))  # [B, W]
        if self.cond.dim:
            emb = emb + self.cond(cond, batch, drop)
        return emb


class MLPDenoiser(nn.Module):
    """Residual MLP ε_θ for vectors [B, D]: h = Linear(x); depth × (h += MLP(SiLU(LayerNorm(h) + emb(t, c))))."""

    def __init__(
        self, dim: int, hidden: int = 256, depth: int = 3, time_embed_dim: int = 64, cond_dim: int = 0,
        num_classes: int = 0,
    ):
        super().__init__()
        self.emb = _TimeCondEmbedding(hidden, time_embed_dim, cond_dim, num_classes)
        self.inp = nn.Linear(dim, hidden)
        self.norms = nn.ModuleList([nn.LayerNorm(hidden) for _ in range(depth)])
        self.blocks = nn.ModuleList(
            [nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(depth)]
        )
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x, t, cond=None, drop=None):
        emb = self.emb(t, cond, drop, x.shape[0])  # [B, H]
        h = self.inp(x)
        for norm, block in zip(self.norms, self.blocks):
            h = h + block(norm(h) + emb)
        return self.out(h)


class _ResBlock2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        g_in, g_out = min(8, c_in), min(8, c_out)
        self.n1, self.c1 = nn.GroupNorm(g_in if c_in % g_in == 0 else 1, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.n2, self.c2 = nn.GroupNorm(g_out if c_out % g_out == 0 else 1, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x, emb):
        h = self.c1(self.act(self.n1(x))) + self.emb(emb)[:, :, None, None]
        h = self.c2(self.act(self.n2(h)))
        return self.skip(x) + h


class TinyUNet(nn.Module):
    """Two-scale UNet ε_θ for tiny images [B, C, H, W] (H, W even; e.g. 8×8 digits).

    conv_in -> res(c) [skip1] -> down(stride 2) -> res(2c) [skip2] -> mid res(2c)
    -> res([mid, skip2] -> 2c) -> up(nearest ×2, conv) -> res([up, skip1] -> c) -> GN, SiLU, conv_out.
    Time (and condition) embeddings are added inside every residual block.
    """

    def __init__(
        self, in_channels: int = 1, base_channels: int = 32, time_embed_dim: int = 64, cond_dim: int = 0,
        num_classes: int = 0,
    ):
        super().__init__()
        c, e = base_channels, 4 * base_channels
        self.emb = _TimeCondEmbedding(e, time_embed_dim, cond_dim, num_classes)
        self.conv_in = nn.Conv2d(in_channels, c, 3, padding=1)
        self.down1 = _ResBlock2d(c, c, e)
        self.downsample = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.down2 = _ResBlock2d(2 * c, 2 * c, e)
        self.mid = _ResBlock2d(2 * c, 2 * c, e)
        self.up2 = _ResBlock2d(4 * c, 2 * c, e)
        self.upsample = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * c, c, 3, padding=1))
        self.up1 = _ResBlock2d(2 * c, c, e)
        self.out = nn.Sequential(nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv2d(c, in_channels, 3, padding=1))

    def forward(self, x, t, cond=None, drop=None):
        emb = self.emb(t, cond, drop, x.shape[0])
        h1 = self.down1(self.conv_in(x), emb)  # [B, c, H, W]
        h2 = self.down2(self.downsample(h1), emb)  # [B, 2c, H/2, W/2]
        h = self.mid(h2, emb)
        h = self.up2(torch.cat([h, h2], 1), emb)
        h = self.up1(torch.cat([self.upsample(h), h1], 1), emb)
        return self.out(h)
