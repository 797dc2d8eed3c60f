"""Multi-view renders of a mesh as a Blender / nerf_synthetic dataset, drawn with human3d's rasterizer.

:func:`render_multiview` writes ``OUT/transforms_train.json`` + ``OUT/train/r_<i>.png`` (and the same for
``test``): RGBA PNGs whose alpha is the exact coverage mask, cameras as OpenGL camera-to-world matrices with
``camera_angle_x`` (the format :func:`human3d.data.scenes.load_blender_scene` reads), depth maps
``OUT/depth/<split>/r_<i>.npy`` (camera z, 0 where empty), plus ``OUT/mesh.obj``, the
ground-truth surface in the dataset's world frame, and ``OUT/multiview.json`` (how the set was made). NeRF, DVR
and splatting can then be checked against a known surface.

Conventions: the mesh is moved into the unit ball (bounding-box centre at the origin, farthest vertex at
``object_radius``), the frame the Blender loader assumes (scene box ±1.5, near 2, far 6). Cameras sit at
``distance`` on Fibonacci spirals over the whole sphere (test views on a spiral offset from the training one) and
look at the origin with world +z up. Colour is view-independent (a Lambertian surface lit by a light fixed in the
world, or the mesh's own vertex colours), so a surface model without view dependence can fit it exactly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from human3d.errors import DatasetError, InvalidInputError
from human3d.geometry.cameras import Cameras, intrinsics_from_fov, look_at, opengl_to_opencv
from human3d.io_utils import atomic_path, atomic_write_text
from human3d.render.rasterizer import interpolate_vertex_attributes, pixel_normals, rasterize_mesh

__all__ = ["MultiviewConfig", "fibonacci_directions", "multiview_cameras", "render_views", "render_multiview",
           "load_mesh_file", "anny_mesh"]  # fmt: skip


@dataclass
class MultiviewConfig:
    """How :func:`render_multiview` renders a mesh."""

    n_train: int = 24
    """Training views."""
    n_test: int = 8
    """Test views (on a spiral offset from the training one)."""
    size: int = 64
    """Image side in pixels (square)."""
    fov_x: float = 0.6911112070083618
    """Horizontal field of view in radians (nerf_synthetic's lego value)."""
    distance: float = 4.0
    """Camera distance from the origin (world units; the object fits the ball of ``object_radius``)."""
    object_radius: float = 1.0
    """The mesh is scaled so that its farthest vertex from the bounding-box centre lies at this radius."""
    shading: str = "lambert"
    """``"lambert"`` (albedo ``color`` lit by a world-fixed light) or ``"vertex"`` (the mesh's vertex colours)."""
    color: tuple[float, float, float] = (0.8, 0.55, 0.35)
    """Albedo of the Lambertian shading."""
    light_dir: tuple[float, float, float] = (0.4, 0.3, 0.85)
    """Direction towards the light, world frame (fixed: the colour of a surface point does not change with view)."""
    ambient: float = 0.35
    """Ambient fraction: intensity = ambient + (1 - ambient) max(n . l, 0)."""

    def validate(self) -> "MultiviewConfig":
        if not (int(self.n_train) >= 1 and int(self.n_test) >= 1 and int(self.size) >= 8):
            raise InvalidInputError(f"views / size: expected n_train >= 1, n_test >= 1 and size >= 8, got "
                                    f"{self.n_train}, {self.n_test}, {self.size}")  # fmt: skip
        if not (0 < self.fov_x < math.pi):
            raise InvalidInputError(f"fov_x: expected an angle in (0, pi) radians, got {self.fov_x}")
        if not (self.distance > self.object_radius > 0):
            raise InvalidInputError(f"distance: expected distance > object_radius > 0, got {self.distance}, "
                                    f"{self.object_radius}")  # fmt: skip
        if self.shading not in ("lambert", "vertex"):
            raise InvalidInputError(f"shading: expected 'lambert' or 'vertex', got {self.shading!r}")
        if not 0.0 <= self.ambient <= 1.0:
            raise InvalidInputError(f"ambient: expected a fraction in [0, 1], got {self.ambient}")
        return self


def fibonacci_directions(n: int, offset: float = 0.5) -> torch.Tensor:
    """``n`` nearly uniform unit vectors [n, 3] on the sphere (Fibonacci spiral; ``offset`` in (0, 1) shifts the
    rings, so two offsets give two disjoint sets). The poles are never hit exactly."""
    i = torch.arange(n, dtype=torch.float64) + offset
    z = 1.0 - 2.0 * i / n
    r = torch.sqrt((1.0 - z * z).clamp_min(0))
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1).float()


def multiview_cameras(n: int, size: int, fov_x: float, distance: float, offset: float = 0.5) -> Cameras:
    """``n`` OpenCV cameras at ``distance`` on a Fibonacci spiral, looking at the origin, world +z up."""
    eye = fibonacci_directions(n, offset) * distance  # [n, 3]
    up = torch.tensor([0.0, 0.0, 1.0]).expand(n, 3)
    w2c = look_at(eye, torch.zeros(n, 3), up)
    K = intrinsics_from_fov(fov_x, size, size, batch_size=n)
    return Cameras(K, w2c, size, size)


def render_views(vertices: torch.Tensor, faces: torch.Tensor, cameras: Cameras, cfg: MultiviewConfig,
                 vertex_colors: torch.Tensor | None = None, batch: int = 8) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """RGBA images [N, H, W, 4] in [0, 1] (straight alpha = coverage) and depth maps [N, H, W] (camera z, 0 where
    empty) of one mesh (vertices [V, 3], faces [F, 3])."""
    light = torch.nn.functional.normalize(torch.tensor(cfg.light_dir, dtype=torch.float32), dim=0)
    out, depth = [], []
    for s in range(0, len(cameras), batch):  # a few views at a time (memory), not a loop over pixels
        cams = cameras[s : s + batch]
        frag = rasterize_mesh(vertices[None], faces, cams, cull_backfaces=False)
        mask = frag.mask[..., None].float()  # [B, H, W, 1]
        if cfg.shading == "vertex":
            rgb = interpolate_vertex_attributes(frag, faces, vertex_colors)
        else:
            n = pixel_normals(frag, vertices[None], faces)  # [B, H, W, 3] world frame
            ndotl = (n * light).sum(-1, keepdim=True).clamp_min(0)
            rgb = torch.tensor(cfg.color) * (cfg.ambient + (1.0 - cfg.ambient) * ndotl)
        out.append(torch.cat([rgb.clamp(0, 1) * mask, mask], -1))
        depth.append(frag.depth.detach())
    return torch.cat(out), torch.cat(depth)


def load_mesh_file(path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Vertices [V, 3] float32, faces [F, 3] int64 and vertex colours [V, 3] in [0, 1] (None when the file has
    none) of a mesh file read with trimesh (vertices merged by position)."""
    import trimesh

    p = Path(path).expanduser()
    if not p.is_file():
        raise DatasetError(f"mesh: '{p}' does not exist (expected a mesh file: .obj, .ply, .off, .stl, .glb)")
    try:
        m = trimesh.load(p, force="mesh", process=False)
    except Exception as e:  # trimesh raises many types for bad files
        raise DatasetError(f"mesh: could not read '{p}': {e}") from e
    if not isinstance(m, trimesh.Trimesh) or len(m.faces) == 0:
        raise DatasetError(f"mesh: '{p}' has no triangles")
    colors = None
    if m.visual.kind == "vertex":
        colors = torch.tensor(np.asarray(m.visual.vertex_colors)[:, :3] / 255.0, dtype=torch.float32)
    else:
        m.merge_vertices(merge_tex=True, merge_norm=True)
    v = torch.tensor(np.asarray(m.vertices), dtype=torch.float32)
    if not torch.isfinite(v).all():
        raise DatasetError(f"mesh: '{p}' has non-finite vertex coordinates")
    return v, torch.tensor(np.asarray(m.faces), dtype=torch.int64), colors


def anny_mesh(body=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The default Anny body (zero pose, mean phenotypes): vertices [V, 3] (metres, Y up) and faces [F, 3]."""
    if body is None:
        from human3d.body.anny import AnnyBody

        body = AnnyBody()
    with torch.no_grad():
        out = body()
    return out.vertices[0].float().cpu(), out.faces.long().cpu()


def _write_png_rgba(path: Path, rgba: torch.Tensor) -> None:
    import cv2

    arr = (rgba.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)):
            raise OSError(f"could not write '{path}'")


def render_multiview(vertices, faces, out, cfg: MultiviewConfig | None = None, vertex_colors=None,
                     source: str = "mesh", progress=None) -> Path:  # fmt: skip
    """Render a mesh (vertices [V, 3], faces [F, 3]) into a Blender dataset at ``out`` (see the module docstring).

    ``progress(k)`` is called with the number of views written. Returns ``out``.
    """
    cfg = (cfg or MultiviewConfig()).validate()
    v = torch.as_tensor(vertices, dtype=torch.float32)
    f = torch.as_tensor(faces, dtype=torch.int64)
    if v.dim() != 2 or v.shape[-1] != 3 or len(v) < 3 or f.dim() != 2 or f.shape[-1] != 3 or len(f) == 0:
        raise InvalidInputError(f"vertices / faces: expected [V, 3] and [F, 3], got {tuple(v.shape)}, {tuple(f.shape)}")
    if cfg.shading == "vertex" and vertex_colors is None:
        raise InvalidInputError("shading 'vertex': the mesh has no vertex colours (use shading 'lambert')")
    center = 0.5 * (v.min(0).values + v.max(0).values)
    scale = float((v - center).norm(dim=-1).max()) / cfg.object_radius
    if not scale > 0:
        raise InvalidInputError("vertices: degenerate mesh (all vertices coincide)")
    v = (v - center) / scale  # the dataset's world frame
    cols = None if vertex_colors is None else torch.as_tensor(vertex_colors, dtype=torch.float32)
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    for split, n, offset in (("train", cfg.n_train, 0.5), ("test", cfg.n_test, 0.25)):
        cams = multiview_cameras(n, cfg.size, cfg.fov_x, cfg.distance, offset)
        images, depth = render_views(v, f, cams, cfg, cols)
        c2w_gl = opengl_to_opencv(cams.camera_to_world)  # the map is an involution
        frames = []
        (out / split).mkdir(exist_ok=True)
        (out / "depth" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _write_png_rgba(out / split / f"r_{i}.png", images[i])
            with atomic_path(out / "depth" / split / f"r_{i}.npy", suffix=".npy") as tmp:
                np.save(tmp, depth[i].numpy().astype(np.float32))
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": c2w_gl[i].tolist()})
            if progress is not None:
                progress(1)
        atomic_write_text(out / f"transforms_{split}.json",
                          json.dumps({"camera_angle_x": cfg.fov_x, "frames": frames}, indent=2))  # fmt: skip
    import trimesh

    with atomic_path(out / "mesh.obj", suffix=".obj") as tmp:
        trimesh.Trimesh(v.numpy(), f.numpy(), process=False).export(str(tmp), file_type="obj")
    info = {"source": str(source), "center": center.tolist(), "scale": scale, **cfg.__dict__,
            "note": "world = (source - center) / scale; mesh.obj is the ground truth in world units"}  # fmt: skip
    atomic_write_text(out / "multiview.json", json.dumps(info, indent=2, default=list))
    return out
