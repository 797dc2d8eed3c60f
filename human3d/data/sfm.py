"""Photos or a video -> a posed scene folder, with COLMAP's structure-from-motion through ``pycolmap`` (no COLMAP
binary to install: ``pip install 'human3d[sfm]'``).

:func:`scene_from_photos` runs the stages (each reported to an optional ``progress`` callback):

1. ``frames``: read the images of a folder (sorted by name) or evenly spaced frames of a video (imageio-ffmpeg);
   optional downscale (area); RGBA images are composited on the chosen background (white by default) because SIFT
   and the trainers need opaque images; all images must come from one camera (same size, same EXIF camera);
2. ``features``: SIFT extraction (one shared camera, ``SIMPLE_RADIAL`` by default, focal from 1.2 x the image size);
3. ``matching``: exhaustive (every pair; best for photo sets up to a few hundred) or sequential (neighbours in file
   order; for video frames);
4. ``mapping``: incremental mapping; the model with the most registered images is kept;
5. ``undistort``: images and model are undistorted to a ``PINHOLE`` camera;
6. ``write``: the scene folder, written in a temporary folder beside ``out`` and renamed into place at the end, so a
   failed or interrupted run leaves no half scene.

The scene folder (read directly by ``human3d nerf train`` / ``human3d splat train`` as a COLMAP scene; splatting
initialises its Gaussians from ``sparse/0/points3D.bin``)::

    SCENE/images/*.png            undistorted images
    SCENE/sparse/0/*.bin          the COLMAP model (PINHOLE camera, world-to-camera OpenCV poses, 3D points)
    SCENE/transforms.json         the same cameras in nerfstudio's layout (OpenGL camera-to-world, see data.nerfstudio)
    SCENE/summary.json            registered images, mean reprojection error (px), points, stage times, options
    SCENE/topview.png             the cameras (red, with viewing direction) and points seen from "above"

The reconstruction stays in COLMAP's own gauge (arbitrary scale, origin and orientation); the "up" of the top view is
the mean of the cameras' up vectors.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from human3d.data.nerfstudio import write_transforms
from human3d.data.scenes import read_image
from human3d.errors import DatasetError, InvalidInputError
from human3d.io_utils import atomic_path, atomic_write_text

__all__ = ["SfmOptions", "scene_from_photos", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "MATCHERS", "BACKGROUNDS", "CAMERA_MODELS"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
MATCHERS = ("auto", "exhaustive", "sequential")
BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV", "SIMPLE_RADIAL_FISHEYE",
                 "RADIAL_FISHEYE", "OPENCV_FISHEYE")  # fmt: skip - the models COLMAP's undistorter maps to PINHOLE

Progress = Callable[[str, int, "int | None"], None]  # (stage, done, total or None)


@dataclass
class SfmOptions:
    """Options of :func:`scene_from_photos` (CLI: ``human3d scene from-photos``)."""

    matcher: str = "auto"
    """``exhaustive`` (all pairs), ``sequential`` (file-order neighbours) or ``auto`` (sequential for a video)."""
    max_images: int | None = None
    """Use at most this many images, evenly spaced (a video defaults to 100 frames)."""
    downscale: float = 1.0
    """Divide the image size by this before SfM (area resampling); the scene keeps the downscaled images."""
    background: str = "white"
    """Colour RGBA images are composited on before SfM: ``white`` or ``black``."""
    camera_model: str = "SIMPLE_RADIAL"
    """COLMAP camera model shared by all images (``SIMPLE_PINHOLE``, ``PINHOLE``, ``SIMPLE_RADIAL``, ``OPENCV``...)."""
    min_registered: float = 0.5
    """Fail when fewer than this fraction of the images registers in the best model."""
    num_threads: int = 1
    """CPU threads of pycolmap (extraction, matching, mapping, undistortion)."""
    seed: int = 0
    """Random seed of the mapper (RANSAC), for repeatable runs."""
    max_features: int = 8192
    """SIFT features per image."""
    sequential_overlap: int = 10
    """Sequential matcher: match each image with this many following ones."""
    overwrite: bool = False
    """Replace an existing non-empty ``out`` folder (only once the new scene is complete)."""
    verbose: bool = False
    """Let COLMAP log its progress to stderr."""

    def validate(self) -> None:
        if self.matcher not in MATCHERS:
            raise InvalidInputError(f"--matcher: expected one of {', '.join(MATCHERS)}, got '{self.matcher}'")
        if self.camera_model not in CAMERA_MODELS:
            raise InvalidInputError(f"--camera-model: expected one of {', '.join(CAMERA_MODELS)}, got '{self.camera_model}'")
        if self.background not in BACKGROUNDS:
            raise InvalidInputError(f"--background: expected white or black, got '{self.background}'")
        if not (math.isfinite(float(self.downscale)) and float(self.downscale) >= 1.0):
            raise InvalidInputError(f"--downscale: expected a factor >= 1, got {self.downscale}")
        if self.max_images is not None and int(self.max_images) < 3:
            raise InvalidInputError(f"--max-images: SfM needs at least 3 images, got {self.max_images}")
        if not 0.0 <= float(self.min_registered) <= 1.0:
            raise InvalidInputError(f"--min-registered: expected a fraction in [0, 1], got {self.min_registered}")
        if int(self.num_threads) < 1:
            raise InvalidInputError(f"--threads: expected >= 1, got {self.num_threads}")


def _pycolmap():
    try:
        import pycolmap
    except ImportError:
        raise DatasetError("structure from motion needs pycolmap, which is not installed: "
                           "pip install 'human3d[sfm]' (or pip install pycolmap)") from None  # fmt: skip
    return pycolmap


def _noop(stage: str, done: int, total: int | None) -> None:
    pass


# ------------------------------------------------------------------------------------------------- frames
def _evenly(n: int, k: int | None) -> list[int]:
    if k is None or k >= n:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, k)})


def _exif_camera(path: Path) -> str | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            exif = im.getexif()
        make, model = str(exif.get(271, "")).strip(), str(exif.get(272, "")).strip()
        return f"{make} {model}".strip() or None
    except Exception:
        return None


def _to_uint8_rgb(img: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, bool]:
    """float [H, W, 3|4] in [0, 1] -> uint8 RGB, and whether it had alpha (composited straight alpha on ``bg``)."""
    had_alpha = img.shape[-1] == 4
    if had_alpha:
        a = img[..., 3:]
        img = img[..., :3] * a + (1.0 - a) * bg
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), had_alpha


def _resize(img: np.ndarray, downscale: float) -> np.ndarray:
    if downscale == 1:
        return img
    h, w = img.shape[:2]
    W, H = max(1, round(w / downscale)), max(1, round(h / downscale))
    return cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA)


def _premultiplied_resize(img: np.ndarray, downscale: float) -> np.ndarray:
    """Area-resize RGBA with premultiplied colour (edges do not bleed the hidden colour), back to straight alpha."""
    if downscale == 1 or img.shape[-1] != 4:
        return _resize(img, downscale)
    a = img[..., 3:]
    small = _resize(np.concatenate([img[..., :3] * a, a], -1), downscale)
    sa = small[..., 3:]
    return np.concatenate([np.where(sa > 1e-6, small[..., :3] / np.maximum(sa, 1e-6), 0.0), sa], -1)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise DatasetError(f"could not write image '{path}'")


def _frames_from_folder(src: Path, dest: Path, opt: SfmOptions, progress: Progress) -> dict:
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        others = sorted(p.name for p in src.iterdir())[:5]
        raise DatasetError(f"'{src}': no images ({', '.join(IMAGE_SUFFIXES)}) in the folder (found {others or 'nothing'}); "
                           "pass a folder of photos or a video file")  # fmt: skip
    if len(files) < 3:
        raise DatasetError(f"'{src}': only {len(files)} image(s); structure from motion needs at least 3 overlapping "
                           "photos (20+ recommended)")  # fmt: skip
    chosen = [files[i] for i in _evenly(len(files), opt.max_images)]
    cams = {p: _exif_camera(p) for p in chosen}
    models = sorted({c for c in cams.values() if c})
    if len(models) > 1:
        ex = {m: next(p.name for p, c in cams.items() if c == m) for m in models}
        raise DatasetError(f"'{src}': photos from {len(models)} different cameras ({'; '.join(f'{m}: {n}' for m, n in ex.items())}); "
                           "one scene needs one camera: put each camera's photos in its own folder")  # fmt: skip
    bg = np.asarray(BACKGROUNDS[opt.background], np.float32)
    sizes: dict[tuple[int, int], list[str]] = {}
    names, n_alpha = [], 0
    used = set()
    for k, p in enumerate(chosen):
        progress("frames", k, len(chosen))
        img = _premultiplied_resize(read_image(p), float(opt.downscale))
        rgb, had_alpha = _to_uint8_rgb(img, bg)
        n_alpha += had_alpha
        sizes.setdefault((rgb.shape[1], rgb.shape[0]), []).append(p.name)
        name = p.stem + ".png"
        if name in used:
            name = p.name + ".png"
        used.add(name)
        _write_png(dest / name, rgb)
        names.append(name)
    progress("frames", len(chosen), len(chosen))
    if len(sizes) > 1:
        desc = ", ".join(f"{w}x{h} ({len(v)}, e.g. '{v[0]}')" for (w, h), v in sorted(sizes.items(), key=lambda x: -len(x[1])))
        raise DatasetError(f"'{src}': the images have different sizes: {desc}; one scene needs one camera: use photos "
                           "of one camera at one resolution (or split them into folders)")  # fmt: skip
    (w, h), = sizes
    return {"source": str(src), "kind": "folder", "n_found": len(files), "images": names, "size": [w, h],
            "n_rgba": n_alpha}  # fmt: skip


def _frames_from_video(src: Path, dest: Path, opt: SfmOptions, progress: Progress) -> dict:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise DatasetError("reading a video needs imageio-ffmpeg: pip install imageio-ffmpeg") from None
    try:
        n_frames, secs = imageio_ffmpeg.count_frames_and_secs(str(src))
        gen = imageio_ffmpeg.read_frames(str(src))
        meta = next(gen)
    except Exception as e:
        msg = " ".join(str(e).split())[:200]
        raise DatasetError(f"video '{src}' cannot be read ({type(e).__name__}: {msg}); check that it plays, or extract "
                           "its frames into a folder and pass the folder") from None  # fmt: skip
    if n_frames < 3:
        gen.close()
        raise DatasetError(f"video '{src}': {n_frames} frame(s); structure from motion needs at least 3")
    want = _evenly(n_frames, 100 if opt.max_images is None else opt.max_images)
    wset = set(want)
    w, h = meta["size"]
    names = []
    try:
        for i, buf in enumerate(gen):
            if i in wset:
                progress("frames", len(names), len(want))
                rgb = np.frombuffer(buf, np.uint8).reshape(h, w, 3)
                rgb = _resize(rgb, float(opt.downscale))
                name = f"frame_{i:06d}.png"
                _write_png(dest / name, rgb)
                names.append(name)
            if i >= want[-1]:
                break
    except Exception as e:
        raise DatasetError(f"video '{src}': decoding failed at frame {len(names)} ({type(e).__name__}: {e}); "
                           "re-encode it (e.g. ffmpeg -i in.mov out.mp4) or extract frames to a folder") from None  # fmt: skip
    finally:
        gen.close()
    if len(names) < 3:
        raise DatasetError(f"video '{src}': only {len(names)} frame(s) could be decoded; structure from motion needs 3")
    progress("frames", len(names), len(names))
    ih, iw = cv2.imread(str(dest / names[0])).shape[:2]
    return {"source": str(src), "kind": "video", "n_found": int(n_frames), "duration_s": float(secs), "images": names,
            "size": [iw, ih], "n_rgba": 0}  # fmt: skip


# ------------------------------------------------------------------------------------------------- SfM
def _run_sfm(pc, images: Path, work: Path, n_images: int, matcher: str, opt: SfmOptions, progress: Progress, times):
    db = work / "database.db"
    device = pc.Device.cpu
    t0 = time.perf_counter()
    progress("features", 0, None)
    reader = pc.ImageReaderOptions()
    reader.camera_model = opt.camera_model
    ext = pc.FeatureExtractionOptions()
    ext.num_threads = int(opt.num_threads)
    ext.sift.max_num_features = int(opt.max_features)
    # small or smooth images (renders, downscaled photos) give few SIFT peaks at COLMAP's default threshold
    ext.sift.peak_threshold = 0.004
    try:
        pc.extract_features(db, images, camera_mode=pc.CameraMode.SINGLE, reader_options=reader,
                            extraction_options=ext, device=device)  # fmt: skip
    except (ValueError, RuntimeError) as e:
        raise InvalidInputError(f"--camera-model '{opt.camera_model}': feature extraction failed ({e})") from None
    times["features"] = time.perf_counter() - t0
    progress("features", 1, 1)

    t0 = time.perf_counter()
    progress("matching", 0, None)
    mo = pc.FeatureMatchingOptions()
    mo.num_threads = int(opt.num_threads)
    if matcher == "sequential":
        po = pc.SequentialPairingOptions()
        po.overlap = int(opt.sequential_overlap)
        po.num_threads = int(opt.num_threads)
        pc.match_sequential(db, matching_options=mo, pairing_options=po, device=device)
    else:
        pc.match_exhaustive(db, matching_options=mo, device=device)
    times["matching"] = time.perf_counter() - t0
    progress("matching", 1, 1)

    t0 = time.perf_counter()
    inc = pc.IncrementalPipelineOptions()
    inc.num_threads = int(opt.num_threads)
    inc.random_seed = int(opt.seed)
    # relaxed for small image sets (COLMAP defaults target many megapixel photos)
    inc.min_num_matches = 10
    inc.mapper.init_min_num_inliers = 50
    inc.mapper.abs_pose_min_num_inliers = 15
    inc.mapper.init_min_tri_angle = 8.0
    inc.min_model_size = 3
    count = [0]

    def registered(k: int):  # registrations over every model tried (capped at the image count)
        count[0] = min(n_images, count[0] + k)
        progress("mapping", count[0], n_images)

    progress("mapping", 0, n_images)
    recs = pc.incremental_mapping(db, images, work / "models", options=inc,
                                  initial_image_pair_callback=lambda: registered(2),
                                  next_image_callback=lambda: registered(1))  # fmt: skip
    times["mapping"] = time.perf_counter() - t0
    models = sorted(recs.values(), key=lambda r: (r.num_reg_images(), r.num_points3D()), reverse=True)
    return models


def _reconstruct_message(n_reg: int, n: int, matcher: str, sizes: list[int]) -> str:
    split = f" (split into {len(sizes)} models of {', '.join(map(str, sizes[:6]))}{'...' if len(sizes) > 6 else ''} images)" if len(sizes) > 1 else ""
    if matcher == "sequential":
        advice = "try --matcher exhaustive (photos not in capture order), or frames with more overlap"
    else:
        advice = ("try photos with more overlap (each part of the scene in 3+ photos, ~30 degrees apart or less) "
                  "and more texture, or a smaller --downscale (more SIFT features per image)")
    return f"{n_reg} of {n} images registered{split}; {advice}"


# ------------------------------------------------------------------------------------------------- outputs
def _cameras_of(rec) -> tuple[list[str], np.ndarray, np.ndarray, tuple[int, int]]:
    """names (sorted), K [N, 3, 3], OpenCV camera-to-world [N, 4, 4], (w, h) of an undistorted (PINHOLE) model."""
    ims = sorted((im for im in rec.images.values() if im.has_pose), key=lambda im: im.name)
    Ks, c2w = [], []
    size = None
    for im in ims:
        cam = rec.cameras[im.camera_id]
        Ks.append(np.asarray(cam.calibration_matrix(), np.float64))
        size = (int(cam.width), int(cam.height))
        w2c = np.eye(4)
        w2c[:3] = np.asarray(im.cam_from_world().matrix(), np.float64)
        c2w.append(np.linalg.inv(w2c))
    return [im.name for im in ims], np.stack(Ks), np.stack(c2w), size


def _topview(path: Path, centers: np.ndarray, c2w: np.ndarray, pts: np.ndarray, rgb: np.ndarray, size: int = 800):
    """PNG of cameras and points projected on the plane orthogonal to the cameras' mean up vector."""
    up = -c2w[:, :3, 1].mean(0)  # OpenCV camera y points down
    up = up / (np.linalg.norm(up) + 1e-12)
    a = np.cross(up, [1.0, 0, 0]) if abs(up[0]) < 0.9 else np.cross(up, [0, 1.0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(up, a)
    P = np.stack([a, b], 1)  # [3, 2]
    cam2 = centers @ P
    lo, hi = cam2.min(0), cam2.max(0)  # every camera in the frame, and the points but their 1 % outliers
    if len(pts):
        q = np.percentile(pts @ P, [1, 99], axis=0)
        lo, hi = np.minimum(lo, q[0]), np.maximum(hi, q[1])
    span = float(max(hi - lo)) * 1.15 + 1e-9
    mid = (lo + hi) / 2

    def px(x):
        q = (x @ P - mid) / span * (size - 40) + size / 2
        return np.stack([q[:, 0], size - q[:, 1]], -1)

    img = np.full((size, size, 3), 255, np.uint8)
    for (x, y), c in zip(px(pts), rgb):
        if 0 <= x < size and 0 <= y < size:
            cv2.circle(img, (int(x), int(y)), 1, tuple(int(v) for v in c[::-1]), -1)
    fwd = c2w[:, :3, 2]
    step = span * 0.05
    for p0, p1 in zip(px(centers), px(centers + fwd * step)):
        cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), (0, 0, 200), 1, cv2.LINE_AA)
        cv2.circle(img, tuple(int(v) for v in p0), 3, (0, 0, 220), -1, cv2.LINE_AA)
    cv2.putText(img, f"{len(centers)} cameras, {len(pts)} points (top view)", (10, 22), cv2.FONT_HERSHEY_SIMPLEX,
                0.55, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), img):
            raise DatasetError(f"could not write '{path}'")


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out: '{out}' exists and is a file (expected a new folder name)")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InvalidInputError(f"--out: folder '{out}' exists and is not empty; choose a new folder or pass --overwrite")


def _move_into_place(built: Path, out: Path, trash: Path) -> None:
    if out.is_dir():
        if any(out.iterdir()):
            os.replace(out, trash)
        else:
            out.rmdir()
    os.replace(built, out)


# ------------------------------------------------------------------------------------------------- entry
def scene_from_photos(source, out, options: SfmOptions | None = None, progress: Progress | None = None) -> dict:
    """Photos (a folder) or a video -> a scene folder at ``out`` (see the module docstring); returns the summary.

    Raises :class:`DatasetError` (bad input: no images, fewer than 3, mixed cameras or sizes, unreadable video,
    too few registered images) or :class:`InvalidInputError` (bad option). ``out`` is untouched on failure.
    """
    opt = options or SfmOptions()
    opt.validate()
    progress = progress or _noop
    src = Path(source).expanduser()
    out = Path(out).expanduser()
    if not src.exists():
        raise DatasetError(f"'{src}' does not exist (expected a folder of photos or a video file)")
    is_video = src.is_file()
    if is_video and src.suffix.lower() not in VIDEO_SUFFIXES:
        if src.suffix.lower() in IMAGE_SUFFIXES:
            raise DatasetError(f"'{src}' is a single image; pass the folder of photos (3 or more)")
        raise DatasetError(f"'{src}': not a folder and not a video ({', '.join(VIDEO_SUFFIXES)})")
    _check_out(out, opt.overwrite)
    matcher = opt.matcher if opt.matcher != "auto" else ("sequential" if is_video else "exhaustive")
    pc = _pycolmap()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=f".{out.name}.sfm-", dir=out.parent))
    saved_level = pc.logging.minloglevel
    try:
        if not opt.verbose:
            pc.logging.minloglevel = 2  # COLMAP's own INFO/WARNING lines off; errors still print
        times: dict[str, float] = {}
        staged = tmp_root / "input"
        staged.mkdir()
        t0 = time.perf_counter()
        info = (_frames_from_video if is_video else _frames_from_folder)(src, staged, opt, progress)
        times["frames"] = time.perf_counter() - t0
        n = len(info["images"])

        models = _run_sfm(pc, staged, tmp_root, n, matcher, opt, progress, times)
        sizes = [m.num_reg_images() for m in models]
        n_reg = sizes[0] if sizes else 0
        if n_reg < 3 or n_reg < opt.min_registered * n:
            raise DatasetError(_reconstruct_message(n_reg, n, matcher, sizes))
        best = models[0]
        raw_camera = next(iter(best.cameras.values()))
        raw_summary = {"model": raw_camera.model_name, "params": [float(v) for v in raw_camera.params],
                       "params_info": raw_camera.params_info}  # fmt: skip
        reproj = float(best.compute_mean_reprojection_error())
        best_dir = tmp_root / "best"
        best_dir.mkdir()
        best.write(best_dir)

        t0 = time.perf_counter()
        progress("undistort", 0, None)
        scene = tmp_root / "scene"
        pc.undistort_images(scene, best_dir, staged, output_type="COLMAP", num_threads=int(opt.num_threads))
        (scene / "sparse" / "0").mkdir()
        for f in list((scene / "sparse").iterdir()):
            if f.is_file():
                os.replace(f, scene / "sparse" / "0" / f.name)
        for f in ("run-colmap-geometric.sh", "run-colmap-photometric.sh"):
            with contextlib.suppress(FileNotFoundError):
                (scene / f).unlink()
        shutil.rmtree(scene / "stereo", ignore_errors=True)
        times["undistort"] = time.perf_counter() - t0
        progress("undistort", 1, 1)

        t0 = time.perf_counter()
        progress("write", 0, None)
        und = pc.Reconstruction(scene / "sparse" / "0")
        names, K, c2w, (w, h) = _cameras_of(und)
        write_transforms(scene / "transforms.json", K, c2w, w, h, [f"images/{nm}" for nm in names],
                         extra={"generator": "human3d scene from-photos (pycolmap)"})  # fmt: skip
        pts = np.array([p.xyz for p in und.points3D.values()], np.float64).reshape(-1, 3)
        cols = np.array([p.color for p in und.points3D.values()], np.uint8).reshape(-1, 3)
        _topview(scene / "topview.png", c2w[:, :3, 3], c2w, pts, cols)
        registered = set(names)
        summary = {
            "source": info["source"],
            "source_kind": info["kind"],
            "images_found": info["n_found"],
            "images_used": n,
            "registered": len(names),
            "registration_rate": len(names) / n,
            "unregistered": [nm for nm in info["images"] if nm not in registered],
            "models": sizes,
            "points": int(len(pts)),
            "mean_reprojection_error_px": reproj,
            "mean_track_length": float(best.compute_mean_track_length()),
            "matcher": matcher,
            "rgba_composited": int(info["n_rgba"]),
            "background": opt.background if info["n_rgba"] else None,
            "input_size": info["size"],
            "camera_sfm": raw_summary,
            "camera": {"model": "PINHOLE", "w": w, "h": h, "fl_x": float(K[0, 0, 0]), "fl_y": float(K[0, 1, 1]),
                       "cx": float(K[0, 0, 2]), "cy": float(K[0, 1, 2])},  # fmt: skip
            "times_s": times,
            "options": asdict(opt),
            "pycolmap": getattr(pc, "__version__", "?"),
        }
        times["write"] = time.perf_counter() - t0
        summary["times_s"]["total"] = float(sum(v for k, v in times.items() if k != "total"))
        atomic_write_text(scene / "summary.json", json.dumps(summary, indent=2) + "\n")
        progress("write", 1, 1)
        _move_into_place(scene, out, tmp_root / "old")
        return summary
    finally:
        pc.logging.minloglevel = saved_level
        shutil.rmtree(tmp_root, ignore_errors=True)
