"""NeRF models: a field plus its sampler, rendering batches of rays.

* :class:`NGPModel`: hash-grid field (:class:`human3d.fields.NGPField`) + occupancy-grid ray marching.
* :class:`PENeRFModel`: the classic positional-encoding NeRF, coarse + fine MLPs with stratified then hierarchical
  (inverse-CDF) sampling.

Both expose ``render_rays(origins, dirs, background, randomize, generator) -> RayOutput``, ``density(x)``,
``masked_density(x)``, ``radiance(x, d)``, ``aabb``, ``init_from_masks(K, w2c, alphas)``,
``update_estimator(step, generator)`` (called by the trainer after every step), ``param_groups()`` and
``adaptive_rays`` (whether the trainer adapts the ray count to a sample budget).
Rays are world-space with unit directions.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
import torch.nn as nn

from human3d.fields import NeRFField, NGPField
from human3d.geometry.cameras import generate_rays
from human3d.nerf.config import NerfConfig, NGPFieldConfig, PEFieldConfig
from human3d.nerf.occupancy import OccGridEstimator
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
    """instant-ngp: hash-grid field + the occupancy-grid estimator it owns (see :mod:`human3d.nerf.occupancy`).

    Args:
        aabb: scene box [2, 3] (world units). near, far: ray bounds. field: the hash-grid field's settings.
        estimator: the occupancy-grid estimator. weight_decay: of the MLPs (not the grids).
    """

    adaptive_rays = True  # the trainer adapts the ray count to a sample budget

    def __init__(self, aabb, near: float, far: float, field: NGPFieldConfig, estimator: OccGridEstimator,
                 weight_decay: float = 0.0):  # fmt: skip
        super().__init__()
        aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3)
        self.field = NGPField(aabb, **dataclasses.asdict(field))
        self.estimator = estimator
        self.near, self.far = float(near), float(far)
        self.weight_decay = float(weight_decay)

    @property
    def aabb(self) -> torch.Tensor:  # [2, 3]
        return self.estimator.aabb

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return self.field.density(x)

    def masked_density(self, x: torch.Tensor) -> torch.Tensor:
        """Density, zero where the occupancy grid says empty (e.g. carved away by the masks)."""
        return self.field.density(x) * self.estimator.occupied(x)

    def radiance(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Colour [N, 3] at points x [N, 3] seen along unit directions d [N, 3]."""
        return self.field(x, d)[1]

    def init_from_masks(self, K: torch.Tensor, world_to_camera: torch.Tensor, alphas: torch.Tensor) -> float:
        """Start the grid from the masks' visual hull; returns the fraction of cells kept."""
        return self.estimator.grid.carve_from_masks(K, world_to_camera, alphas)

    def param_groups(self) -> list[dict]:
        grids = list(self.field.encoding.parameters())
        ids = {id(p) for p in grids}
        mlps = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": grids, "weight_decay": 0.0}, {"params": mlps, "weight_decay": self.weight_decay}]

    @torch.no_grad()
    def update_estimator(self, step: int, generator: torch.Generator | None = None) -> None:
        self.estimator.update(step, self.field.density, generator)

    def render_rays(
        self,
        origins: torch.Tensor,
        dirs: torch.Tensor,
        background: torch.Tensor | None = None,
        randomize: bool = False,
        generator: torch.Generator | None = None,
    ) -> RayOutput:
        samples = self.estimator.sample(origins, dirs, self.near, self.far, self.field.density, randomize, generator)
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
    """Positional-encoding NeRF with coarse + fine networks (the classic baseline).

    Args:
        aabb: scene box [2, 3] (positions are normalised to it). near, far: ray bounds. pe: the MLPs' and
            samplers' settings. weight_decay: of all weights.
    """

    adaptive_rays = False

    def __init__(self, aabb, near: float, far: float, pe: PEFieldConfig, weight_decay: float = 0.0):
        super().__init__()
        aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3)
        self.register_buffer("_aabb", aabb.clone())
        kw = dict(pos_freqs=pe.pos_freqs, dir_freqs=pe.dir_freqs, hidden_dim=pe.hidden_dim, n_layers=pe.n_layers,
                  skip=pe.n_layers // 2)  # fmt: skip
        self.coarse = NeRFField(aabb, **kw)
        self.fine = NeRFField(aabb, **kw) if pe.n_fine > 0 else None
        self.n_coarse, self.n_fine = int(pe.n_coarse), int(pe.n_fine)
        self.near, self.far = float(near), float(far)
        self.weight_decay = float(weight_decay)

    @property
    def aabb(self) -> torch.Tensor:  # [2, 3]
        return self._aabb

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return (self.fine or self.coarse).density(x)

    masked_density = density

    def radiance(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return (self.fine or self.coarse)(x, d)[1]

    def init_from_masks(self, K, world_to_camera, alphas) -> float | None:
        return None  # no estimator to carve

    def param_groups(self) -> list[dict]:
        return [{"params": list(self.parameters()), "weight_decay": self.weight_decay}]

    def update_estimator(self, step: int, generator=None) -> None:
        return None

    def render_rays(self, origins, dirs, background=None, randomize=False, generator=None) -> RayOutput:
        R = origins.shape[0]
        near = origins.new_full((R,), self.near)
        far = origins.new_full((R,), self.far)
        coarse, edges = stratified_samples(near, far, self.n_coarse, randomize, generator)
        d = dirs[coarse.ray_indices]
        sigma, rgb = self.coarse(coarse.positions(origins, dirs), d)
        out_c = volume_render(sigma, rgb, coarse.t_starts, coarse.t_ends, coarse.ray_indices, R, background)
        if self.fine is None:
            return RayOutput(out_c.rgb, out_c.depth, out_c.opacity, len(coarse))
        w = out_c.weights.view(R, -1)
        fine, _ = hierarchical_samples(edges, w, self.n_fine, randomize, generator)
        sigma, rgb = self.fine(fine.positions(origins, dirs), dirs[fine.ray_indices])
        out_f = volume_render(sigma, rgb, fine.t_starts, fine.t_ends, fine.ray_indices, R, background)
        return RayOutput(out_f.rgb, out_f.depth, out_f.opacity, len(coarse) + len(fine), out_c.rgb)


def build_model(config: NerfConfig, aabb: torch.Tensor, near: float, far: float) -> nn.Module:
    """The model ``config.model`` names, over the scene box ``aabb`` [2, 3] and ray bounds [near, far]."""
    wd = config.optim.weight_decay
    if config.model == "ngp":
        e = config.estimator
        estimator = OccGridEstimator(aabb, e.resolution, e.render_step_size, e.update_every, e.warmup_steps,
                                     e.warmup_fraction, e.update_fraction, e.occ_thre, e.ema_decay, e.alpha_thre,
                                     e.early_stop_eps)  # fmt: skip
        return NGPModel(aabb, near, far, config.field, estimator, wd)
    return PENeRFModel(aabb, near, far, config.pe, wd)


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

