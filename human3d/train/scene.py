"""Scene trainers (NeRF, Gaussian splatting, DVR): the dataset, evaluation, split rendering and orbit videos.

A scene model implements ``render(cameras) -> rgb [C, H, W, 3]`` (in [0, 1], on any device) on top of
:class:`human3d.train.core.Trainer`; everything that turns renders into files and figures lives here, once.
Cameras follow :mod:`human3d.geometry.cameras` (OpenCV: x right, y down, z forward; world-to-camera 4x4).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from human3d.config import Config
from human3d.data.scenes import SceneSplit, load_scene
from human3d.errors import InvalidInputError
from human3d.geometry.cameras import Cameras, look_at
from human3d.io_utils import atomic_path, atomic_write_text
from human3d.metrics import psnr, ssim
from human3d.render.overlay import save_png
from human3d.train.core import Trainer

__all__ = [
    "SceneDataConfig",
    "SceneTrainer",
    "evaluate_views",
    "pick_views",
    "orbit_world_to_camera",
    "write_image",
    "write_video",
]


@dataclass
class SceneDataConfig(Config):
    """How a scene dataset (Blender or COLMAP, :func:`human3d.data.scenes.load_scene`) is read for training."""

    downscale: float = 1.0
    """Divide the image size by this factor when loading the dataset."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Background colour RGBA images are composited on for evaluation (nerf_synthetic protocol: white)."""
    random_background: bool = True
    """Train on a random background colour when the images have alpha (teaches empty space to be transparent)."""

    def validate(self) -> None:
        if not (math.isfinite(self.downscale) and self.downscale >= 1):
            raise InvalidInputError(f"data.downscale: expected a number >= 1, got {self.downscale}")
        if len(self.background) != 3 or not all(0.0 <= float(c) <= 1.0 for c in self.background):
            raise InvalidInputError(f"data.background: expected three values in [0, 1], got {list(self.background)}")


def pick_views(n: int, max_views: int | None) -> list[int]:
    """All ``n`` views, or ``max_views`` evenly spaced ones (first and last included)."""
    if not max_views or max_views >= n:
        return list(range(n))
    return np.linspace(0, n - 1, max_views).round().astype(int).tolist()


def write_image(path, img: torch.Tensor) -> Path:
    """Write ``img`` [H, W, 3] in [0, 1] as an 8-bit PNG, atomically (through :func:`human3d.render.overlay.save_png`)."""
    arr = (img.detach().float().cpu().clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    return save_png(path, arr)


def write_video(frames: Iterable[torch.Tensor], path, fps: int = 24) -> Path:
    """Write frames ([H, W, 3] in [0, 1]) as an H.264 MP4 (imageio-ffmpeg), atomically; odd sizes are padded."""
    import imageio.v2 as imageio

    path = Path(path)
    if int(fps) < 1:
        raise InvalidInputError(f"fps: expected a positive integer, got {fps}")
    with atomic_path(path) as tmp:
        with imageio.get_writer(str(tmp), format="FFMPEG", fps=int(fps), codec="libx264", macro_block_size=1,
                                ffmpeg_log_level="error") as w:  # fmt: skip
            for f in frames:
                img = (f.detach().cpu().clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
                H, W = img.shape[:2]
                w.append_data(np.pad(img, ((0, H % 2), (0, W % 2), (0, 0)), mode="edge"))  # H.264: even sizes
    return path


def evaluate_views(
    split: SceneSplit,
    render: Callable[[int], torch.Tensor],
    views: Iterable[int],
    out_dir: Path | None,
    extra: dict | None = None,
    requested_split: str | None = None,
) -> dict:
    """PSNR / SSIM of ``render(view) -> rgb [H, W, 3]`` (CPU, [0, 1]) against the split's images.

    Writes ``<out_dir>/NNN.png`` and ``<out_dir>/metrics.json`` unless ``out_dir`` is None. LPIPS is not computed
    (its pretrained weights cannot be had offline) and is reported as such.
    """
    views = list(views)
    per_view = []
    t0 = time.perf_counter()
    for v in views:
        pred = render(v)
        gt = split.images[v]
        per_view.append({"view": int(v), "image": split.image_paths[v].name, "psnr": float(psnr(pred, gt)),
                         "ssim": float(ssim(pred, gt))})  # fmt: skip
        if out_dir is not None:
            write_image(Path(out_dir) / f"{v:03d}.png", pred)
    metrics = {
        "split": split.split,
        "requested_split": requested_split or split.split,
        "n_views": len(views),
        "psnr": float(np.mean([p["psnr"] for p in per_view])),
        "ssim": float(np.mean([p["ssim"] for p in per_view])),
        "lpips": None,
        "lpips_note": "LPIPS not computed: its pretrained network weights are not available offline",
        **(extra or {}),
        "render_s_per_view": (time.perf_counter() - t0) / max(1, len(views)),
        "resolution": [split.width, split.height],
        "views": per_view,
    }
    if out_dir is not None:
        atomic_write_text(Path(out_dir) / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


def orbit_world_to_camera(camera_to_world: torch.Tensor, center: torch.Tensor, n_frames: int) -> torch.Tensor:
    """world-to-camera [n, 4, 4] (OpenCV) circling ``center`` [3] at the mean distance and height of the given
    cameras (``camera_to_world`` [N, 4, 4], OpenCV), starting beside the first one; "up" is their mean image-up."""
    if int(n_frames) < 1:
        raise InvalidInputError(f"orbit: expected at least 1 frame, got {n_frames}")
    c2w = camera_to_world.detach().float().cpu()
    center = center.detach().float().cpu()
    up = F.normalize(-c2w[:, :3, 1].mean(0), dim=0)  # OpenCV camera -y is image-up
    rel = c2w[:, :3, 3] - center  # [N, 3]
    radius = float(rel.norm(dim=-1).mean())
    height = float((rel @ up).mean())
    a = F.normalize(rel[0] - (rel[0] @ up) * up, dim=0)
    b = torch.linalg.cross(up, a)
    ring = math.sqrt(max(radius**2 - height**2, 1e-6))
    th = torch.linspace(0, 2 * math.pi, int(n_frames) + 1)[:-1]
    eyes = center + ring * (torch.cos(th)[:, None] * a + torch.sin(th)[:, None] * b) + height * up  # [n, 3]
    return look_at(eyes, center.expand(int(n_frames), 3), up.expand(int(n_frames), 3))


class SceneTrainer(Trainer):
    """A :class:`Trainer` over a scene dataset whose model renders cameras to images.

    The config has a ``data: SceneDataConfig`` component. Subclasses implement ``render(cameras) -> rgb
    [C, H, W, 3]`` (values in [0, 1]; used under ``no_grad`` here) and may override :meth:`scene_center`.
    """

    def __init__(self, *args, **kwargs):
        self._splits: dict[str, SceneSplit] = {}
        super().__init__(*args, **kwargs)

    # ----------------------------------------------------------------------------------------- data
    def load_split(self, split: str) -> SceneSplit:
        """A split of the run's dataset at the run's resolution (cached); warnings (e.g. "no test split, using
        val") surface at the caller."""
        if split not in self._splits:
            d = self.config.data  # type: ignore[attr-defined]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._splits[split] = load_scene(self.data, split, d.downscale, background=d.background)
            for w in caught:
                warnings.warn(w.message, stacklevel=3)
        return self._splits[split]

    @property
    def train_split(self) -> SceneSplit:
        return self.load_split("train")

    def render(self, cameras: Cameras) -> torch.Tensor:
        """Subclass: rgb [C, H, W, 3] in [0, 1] of ``cameras``."""
        raise NotImplementedError

    def scene_center(self) -> torch.Tensor:
        """Centre [3] the orbit circles (default: the centre of the dataset's scene box)."""
        return self.train_split.scene_bounds.mean(0)

    # ----------------------------------------------------------------------------------------- outputs
    @torch.no_grad()
    def render_view(self, cameras: Cameras) -> torch.Tensor:
        """rgb [H, W, 3] on the CPU, clamped to [0, 1], of the first of ``cameras``."""
        return self.render(cameras[:1].to(self.device))[0].clamp(0, 1).cpu()

    def eval_info(self) -> dict:
        """Extra figures written beside PSNR / SSIM in ``metrics.json`` (subclass may add, e.g. the Gaussian count)."""
        return {"step": self.step, "train_elapsed_s": self.elapsed}

    @torch.no_grad()
    def evaluate(self, split: str = "test", max_views: int | None = None, write_images: bool = True,
                 out_dir=None) -> dict:  # fmt: skip
        """Render the ``split`` views (``test`` falls back to ``val`` when missing), compute PSNR / SSIM, write
        ``<out_dir>/NNN.png`` and ``metrics.json`` (default ``RUN/eval/<split>``). ``max_views`` defaults to
        ``run.eval_max_views``."""
        s = self.load_split(split)
        max_views = max_views if max_views is not None else self.run.eval_max_views
        out_dir = Path(out_dir) if out_dir is not None else self.out / "eval" / s.split
        return evaluate_views(s, lambda v: self.render_view(s.cameras[v : v + 1]), pick_views(len(s), max_views),
                              out_dir if write_images else None, self.eval_info(), requested_split=split)  # fmt: skip

    @torch.no_grad()
    def render_split(self, split: str = "test", out_dir=None) -> list[Path]:
        """Render every view of ``split`` to ``<out_dir>/NNN.png`` (default ``RUN/renders/<split>``)."""
        s = self.load_split(split)
        out_dir = Path(out_dir) if out_dir is not None else self.out / "renders" / s.split
        return [write_image(out_dir / f"{v:03d}.png", self.render_view(s.cameras[v : v + 1])) for v in range(len(s))]

    def orbit_cameras(self, n_frames: int) -> Cameras:
        """Cameras (OpenCV) circling :meth:`scene_center` at the training cameras' mean radius and height, with
        the first training camera's intrinsics."""
        s = self.train_split
        w2c = orbit_world_to_camera(s.cameras.camera_to_world, self.scene_center(), n_frames)
        return Cameras(s.cameras.K[:1].expand(len(w2c), 3, 3).clone(), w2c, s.width, s.height)

    @torch.no_grad()
    def render_orbit(self, n_frames: int, video_path, fps: int = 24) -> Path:
        """Render an orbit of ``n_frames`` views and write an MP4 (H.264 via imageio-ffmpeg) atomically."""
        cams = self.orbit_cameras(int(n_frames))
        return write_video((self.render_view(cams[i : i + 1]) for i in range(len(cams))), video_path, fps)
