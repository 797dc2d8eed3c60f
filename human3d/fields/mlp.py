"""Small MLPs and radiance fields built from them: density first, the view direction entering late."""

from __future__ import annotations

import torch
import torch.nn as nn

from human3d.fields.encodings import HashGridEncoding, PositionalEncoding, SphericalHarmonicsEncoding

__all__ = ["MLP", "trunc_exp", "NGPField", "NeRFField", "RadianceField"]


class MLP(nn.Module):
    """Fully connected network ``in_dim -> [hidden] * n_hidden -> out_dim`` with ReLU, optional input skip
    connections (the input is concatenated to the activations entering the listed hidden layers)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 64,
        n_hidden: int = 1,
        skips: tuple[int, ...] = (),
        bias: bool = True,
        out_activation: nn.Module | None = None,
    ):
        super().__init__()
        self.skips = set(skips)
        layers = []
        d = in_dim
        for i in range(n_hidden):
            if i in self.skips:
                d += in_dim
            layers.append(nn.Linear(d, hidden_dim, bias=bias))
            d = hidden_dim
        self.hidden = nn.ModuleList(layers)
        self.out = nn.Linear(d, out_dim, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.out_activation = out_activation
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, layer in enumerate(self.hidden):
            if i in self.skips:
                h = torch.cat([h, x], -1)
            h = self.act(layer(h))
        h = self.out(h)
        return self.out_activation(h) if self.out_activation is not None else h


class _TruncExp(torch.autograd.Function):
    """exp(x) with the gradient evaluated at min(x, 15) (instant-ngp / nerfacc density activation)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    return _TruncExp.apply(x)


class RadianceField(nn.Module):
    """Interface: ``density(x) -> sigma [N]`` and ``forward(x, d) -> (sigma [N], rgb [N, 3])`` for world points
    x [N, 3] and unit view directions d [N, 3]. ``aabb`` [2, 3] is the box the field lives in."""

    aabb: torch.Tensor

    def density(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """World points -> [0, 1]^3 box coordinates."""
        return (x - self.aabb[0]) / (self.aabb[1] - self.aabb[0])


class NGPField(RadianceField):
    """instant-ngp field: hash grid -> 1-hidden-layer density MLP -> (sigma, geometry features);
    SH(view direction) + geometry features -> 2-hidden-layer colour MLP (direction enters only here).

    Density uses ``trunc_exp``; colour a sigmoid. Points outside ``aabb`` get density 0. ``sh_degree`` is the
    highest SH band of the direction encoding (0..3; 3 gives instant-ngp's 16 bases).
    """

    def __init__(
        self,
        aabb: torch.Tensor,
        n_levels: int = 16,
        n_features_per_level: int = 2,
        log2_table_size: int = 19,
        base_resolution: int = 16,
        max_resolution: int = 2048,
        hidden_dim: int = 64,
        geo_feat_dim: int = 15,
        color_hidden: int = 2,
        sh_degree: int = 3,
        density_bias: float = -1.0,
        dense_max_entries: int | None = None,
    ):
        super().__init__()
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3).clone())
        self.encoding = HashGridEncoding(
            n_levels, n_features_per_level, log2_table_size, base_resolution, max_resolution,
            dense_max_entries=dense_max_entries,
        )
        self.density_mlp = MLP(self.encoding.out_dim, 1 + geo_feat_dim, hidden_dim, 1)
        self.dir_encoding = SphericalHarmonicsEncoding(sh_degree)
        self.color_mlp = MLP(self.dir_encoding.out_dim + geo_feat_dim, 3, hidden_dim, color_hidden)
        self.density_bias = density_bias

    def _geometry(self, x: torch.Tensor):
        u = self.normalize(x)
        inside = ((u >= 0) & (u <= 1)).all(-1)
        h = self.density_mlp(self.encoding(u))
        sigma = trunc_exp(h[:, 0] + self.density_bias) * inside
        return sigma, h[:, 1:]

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return self._geometry(x)[0]

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sigma, geo = self._geometry(x)
        rgb = torch.sigmoid(self.color_mlp(torch.cat([self.dir_encoding(d), geo], -1)))
        return sigma, rgb


class NeRFField(RadianceField):
    """The original NeRF MLP (Mildenhall et al. 2020): PE(x, 10) -> 8 x 256 ReLU (input skip at layer 4) ->
    sigma (ReLU) and a 256-d feature; [feature, PE(d, 4)] -> 128 -> RGB (sigmoid). The view direction enters late."""

    def __init__(
        self,
        aabb: torch.Tensor,
        pos_freqs: int = 10,
        dir_freqs: int = 4,
        hidden_dim: int = 256,
        n_layers: int = 8,
        skip: int = 4,
    ):
        super().__init__()
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3).clone())
        self.pos_enc = PositionalEncoding(3, pos_freqs)
        self.dir_enc = PositionalEncoding(3, dir_freqs)
        self.trunk = MLP(self.pos_enc.out_dim, hidden_dim + 1, hidden_dim, n_layers, skips=(skip,))
        self.color = MLP(hidden_dim + self.dir_enc.out_dim, 3, hidden_dim // 2, 1)

    def _trunk(self, x):
        u = 2 * self.normalize(x) - 1  # [-1, 1]^3
        h = self.trunk(self.pos_enc(u))
        return torch.relu(h[:, 0]), h[:, 1:]

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x)[0]

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sigma, feat = self._trunk(x)
        rgb = torch.sigmoid(self.color(torch.cat([feat, self.dir_enc(d)], -1)))
        return sigma, rgb
