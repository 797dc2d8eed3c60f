"""Point clouds and meshes for implicit surfaces: PLY (with or without normals) and XYZ point clouds, meshes through
trimesh, and a turntable picture of an extracted mesh drawn with human3d's rasterizer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from human3d.errors import DatasetError, InvalidInputError, check_file
from human3d.io_utils import atomic_path

__all__ = ["read_points", "write_mesh", "turntable"]

POINT_SUFFIXES = (".ply", ".xyz", ".txt", ".obj", ".off", ".stl", ".glb")


def read_points(path, n_mesh_samples: int = 100_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Points [N, 3] and unit normals [N, 3] (or None) from a point cloud or mesh file.

    ``.xyz``/``.txt``: whitespace columns ``x y z [nx ny nz]``. ``.ply``: vertices (normals from ``nx ny nz`` when
    present); a PLY/OBJ/OFF/STL with faces is a mesh, from which ``n_mesh_samples`` points and their face normals
    are sampled uniformly by area.
    """
    import trimesh

    from human3d.implicit.sampling import _check_points, sample_surface

    p = check_file(path, "points", POINT_SUFFIXES)
    normals = None
    if p.suffix.lower() in (".xyz", ".txt"):
        try:
            a = np.loadtxt(p, ndmin=2)
        except ValueError as e:
            raise DatasetError(f"points: '{p}' is not a whitespace-separated x y z [nx ny nz] file: {e}") from None
        if a.shape[1] not in (3, 6):
            raise DatasetError(f"points: '{p}' has {a.shape[1]} columns; expected 3 (x y z) or 6 (with normals)")
        pts, normals = a[:, :3], (a[:, 3:6] if a.shape[1] == 6 else None)
    else:
        try:
            geom = trimesh.load(p, process=False)
        except Exception as e:  # trimesh raises many types on bad files
            raise DatasetError(f"points: could not read '{p}': {e}") from e
        if isinstance(geom, trimesh.Scene):
            geom = geom.to_geometry() if hasattr(geom, "to_geometry") else geom.dump(concatenate=True)
        if isinstance(geom, trimesh.Trimesh) and len(geom.faces):
            pts, normals = sample_surface(geom.vertices, geom.faces, n_mesh_samples, seed=seed)
        else:
            pts = np.asarray(getattr(geom, "vertices", np.zeros((0, 3))), np.float64)
            raw = geom.metadata.get("_ply_raw", {}).get("vertex", {}).get("data") if hasattr(geom, "metadata") else None
            if raw is not None and all(k in raw.dtype.names for k in ("nx", "ny", "nz")):
                normals = np.stack([raw["nx"], raw["ny"], raw["nz"]], 1).astype(np.float64)
    pts = _check_points(pts, f"points in '{p}'")
    if normals is not None:
        nrm = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = None if not np.isfinite(normals).all() or (nrm < 1e-12).any() else normals / nrm
    return pts, normals


def write_mesh(path, vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray | None = None) -> Path:
    """Write a mesh (format from the suffix: .obj, .ply, .off, .stl, .glb) atomically through trimesh."""
    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, vertex_normals=normals, process=False)
    with atomic_path(path) as tmp:
        mesh.export(tmp)
    return Path(path)


def turntable(path, vertices: np.ndarray, faces: np.ndarray, n_views: int = 6, size: int = 256) -> Path:
    """A PNG strip of ``n_views`` Lambert-shaded views around the +Y axis (human3d rasterizer, headlight)."""
    import cv2
    import torch

    from human3d.geometry.cameras import Cameras, frame_points
    from human3d.render.rasterizer import headlight_direction, pixel_normals, rasterize_mesh, shade_lambert

    if n_views < 1 or size < 16:
        raise InvalidInputError(f"n_views / size: expected >= 1 and >= 16, got {n_views}, {size}")
    v = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(faces), dtype=torch.int64)
    tiles = []
    for i in range(n_views):
        a = 2 * math.pi * i / n_views
        cam: Cameras = frame_points(v, size, size, view_dir=(-math.sin(a), 0.0, -math.cos(a)))
        frag = rasterize_mesh(v[None], f, cam)
        img = shade_lambert(frag, pixel_normals(frag, v[None], f), headlight_direction(cam))[0]
        rgb = img[..., :3] + (1 - img[..., 3:]) * 1.0  # white background
        tiles.append((rgb.clamp(0, 1).numpy() * 255).astype(np.uint8))
    strip = np.concatenate(tiles, 1)
    with atomic_path(path, suffix=".png") as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    return Path(path)
