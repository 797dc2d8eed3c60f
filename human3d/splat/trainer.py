"""Gaussian-splatting training on the training core (:mod:`human3d.train`), and ``.ply`` export.

The run folder, resume rule, loop, checkpoints, evaluation and orbit videos come from
:class:`human3d.train.scene.SceneTrainer`; this module adds the Gaussians, their optimiser, the coarse-to-fine
batches and adaptive density control (run on the *virtual step*, see :mod:`human3d.splat.config`).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from human3d.errors import DatasetError, InvalidInputError, ModelFileError
from human3d.geometry.cameras import Cameras
from human3d.metrics import ssim
from human3d.splat.config import SplatConfig, preset
from human3d.splat.densify import DensityStats, accumulate_stats, densify_and_prune, reset_opacity
from human3d.splat.gaussians import PARAM_NAMES, Gaussians
from human3d.splat.ply import save_ply
from human3d.splat.rasterize import rasterize
from human3d.train.scene import SceneTrainer

__all__ = ["SplatTrainer", "scene_extent", "expon_lr"]


def scene_extent(cameras: Cameras) -> float:
    """3DGS scene extent: 1.1 x the largest distance of a camera centre from their mean."""
    c = cameras.centers
    return float((c - c.mean(0)).norm(dim=-1).max()) * 1.1 or 1.0


def expon_lr(step: float, lr_init: float, lr_final: float, max_steps: int) -> float:
    """Log-linear interpolation from ``lr_init`` to ``lr_final`` over ``max_steps`` (the reference schedule)."""
    t = min(max(step / max(max_steps, 1), 0.0), 1.0)
    if lr_init <= 0 or lr_final <= 0:
        return lr_init * (1 - t) + lr_final * t
    return math.exp(math.log(lr_init) * (1 - t) + math.log(lr_final) * t)


def _crossed(prev: float, cur: float, every: int) -> bool:
    """True when a multiple of ``every`` lies in (prev, cur]."""
    return every > 0 and math.floor(cur / every) > math.floor(prev / every)


_STATS = ("grad_accum", "count", "max_radius")


class SplatTrainer(SceneTrainer, kind="splat", config_class=SplatConfig, default_config=preset,
                   progress_fields=("psnr", "n_gaussians")):  # fmt: skip
    """Train / evaluate one Gaussian-splatting run: ``SplatTrainer(out, data, config=preset("fast"))`` (see
    :class:`human3d.train.core.Trainer` for the arguments and the resume rule; a new run defaults to the fast
    preset)."""


    # ----------------------------------------------------------------------------------------- subclass API
    def build(self) -> None:
        if self.config.raster.compile:
            import importlib

            importlib.import_module("human3d.splat.rasterize").set_compile(True)
        self._levels: dict = {}
        self._check_ssim_sizes()
        self.extent = scene_extent(self.train_split.cameras)
        self._last_width = self.train_split.width
        self.vstep = 0.0
        self._view_queue: list[int] = []
        self.background = torch.tensor(self.config.data.background, dtype=torch.float32, device=self.device)
        k = (self.config.sh_degree + 1) ** 2 - 1
        z = torch.zeros
        self._set_gaussians(Gaussians(z(1, 3), z(1, 3), torch.tensor([[1.0, 0, 0, 0]]), z(1), z(1, 1, 3), z(1, k, 3)))

    def _check_ssim_sizes(self) -> None:
        """The SSIM term needs images of at least 11 px (its window) at every level of the coarse-to-fine schedule."""
        o, s = self.config.optim, self.train_split
        if o.ssim_lambda <= 0:
            return
        for _, factor in o.resolution_schedule:
            w, h = max(1, round(s.width / float(factor))), max(1, round(s.height / float(factor)))
            if min(w, h) < 11:
                raise DatasetError(
                    f"{self.data}: training images of {s.width}x{s.height} px are {w}x{h} at the schedule's factor "
                    f"{float(factor):g}, below the SSIM loss's 11 px window; use larger images (a smaller "
                    f"--downscale), --set optim.resolution_schedule=() or --set optim.ssim_lambda=0")
        if min(s.width, s.height) < 11:
            raise DatasetError(f"{self.data}: training images of {s.width}x{s.height} px are below the SSIM loss's "
                               f"11 px window; use larger images or --set optim.ssim_lambda=0")

    def on_fresh_start(self) -> None:
        self._set_gaussians(self._init_gaussians())

    def _set_gaussians(self, g: Gaussians) -> None:
        self.gaussians = g.to(self.device)
        self.optimizer = self._make_optimizer()
        self.stats = DensityStats.zeros(len(self.gaussians), self.device)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"gauss.{k}": v for k, v in self.gaussians.tensors().items()}
        out.update({f"stats.{k}": getattr(self.stats, k) for k in _STATS})
        return out

    def load_state_tensors(self, tensors, state, path) -> None:
        try:
            g = Gaussians.from_tensors({k: tensors[f"gauss.{k}"] for k in PARAM_NAMES})
            g.check_finite(f"checkpoint '{path}'")
            stats = DensityStats(*(tensors[f"stats.{k}"].to(self.device) for k in _STATS))
        except KeyError as e:
            raise ModelFileError(f"checkpoint '{path}' is not a human3d splat checkpoint: no tensor {e}") from None
        except InvalidInputError as e:
            raise ModelFileError(str(e)) from None
        self._set_gaussians(g)
        self.stats = stats
        self.vstep = float(state.get("vstep", 0.0))
        self.extent = float(state.get("extent", self.extent))
        self._view_queue = [int(v) for v in state.get("view_queue", [])]

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.optimizer}

    def extra_state(self) -> dict:
        return {"vstep": self.vstep, "extent": self.extent, "view_queue": self._view_queue}

    # ----------------------------------------------------------------------------------------- setup
    def _init_gaussians(self) -> Gaussians:
        cfg, s = self.config, self.train_split
        init = cfg.init
        mode = init.mode
        if mode == "auto":
            mode = "points" if s.points3d is not None and len(s.points3d) > 0 else "random"
        if mode == "points":
            if s.points3d is None or len(s.points3d) == 0:
                raise DatasetError(f"dataset '{self.data}': init.mode='points' but the dataset has no sparse points")
            return Gaussians.from_points(s.points3d, s.points_rgb, cfg.sh_degree, init.opacity, init.scale_factor)
        lo, hi = s.scene_bounds[0], s.scene_bounds[1]
        c, h = (lo + hi) / 2, (hi - lo) / 2 * init.box_scale
        g = Gaussians.random_in_box(init.num_points, c - h, c + h, cfg.sh_degree, init.opacity, self.generator)
        if init.scale_factor != 1.0:
            with torch.no_grad():
                g.log_scales += math.log(init.scale_factor)
        return g

    def _make_optimizer(self) -> torch.optim.Optimizer:
        o, g = self.config.optim, self.gaussians
        lrs = {
            "means": o.lr_means * self.extent,
            "log_scales": o.lr_scales,
            "quats": o.lr_quats,
            "opacity_logits": o.lr_opacity,
            "sh_dc": o.lr_sh_dc,
            "sh_rest": o.lr_sh_rest,
        }
        groups = [{"params": [getattr(g, n)], "lr": lrs[n], "name": n} for n in PARAM_NAMES]
        return torch.optim.Adam(groups, lr=0.0, eps=o.adam_eps)

    def _level(self, factor: float) -> dict:
        """Training images, alphas and cameras at ``1 / factor`` of the run resolution (cached)."""
        if factor not in self._levels:
            s = self.train_split
            imgs, alphas, cams = s.images, s.alphas, s.cameras
            if factor != 1:
                W, H = max(1, round(s.width / factor)), max(1, round(s.height / factor))

                def resize(x):  # [N, H, W, C] area resampling
                    return F.interpolate(x.permute(0, 3, 1, 2), size=(H, W), mode="area").permute(0, 2, 3, 1).contiguous()

                imgs = resize(imgs)
                alphas = resize(alphas) if alphas is not None else None
                cams = Cameras(cams.K.clone(), cams.world_to_camera, W, H)
                cams.K[:, 0, :] *= W / s.width
                cams.K[:, 1, :] *= H / s.height
            self._levels[factor] = {
                "images": imgs.to(self.device),
                "alphas": None if alphas is None else alphas.to(self.device),
                "cameras": cams.to(self.device),
                "bg": None if s.background is None else s.background.to(self.device),
            }
        return self._levels[factor]

    def current_factor(self) -> float:
        f = 1.0
        for start, factor in sorted(self.config.optim.resolution_schedule, key=lambda x: float(x[0])):
            if self.vstep >= float(start):
                f = float(factor)
        return f

    def active_sh_degree(self) -> int:
        return min(self.config.sh_degree, int(self.vstep // self.config.sh_degree_interval))

    def _next_views(self, n: int) -> list[int]:
        out = []
        while len(out) < n:
            if not self._view_queue:
                self._view_queue = torch.randperm(len(self.train_split), generator=self.generator).tolist()
            out.append(self._view_queue.pop())
        return out

    # ----------------------------------------------------------------------------------------- rendering
    def rasterize(self, cameras: Cameras, sh_degree: int | None = None, background: torch.Tensor | None = None):
        """Render the current Gaussians from ``cameras`` -> (rgb [C, H, W, 3], alpha [C, H, W, 1], meta)."""
        g, r = self.gaussians, self.config.raster
        return rasterize(
            g.means, g.quats, g.scales, g.opacities, g.sh, cameras.world_to_camera, cameras.K,
            cameras.width, cameras.height, sh_degree=self.config.sh_degree if sh_degree is None else sh_degree,
            near_plane=r.near_plane, background=self.background if background is None else background,
            eps2d=r.eps2d, tile_size=r.tile_size, rasterize_mode=r.rasterize_mode, backend=r.backend, validate=False,
        )  # fmt: skip

    @torch.no_grad()
    def render(self, cameras: Cameras) -> torch.Tensor:
        """rgb [C, H, W, 3] of ``cameras`` (OpenCV) at the full SH degree, on ``data.background``."""
        return self.rasterize(cameras.to(self.device))[0]

    # ----------------------------------------------------------------------------------------- training
    def progress(self) -> float:
        """The time budget when one is set (``run.max_steps`` is then the schedule's virtual length), else steps."""
        if self.run.time_budget_s:
            return min(1.0, self.elapsed / self.run.time_budget_s)
        return min(1.0, self.step / self.run.max_steps)

    def train_step(self) -> dict:
        o = self.config.optim
        lvl = self._level(self.current_factor())
        views = self._next_views(o.batch_size)
        full = lvl["cameras"]
        K = full.K[views].clone()
        gt = lvl["images"][views]  # [B, H, W, 3]
        alphas = None if lvl["alphas"] is None else lvl["alphas"][views]
        W, H = full.width, full.height
        p = int(o.patch_size)
        if p and (W > p or H > p):  # random crop: shift the principal point
            pw, ph = min(p, W), min(p, H)
            x0 = int(torch.randint(0, W - pw + 1, (1,), generator=self.generator))
            y0 = int(torch.randint(0, H - ph + 1, (1,), generator=self.generator))
            K[:, 0, 2] -= x0
            K[:, 1, 2] -= y0
            gt = gt[:, y0 : y0 + ph, x0 : x0 + pw]
            alphas = None if alphas is None else alphas[:, y0 : y0 + ph, x0 : x0 + pw]
            W, H = pw, ph
        cams = Cameras(K, full.world_to_camera[views], W, H)
        bg = self.background
        if self.config.data.random_background and alphas is not None and lvl["bg"] is not None:
            bg = torch.rand(3, generator=self.generator).to(self.device)
            gt = gt + (1.0 - alphas) * (bg - lvl["bg"])
        for group in self.optimizer.param_groups:
            if group["name"] == "means":
                group["lr"] = expon_lr(self.vstep, o.lr_means * self.extent, o.lr_means_final * self.extent,
                                       self.run.max_steps)  # fmt: skip
        rgb, _, meta = self.rasterize(cams, self.active_sh_degree(), bg)
        self._last_width = full.width
        l1 = (rgb - gt).abs().mean()
        loss = (1.0 - o.ssim_lambda) * l1
        if o.ssim_lambda > 0:
            loss = loss + o.ssim_lambda * (1.0 - ssim(rgb, gt).mean())
        loss.backward()
        if self.vstep < self.config.densify.until_step and meta["means2d"].grad is not None:
            # NDC units and screen fractions of the whole image, also when training on a crop
            accumulate_stats(self.stats, meta["means2d"].grad, meta["visible"], meta["radius"], full.width,
                             full.height)  # fmt: skip
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            mse = F.mse_loss(rgb.detach(), gt)
        return {"loss": float(loss.detach()), "psnr": float(-10 * torch.log10(mse.clamp_min(1e-10))),
                "n_gaussians": len(self.gaussians), "n_fragments": meta.get("n_fragments", 0),
                "resolution": [cams.width, cams.height]}  # fmt: skip

    def after_step(self) -> dict:
        """Advance the virtual step; densification and opacity resets for the interval it crossed."""
        prev = self.vstep
        self.vstep = (self.run.max_steps * self.progress()) if self.run.time_budget_s else float(self.step)
        return self._schedule_events(prev, self.vstep)

    def _schedule_events(self, prev: float, cur: float) -> dict:
        """Densification and opacity resets for the virtual-step interval (prev, cur]."""
        d = self.config.densify
        info = {}
        if cur <= d.until_step and cur > d.from_step and _crossed(prev, cur, d.every):
            after_reset = d.opacity_reset_every > 0 and cur > d.opacity_reset_every
            thr = d.grad_threshold
            if d.grad_reference_width:
                thr *= self._last_width / float(d.grad_reference_width)
            info["densify"] = densify_and_prune(
                self.gaussians, self.optimizer, self.stats, self.extent, thr, d.percent_dense,
                d.prune_opacity, d.split_samples,
                d.max_screen_fraction if after_reset else None, d.max_world_fraction if after_reset else None,
                d.max_gaussians, self.generator,
            )  # fmt: skip
            self.stats = DensityStats.zeros(len(self.gaussians), self.device)
        if cur <= d.until_step and _crossed(prev, cur, d.opacity_reset_every):
            reset_opacity(self.gaussians, self.optimizer, d.opacity_reset_value)
            info["opacity_reset"] = True
        return info

    def train(self, callback=None, progress: bool = True) -> dict:
        return {**super().train(callback, progress), "n_gaussians": len(self.gaussians)}

    def finalize(self) -> dict[str, Path]:
        """Write ``RUN/point_cloud.ply`` (standard 3DGS layout)."""
        return {"ply": self.export_ply(self.out / "point_cloud.ply")}

    # ----------------------------------------------------------------------------------------- outputs
    def eval_info(self) -> dict:
        return {"n_gaussians": len(self.gaussians), **super().eval_info()}

    def export_ply(self, path) -> Path:
        """Write the Gaussians as a standard 3DGS ``.ply`` (atomically)."""
        return save_ply(self.gaussians, path)
