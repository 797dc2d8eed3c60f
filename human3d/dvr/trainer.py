"""Differentiable volumetric rendering (DVR, Niemeyer et al. 2020) on the training core (:mod:`human3d.train`).

Each step draws ``optim.num_rays`` random pixels of the training views, marches their rays to the surface
(:func:`human3d.dvr.marching.march_rays`, no gradient), makes the hit depth differentiable with the implicit
gradient (:func:`human3d.dvr.depth.implicit_depth`), reads the texture at the hit point and applies DVR's losses
(:mod:`human3d.dvr.losses`). The run folder, resume rule, loop, checkpoints, evaluation and orbit videos come from
:class:`human3d.train.scene.SceneTrainer`; this module adds masks, mask IoU in ``metrics.json`` and MISE meshes.

Rays are in world units with unit directions, so the depth ``t`` is the distance along the ray; cameras are
OpenCV (as every loader returns them). Rendering is hard: a pixel shows the texture at its ray's hit, or the
background (``data.background``) when the ray misses.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from human3d.data.scenes import SceneSplit, load_scene
from human3d.dvr.config import DVRConfig, preset
from human3d.dvr.data import check_cameras, split_depths, split_masks
from human3d.dvr.depth import implicit_depth
from human3d.dvr.losses import depth_l1, fd_normals, freespace_loss, normal_smoothness, occupancy_loss, rgb_l1
from human3d.dvr.marching import march_rays, ray_box
from human3d.dvr.model import DVRField
from human3d.errors import DatasetError, Human3DError, InvalidInputError
from human3d.geometry.cameras import Cameras, pixel_centers, rays_at_pixels
from human3d.metrics import iou
from human3d.train.scene import SceneTrainer, evaluate_views, pick_views

__all__ = ["DVRTrainer", "steps_at"]


def steps_at(progress: float, start: int, final: int) -> int:
    """DVR's coarse-to-fine marching schedule: ``start`` steps doubled at even fractions of the run up to
    ``final`` (16 -> 32 -> 64 -> 128 at 0, 1/4, 1/2, 3/4 of the run)."""
    if start >= final:
        return int(final)
    levels = math.ceil(math.log2(final / start))
    k = min(levels, int(progress * (levels + 1)))
    return int(min(final, start * 2**k))


class DVRTrainer(SceneTrainer, kind="DVR", config_class=DVRConfig, default_config=preset,
                 progress_fields=("psnr_ema", "hit", "steps")):  # fmt: skip
    """Train / evaluate one DVR run: ``DVRTrainer(out, data, config=preset("fast"))`` (see
    :class:`human3d.train.core.Trainer` for the arguments and the resume rule; a new run defaults to the fast
    preset). ``data`` is any dataset :func:`human3d.data.scenes.load_scene` reads, with masks (alpha or files)."""

    # ----------------------------------------------------------------------------------------- data
    def __init__(self, *args, **kwargs):
        self._masks: dict[str, torch.Tensor | None] = {}
        self._downscale: float | None = None
        super().__init__(*args, **kwargs)

    def _load(self, split: str, downscale: float) -> SceneSplit:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            s = load_scene(self.data, split, downscale, background=self.config.data.background)
        for w in caught:
            warnings.warn(w.message, stacklevel=4)
        return s

    def load_split(self, split: str) -> SceneSplit:
        """A split at the run's resolution: ``data.downscale``, further reduced so that the long side is at most
        ``max_image_side`` (decided once from the training split)."""
        if split not in self._splits:
            d = float(self.config.data.downscale)
            if self._downscale is None:
                s = self._load("train", d)
                side = self.config.max_image_side
                if side and max(s.width, s.height) > side:
                    d = d * max(s.width, s.height) / side
                    s = self._load("train", d)
                self._downscale = d
                self._splits["train"] = s
            if split not in self._splits:
                self._splits[split] = self._load(split, self._downscale)
        return self._splits[split]

    def masks(self, split: str = "train", require: bool = True) -> torch.Tensor | None:
        """Object masks [N, H, W] of a split (alpha or mask files; see :mod:`human3d.dvr.data`)."""
        if split not in self._masks or (self._masks[split] is None and require):
            self._masks[split] = split_masks(self.load_split(split), self.data, require)
        return self._masks[split]

    # ----------------------------------------------------------------------------------------- subclass API
    def build(self) -> None:
        c = self.config
        s = self.train_split
        check_cameras(s, self.data)
        self.masks("train")
        box = torch.tensor(c.aabb, dtype=torch.float32).view(2, 3) if c.aabb else s.scene_bounds.float()
        f = c.field
        self.model = DVRField(box, f.n_levels, f.features_per_level, f.log2_table_size, f.base_resolution,
                              f.max_resolution, f.hidden, f.n_hidden, f.geo_features, f.init_radius,
                              f.init_slope).to(self.device)  # fmt: skip
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=c.optim.lr, eps=c.optim.adam_eps)
        self._depths_loaded = False

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.optimizer}

    def scene_center(self) -> torch.Tensor:
        return self.model.box.mean(0).cpu()

    # ----------------------------------------------------------------------------------------- training
    def before_train(self) -> None:
        s, dev = self.train_split, self.device
        self._images = s.images.reshape(-1, 3).to(dev)  # [N*H*W, 3]
        self._mask_flat = (self.masks("train") > 0.5).reshape(-1).to(dev)  # [N*H*W]
        self._K = s.cameras.K.to(dev)
        self._c2w = s.cameras.camera_to_world.to(dev)
        self._HW = (s.height, s.width)
        self._depth_flat = None
        if self.config.loss.depth > 0:
            dm = split_depths(s, self.data)
            if dm is None:
                raise DatasetError(f"loss.depth > 0 needs depth maps for every training image in "
                                   f"'{self.data}/depth/' (<split>/<name>.npy, camera z); set loss.depth=0")  # fmt: skip
            self._depth_flat = dm.reshape(-1).to(dev)

    def progress(self) -> float:
        """Steps over ``run.max_steps`` or elapsed time over the budget, whichever is further."""
        p = self.step / self.run.max_steps
        if self.run.time_budget_s:
            p = max(p, self.elapsed / self.run.time_budget_s)
        return min(1.0, p)

    def train_step(self) -> dict:
        c, o = self.config, self.config.optim
        model, dev = self.model, self.device
        model.train()
        lr = o.lr * o.lr_final_factor ** self.progress()
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        n_steps = steps_at(self.progress(), c.march.n_steps_start, c.march.n_steps)
        H, W = self._HW
        N = int(o.num_rays)
        flat = torch.randint(0, self._images.shape[0], (N,), generator=self.generator).to(dev)
        img, pix = flat // (H * W), flat % (H * W)
        uv = torch.stack([(pix % W).float() + 0.5, (pix // W).float() + 0.5], -1)  # [N, 2] pixel centres
        origins, dirs = rays_at_pixels(uv, self._K[img], self._c2w[img])  # [N, 3] unit directions
        m_gt = self._mask_flat[flat]  # [N] bool
        t0, t1, valid = ray_box(origins, dirs, model.box)
        level = c.march.level
        res = march_rays(model.logits, origins, dirs, t0, t1, n_steps, c.march.n_secant, level, c.march.step_chunk,
                         valid)  # fmt: skip
        hit = res.hit & valid
        t = implicit_depth(model.logits, list(model.parameters()), res.depth, origins, dirs, hit)  # [N]
        w = c.loss
        terms: dict[str, torch.Tensor] = {}
        ov = hit & m_gt
        psnr = float("nan")
        if bool(ov.any()) and w.rgb > 0:
            p = origins[ov] + t[ov, None] * dirs[ov]  # [M, 3] differentiable hit points
            _, rgb = model(p)
            target = self._images[flat[ov]]
            terms["rgb"] = w.rgb * rgb_l1(rgb, target, N)
            psnr = -10 * math.log10(max(float(((rgb.detach() - target) ** 2).mean()), 1e-10))
        free = ~m_gt & valid
        if bool(free.any()) and w.freespace > 0:
            u = torch.rand(N, generator=self.generator).to(dev)
            t_free = torch.where(hit, res.depth, t0 + u * (t1 - t0))[free]  # the wrong surface, else a ray point
            terms["freespace"] = w.freespace * freespace_loss(model.logits(origins[free] + t_free[:, None] * dirs[free]), N)
        miss = m_gt & ~hit & valid
        if bool(miss.any()) and w.occupancy > 0:
            p = origins[miss] + res.t_max[miss, None] * dirs[miss]  # the ray's most occupied marched point
            terms["occupancy"] = w.occupancy * occupancy_loss(model.logits(p), N)
        if bool(hit.any()) and w.normal > 0:
            ext = model.box[1] - model.box[0]
            p = (origins[hit] + res.depth[hit, None] * dirs[hit]).detach()
            q = p + torch.randn(p.shape, generator=self.generator).to(dev) * (w.normal_radius * float(ext.norm()))
            h = 0.5 * float(ext.max()) / c.field.max_resolution
            terms["normal"] = w.normal * normal_smoothness(fd_normals(model.logits, p, h), fd_normals(model.logits, q, h), N)
        if self._depth_flat is not None and w.depth > 0:
            z = self._depth_flat[flat]  # camera z; t = z / (d . camera forward)
            fwd = self._c2w[img, :3, 2]
            has = hit & (z > 0)
            if bool(has.any()):
                terms["depth"] = w.depth * depth_l1(t[has], z[has] / (dirs[has] * fwd[has]).sum(-1), N)
        loss = sum(terms.values()) if terms else None
        self.optimizer.zero_grad(set_to_none=True)
        if loss is not None and loss.requires_grad:
            loss.backward()
            self.optimizer.step()
        info = {"loss": float(loss.detach()) if loss is not None else 0.0, "psnr": psnr, "steps": n_steps,
                "hit": float(hit.float().mean()), "mask_iou": float(iou(hit, m_gt, dims=1)), "lr": lr}  # fmt: skip
        info.update({k: float(v.detach()) for k, v in terms.items()})
        return info

    # ----------------------------------------------------------------------------------------- rendering
    @torch.no_grad()
    def render_rays(self, origins: torch.Tensor, dirs: torch.Tensor, background: torch.Tensor) -> dict:
        """rgb [R, 3] (texture at the hit, else ``background`` [3]), alpha [R] (1 at hits) and depth [R] (0 at
        misses) of rays (origins, dirs [R, 3], unit directions), marched ``optim.render_chunk`` at a time."""
        c, model = self.config, self.model
        model.eval()
        rgb = background.to(origins).expand(origins.shape[0], 3).clone()
        alpha = torch.zeros(origins.shape[0], device=origins.device)
        depth = torch.zeros(origins.shape[0], device=origins.device)
        for s in range(0, origins.shape[0], int(c.optim.render_chunk)):
            o, d = origins[s : s + c.optim.render_chunk], dirs[s : s + c.optim.render_chunk]
            t0, t1, valid = ray_box(o, d, model.box)
            res = march_rays(model.logits, o, d, t0, t1, c.march.n_steps, c.march.n_secant, c.march.level,
                             c.march.step_chunk, valid)  # fmt: skip
            hit = res.hit & valid
            idx = hit.nonzero(as_tuple=True)[0]
            if idx.numel():
                _, col = model(o[idx] + res.depth[idx, None] * d[idx])
                rgb[s + idx] = col
                alpha[s + idx] = 1.0
                depth[s + idx] = res.depth[idx]
        return {"rgb": rgb, "alpha": alpha, "depth": depth}

    @torch.no_grad()
    def render_full(self, cameras: Cameras) -> tuple[torch.Tensor, torch.Tensor]:
        """rgb [C, H, W, 3] and coverage alpha [C, H, W] of ``cameras`` (OpenCV) with ``supersample^2`` rays per
        pixel (averaged), on ``data.background``."""
        ss = int(self.config.supersample)
        H, W = cameras.height, cameras.width
        dev = self.device
        bg = torch.tensor(self.config.data.background, dtype=torch.float32, device=dev)
        off = (torch.arange(ss, dtype=torch.float32, device=dev) + 0.5) / ss - 0.5  # sub-pixel offsets
        grid = torch.stack(torch.meshgrid(off, off, indexing="xy"), -1).reshape(-1, 2)  # [ss^2, 2] (du, dv)
        uv = pixel_centers(H, W, device=dev)[:, :, None, :] + grid  # [H, W, ss^2, 2]
        rgbs, alphas = [], []
        for i in range(len(cameras)):
            K, c2w = cameras.K[i].to(dev), cameras.camera_to_world[i].to(dev)
            o, d = rays_at_pixels(uv.reshape(-1, 2), K, c2w)
            out = self.render_rays(o.contiguous(), d, bg)
            rgbs.append(out["rgb"].view(H, W, -1, 3).mean(2))
            alphas.append(out["alpha"].view(H, W, -1).mean(2))
        return torch.stack(rgbs), torch.stack(alphas)

    def render(self, cameras: Cameras) -> torch.Tensor:
        """rgb [C, H, W, 3] of ``cameras`` (see :meth:`render_full`)."""
        return self.render_full(cameras)[0]

    @torch.no_grad()
    def evaluate(self, split: str = "test", max_views: int | None = None, write_images: bool = True,
                 out_dir=None) -> dict:  # fmt: skip
        """PSNR / SSIM (:meth:`SceneTrainer.evaluate`) plus the mask IoU (rendered coverage > 0.5 against the
        split's masks > 0.5, mean over views) in ``metrics.json``."""
        s = self.load_split(split)
        gt = self.masks(split, require=False)
        views = pick_views(len(s), max_views if max_views is not None else self.run.eval_max_views)
        preds, ious = {}, []
        t_start = time.perf_counter()
        for v in views:
            rgb, alpha = self.render_full(s.cameras[v : v + 1])
            preds[v] = rgb[0].clamp(0, 1).cpu()
            if gt is not None:
                ious.append(float(iou(alpha[0].cpu() > 0.5, gt[v] > 0.5, dims=2)))
        extra = {**self.eval_info(), "mask_iou": float(np.mean(ious)) if ious else None,
                 "mask_iou_per_view": ious, "dvr_render_s_per_view": (time.perf_counter() - t_start) / max(1, len(views)),
                 "supersample": int(self.config.supersample)}  # fmt: skip
        if gt is None:
            extra["mask_iou_note"] = "the split has no masks (no alpha channel, no mask files)"
        out_dir = Path(out_dir) if out_dir is not None else self.out / "eval" / s.split
        return evaluate_views(s, lambda v: preds[v], views, out_dir if write_images else None, extra,
                              requested_split=split)  # fmt: skip

    # ----------------------------------------------------------------------------------------- meshes
    def surface_field(self):
        """The surface as a negative-inside field on the CPU, x [N, 3] -> [N]: ``level - logit`` inside the scene
        box, positive outside it (so extracted meshes are closed even where the shape touches the box)."""
        model = self.model.cpu().eval()
        level = self.config.march.level
        lo, hi = model.box[0], model.box[1]
        margin = 0.01 * float((hi - lo).min())

        def fn(x):
            outside = torch.maximum(lo + margin - x, x - hi + margin).amax(-1)  # > 0 outside the shrunk box
            return torch.maximum(level - model.logits(x), outside * 100.0)

        return fn

    def extract_mesh(self, path, resolution: int | None = None, method: str = "mise") -> dict:
        """MISE (from 32^3) + marching cubes of the occupancy level set over the cube around the scene box; writes
        the mesh (format by suffix) atomically. Returns path, vertex / face counts, watertightness, evaluations."""
        from human3d.implicit.extract import extract_mesh
        from human3d.implicit.io import write_mesh
        from human3d.implicit.sampling import is_watertight

        resolution = int(resolution or self.config.mesh_resolution)
        box = self.model.box.cpu()
        lo, hi = float(box[0].min()), float(box[1].max())
        try:
            m = extract_mesh(self.surface_field(), resolution, method, 32, lo, hi, 0.0)
        except InvalidInputError as e:
            raise Human3DError(f"mesh: {e}") from None
        finally:
            self.model.to(self.device)
        write_mesh(path, m.vertices, m.faces, m.normals)
        return {"path": str(path), "vertices": len(m.vertices), "faces": len(m.faces),
                "watertight": bool(is_watertight(m.faces)), "evaluations": int(m.n_evaluations)}  # fmt: skip

    def finalize(self) -> dict[str, Path]:
        try:
            return {"mesh": Path(self.extract_mesh(self.out / "mesh.obj")["path"])}
        except Human3DError as e:  # an empty or box-filling field: the checkpoint is still the product
            warnings.warn(f"DVR: no mesh written ({e})", stacklevel=2)
            return {}
