"""Overlays: shaded mesh over a photo, 2D keypoints and skeletons, PNG output.

Colour order: **RGB everywhere** in this API (images are ``uint8 [H, W, 3]`` RGB numpy arrays, colours are
``(r, g, b)`` tuples). OpenCV is used only for drawing primitives and PNG encoding; :func:`save_png` converts
to OpenCV's BGR internally. Images read with ``cv2.imread`` are BGR: convert with ``img[..., ::-1]`` first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from human3d.body.skeletons import EDGES
from human3d.errors import Human3DError, InvalidInputError, check_tensor
from human3d.geometry.cameras import Cameras
from human3d.io_utils import atomic_path
from human3d.render.rasterizer import headlight_direction, pixel_normals, rasterize_mesh, shade_lambert

__all__ = ["draw_keypoints", "render_overlay", "render_mesh_rgba", "save_png", "default_edges"]

MESH_COLOR = (0.65, 0.74, 0.86)  # light steel blue, RGB in [0, 1]
KEYPOINT_COLOR = (0, 255, 0)  # input keypoints: green
MODEL_KEYPOINT_COLOR = (255, 64, 64)  # projected model keypoints: red

_SKELETON_BY_COUNT = {17: "coco17", 25: "body25", 18: "openpose_coco18"}


def default_edges(num_keypoints: int) -> list[tuple[int, int]]:
    """Skeleton edges for a keypoint count: 17 -> COCO-17, 25 -> BODY_25, 18 -> OpenPose COCO-18, else none."""
    name = _SKELETON_BY_COUNT.get(int(num_keypoints))
    return list(EDGES[name]) if name else []


def _as_image(image, name: str = "image") -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(f"{name}: expected a numpy array or tensor, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidInputError(
            f"{name}: expected a uint8 RGB image of shape [H, W, 3], got {image.dtype} {tuple(image.shape)}"
        )
    return image


def _as_points2d(kp, name: str) -> np.ndarray:
    if isinstance(kp, torch.Tensor):
        kp = kp.detach().cpu().double().numpy()
    kp = np.asarray(kp, dtype=np.float64)
    if kp.ndim == 3 and kp.shape[0] == 1:
        kp = kp[0]
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise InvalidInputError(f"{name}: expected shape [K, 2] or [K, 3] (x, y[, confidence]), got {kp.shape}")
    if not np.isfinite(kp).all():
        raise InvalidInputError(f"{name}: contains NaN/inf values")
    return kp


def draw_keypoints(
    image,
    kp2d,
    edges: Sequence[tuple[int, int]] | None = None,
    color: tuple[int, int, int] = KEYPOINT_COLOR,
    radius: int | None = None,
    thickness: int | None = None,
    min_confidence: float = 0.1,
) -> np.ndarray:
    """Draw keypoints and skeleton edges on a copy of ``image`` (uint8 RGB [H, W, 3]).

    Args:
        kp2d: [K, 2] pixel coordinates (x = column, y = row; continuous, pixel centres at +0.5) or [K, 3] with a
            confidence last; points with confidence < ``min_confidence`` (and edges touching them) are skipped.
        edges: index pairs; None picks :func:`default_edges` from K (COCO-17 / BODY_25 / COCO-18).
        color: RGB; radius / thickness default to a size relative to the image.
    Returns:
        uint8 RGB [H, W, 3].
    """
    img = _as_image(image).copy()
    kp = _as_points2d(kp2d, "kp2d")
    H, W = img.shape[:2]
    scale = max(H, W)
    radius = radius if radius is not None else max(2, round(scale / 160))
    thickness = thickness if thickness is not None else max(1, round(scale / 320))
    edges = default_edges(kp.shape[0]) if edges is None else list(edges)
    ok = kp[:, 2] >= min_confidence if kp.shape[1] == 3 else np.ones(kp.shape[0], dtype=bool)
    # cv2 works on integer pixel indices with sub-pixel shift: centre of pixel (i, j) is at (j + 0.5, i + 0.5)
    shift = 4
    pts = np.round((kp[:, :2] - 0.5) * (1 << shift)).astype(np.int64)
    pts = np.clip(pts, -(1 << 28), 1 << 28)
    col = tuple(int(c) for c in color)
    for a, b in edges:
        if not (0 <= a < len(kp) and 0 <= b < len(kp)):
            raise InvalidInputError(f"edges: index pair ({a}, {b}) out of range for {len(kp)} keypoints")
        if ok[a] and ok[b]:
            cv2.line(img, tuple(map(int, pts[a])), tuple(map(int, pts[b])), col, thickness, cv2.LINE_AA, shift)
    for k in np.nonzero(ok)[0]:
        cv2.circle(img, tuple(map(int, pts[k])), radius << shift, col, -1, cv2.LINE_AA, shift)
    return img


def render_mesh_rgba(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: Cameras,
    color: tuple[float, float, float] = MESH_COLOR,
    ambient: float = 0.35,
    smooth: bool = True,
) -> torch.Tensor:
    """Shaded mesh images [B, H, W, 4] (RGBA float in [0, 1], alpha = coverage) with a camera-attached light."""
    frags = rasterize_mesh(vertices, faces, cameras)
    B = frags.depth.shape[0]
    verts = vertices if vertices.shape[0] == B else vertices.expand(B, -1, -1)
    normals = pixel_normals(frags, verts, faces, smooth=smooth)
    light = headlight_direction(cameras.to(dtype=normals.dtype, device=normals.device))
    if light.shape[0] != B:
        light = light.expand(B, -1)
    return shade_lambert(frags, normals, light, color=color, ambient=ambient)


def render_overlay(
    image,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: Cameras,
    keypoints=None,
    model_keypoints: torch.Tensor | None = None,
    edges: Sequence[tuple[int, int]] | None = None,
    alpha: float = 0.6,
    mesh_color: tuple[float, float, float] = MESH_COLOR,
    keypoint_color: tuple[int, int, int] = KEYPOINT_COLOR,
    model_keypoint_color: tuple[int, int, int] = MODEL_KEYPOINT_COLOR,
) -> np.ndarray:
    """Shaded mesh alpha-blended over a photo, plus input and model keypoints -> uint8 RGB [H, W, 3].

    Args:
        image: uint8 **RGB** [H, W, 3] (numpy or tensor); must match ``cameras`` (height, width).
        vertices: [V, 3] or [1, V, 3] world coordinates. faces: [F, 3] vertex indices.
        cameras: a single :class:`Cameras` (OpenCV convention).
        keypoints: optional detected 2D keypoints [K, 2] or [K, 3] (x, y, confidence) in pixels, drawn with
            their skeleton in ``keypoint_color``.
        model_keypoints: optional model keypoints, either **3D world** points [K, 3] (or [1, K, 3]) projected
            with ``cameras`` (points behind the camera are skipped) or already-projected pixels [K, 2]; drawn
            with the same skeleton in ``model_keypoint_color``.
        edges: skeleton edges; None picks them from K (see :func:`default_edges`).
        alpha: mesh opacity over the photo (0 = photo only, 1 = opaque mesh).
    """
    img = _as_image(image)
    if not isinstance(cameras, Cameras):
        raise InvalidInputError(f"cameras: expected a human3d.geometry.Cameras, got {type(cameras).__name__}")
    if len(cameras) != 1:
        raise InvalidInputError(f"cameras: expected a single camera, got a batch of {len(cameras)}")
    H, W = img.shape[:2]
    if (int(cameras.height), int(cameras.width)) != (H, W):
        raise InvalidInputError(
            f"image: size {W}x{H} does not match cameras ({int(cameras.width)}x{int(cameras.height)})"
        )
    if not 0.0 <= float(alpha) <= 1.0:
        raise InvalidInputError(f"alpha: expected a value in [0, 1], got {alpha!r}")
    if isinstance(vertices, torch.Tensor) and vertices.dim() == 2:
        vertices = vertices.unsqueeze(0)
    check_tensor(vertices, "vertices", (1, None, 3), dtype_floating=True)
    with torch.no_grad():
        rgba = render_mesh_rgba(vertices.float(), faces, cameras.to(dtype=torch.float32), mesh_color)[0]
    rgba = rgba.cpu().numpy()  # [H, W, 4]
    a = (float(alpha) * rgba[..., 3:4]).astype(np.float32)
    out = img.astype(np.float32) * (1.0 - a) + (rgba[..., :3] * 255.0) * a
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)

    if model_keypoints is not None:
        if isinstance(model_keypoints, torch.Tensor) and model_keypoints.shape[-1:] == (3,):
            mk = model_keypoints.unsqueeze(0) if model_keypoints.dim() == 2 else model_keypoints
            check_tensor(mk, "model_keypoints", (1, None, 3), dtype_floating=True)
            proj = cameras.to(dtype=mk.dtype, device=mk.device).project(mk)
            kp_m = torch.cat([proj.uv[0], proj.valid[0, :, None].to(proj.uv.dtype)], dim=-1)  # [K, 3]
        elif isinstance(model_keypoints, torch.Tensor) and model_keypoints.shape[-1:] == (2,):
            kp_m = model_keypoints  # already pixels
        else:
            shape = tuple(getattr(model_keypoints, "shape", ()))
            raise InvalidInputError(
                f"model_keypoints: expected a tensor [K, 3] (3D world) or [K, 2] (pixels), got {shape}"
            )
        kp_m = _as_points2d(kp_m, "model_keypoints")
        e = edges if edges is not None else default_edges(kp_m.shape[0])
        out = draw_keypoints(out, kp_m, e, model_keypoint_color, min_confidence=0.5)
    if keypoints is not None:
        kp = _as_points2d(keypoints, "keypoints")
        e = edges if edges is not None else default_edges(kp.shape[0])
        out = draw_keypoints(out, kp, e, keypoint_color)
    return out


def save_png(path, rgb) -> Path:
    """Write a uint8 RGB [H, W, 3] (or grey [H, W]) image to ``path`` as PNG, atomically; returns the path."""
    if isinstance(rgb, torch.Tensor):
        rgb = rgb.detach().cpu().numpy()
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or not (
        rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] in (3, 4))
    ):
        shape = getattr(rgb, "shape", None)
        raise InvalidInputError(f"rgb: expected a uint8 image [H, W], [H, W, 3] or [H, W, 4], got {shape}")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InvalidInputError(f"path: expected a .png file name, got '{path}'")
    if rgb.ndim == 3:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR if rgb.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(rgb)):
            raise Human3DError(f"path: OpenCV could not write '{path}'")
    return path
