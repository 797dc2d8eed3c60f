"""DVR's networks: occupancy ``f_theta(p)`` (as logits) and texture ``t_theta(p)`` from one hash-grid encoding.

Points are normalised to the scene box, ``u = 2 (p - lo) / (hi - lo) - 1`` in ``[-1, 1]^3``. The occupancy logit
is ``s (r - |u|) + g(u)``: a sphere of radius ``r`` (box half-extents) with slope ``s``, plus an MLP ``g`` whose
output layer starts at zero, so every run starts from exactly that sphere (DVR starts its multi-view runs from a
sphere too). Colour is ``sigmoid`` of a small MLP on the geometry features (view-independent, as in DVR).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from human3d.errors import InvalidInputError
from human3d.fields import MLP, HashGridEncoding

__all__ = ["DVRField"]


class DVRField(nn.Module):
    """Occupancy logits and RGB of points [N, 3] (world units) inside ``box`` [2, 3].

    Args:
        box: scene box (min, max) the hash grid covers (points outside are clamped onto it by the encoding).
        n_levels, features_per_level, log2_table_size, base_resolution, max_resolution: the hash grid.
        hidden: width of both MLPs; n_hidden: hidden layers of the occupancy MLP; geo_features: features passed
            from the occupancy MLP to the colour MLP.
        init_radius, init_slope: the starting sphere (radius in box half-extents, logit slope per half-extent).
    """

    def __init__(self, box: torch.Tensor, n_levels: int = 12, features_per_level: int = 2, log2_table_size: int = 17,
                 base_resolution: int = 16, max_resolution: int = 256, hidden: int = 64, n_hidden: int = 1,
                 geo_features: int = 15, init_radius: float = 0.75, init_slope: float = 10.0,
                 dense_max_entries: int | None = 1 << 21):  # fmt: skip
        super().__init__()
        box = torch.as_tensor(box, dtype=torch.float32).reshape(2, 3)
        if not bool((box[1] > box[0]).all()) or not torch.isfinite(box).all():
            raise InvalidInputError(f"box: expected (min, max) corners with max > min, got {box.tolist()}")
        if not (init_radius > 0 and init_slope > 0):
            raise InvalidInputError(f"init_radius / init_slope: expected > 0, got {init_radius}, {init_slope}")
        self.register_buffer("box", box)
        self.encoding = HashGridEncoding(n_levels, features_per_level, log2_table_size, base_resolution,
                                         max_resolution, dense_max_entries=dense_max_entries)  # fmt: skip
        d = self.encoding.out_dim + 3
        self.occupancy = MLP(d, 1 + geo_features, hidden, n_hidden)
        with torch.no_grad():  # zero logit output: the field starts as the sphere
            self.occupancy.out.weight[0].zero_()
            self.occupancy.out.bias[0] = 0.0
        self.texture = MLP(geo_features + 3, 3, hidden, 1)
        self.init_radius, self.init_slope = float(init_radius), float(init_slope)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """World points [N, 3] -> box coordinates in [-1, 1]^3."""
        return 2.0 * (x - self.box[0]) / (self.box[1] - self.box[0]) - 1.0

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u = self.normalize(x)  # [N, 3]
        h = self.occupancy(torch.cat([u, self.encoding(0.5 * (u + 1.0))], -1))  # [N, 1 + G]
        logit = self.init_slope * (self.init_radius - u.norm(dim=-1)) + h[:, 0]
        return logit, h[:, 1:], u

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Occupancy logits [N] of points [N, 3] (``sigmoid`` gives ``f_theta``; positive inside)."""
        return self._trunk(x)[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points [N, 3] -> (logits [N], rgb [N, 3] in [0, 1])."""
        logit, geo, u = self._trunk(x)
        return logit, torch.sigmoid(self.texture(torch.cat([geo, u], -1)))
