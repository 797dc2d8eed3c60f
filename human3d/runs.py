"""What the NeRF and splatting trainers share: run folders, safetensors checkpoints, evaluation, PNGs and orbits.

A *run folder* holds ``run.json`` (the config and the dataset path), ``checkpoint.safetensors`` (tensors plus a
JSON ``state`` entry in the safetensors metadata, written atomically), ``log.jsonl`` and the outputs of
evaluation and rendering. Cameras follow :mod:`human3d.geometry.cameras` (OpenCV, world-to-camera 4x4).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from human3d.data.scenes import SceneSplit, load_scene
from human3d.errors import DatasetError, InvalidInputError, ModelFileError
from human3d.geometry.cameras import look_at
from human3d.io_utils import atomic_path, atomic_write_text
from human3d.metrics import psnr, ssim

__all__ = [
    "RUN_FILE",
    "CHECKPOINT_FILE",
    "resolve_device",
    "read_run",
    "write_run",
    "check_run_folder",
    "save_checkpoint_file",
    "load_checkpoint_file",
    "load_split",
    "pick_views",
    "evaluate_views",
    "orbit_world_to_camera",
    "write_png",
    "write_video",
    "plot_training_log",
]

RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.safetensors"


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device: 'cuda' requested but CUDA is not available")
    return torch.device(name)


def read_run(out: Path) -> dict:
    """The ``run.json`` of a run folder: ``{"config": {...}, "data": "<dataset path>"}``."""
    try:
        return json.loads((Path(out) / RUN_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelFileError(f"run file '{Path(out) / RUN_FILE}' is unreadable: {e}") from e


def write_run(out: Path, config: dict, data: Path) -> None:
    atomic_write_text(Path(out) / RUN_FILE, json.dumps({"config": config, "data": str(data)}, indent=2))


def check_run_folder(run_dir, kind: str) -> Path:
    """Raise a clear error unless ``run_dir`` has a run file and a checkpoint (``kind``: "NeRF", "splat")."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise ModelFileError(f"'{run_dir}' is not a {kind} run folder (no {RUN_FILE})")
    if not (run_dir / CHECKPOINT_FILE).is_file():
        raise ModelFileError(f"run '{run_dir}' has no checkpoint yet ({CHECKPOINT_FILE})")
    return run_dir


def save_checkpoint_file(path: Path, tensors: dict[str, torch.Tensor], state: dict) -> Path:
    """Write ``tensors`` (moved to CPU, made contiguous) and the JSON-able ``state`` atomically (safetensors)."""
    tensors = {k: torch.as_tensor(v).detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata={"state": json.dumps(state)})
    return Path(path)


def load_checkpoint_file(path: Path, kind: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by :func:`save_checkpoint_file` -> (tensors on CPU, state)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            state = json.loads((fh.metadata() or {})["state"])
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as e:
        raise ModelFileError(f"checkpoint '{path}' is corrupt or not a human3d {kind} checkpoint: {e}") from e
    return tensors, state


def load_split(data: Path, split: str, downscale: float, background) -> SceneSplit:
    """:func:`load_scene`, re-raising its warnings (e.g. "no test split, using val") at the caller's level."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = load_scene(data, split, downscale, background=background)
    for w in caught:
        warnings.warn(w.message, stacklevel=3)
    return s


def pick_views(n: int, max_views: int | None) -> list[int]:
    """All ``n`` views, or ``max_views`` evenly spaced ones (first and last included)."""
    if not max_views or max_views >= n:
        return list(range(n))
    return np.linspace(0, n - 1, max_views).round().astype(int).tolist()


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
            write_png(Path(out_dir) / f"{v:03d}.png", pred)
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


def write_png(path: Path, img: torch.Tensor) -> Path:
    """Write ``img`` [H, W, 3] in [0, 1] as an 8-bit PNG, atomically."""
    import cv2

    arr = (img.detach().cpu().clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    with atomic_path(Path(path)) as tmp:
        if not cv2.imwrite(str(tmp), arr[..., ::-1]):
            raise DatasetError(f"cannot write image '{path}'")
    return Path(path)


def write_video(frames: Iterable[torch.Tensor], path, fps: int = 24) -> Path:
    """Write frames ([H, W, 3] in [0, 1]) as an H.264 MP4 (imageio-ffmpeg), atomically; odd sizes are padded."""
    import imageio.v2 as imageio

    path = Path(path)
    with atomic_path(path) as tmp:
        with imageio.get_writer(str(tmp), format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1,
                                ffmpeg_log_level="error") as w:  # fmt: skip
            for f in frames:
                img = (f.detach().cpu().clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
                H, W = img.shape[:2]
                w.append_data(np.pad(img, ((0, H % 2), (0, W % 2), (0, 0)), mode="edge"))  # H.264: even sizes
    return path


def plot_training_log(out: Path, title: str) -> Path | None:
    """Write ``<out>/training.png``: training-batch PSNR and loss against the step, from ``<out>/log.jsonl``.

    Returns the path, or None when the log has no usable rows (a very short run)."""
    from human3d.plots import line_chart

    log = Path(out) / "log.jsonl"
    rows = []
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by an interrupted run
    rows = [r for r in rows if "step" in r and "psnr" in r]
    if len(rows) < 2:
        return None
    steps = [r["step"] for r in rows]
    psnr_key = "psnr_ema" if all("psnr_ema" in r for r in rows) else "psnr"
    if not any(math.isfinite(float(r[psnr_key])) for r in rows):
        return None  # nothing to draw (a diverged run): the checkpoint and log are what matter
    return line_chart({f"train PSNR ({'moving average' if psnr_key == 'psnr_ema' else 'batch'})":
                       (steps, [r[psnr_key] for r in rows])}, Path(out) / "training.png",
                      title=title, xlabel="step", ylabel="PSNR (dB)", legend="lower right")  # fmt: skip
