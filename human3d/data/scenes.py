"""Scene datasets for novel-view synthesis (NeRF, Gaussian splatting): Blender/nerf_synthetic and COLMAP.

Every loader returns a :class:`SceneSplit` in the one camera convention of :mod:`human3d.geometry`
(OpenCV: x right, y down, z forward; world-to-camera extrinsics; pixel centres at ``(j + 0.5, i + 0.5)``).

* :func:`load_blender_scene` reads ``transforms_{split}.json`` (``camera_angle_x`` or ``fl_x``/``fl_y``/``cx``/``cy``,
  OpenGL camera-to-world ``transform_matrix``) and composites RGBA images on a chosen background.
* :func:`load_colmap_scene` reads a COLMAP sparse model (text or binary) plus its images, with a downscale factor,
  near/far bounds from the sparse points and the points themselves (for splat initialisation).
* :func:`load_scene` picks the right loader from the folder's contents.

Images are float32 in ``[0, 1]``, channel-last ``[N, H, W, 3]``, all at one size: images of several sizes
(per-frame ``w``/``h``/``fl_x``/... in Blender files, cameras of several sizes in COLMAP) are resampled to the
largest, each camera's intrinsics scaled by its own factor; different aspect ratios are refused naming the images.
Empty, truncated (no PNG IEND / JPEG end marker) and undecodable images raise ``DatasetError`` naming the file.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from human3d.data import colmap as _colmap
from human3d.errors import DatasetError
from human3d.geometry.cameras import Cameras, make_intrinsics, make_rigid

__all__ = [
    "SceneSplit",
    "load_blender_scene",
    "load_colmap_scene",
    "load_scene",
    "detect_scene_format",
    "read_image",
]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".exr", ".tif", ".tiff", ".bmp", ".webp")


@dataclass
class SceneSplit:
    """One split of a posed-image dataset (cameras in OpenCV convention).

    Attributes:
        images: [N, H, W, 3] float32 in [0, 1]; RGBA inputs are composited on ``background``.
        cameras: :class:`human3d.geometry.Cameras` (K in pixels of the *loaded* resolution, world-to-camera).
        near: near bound along rays (world units) valid for every camera of the scene.
        far: far bound along rays (world units).
        scene_bounds: [2, 3] axis-aligned box (min, max) that contains the content to reconstruct.
        image_paths: source file of each image.
        alphas: [N, H, W, 1] float32 alpha (straight) when the images had an alpha channel, else None.
            ``images = alpha * rgb + (1 - alpha) * background`` holds exactly for Blender scenes, so a trainer
            can re-composite on a random background: ``images + (1 - alphas) * (bg - background)``.
        background: [3] the colour RGBA images were composited on (None when images were opaque).
        points3d: [P, 3] float32 sparse points (COLMAP) or None.
        points_rgb: [P, 3] float32 in [0, 1] colours of ``points3d`` or None.
        split: the split name that was loaded (e.g. ``"val"`` when ``"test"`` fell back to it).
        format: ``"blender"`` or ``"colmap"``.
    """

    images: torch.Tensor
    cameras: Cameras
    near: float
    far: float
    scene_bounds: torch.Tensor
    image_paths: list[Path]
    alphas: torch.Tensor | None = None
    background: torch.Tensor | None = None
    points3d: torch.Tensor | None = None
    points_rgb: torch.Tensor | None = None
    split: str = "train"
    format: str = "blender"
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def height(self) -> int:
        return self.images.shape[1]

    @property
    def width(self) -> int:
        return self.images.shape[2]

    def rays(self, normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """World-space ray origins and directions [N, H, W, 3] through every pixel centre."""
        return self.cameras.rays(normalize)

    def composite(self, background: torch.Tensor) -> torch.Tensor:
        """Images [N, H, W, 3] re-composited on ``background`` ([3] or broadcastable); needs ``alphas``."""
        if self.alphas is None or self.background is None:
            return self.images
        return self.images + (1.0 - self.alphas) * (background - self.background).to(self.images)


# ------------------------------------------------------------------------------------------------- images
def read_image(path: Path) -> np.ndarray:
    """Read an image file -> float32 [H, W, C] in [0, 1], RGB(A) channel order. Raises DatasetError."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"image '{path}' does not exist")
    data = path.read_bytes()
    if not data:
        raise DatasetError(f"image '{path}': empty file (0 bytes; expected an image: {', '.join(_IMAGE_SUFFIXES)})")
    _check_complete(path, data)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"image '{path}': not an image, or corrupt ({len(data)} bytes OpenCV cannot decode; "
                           f"expected {', '.join(_IMAGE_SUFFIXES)})")  # fmt: skip
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        img = img.astype(np.float32) / 65535.0
    else:
        img = img.astype(np.float32)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    elif img.shape[-1] == 3:
        img = img[..., ::-1]
    elif img.shape[-1] == 4:
        img = img[..., [2, 1, 0, 3]]
    else:
        raise DatasetError(f"image '{path}': unsupported channel count {img.shape[-1]}")
    return np.ascontiguousarray(img)


def _check_complete(path: Path, data: bytes) -> None:
    """A PNG must end with its IEND chunk and a JPEG with its EOI marker (a few trailing bytes allowed): a cut file
    would otherwise be decoded partially (the rest grey or black) and trained on."""
    tail = data[-1024:]
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in tail:
        raise DatasetError(f"image '{path}': truncated PNG ({len(data)} bytes, no IEND chunk at the end); expected "
                           "a whole image file")  # fmt: skip
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in tail:
        raise DatasetError(f"image '{path}': truncated JPEG ({len(data)} bytes, no end-of-image marker); expected a "
                           "whole image file")  # fmt: skip


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    if img.shape[1] == width and img.shape[0] == height:
        return img
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    return out[..., None] if out.ndim == 2 else out


def _load_images(paths: Sequence[Path], width: int, height: int, background: np.ndarray | None,
                 declared: Sequence[tuple[int, int]] | None = None):  # fmt: skip
    """Load + resize (area) + composite. Returns rgb [N, H, W, 3], alpha [N, H, W, 1] or None. ``declared``: the
    size each image's intrinsics are given in; a file must have that size or a scaled copy of it."""

    def one(i_p):
        i, p = i_p
        img = read_image(p)
        if declared is not None:
            _check_aspect(p, (img.shape[1], img.shape[0]), declared[i])
        if img.shape[-1] == 4:
            a = img[..., 3:]
            premult = img[..., :3] * a  # resize premultiplied colour so edges do not bleed the hidden colour
            small = _resize(np.concatenate([premult, a], -1), width, height)
            return small[..., :3], small[..., 3:]
        return _resize(img, width, height), None

    with ThreadPoolExecutor(max_workers=4) as ex:
        results = list(ex.map(one, enumerate(paths)))
    has_alpha = [a is not None for _, a in results]
    rgbs = np.stack([r for r, _ in results]) if results else np.zeros((0, height, width, 3), np.float32)
    if any(has_alpha):
        alphas = np.stack([a if a is not None else np.ones((height, width, 1), np.float32) for _, a in results])
        bg = np.zeros(3, np.float32) if background is None else background
        # premultiplied colour where the image had alpha, straight colour (alpha 1) otherwise
        rgbs = rgbs + (1.0 - alphas) * bg
        return np.clip(rgbs, 0.0, 1.0), alphas
    return rgbs, None


def _same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Is ``a`` (w, h) ``b`` scaled by one factor, up to rounding each side to whole pixels?"""
    s = a[0] / b[0]
    return abs(a[1] - b[1] * s) <= 1.5 * max(1.0, s)


def _check_aspect(path: Path, found: tuple[int, int], expected: tuple[int, int]) -> None:
    if not _same_aspect(found, expected):
        raise DatasetError(f"image '{path}' is {found[0]}x{found[1]}, but its camera is {expected[0]}x{expected[1]} "
                           "(expected that size or a scaled copy with the same aspect ratio)")  # fmt: skip


def _common_size(sizes: Sequence[tuple[int, int]], names: Sequence, downscale: float, where: str):
    """The one image size a split is loaded at: the largest declared size divided by ``downscale``; every image's
    intrinsics are scaled to it by its own factor. Sizes of different aspect ratios are refused (the trainers
    batch rays and render views at one size), naming the images."""
    groups: list[list[tuple[int, int]]] = []  # sizes by aspect ratio; the most common one is the scene's
    for wh in sizes:
        g = next((g for g in groups if _same_aspect(wh, g[0]) or _same_aspect(g[0], wh)), None)
        g.append(wh) if g is not None else groups.append([wh])
    ref = max(max(groups, key=len), key=lambda wh: (wh[0] * wh[1], wh))
    odd = [(str(n), wh) for n, wh in zip(names, sizes) if not _same_aspect(wh, ref)]
    if odd:
        listed = ", ".join(f"'{n}' {w}x{h}" for n, (w, h) in odd[:6]) + (f", ... ({len(odd)} in all)" if len(odd) > 6 else "")
        raise DatasetError(f"{where}: images of one scene must share one aspect ratio (scaled copies are fine): "
                           f"{listed} differ from {ref[0]}x{ref[1]}")  # fmt: skip
    W, H = max(1, round(ref[0] / downscale)), max(1, round(ref[1] / downscale))
    return W, H, ref


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) without decoding the whole image when possible."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.size
    except Exception:
        img = read_image(path)
        return img.shape[1], img.shape[0]


# ------------------------------------------------------------------------------------------------- blender
def _resolve_frame_path(root: Path, file_path: str) -> Path:
    p = (root / file_path).resolve() if not Path(file_path).is_absolute() else Path(file_path)
    if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file():
        return p
    for ext in (".png", ".jpg", ".jpeg", ".exr"):
        q = p.with_name(p.name + ext)
        if q.is_file():
            return q
    return p if p.suffix.lower() in _IMAGE_SUFFIXES else p.with_name(p.name + ".png")


def load_blender_scene(
    root,
    split: str = "train",
    downscale: float = 1,
    background=(1.0, 1.0, 1.0),
    near: float = 2.0,
    far: float = 6.0,
    scene_bounds=((-1.5, -1.5, -1.5), (1.5, 1.5, 1.5)),
    test_fallback: bool = True,
) -> SceneSplit:
    """Load a Blender / nerf_synthetic split: ``root/transforms_{split}.json`` + its images.

    Args:
        root: dataset folder.
        split: ``"train"``, ``"val"`` or ``"test"``. When ``test_fallback`` and ``transforms_test.json`` is missing,
            ``"test"`` loads ``"val"`` instead (with a warning; ``SceneSplit.split`` says which was loaded).
        downscale: divide the image size by this factor (area resampling of premultiplied RGBA; intrinsics scaled).
        background: RGB in [0, 1] that RGBA images are composited on (nerf_synthetic protocol: white).
        near, far: ray bounds (nerf_synthetic: 2 and 6).
        scene_bounds: axis-aligned box ((xmin, ymin, zmin), (xmax, ymax, zmax)) for grid-based fields.

    The file's ``transform_matrix`` is an OpenGL camera-to-world (y up, z backward); it is converted to OpenCV
    world-to-camera with :meth:`Cameras.from_opengl_camera_to_world`. Focal length: ``fl_x``/``fl_y`` if present,
    else ``0.5 * W / tan(0.5 * camera_angle_x)``; principal point ``cx``/``cy`` if present, else the image centre.
    A frame's own ``w``, ``h``, ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``camera_angle_x`` (nerfstudio) override the file's;
    without ``w``/``h`` the image file's size is the size the intrinsics are in.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"Blender dataset folder '{root}' does not exist")
    tf_path = root / f"transforms_{split}.json"
    loaded_split = split
    if not tf_path.is_file() and split == "test" and test_fallback and (root / "transforms_val.json").is_file():
        warnings.warn(f"'{tf_path}' does not exist; using the 'val' split as the test split", stacklevel=2)
        tf_path, loaded_split = root / "transforms_val.json", "val"
    if not tf_path.is_file():
        found = sorted(p.name for p in root.glob("transforms*.json"))
        raise DatasetError(f"Blender split '{split}': '{tf_path}' does not exist (found {found})")
    try:
        meta = json.loads(tf_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"transforms file '{tf_path}' does not parse as JSON: {e}") from e
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
        raise DatasetError(f"transforms file '{tf_path}': expected an object with a 'frames' list")
    frames = meta["frames"]
    if not frames:
        raise DatasetError(f"transforms file '{tf_path}': split '{loaded_split}' is empty (no frames)")
    if downscale is None or not (float(downscale) >= 1.0 and math.isfinite(float(downscale))):
        raise DatasetError(f"downscale: expected a finite factor >= 1, got {downscale}")

    paths, mats = [], []
    for i, fr in enumerate(frames):
        if not isinstance(fr, dict) or "file_path" not in fr or "transform_matrix" not in fr:
            raise DatasetError(f"transforms file '{tf_path}': frame {i} needs 'file_path' and 'transform_matrix'")
        try:
            m = np.asarray(fr["transform_matrix"], dtype=np.float64)
        except (ValueError, TypeError) as e:
            raise DatasetError(f"transforms file '{tf_path}': frame {i} transform_matrix is not numeric ({e})") from e
        if m.shape == (3, 4):
            m = np.concatenate([m, [[0, 0, 0, 1]]], 0)
        if m.shape != (4, 4):
            raise DatasetError(f"transforms file '{tf_path}': frame {i} transform_matrix has shape {m.shape}, expected 4x4")
        if not np.isfinite(m).all():
            raise DatasetError(f"transforms file '{tf_path}': frame {i} ('{fr['file_path']}') has a non-finite pose")
        R = m[:3, :3]
        if np.abs(R.T @ R - np.eye(3)).max() > 1e-3 or abs(np.linalg.det(R) - 1) > 1e-3:
            raise DatasetError(
                f"transforms file '{tf_path}': frame {i} rotation is not orthonormal (scaled or sheared pose)"
            )
        paths.append(_resolve_frame_path(root, str(fr["file_path"])))
        mats.append(m)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(
            f"transforms file '{tf_path}': {len(missing)} image(s) missing, e.g. '{missing[0]}'"
        )

    where = f"transforms file '{tf_path}'"
    sizes, intr = [], []
    for i, (fr, p) in enumerate(zip(frames, paths)):
        w_i, h_i = _num(fr, "w", where, i, meta), _num(fr, "h", where, i, meta)
        if (w_i is None) != (h_i is None):
            raise DatasetError(f"{where}: frame {i}: 'w' and 'h' go together (found only one of them)")
        for v, k in ((w_i, "w"), (h_i, "h")):
            if v is not None and (v < 1 or v != int(v)):
                raise DatasetError(f"{where}: frame {i}: '{k}' must be a positive whole number of pixels, got {v:g}")
        w_i, h_i = (int(w_i), int(h_i)) if w_i is not None else _image_size(p)
        fx = _num(fr, "fl_x", where, i, meta)
        angle = _num(fr, "camera_angle_x", where, i, meta)
        if fx is None:
            if angle is None:
                raise DatasetError(f"{where}: needs 'camera_angle_x' or 'fl_x' (frame {i} has neither)")
            if not 0 < angle < math.pi:
                raise DatasetError(f"{where}: camera_angle_x must be in (0, pi) radians, got {angle:g}")
            fx = 0.5 * w_i / math.tan(0.5 * angle)
        fy = _num(fr, "fl_y", where, i, meta) or fx
        if not (fx > 0 and fy > 0):
            raise DatasetError(f"{where}: focal length must be positive and finite, got {fx:g}, {fy:g} (frame {i})")
        cx, cy = _num(fr, "cx", where, i, meta), _num(fr, "cy", where, i, meta)
        sizes.append((w_i, h_i))
        intr.append((fx, fy, w_i / 2.0 if cx is None else cx, h_i / 2.0 if cy is None else cy))
    W, H, (w0, h0) = _common_size(sizes, [os.path.relpath(p, root) for p in paths], downscale, where)
    bg = np.asarray(background, np.float32).reshape(3)
    rgbs, alphas = _load_images(paths, W, H, bg, declared=sizes)
    # each image's intrinsics are in its own size: scale them to the common one
    K = torch.stack([make_intrinsics(fx * W / w, fy * H / h, cx * W / w, cy * H / h)[0]
                     for (fx, fy, cx, cy), (w, h) in zip(intr, sizes)])  # fmt: skip
    c2w = torch.tensor(np.stack(mats), dtype=torch.float32)
    cams = Cameras.from_opengl_camera_to_world(K, c2w, W, H)
    return SceneSplit(
        images=torch.from_numpy(rgbs).float(),
        cameras=cams,
        near=float(near),
        far=float(far),
        scene_bounds=torch.tensor(scene_bounds, dtype=torch.float32).reshape(2, 3),
        image_paths=paths,
        alphas=None if alphas is None else torch.from_numpy(alphas).float(),
        background=None if alphas is None else torch.from_numpy(bg),
        split=loaded_split,
        format="blender",
        metadata={"transforms": str(tf_path), "original_size": (w0, h0)},
    )


def _num(frame: dict, key: str, where: str, i: int, meta: dict) -> float | None:
    """A frame's number ``key`` (nerfstudio per-frame intrinsics), else the file's top-level one, else None."""
    src, v = (f"frame {i} '{key}'", frame[key]) if key in frame else (f"'{key}'", meta.get(key))
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise DatasetError(f"{where}: {src} must be a finite number, got {v!r}")
    return float(v)


# ------------------------------------------------------------------------------------------------- colmap
def _colmap_intrinsics(cam: _colmap.ColmapCamera, where: str):
    """-> fx, fy, cx, cy, distortion (OpenCV k1 k2 p1 p2 [k3]) or None."""
    p = cam.params
    m = cam.model
    if m == "SIMPLE_PINHOLE":
        return p[0], p[0], p[1], p[2], None
    if m == "PINHOLE":
        return p[0], p[1], p[2], p[3], None
    if m == "SIMPLE_RADIAL":
        return p[0], p[0], p[1], p[2], np.array([p[3], 0, 0, 0])
    if m == "RADIAL":
        return p[0], p[0], p[1], p[2], np.array([p[3], p[4], 0, 0])
    if m == "OPENCV":
        return p[0], p[1], p[2], p[3], np.array(p[4:8])
    if m == "FULL_OPENCV":  # k1 k2 p1 p2 k3 k4 k5 k6 -> OpenCV rational model
        return p[0], p[1], p[2], p[3], np.array(p[4:12])
    raise DatasetError(f"{where}: camera {cam.id} uses model {m}, which is not supported (use a pinhole/OpenCV model "
                       "or run colmap image_undistorter)")


def _find_sparse(root: Path) -> Path:
    for cand in (root / "sparse" / "0", root / "sparse", root / "colmap" / "sparse" / "0", root):
        if cand.is_dir() and _colmap._find(cand, "cameras") and _colmap._find(cand, "images"):
            return cand
    raise DatasetError(f"COLMAP dataset '{root}': no sparse model (cameras/images .bin or .txt) in sparse/0, sparse or the root")


def load_colmap_scene(
    root,
    split: str = "train",
    downscale: float = 1,
    images_dir: str | None = None,
    test_every: int = 8,
    undistort: bool = True,
    background=None,
    bounds_percentiles=(0.1, 99.9),
) -> SceneSplit:
    """Load a COLMAP scene: ``root/sparse/0`` (or ``root/sparse``, or ``root``) and images in ``root/images``.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``. Images are sorted by name; every ``test_every``-th image
            (0, 8, 16, ...) is a test image (the mip-NeRF 360 convention), the others train.
        downscale: image size divided by this factor. An ``images_{downscale}`` folder (mip-NeRF 360 layout) is used
            when present, otherwise images are area-resized. Intrinsics are scaled with the actual size ratio.
        images_dir: override the image folder (relative to ``root`` or absolute).
        undistort: SIMPLE_RADIAL/RADIAL/OPENCV/FULL_OPENCV images are undistorted with OpenCV (same K). When False
            the distortion is ignored with a warning.
        background: RGB used to composite RGBA inputs (default black); ignored for opaque images.
        bounds_percentiles: near/far are the (low, high) percentiles of sparse-point depths over all cameras
            (times 0.9 / 1.1); ``scene_bounds`` is the box of the same percentiles of the points.

    Returns a :class:`SceneSplit` with ``points3d`` [P, 3] and ``points_rgb`` [P, 3] (all points, every split).
    COLMAP poses are already OpenCV world-to-camera; nothing is flipped.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"COLMAP dataset folder '{root}' does not exist")
    if downscale is None or not (float(downscale) >= 1.0 and math.isfinite(float(downscale))):
        raise DatasetError(f"downscale: expected a finite factor >= 1, got {downscale}")
    sparse = _find_sparse(root)
    model = _colmap.read_model(sparse)
    if not model.images:
        raise DatasetError(f"COLMAP model '{sparse}' has no registered images")
    if images_dir is not None:
        img_root = Path(images_dir) if Path(images_dir).is_absolute() else root / images_dir
    else:
        img_root = root / "images"
        ds = int(downscale) if float(downscale).is_integer() else None
        if ds and ds > 1 and (root / f"images_{ds}").is_dir():
            img_root = root / f"images_{ds}"
    if not img_root.is_dir():
        raise DatasetError(f"COLMAP dataset '{root}': image folder '{img_root}' does not exist")

    ordered = sorted(model.images.values(), key=lambda im: im.name)
    if split == "all":
        chosen = ordered
    elif split in ("train", "test", "val"):
        is_test = [i % test_every == 0 for i in range(len(ordered))] if test_every > 0 else [False] * len(ordered)
        want_test = split != "train"
        chosen = [im for im, t in zip(ordered, is_test) if t == want_test]
    else:
        raise DatasetError(f"split: expected 'train', 'test', 'val' or 'all', got '{split}'")
    if not chosen:
        raise DatasetError(f"COLMAP dataset '{root}': split '{split}' is empty ({len(ordered)} images, test_every={test_every})")
    paths = [img_root / im.name for im in chosen]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f"COLMAP dataset '{root}': {len(missing)} image(s) missing, e.g. '{missing[0]}'")

    where = f"COLMAP model '{sparse}'"
    sizes = [(model.cameras[im.camera_id].width, model.cameras[im.camera_id].height) for im in chosen]
    for im, (w, h) in zip(chosen, sizes):
        if w < 1 or h < 1:
            raise DatasetError(f"{where}: camera {im.camera_id} has image size {w}x{h} (expected positive)")
    # cameras of different sizes: each image's intrinsics are scaled to the one common size by its own factor
    W, H, (w0, h0) = _common_size(sizes, [im.name for im in chosen], downscale, where)

    Ks, dists = [], []
    for im, (w, h) in zip(chosen, sizes):
        fx, fy, cx, cy, dist = _colmap_intrinsics(model.cameras[im.camera_id], where)
        if not (np.isfinite([fx, fy, cx, cy]).all() and fx > 0 and fy > 0) or (dist is not None and not np.isfinite(dist).all()):
            raise DatasetError(f"{where}: camera {im.camera_id} has parameters "
                               f"{np.round(model.cameras[im.camera_id].params, 4).tolist()} (expected finite values "
                               "and positive focal lengths)")  # fmt: skip
        if not (np.isfinite(im.qvec).all() and np.isfinite(im.tvec).all() and np.linalg.norm(im.qvec) > 1e-8):
            raise DatasetError(f"{where}: image '{im.name}' has a non-finite or zero pose (qvec {im.qvec.tolist()}, "
                               f"tvec {im.tvec.tolist()})")  # fmt: skip
        sx, sy = W / w, H / h
        Ks.append((fx * sx, fy * sy, cx * sx, cy * sy))
        dists.append(dist)
    has_dist = [d is not None and np.abs(d).max() > 0 for d in dists]
    if any(has_dist) and not undistort:
        warnings.warn(f"COLMAP model '{sparse}': lens distortion ignored (undistort=False)", stacklevel=2)

    bg = np.zeros(3, np.float32) if background is None else np.asarray(background, np.float32).reshape(3)
    rgbs, alphas = _load_images(paths, W, H, bg, declared=sizes)
    if undistort and any(has_dist):
        for i, (d, k) in enumerate(zip(dists, Ks)):
            if d is None or np.abs(d).max() == 0:
                continue
            # OpenCV's pixel grid has centres at integers; COLMAP's at +0.5 -> shift the principal point
            Kcv = np.array([[k[0], 0, k[2] - 0.5], [0, k[1], k[3] - 0.5], [0, 0, 1]], np.float64)
            rgbs[i] = cv2.undistort(rgbs[i], Kcv, d)
            if alphas is not None:
                alphas[i, ..., 0] = cv2.undistort(alphas[i, ..., 0], Kcv, d)

    Kt = torch.tensor(Ks, dtype=torch.float64)
    K = make_intrinsics(Kt[:, 0], Kt[:, 1], Kt[:, 2], Kt[:, 3]).float()
    R = torch.tensor(np.stack([_colmap.qvec_to_rotmat(im.qvec) for im in chosen]), dtype=torch.float32)
    t = torch.tensor(np.stack([im.tvec for im in chosen]), dtype=torch.float32)
    w2c = make_rigid(R, t)
    cameras = Cameras(K, w2c, W, H)

    pts = torch.tensor(model.xyz, dtype=torch.float32)
    rgb = torch.tensor(model.rgb, dtype=torch.float32) / 255.0
    near, far, bounds = _bounds_from_points(pts, model, bounds_percentiles)
    return SceneSplit(
        images=torch.from_numpy(rgbs).float(),
        cameras=cameras,
        near=near,
        far=far,
        scene_bounds=bounds,
        image_paths=paths,
        alphas=None if alphas is None else torch.from_numpy(alphas).float(),
        background=None if alphas is None else torch.from_numpy(bg),
        points3d=pts,
        points_rgb=rgb,
        split=split,
        format="colmap",
        metadata={"sparse": str(sparse), "image_folder": str(img_root), "original_size": (w0, h0)},
    )


def _bounds_from_points(pts: torch.Tensor, model: _colmap.ColmapModel, pct) -> tuple[float, float, torch.Tensor]:
    """near/far from sparse-point depths over *all* registered cameras; aabb from point percentiles."""
    ims = list(model.images.values())
    R = torch.tensor(np.stack([_colmap.qvec_to_rotmat(im.qvec) for im in ims]), dtype=torch.float32)
    t = torch.tensor(np.stack([im.tvec for im in ims]), dtype=torch.float32)
    centers = -(R.transpose(1, 2) @ t[..., None])[..., 0]  # [C, 3]
    if pts.shape[0] < 4:
        warnings.warn("COLMAP model has fewer than 4 sparse points: near/far default to 0.01/100", stacklevel=3)
        lo, hi = centers.min(0).values - 1, centers.max(0).values + 1
        return 0.01, 100.0, torch.stack([lo, hi])
    z = (pts[None] @ R[:, 2, None, :].transpose(-1, -2))[..., 0] + t[:, None, 2]  # [C, P] camera depth
    z = z[z > 1e-6]
    if z.numel() == 0:
        raise DatasetError("COLMAP model: no sparse point lies in front of any camera (bad poses?)")
    q = torch.tensor([pct[0] / 100.0, pct[1] / 100.0])
    zq = torch.quantile(z[torch.randperm(z.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]], q)
    near = max(float(zq[0]) * 0.9, 1e-3)
    far = float(zq[1]) * 1.1
    pq = torch.quantile(pts, torch.tensor([pct[0] / 100.0, pct[1] / 100.0]), dim=0)  # [2, 3]
    return near, far, pq


# ------------------------------------------------------------------------------------------------- auto
def detect_scene_format(root) -> str:
    """``"blender"`` if ``transforms_*.json`` exist, ``"colmap"`` if a sparse model exists; else DatasetError."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset folder '{root}' does not exist")
    if any(root.glob("transforms_*.json")):
        return "blender"
    try:
        _find_sparse(root)
        return "colmap"
    except DatasetError:
        pass
    raise DatasetError(
        f"dataset folder '{root}': neither Blender (transforms_*.json) nor COLMAP (sparse/0/cameras.bin|txt) data"
    )


def load_scene(root, split: str = "train", downscale: float = 1, **kwargs) -> SceneSplit:
    """Load a Blender or COLMAP scene (detected from the folder); ``kwargs`` go to the specific loader."""
    fmt = detect_scene_format(root)
    if fmt == "blender":
        return load_blender_scene(root, split, downscale, **kwargs)
    return load_colmap_scene(root, split, downscale, **kwargs)
