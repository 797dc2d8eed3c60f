"""NeRF models: a field plus its sampler, rendering batches of rays.

* :class:`NGPModel`: hash-grid field (:class:`human3d.fields.NGPField`) + occupancy-grid ray marching.
* :class:`PENeRFModel`: the classic positional-encoding NeRF, coarse + fine MLPs with stratified then hierarchical
  (inverse-CDF) sampling.

Both expose ``render_rays(origins, dirs, background, randomize, generator) -> RayOutput``, ``density(x)``,
``update_estimator(step, generator)`` (called by the trainer after every step) and ``param_groups()``.
Rays are world-space with unit directions.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from human3d.fields import NeRFField, NGPField
from human3d.geometry.cameras import generate_rays
from human3d.nerf.config import NerfConfig
from human3d.nerf.occupancy import OccupancyGrid
from human3d.nerf.rendering import volume_render
from human3d.nerf.samplers import hierarchical_samples, stratified_samples

__all__ = ["RayOutput", "NGPModel", "PENeRFModel", "build_model", "render_image"]


class RayOutput(NamedTuple):
    rgb: torch.Tensor  # [R, 3]
    depth: torch.Tensor  # [R]
    opacity: torch.Tensor  # [R]
    n_samples: int  # samples that went through the field with gradients
    rgb_coarse: torch.Tensor | None = None  # [R, 3] PE-NeRF coarse pass


class NGPModel(nn.Module):
    """instant-ngp: hash-grid field + occupancy grid (see :mod:`human3d.nerf.occupancy`)."""

    def __init__(self, config: NerfConfig, aabb: torch.Tensor, near: float, far: float):
        super().__init__()
        self.config = config
        aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3)
        self.field = NGPField(
            aabb,
            n_levels=config.n_levels,
            n_features_per_level=config.n_features_per_level,
            log2_table_size=config.log2_table_size,
            base_resolution=config.base_resolution,
            max_resolution=config.max_resolution,
            hidden_dim=config.hidden_dim,
            geo_feat_dim=config.geo_feat_dim,
            dense_max_entries=config.dense_max_entries,
        )
        self.grid = OccupancyGrid(aabb, config.grid_resolution)
        self.near, self.far = float(near), float(far)
        diag = float((aabb[1] - aabb[0]).norm())
        self.step_size = float(config.render_step_size or diag / 1024.0)

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return self.field.density(x)

    def param_groups(self) -> list[dict]:
        grids = list(self.field.encoding.parameters())
        ids = {id(p) for p in grids}
        mlps = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": grids, "weight_decay": 0.0}, {"params": mlps, "weight_decay": self.config.weight_decay}]

    @torch.no_grad()
    def update_estimator(self, step: int, generator: torch.Generator | None = None) -> None:
        c = self.config
        if step % c.grid_update_every != 0:
            return
        frac = c.grid_warmup_fraction if step < c.grid_warmup_steps else c.grid_update_fraction
        n = None if frac >= 1 else max(1, int(frac * self.grid.resolution**3))
        self.grid.update(self.field.density, self.step_size, n, c.occ_thre, c.ema_decay, generator)

    def render_rays(
        self,
        origins: torch.Tensor,
        dirs: torch.Tensor,
        background: torch.Tensor | None = None,
        randomize: bool = False,
        generator: torch.Generator | None = None,
    ) -> RayOutput:
        c = self.config

        def sigma_fn(samples, positions):
            return self.field.density(positions)

        samples = self.grid.march(
            origins, dirs, self.near, self.far, self.step_size, randomize, generator,
            sigma_fn=sigma_fn, early_stop_eps=c.early_stop_eps, alpha_thre=c.alpha_thre if randomize else 0.0,
        )  # fmt: skip
        R = origins.shape[0]
        if len(samples) == 0:
            z = origins.new_zeros(R)
            bg = origins.new_zeros(R, 3) if background is None else background.expand(R, 3).to(origins)
            return RayOutput(bg, z, z, 0)
        pos = samples.positions(origins, dirs)
        sigma, rgb = self.field(pos, dirs[samples.ray_indices])
        out = volume_render(sigma, rgb, samples.t_starts, samples.t_ends, samples.ray_indices, R, background)
        return RayOutput(out.rgb, out.depth, out.opacity, len(samples))


class PENeRFModel(nn.Module):
    """Positional-encoding NeRF with coarse + fine networks (the classic baseline)."""

    def __init__(self, config: NerfConfig, aabb: torch.Tensor, near: float, far: float):
        super().__init__()
        self.config = config
        aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3)
        kw = dict(pos_freqs=config.pos_freqs, dir_freqs=config.dir_freqs, hidden_dim=config.nerf_hidden,
                  n_layers=config.nerf_layers, skip=config.nerf_layers // 2)  # fmt: skip
        self.coarse = NeRFField(aabb, **kw)
        self.fine = NeRFField(aabb, **kw) if config.n_fine > 0 else None
        self.near, self.far = float(near), float(far)

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return (self.fine or self.coarse).density(x)

    def param_groups(self) -> list[dict]:
        return [{"params": list(self.parameters()), "weight_decay": self.config.weight_decay}]

    def update_estimator(self, step: int, generator=None) -> None:
        return None

    def render_rays(self, origins, dirs, background=None, randomize=False, generator=None) -> RayOutput:
        R = origins.shape[0]
        near = origins.new_full((R,), self.near)
        far = origins.new_full((R,), self.far)
        coarse, edges = stratified_samples(near, far, self.config.n_coarse, randomize, generator)
        d = dirs[coarse.ray_indices]
        sigma, rgb = self.coarse(coarse.positions(origins, dirs), d)
        out_c = volume_render(sigma, rgb, coarse.t_starts, coarse.t_ends, coarse.ray_indices, R, background)
        if self.fine is None:
            return RayOutput(out_c.rgb, out_c.depth, out_c.opacity, len(coarse))
        w = out_c.weights.view(R, -1)
        fine, _ = hierarchical_samples(edges, w, self.config.n_fine, randomize, generator)
        sigma, rgb = self.fine(fine.positions(origins, dirs), dirs[fine.ray_indices])
        out_f = volume_render(sigma, rgb, fine.t_starts, fine.t_ends, fine.ray_indices, R, background)
        return RayOutput(out_f.rgb, out_f.depth, out_f.opacity, len(coarse) + len(fine), out_c.rgb)


def build_model(config: NerfConfig, aabb: torch.Tensor, near: float, far: float) -> nn.Module:
    if config.model == "ngp":
        return NGPModel(config, aabb, near, far)
    return PENeRFModel(config, aabb, near, far)


@torch.no_grad()
def render_image(
    model: nn.Module, K: torch.Tensor, camera_to_world: torch.Tensor, width: int, height: int,
    background: torch.Tensor | None = None, chunk: int = 1 << 14,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """Render one OpenCV camera (K [3, 3], camera_to_world [4, 4]) -> rgb [H, W, 3], depth [H, W], opacity [H, W]."""
    dev = next(model.parameters()).device
    o, d = generate_rays(K[None].to(dev), camera_to_world[None].to(dev), width, height)
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    bg = None if background is None else background.to(dev)
    parts = [model.render_rays(o[i : i + chunk], d[i : i + chunk], bg) for i in range(0, o.shape[0], chunk)]
    rgb = torch.cat([p.rgb for p in parts]).view(height, width, 3)
    depth = torch.cat([p.depth for p in parts]).view(height, width)
    opacity = torch.cat([p.opacity for p in parts]).view(height, width)
    return {"rgb": rgb.clamp(0, 1), "depth": depth, "opacity": opacity}

