"""NeRF training on the training core (:mod:`human3d.train`), and mesh export.

The run folder, resume rule, loop, checkpoints, evaluation and orbit videos come from
:class:`human3d.train.scene.SceneTrainer`; this module adds the NeRF model, its ray batches, its learning-rate
schedule and marching-cubes mesh export.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from human3d.errors import Human3DError, InvalidInputError
from human3d.geometry.cameras import Cameras, rays_at_pixels
from human3d.io_utils import atomic_path
from human3d.nerf.config import NerfConfig, preset
from human3d.nerf.model import build_model, render_image
from human3d.train.scene import SceneTrainer

__all__ = ["LRSchedule", "NerfTrainer"]


@dataclass
class LRSchedule:
    """Learning-rate factor: linear warm-up from 0.01 over ``warmup_steps``, constant until ``decay_start``, then
    exponential decay to ``final_factor`` at ``progress = 1`` (progress: fraction of the steps or of the time
    budget done). A smooth version of nerfacc's x0.33 steps at 50/75/90 %."""

    warmup_steps: int = 100
    final_factor: float = 0.03
    decay_start: float = 0.5

    def factor(self, step: int, progress: float) -> float:
        warm = 1.0 if self.warmup_steps <= 0 else min(1.0, 0.01 + 0.99 * step / self.warmup_steps)
        p = min(max((progress - self.decay_start) / max(1e-8, 1.0 - self.decay_start), 0.0), 1.0)
        return warm * self.final_factor**p


class NerfTrainer(SceneTrainer, kind="NeRF", config_class=NerfConfig, default_config=preset,
                  progress_fields=("psnr_ema", "rays")):  # fmt: skip
    """Train / evaluate one NeRF run: ``NerfTrainer(out, data, config=preset("fast"))`` (see
    :class:`human3d.train.core.Trainer` for the arguments and the resume rule; a new run defaults to the fast
    preset)."""


    # ----------------------------------------------------------------------------------------- subclass API
    def build(self) -> None:
        c = self.config
        s = self.train_split
        self.near = float(c.near if c.near is not None else s.near)
        self.far = float(c.far if c.far is not None else s.far)
        aabb = torch.tensor(c.aabb, dtype=torch.float32).view(2, 3) if c.aabb else s.scene_bounds
        self.model = build_model(c, aabb, self.near, self.far).to(self.device)
        o = c.optim
        kw = dict(lr=o.lr, betas=tuple(o.adam_betas), eps=o.adam_eps)
        try:
            self.optimizer = torch.optim.Adam(self.model.param_groups(), fused=True, **kw)
        except (RuntimeError, TypeError):
            self.optimizer = torch.optim.Adam(self.model.param_groups(), **kw)
        self.schedule = LRSchedule(o.lr_warmup_steps, o.lr_final_factor, o.lr_decay_start)
        self.num_rays = int(o.num_rays)
        self.hull_fraction = None

    def on_fresh_start(self) -> None:
        s = self.train_split
        if self.config.estimator.init_from_masks and s.alphas is not None:
            self.hull_fraction = self.model.init_from_masks(s.cameras.K, s.cameras.world_to_camera, s.alphas[..., 0])

    def load_state_tensors(self, tensors, state, path) -> None:
        super().load_state_tensors(tensors, state, path)  # the model's state dict (the core's default)
        self.num_rays = int(state.get("num_rays", self.num_rays))

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.optimizer}

    def extra_state(self) -> dict:
        return {"num_rays": self.num_rays}

    # ----------------------------------------------------------------------------------------- batches
    def before_train(self) -> None:
        """Move the training rays' data to the device."""
        s = self.train_split
        dev = self.device
        self._images = s.images.reshape(-1, 3).to(dev)  # [N*H*W, 3]
        self._alphas = None
        if s.alphas is not None and self.config.data.random_background:
            self._alphas = s.alphas.reshape(-1).to(dev)
            self._scene_bg = s.background.to(dev)
        self._K = s.cameras.K.to(dev)
        self._c2w = s.cameras.camera_to_world.to(dev)
        self._HW = (s.height, s.width)

    def sample_batch(self, n: int):
        """Random rays of the training set -> origins [n, 3], dirs [n, 3], target rgb [n, 3], background [n, 3]."""
        H, W = self._HW
        flat = torch.randint(0, self._images.shape[0], (n,), generator=self.generator).to(self.device)
        img, pix = flat // (H * W), flat % (H * W)
        uv = torch.stack([(pix % W).float() + 0.5, (pix // W).float() + 0.5], -1)  # [n, 2] pixel centres
        origins, dirs = rays_at_pixels(uv, self._K[img], self._c2w[img])
        target = self._images[flat]
        if self._alphas is not None:
            bg = torch.rand(n, 3, generator=self.generator).to(self.device)
            target = target + (1.0 - self._alphas[flat, None]) * (bg - self._scene_bg)
        else:
            bg = torch.tensor(self.config.data.background, device=self.device).expand(n, 3)
        return origins, dirs, target, bg

    # ----------------------------------------------------------------------------------------- training
    def progress(self) -> float:
        """NeRF stops at ``run.max_steps`` or at the time budget, whichever comes first."""
        p = self.step / self.run.max_steps
        if self.run.time_budget_s:
            p = max(p, self.elapsed / self.run.time_budget_s)
        return min(1.0, p)

    def train_step(self) -> dict:
        o = self.config.optim
        self.model.train()
        f = self.schedule.factor(self.step, self.progress())
        for g in self.optimizer.param_groups:
            g["lr"] = o.lr * f
        origins, dirs, target, bg = self.sample_batch(self.num_rays)
        out = self.model.render_rays(origins, dirs, bg, randomize=True, generator=self.generator)
        mse = F.mse_loss(out.rgb, target)
        loss = mse
        if out.rgb_coarse is not None:
            loss = loss + F.mse_loss(out.rgb_coarse, target)
        self.optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            self.optimizer.step()
        self.model.update_estimator(self.step + 1, self.generator)
        if self.model.adaptive_rays and out.n_samples > 0:
            self.num_rays = int(min(o.max_rays, max(64, self.num_rays * o.target_samples / out.n_samples)))
        return {
            "loss": float(loss.detach()),
            "psnr": float(-10 * math.log10(max(float(mse.detach()), 1e-10))),
            "rays": origins.shape[0],
            "samples": out.n_samples,
            "lr": o.lr * f,
        }

    # ----------------------------------------------------------------------------------------- rendering
    @torch.no_grad()
    def render(self, cameras: Cameras) -> torch.Tensor:
        """rgb [C, H, W, 3] of ``cameras`` (OpenCV), on the background colour of ``data.background``."""
        self.model.eval()
        bg = torch.tensor(self.config.data.background, dtype=torch.float32)
        c2w = cameras.camera_to_world
        return torch.stack([render_image(self.model, cameras.K[i], c2w[i], cameras.width, cameras.height, bg,
                                         self.config.render_chunk)["rgb"] for i in range(len(cameras))])  # fmt: skip

    def scene_center(self) -> torch.Tensor:
        return self.model.aabb.mean(0).cpu()

    @torch.no_grad()
    def extract_mesh(self, path, resolution: int = 256, threshold: float = 10.0, chunk: int = 1 << 16) -> dict:
        """Marching cubes (skimage) on the density sampled on a ``resolution^3`` grid over the scene box (zero in
        cells the occupancy grid marks empty); vertex colours from the field seen along the inward normal.
        Writes the mesh (trimesh; PLY, OBJ, GLB or STL by the suffix) atomically."""
        import trimesh
        from skimage.measure import marching_cubes

        if int(resolution) < 2:
            raise InvalidInputError(f"resolution: expected at least 2 cells per axis, got {resolution}")
        aabb = self.model.aabb.cpu()
        lin = [torch.linspace(float(aabb[0, a]), float(aabb[1, a]), resolution) for a in range(3)]
        pts = torch.stack(torch.meshgrid(*lin, indexing="ij"), -1).reshape(-1, 3)
        self.model.eval()
        dens = torch.cat([self.model.masked_density(pts[i : i + chunk].to(self.device)).cpu()
                          for i in range(0, len(pts), chunk)])  # fmt: skip
        vol = dens.view(resolution, resolution, resolution).numpy()
        if not (vol.max() > threshold > vol.min()):
            raise Human3DError(
                f"mesh: density range [{vol.min():.3g}, {vol.max():.3g}] does not cross the threshold {threshold}"
            )
        spacing = tuple(float((aabb[1, a] - aabb[0, a]) / (resolution - 1)) for a in range(3))
        verts, faces, normals, _ = marching_cubes(vol, level=threshold, spacing=spacing)
        verts = verts + aabb[0].numpy()
        # skimage normals point towards decreasing values (outwards for density): view along -normal
        v = torch.tensor(verts, dtype=torch.float32)
        d = -F.normalize(torch.tensor(normals.copy(), dtype=torch.float32), dim=-1)
        cols = [self.model.radiance(v[i : i + chunk].to(self.device), d[i : i + chunk].to(self.device)).cpu()
                for i in range(0, len(v), chunk)]  # fmt: skip
        rgb = (torch.cat(cols).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        mesh = trimesh.Trimesh(verts, faces, vertex_colors=rgb, process=False)
        path = Path(path)
        with atomic_path(path) as tmp:  # the format follows the suffix (PLY keeps the vertex colours)
            mesh.export(str(tmp), file_type=path.suffix.lstrip(".").lower() or "ply")
        return {"path": str(path), "vertices": len(verts), "faces": len(faces)}
