"""NeRF training, checkpoints, evaluation, orbit videos and mesh export.

A run folder holds ``run.json`` (config + dataset path), ``checkpoint.safetensors`` (model, occupancy grid,
optimiser state and RNG states as tensors; step/ray count/elapsed time as JSON metadata; written atomically),
``log.jsonl`` (loss and PSNR every ``log_every`` steps) and the outputs of ``evaluate`` / ``render_orbit`` / ``mesh``.
Training resumes from the checkpoint when the folder already has one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from human3d.data.scenes import SceneSplit, load_scene
from human3d.errors import Human3DError, InvalidInputError, ModelFileError
from human3d.geometry.cameras import invert_rigid
from human3d.io_utils import atomic_path
from human3d.nerf.config import NerfConfig
from human3d.nerf.model import build_model, render_image
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

__all__ = ["LRSchedule", "NerfTrainer", "RUN_FILE", "CHECKPOINT_FILE"]


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


class NerfTrainer:
    """Train / evaluate one NeRF run.

    Args:
        config: :class:`NerfConfig`. When resuming, the run's saved config is used except for ``max_steps`` and
            ``time_budget_s``, which come from ``config`` when one is given (to train a run further).
        data: dataset folder (Blender or COLMAP, see :func:`human3d.data.scenes.load_scene`).
        out: run folder (created; an existing checkpoint there is resumed).
    """

    def __init__(self, config: NerfConfig | None, data, out, resume: bool = True):
        self.out = Path(out)
        run_file = self.out / RUN_FILE
        if resume and run_file.is_file():
            saved = read_run(self.out)
            budget = {} if config is None else {"max_steps": config.max_steps, "time_budget_s": config.time_budget_s}
            config = NerfConfig.from_dict({**saved["config"], **budget})  # a resumed run keeps its model config
            data = data if data is not None else saved["data"]
        if config is None or data is None:
            raise InvalidInputError("NerfTrainer: need a config and a dataset path (or a run folder to resume)")
        self.config = config.validate()
        self.data = Path(data).expanduser().resolve()
        if self.config.threads:
            torch.set_num_threads(int(self.config.threads))
        self.device = resolve_device(self.config.device)
        self._train: SceneSplit | None = None
        torch.manual_seed(self.config.seed)
        self.generator = torch.Generator(device="cpu").manual_seed(self.config.seed)
        scene = self._scene_meta()
        self.near = float(self.config.near if self.config.near is not None else scene["near"])
        self.far = float(self.config.far if self.config.far is not None else scene["far"])
        aabb = torch.tensor(self.config.aabb, dtype=torch.float32).view(2, 3) if self.config.aabb else scene["aabb"]
        self.model = build_model(self.config, aabb, self.near, self.far).to(self.device)
        self.optimizer = self._make_optimizer()
        self.schedule = LRSchedule(self.config.lr_warmup_steps, self.config.lr_final_factor, self.config.lr_decay_start)
        self.step = 0
        self.elapsed = 0.0
        self.num_rays = int(self.config.num_rays)
        self.out.mkdir(parents=True, exist_ok=True)
        if resume and (self.out / CHECKPOINT_FILE).is_file():
            self.load_checkpoint(self.out / CHECKPOINT_FILE)
        else:
            self._init_grid()
            write_run(self.out, self.config.to_dict(), self.data)

    # ----------------------------------------------------------------------------------------- setup
    @classmethod
    def from_run(cls, run_dir, data=None) -> "NerfTrainer":
        """Open an existing run (config, data path and checkpoint from the folder)."""
        return cls(None, data, check_run_folder(run_dir, "NeRF"), resume=True)

    def _scene_meta(self) -> dict:
        """near/far/aabb of the dataset (loads the training split)."""
        s = self.train_split
        return {"near": s.near, "far": s.far, "aabb": s.scene_bounds}

    @property
    def train_split(self) -> SceneSplit:
        if self._train is None:
            self._train = load_scene(self.data, "train", self.config.downscale, background=self.config.background)
        return self._train

    def _init_grid(self) -> None:
        s = self.train_split
        grid = getattr(self.model, "grid", None)
        if grid is not None and self.config.init_grid_from_masks and s.alphas is not None:
            kept = grid.carve_from_masks(s.cameras.K, s.cameras.world_to_camera, s.alphas[..., 0])
            self.hull_fraction = kept

    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        kw = dict(lr=c.lr, betas=tuple(c.adam_betas), eps=c.adam_eps)
        try:
            return torch.optim.Adam(self.model.param_groups(), fused=True, **kw)
        except (RuntimeError, TypeError):
            return torch.optim.Adam(self.model.param_groups(), **kw)

    # ----------------------------------------------------------------------------------------- batches
    def prepare(self) -> None:
        """Move the training rays' data to the device (done by :meth:`train`; call it before :meth:`train_step`)."""
        s = self.train_split
        dev = self.device
        self._images = s.images.reshape(-1, 3).to(dev)  # [N*H*W, 3]
        self._alphas = None
        if s.alphas is not None and self.config.random_background:
            self._alphas = s.alphas.reshape(-1).to(dev)
            self._scene_bg = s.background.to(dev)
        self._K = s.cameras.K.to(dev)
        self._c2w = s.cameras.camera_to_world.to(dev)
        self._HW = (s.height, s.width)

    def sample_batch(self, n: int):
        """Random rays of the training set -> origins [n, 3], dirs [n, 3], target rgb [n, 3], background [n, 3]."""
        H, W = self._HW
        total = self._images.shape[0]
        flat = torch.randint(0, total, (n,), generator=self.generator).to(self.device)
        img = flat // (H * W)
        pix = flat % (H * W)
        i, j = (pix // W).float(), (pix % W).float()
        K = self._K[img]
        d_cam = torch.stack([(j + 0.5 - K[:, 0, 2]) / K[:, 0, 0], (i + 0.5 - K[:, 1, 2]) / K[:, 1, 1], torch.ones_like(i)], -1)
        c2w = self._c2w[img]
        dirs = F.normalize((c2w[:, :3, :3] @ d_cam[..., None])[..., 0], dim=-1)
        origins = c2w[:, :3, 3]
        target = self._images[flat]
        if self._alphas is not None:
            bg = torch.rand(n, 3, generator=self.generator).to(self.device)
            target = target + (1.0 - self._alphas[flat, None]) * (bg - self._scene_bg)
        else:
            bg = torch.tensor(self.config.background, device=self.device).expand(n, 3)
        return origins, dirs, target, bg

    # ----------------------------------------------------------------------------------------- training
    def progress(self) -> float:
        p = self.step / self.config.max_steps
        if self.config.time_budget_s:
            p = max(p, self.elapsed / self.config.time_budget_s)
        return p

    def done(self) -> bool:
        return self.progress() >= 1.0

    def train_step(self) -> dict:
        """One optimisation step; returns loss, PSNR, rays and samples of the batch."""
        c = self.config
        self.model.train()
        f = self.schedule.factor(self.step, self.progress())
        for g in self.optimizer.param_groups:
            g["lr"] = c.lr * f
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
        self.step += 1
        self.model.update_estimator(self.step, self.generator)
        if c.model == "ngp" and out.n_samples > 0:
            self.num_rays = int(min(c.max_rays, max(64, self.num_rays * c.target_samples / out.n_samples)))
        return {
            "loss": float(loss.detach()),
            "psnr": float(-10 * math.log10(max(float(mse.detach()), 1e-10))),
            "rays": origins.shape[0],
            "samples": out.n_samples,
            "lr": c.lr * f,
        }

    def train(self, callback: Callable[["NerfTrainer", dict], None] | None = None, progress: bool = True) -> dict:
        """Train until ``max_steps`` (or the time budget); checkpoints every ``checkpoint_every`` steps and at the end.

        ``callback(trainer, info)`` runs after every step (an exception there stops training; the last checkpoint
        stays valid for resuming).
        """
        from tqdm.auto import tqdm

        c = self.config
        self.prepare()
        total = c.max_steps
        bar = tqdm(total=total, initial=self.step, disable=not progress, desc="nerf", dynamic_ncols=True)
        log_path = self.out / "log.jsonl"
        psnr_ema = None
        last = {}
        try:
            while not self.done():
                t0 = time.perf_counter()
                info = self.train_step()
                self.elapsed += time.perf_counter() - t0
                psnr_ema = info["psnr"] if psnr_ema is None else 0.9 * psnr_ema + 0.1 * info["psnr"]
                info.update(step=self.step, elapsed=self.elapsed, psnr_ema=psnr_ema)
                last = info
                bar.update(1)
                bar.set_postfix(loss=f"{info['loss']:.4f}", psnr=f"{psnr_ema:.2f}", rays=info["rays"])
                if self.step % c.log_every == 0:
                    with open(log_path, "a") as fh:
                        fh.write(json.dumps(info) + "\n")
                if self.step % c.checkpoint_every == 0:
                    self.save_checkpoint()
                if callback is not None:
                    callback(self, info)
        finally:
            bar.close()
        self.save_checkpoint()
        plot_training_log(self.out, "NeRF training")
        return {"step": self.step, "elapsed_s": self.elapsed, **{k: v for k, v in last.items() if k != "step"}}

    # ----------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, path=None) -> Path:
        """Write model + optimiser + RNG state atomically (safetensors; JSON metadata)."""
        path = Path(path) if path is not None else self.out / CHECKPOINT_FILE
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt = self.optimizer.state_dict()
        for idx, st in opt["state"].items():
            for k, v in st.items():
                tensors[f"optim.{idx}.{k}"] = v
        tensors["rng.generator"] = self.generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]} for g in opt["param_groups"]]
        meta = {
            "step": self.step,
            "elapsed": self.elapsed,
            "num_rays": self.num_rays,
            "param_groups": groups,
            "config": self.config.to_dict(),
        }
        return save_checkpoint_file(path, tensors, meta)

    def load_checkpoint(self, path) -> None:
        path = Path(path)
        tensors, meta = load_checkpoint_file(path, "NeRF")
        model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(model_sd)
        except RuntimeError as e:
            raise ModelFileError(f"checkpoint '{path}' does not match the run's model configuration: {e}") from e
        state: dict = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, idx, name = k.split(".", 2)
                state.setdefault(int(idx), {})[name] = v.to(self.device) if name != "step" else v
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        self.generator.set_state(tensors["rng.generator"])
        torch.set_rng_state(tensors["rng.torch"])
        self.step, self.elapsed, self.num_rays = int(meta["step"]), float(meta["elapsed"]), int(meta["num_rays"])

    # ----------------------------------------------------------------------------------------- evaluation
    def load_eval_split(self, split: str = "test") -> SceneSplit:
        return load_split(self.data, split, self.config.downscale, self.config.background)

    @torch.no_grad()
    def render_view(self, K: torch.Tensor, c2w: torch.Tensor, width: int, height: int) -> dict:
        self.model.eval()
        bg = torch.tensor(self.config.background, dtype=torch.float32)
        return render_image(self.model, K, c2w, width, height, bg, self.config.eval_chunk)

    @torch.no_grad()
    def evaluate(
        self, split: str = "test", max_views: int | None = None, write_images: bool = True, out_dir=None
    ) -> dict:
        """Render the ``split`` views (``test`` falls back to ``val`` when missing), compute PSNR / SSIM, write
        ``<out_dir>/<split>/NNN.png`` and ``metrics.json``. LPIPS is reported as unavailable (no offline weights)."""
        s = self.load_eval_split(split)
        max_views = max_views if max_views is not None else self.config.eval_max_views
        out_dir = Path(out_dir) if out_dir is not None else self.out / "eval" / s.split
        c2w = s.cameras.camera_to_world

        def render(v: int) -> torch.Tensor:
            return self.render_view(s.cameras.K[v], c2w[v], s.width, s.height)["rgb"].cpu()

        extra = {"step": self.step, "train_elapsed_s": self.elapsed}
        return evaluate_views(s, render, pick_views(len(s), max_views), out_dir if write_images else None, extra,
                              requested_split=split)  # fmt: skip

    @torch.no_grad()
    def render_split(self, split: str = "test", out_dir=None) -> list[Path]:
        s = self.load_eval_split(split)
        out_dir = Path(out_dir) if out_dir is not None else self.out / "renders" / s.split
        c2w = s.cameras.camera_to_world
        paths = []
        for v in range(len(s)):
            r = self.render_view(s.cameras.K[v], c2w[v], s.width, s.height)
            paths.append(write_png(out_dir / f"{v:03d}.png", r["rgb"].cpu()))
        return paths

    def orbit_cameras(self, n_frames: int) -> torch.Tensor:
        """camera-to-world [n, 4, 4] (OpenCV) circling the scene at the training cameras' mean radius/elevation."""
        s = self.train_split
        center = self.model.grid.aabb.mean(0).cpu() if hasattr(self.model, "grid") else s.scene_bounds.mean(0)
        return invert_rigid(orbit_world_to_camera(s.cameras.camera_to_world, center, n_frames))

    @torch.no_grad()
    def render_orbit(self, n_frames: int, video_path, fps: int = 24) -> Path:
        """Render an orbit of ``n_frames`` views and write an MP4 (H.264 via imageio-ffmpeg) atomically."""
        if int(n_frames) < 1:
            raise InvalidInputError(f"orbit: expected at least 1 frame, got {n_frames}")
        s = self.train_split
        K = s.cameras.K[0]
        frames = (self.render_view(K, c2w, s.width, s.height)["rgb"] for c2w in self.orbit_cameras(int(n_frames)))
        return write_video(frames, video_path, fps)

    @torch.no_grad()
    def extract_mesh(self, path, resolution: int = 256, threshold: float = 10.0, chunk: int = 1 << 16) -> dict:
        """Marching cubes (skimage) on the density sampled on a ``resolution^3`` grid over the scene box (zero in
        cells the occupancy grid marks empty); vertex colours from the field seen along the inward normal.
        Writes a PLY (trimesh) atomically."""
        import trimesh
        from skimage.measure import marching_cubes

        aabb = (self.model.grid.aabb if hasattr(self.model, "grid") else self.model.coarse.aabb).cpu()
        lin = [torch.linspace(float(aabb[0, a]), float(aabb[1, a]), resolution) for a in range(3)]
        pts = torch.stack(torch.meshgrid(*lin, indexing="ij"), -1).reshape(-1, 3)
        self.model.eval()
        grid = getattr(self.model, "grid", None)

        def density(x):  # empty where the occupancy grid says so (e.g. carved away by the masks)
            d = self.model.density(x)
            return d * grid.occupied(x) if grid is not None else d

        dens = torch.cat([density(pts[i : i + chunk].to(self.device)).cpu() for i in range(0, len(pts), chunk)])
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
        cols = []
        field = getattr(self.model, "field", None) or self.model.fine or self.model.coarse
        for i in range(0, len(v), chunk):
            cols.append(field(v[i : i + chunk].to(self.device), d[i : i + chunk].to(self.device))[1].cpu())
        rgb = (torch.cat(cols).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        mesh = trimesh.Trimesh(verts, faces, vertex_colors=rgb, process=False)
        path = Path(path)
        with atomic_path(path) as tmp:
            mesh.export(str(tmp), file_type="ply")
        return {"path": str(path), "vertices": len(verts), "faces": len(faces)}

