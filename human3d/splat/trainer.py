"""Gaussian-splatting training, checkpoints, evaluation, orbit videos and ``.ply`` export.

A run folder holds ``run.json`` (config + dataset path), ``checkpoint.safetensors`` (Gaussians, Adam moments,
density statistics and RNG states as tensors; step, elapsed time and schedule state as JSON metadata; written
atomically), ``log.jsonl`` (loss, PSNR and Gaussian count every ``log_every`` steps) and the outputs of
``evaluate`` / ``render_split`` / ``render_orbit`` / ``export_ply``. Training resumes from the checkpoint when
the folder already has one.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from human3d.data.scenes import SceneSplit, load_scene
from human3d.errors import DatasetError, InvalidInputError, ModelFileError
from human3d.geometry.cameras import Cameras
from human3d.metrics import ssim
from human3d.runs import (
    CHECKPOINT_FILE,
    RUN_FILE,
    check_run_folder,
    evaluate_views,
    load_checkpoint_file,
    load_split,
    orbit_world_to_camera,
    pick_views,
    plot_training_log,
    read_run,
    resolve_device,
    save_checkpoint_file,
    write_png,
    write_run,
    write_video,
)
from human3d.splat.config import SplatConfig
from human3d.splat.densify import DensityStats, accumulate_stats, densify_and_prune, reset_opacity
from human3d.splat.gaussians import PARAM_NAMES, Gaussians
from human3d.splat.ply import save_ply
from human3d.splat.rasterize import rasterize

__all__ = ["SplatTrainer", "scene_extent", "expon_lr", "RUN_FILE", "CHECKPOINT_FILE"]


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


class SplatTrainer:
    """Train / evaluate one Gaussian-splatting run.

    Args:
        config: :class:`SplatConfig` (ignored when resuming: the run's saved config is used).
        data: dataset folder (Blender or COLMAP, see :func:`human3d.data.scenes.load_scene`).
        out: run folder (created; an existing checkpoint there is resumed when ``resume``).
    """

    def __init__(self, config: SplatConfig | None, data, out, resume: bool = True):
        self.out = Path(out)
        run_file = self.out / RUN_FILE
        if resume and run_file.is_file():
            saved = read_run(self.out)
            config = SplatConfig.from_dict(saved["config"])
            data = data if data is not None else saved["data"]
        if config is None or data is None:
            raise InvalidInputError("SplatTrainer: need a config and a dataset path (or a run folder to resume)")
        self.config = config.validate()
        self.data = Path(data).expanduser().resolve()
        if self.config.threads:
            torch.set_num_threads(int(self.config.threads))
        self.device = resolve_device(self.config.device)
        if self.config.compile:
            import importlib

            importlib.import_module("human3d.splat.rasterize").set_compile(True)
        torch.manual_seed(self.config.seed)
        self.generator = torch.Generator(device="cpu").manual_seed(self.config.seed)
        self._train: SceneSplit | None = None
        self._levels: dict = {}
        self.extent = scene_extent(self.train_split.cameras)
        self.step = 0
        self._last_width = self.train_split.width
        self.vstep = 0.0
        self.elapsed = 0.0
        self._view_queue: list[int] = []
        self.background = torch.tensor(self.config.background, dtype=torch.float32, device=self.device)
        self.out.mkdir(parents=True, exist_ok=True)
        if resume and (self.out / CHECKPOINT_FILE).is_file():
            self.gaussians = self._empty_gaussians()
            self.optimizer = self._make_optimizer()
            self.load_checkpoint(self.out / CHECKPOINT_FILE)
        else:
            self.gaussians = self._init_gaussians().to(self.device)
            self.optimizer = self._make_optimizer()
            self.stats = DensityStats.zeros(len(self.gaussians), self.device)
            write_run(self.out, self.config.to_dict(), self.data)

    # ----------------------------------------------------------------------------------------- setup
    @classmethod
    def from_run(cls, run_dir, data=None) -> "SplatTrainer":
        """Open an existing run (config, data path and checkpoint from the folder)."""
        return cls(None, data, check_run_folder(run_dir, "splat"), resume=True)

    @property
    def train_split(self) -> SceneSplit:
        if self._train is None:
            self._train = load_scene(self.data, "train", self.config.downscale, background=self.config.background)
        return self._train

    def _empty_gaussians(self) -> Gaussians:
        k = (self.config.sh_degree + 1) ** 2 - 1
        z = torch.zeros
        return Gaussians(z(1, 3), z(1, 3), torch.tensor([[1.0, 0, 0, 0]]), z(1), z(1, 1, 3), z(1, k, 3)).to(self.device)

    def _init_gaussians(self) -> Gaussians:
        cfg, s = self.config, self.train_split
        mode = cfg.init
        if mode == "auto":
            mode = "points" if s.points3d is not None and len(s.points3d) > 0 else "random"
        if mode == "points":
            if s.points3d is None or len(s.points3d) == 0:
                raise DatasetError(f"dataset '{self.data}': init='points' but the dataset has no sparse points")
            return Gaussians.from_points(s.points3d, s.points_rgb, cfg.sh_degree, cfg.init_opacity, cfg.init_scale_factor)
        lo, hi = s.scene_bounds[0], s.scene_bounds[1]
        c, h = (lo + hi) / 2, (hi - lo) / 2 * cfg.init_box_scale
        g = Gaussians.random_in_box(cfg.init_num_points, c - h, c + h, cfg.sh_degree, cfg.init_opacity, self.generator)
        if cfg.init_scale_factor != 1.0:
            with torch.no_grad():
                g.log_scales += math.log(cfg.init_scale_factor)
        return g

    def _make_optimizer(self) -> torch.optim.Optimizer:
        cfg, g = self.config, self.gaussians
        lrs = {
            "means": cfg.lr_means * self.extent,
            "log_scales": cfg.lr_scales,
            "quats": cfg.lr_quats,
            "opacity_logits": cfg.lr_opacity,
            "sh_dc": cfg.lr_sh_dc,
            "sh_rest": cfg.lr_sh_rest,
        }
        groups = [{"params": [getattr(g, n)], "lr": lrs[n], "name": n} for n in PARAM_NAMES]
        return torch.optim.Adam(groups, lr=0.0, eps=cfg.adam_eps)

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
        for start, factor in sorted(self.config.resolution_schedule, key=lambda x: float(x[0])):
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
    def render(self, cameras: Cameras, sh_degree: int | None = None, background: torch.Tensor | None = None):
        """Render the current Gaussians from ``cameras`` -> (rgb [C, H, W, 3], alpha [C, H, W, 1], meta)."""
        g = self.gaussians
        return rasterize(
            g.means, g.quats, g.scales, g.opacities, g.sh, cameras.world_to_camera, cameras.K,
            cameras.width, cameras.height, sh_degree=self.config.sh_degree if sh_degree is None else sh_degree,
            near_plane=self.config.near_plane, background=self.background if background is None else background,
            eps2d=self.config.eps2d, tile_size=self.config.tile_size, rasterize_mode=self.config.rasterize_mode,
            backend=self.config.backend, validate=False,
        )  # fmt: skip

    # ----------------------------------------------------------------------------------------- training
    def train_step(self) -> dict:
        cfg = self.config
        lvl = self._level(self.current_factor())
        views = self._next_views(cfg.batch_size)
        full = lvl["cameras"]
        K = full.K[views].clone()
        gt = lvl["images"][views]  # [B, H, W, 3]
        alphas = None if lvl["alphas"] is None else lvl["alphas"][views]
        W, H = full.width, full.height
        p = int(cfg.patch_size)
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
        if cfg.random_background and alphas is not None and lvl["bg"] is not None:
            bg = torch.rand(3, generator=self.generator).to(self.device)
            gt = gt + (1.0 - alphas) * (bg - lvl["bg"])
        for group in self.optimizer.param_groups:
            if group["name"] == "means":
                group["lr"] = expon_lr(self.vstep, cfg.lr_means * self.extent, cfg.lr_means_final * self.extent,
                                       cfg.iterations)  # fmt: skip
        rgb, _, meta = self.render(cams, self.active_sh_degree(), bg)
        self._last_width = full.width
        l1 = (rgb - gt).abs().mean()
        loss = (1.0 - cfg.ssim_lambda) * l1
        if cfg.ssim_lambda > 0:
            loss = loss + cfg.ssim_lambda * (1.0 - ssim(rgb, gt).mean())
        loss.backward()
        densifying = self.vstep < cfg.densify_until
        if densifying and meta["means2d"].grad is not None:
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

    def _schedule_events(self, prev: float, cur: float) -> dict:
        """Densification and opacity resets for the virtual-step interval (prev, cur]."""
        cfg = self.config
        info = {}
        if cur <= cfg.densify_until and cur > cfg.densify_from and _crossed(prev, cur, cfg.densify_every):
            after_reset = cfg.opacity_reset_every > 0 and cur > cfg.opacity_reset_every
            thr = cfg.grad_threshold
            if cfg.grad_reference_width:
                thr *= self._last_width / float(cfg.grad_reference_width)
            info["densify"] = densify_and_prune(
                self.gaussians, self.optimizer, self.stats, self.extent, thr, cfg.percent_dense,
                cfg.prune_opacity, cfg.split_samples,
                cfg.max_screen_fraction if after_reset else None, cfg.max_world_fraction if after_reset else None,
                cfg.max_gaussians, self.generator,
            )  # fmt: skip
            self.stats = DensityStats.zeros(len(self.gaussians), self.device)
        if cur <= cfg.densify_until and _crossed(prev, cur, cfg.opacity_reset_every):
            reset_opacity(self.gaussians, self.optimizer, cfg.opacity_reset_value)
            info["opacity_reset"] = True
        return info

    def progress(self) -> float:
        if self.config.time_budget_s:
            return min(1.0, self.elapsed / self.config.time_budget_s)
        return min(1.0, self.step / self.config.iterations)

    def done(self) -> bool:
        return self.progress() >= 1.0

    def train(self, callback: Callable[["SplatTrainer", dict], None] | None = None, progress: bool = True) -> dict:
        """Train until ``iterations`` (or ``time_budget_s``) is reached, checkpointing on the way; returns the last log."""
        from tqdm.auto import tqdm

        cfg = self.config
        total = cfg.iterations if not cfg.time_budget_s else None
        bar = tqdm(total=total, initial=self.step if total else 0, disable=not progress, desc="splat", unit="step",
                   dynamic_ncols=True)  # fmt: skip
        last: dict = {}
        log_path = self.out / "log.jsonl"
        try:
            clock = time.process_time if cfg.budget_clock == "process" else time.perf_counter
            while not self.done():
                t0 = clock()
                info = self.train_step()
                self.step += 1
                prev = self.vstep
                t1 = clock()
                self.elapsed += t1 - t0
                self.vstep = (cfg.iterations * self.progress()) if cfg.time_budget_s else float(self.step)
                info.update(self._schedule_events(prev, self.vstep))
                self.elapsed += clock() - t1
                info["step"] = self.step
                last = info
                if self.step % cfg.log_every == 0 or self.done():
                    rec = {k: info[k] for k in ("step", "loss", "psnr", "n_gaussians", "n_fragments")}
                    rec["elapsed_s"] = round(self.elapsed, 3)
                    with open(log_path, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
                bar.update(1)
                bar.set_postfix(loss=f"{info['loss']:.4f}", psnr=f"{info['psnr']:.2f}", n=info["n_gaussians"])
                if self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                if callback is not None:
                    callback(self, info)
        finally:
            bar.close()
        self.save_checkpoint()
        plot_training_log(self.out, "Gaussian splatting training")
        return {"step": self.step, "elapsed_s": self.elapsed, **{k: v for k, v in last.items() if k != "step"},
                "n_gaussians": len(self.gaussians)}  # fmt: skip

    # ----------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, path=None) -> Path:
        """Write Gaussians + Adam moments + statistics + RNG state atomically (safetensors; JSON metadata)."""
        path = Path(path) if path is not None else self.out / CHECKPOINT_FILE
        tensors = {f"gauss.{k}": v for k, v in self.gaussians.tensors().items()}
        for group in self.optimizer.param_groups:
            st = self.optimizer.state.get(group["params"][0], {})
            for k, v in st.items():
                tensors[f"optim.{group['name']}.{k}"] = v
        for k in ("grad_accum", "count", "max_radius"):
            tensors[f"stats.{k}"] = getattr(self.stats, k)
        tensors["rng.generator"] = self.generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        meta = {"step": self.step, "vstep": self.vstep, "elapsed": self.elapsed, "extent": self.extent,
                "view_queue": self._view_queue, "config": self.config.to_dict()}  # fmt: skip
        return save_checkpoint_file(path, tensors, meta)

    def load_checkpoint(self, path) -> None:
        path = Path(path)
        tensors, meta = load_checkpoint_file(path, "splat")
        try:
            params = {k: tensors[f"gauss.{k}"] for k in PARAM_NAMES}
        except KeyError as e:
            raise ModelFileError(f"checkpoint '{path}' is not a human3d splat checkpoint: no tensor {e}") from e
        try:
            g = Gaussians.from_tensors(params)
            g.check_finite(f"checkpoint '{path}'")
        except InvalidInputError as e:
            raise ModelFileError(str(e)) from e
        self.gaussians = g.to(self.device)
        self.optimizer = self._make_optimizer()
        for group in self.optimizer.param_groups:
            st = {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"optim.{group['name']}.")}
            if st:
                self.optimizer.state[group["params"][0]] = {k: v.to(self.device) if k != "step" else v for k, v in st.items()}
        self.stats = DensityStats(*(tensors[f"stats.{k}"].to(self.device) for k in ("grad_accum", "count", "max_radius")))
        self.generator.set_state(tensors["rng.generator"])
        torch.set_rng_state(tensors["rng.torch"])
        self.step, self.vstep, self.elapsed = int(meta["step"]), float(meta["vstep"]), float(meta["elapsed"])
        self.extent = float(meta["extent"])
        self._view_queue = list(meta.get("view_queue", []))

    # ----------------------------------------------------------------------------------------- outputs
    def export_ply(self, path) -> Path:
        """Write the Gaussians as a standard 3DGS ``.ply`` (atomically)."""
        return save_ply(self.gaussians, path)

    def load_eval_split(self, split: str = "test") -> SceneSplit:
        return load_split(self.data, split, self.config.downscale, self.config.background)

    @torch.no_grad()
    def render_view(self, cameras: Cameras) -> torch.Tensor:
        """rgb [H, W, 3] of a single camera, clamped to [0, 1]."""
        rgb, _, _ = self.render(cameras.to(self.device))
        return rgb[0].clamp(0, 1).cpu()

    @torch.no_grad()
    def evaluate(self, split: str = "test", max_views: int | None = None, write_images: bool = True,
                 out_dir=None) -> dict:  # fmt: skip
        """Render the ``split`` views (``test`` falls back to ``val`` when missing), compute PSNR / SSIM, write
        ``<out_dir>/<split>/NNN.png`` and ``metrics.json``."""
        s = self.load_eval_split(split)
        max_views = max_views if max_views is not None else self.config.eval_max_views
        out_dir = Path(out_dir) if out_dir is not None else self.out / "eval" / s.split
        extra = {"n_gaussians": len(self.gaussians), "step": self.step, "train_elapsed_s": self.elapsed}
        return evaluate_views(s, lambda v: self.render_view(s.cameras[v]), pick_views(len(s), max_views),
                              out_dir if write_images else None, extra, requested_split=split)  # fmt: skip

    @torch.no_grad()
    def render_split(self, split: str = "test", out_dir=None) -> list[Path]:
        s = self.load_eval_split(split)
        out_dir = Path(out_dir) if out_dir is not None else self.out / "renders" / s.split
        return [write_png(out_dir / f"{v:03d}.png", self.render_view(s.cameras[v])) for v in range(len(s))]

    def orbit_cameras(self, n_frames: int) -> Cameras:
        """Cameras circling the scene at the training cameras' mean radius and height (OpenCV)."""
        s = self.train_split
        w2c = orbit_world_to_camera(s.cameras.camera_to_world, s.scene_bounds.mean(0), n_frames)
        return Cameras(s.cameras.K[:1].expand(len(w2c), 3, 3).clone(), w2c, s.width, s.height)

    @torch.no_grad()
    def render_orbit(self, n_frames: int, video_path, fps: int = 24) -> Path:
        """Render an orbit of ``n_frames`` views and write an MP4 (H.264 via imageio-ffmpeg) atomically."""
        cams = self.orbit_cameras(int(n_frames))
        return write_video((self.render_view(cams[i]) for i in range(len(cams))), video_path, fps)
