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
        if p.suffix.lower() == ".ply":
            _check_ascii_ply(p)
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
            # binary PLY: a structured array; ASCII PLY: a dict of columns (trimesh reads both)
            names = getattr(getattr(raw, "dtype", None), "names", None) or (list(raw) if isinstance(raw, dict) else ())
            if all(k in names for k in ("nx", "ny", "nz")):
                normals = np.stack([np.asarray(raw[k]).reshape(-1) for k in ("nx", "ny", "nz")], 1).astype(np.float64)
    pts = _check_points(pts, f"points in '{p}'")
    if normals is not None:
        nrm = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = None if not np.isfinite(normals).all() or (nrm < 1e-12).any() else normals / nrm
    return pts, normals


def _check_ascii_ply(p: Path) -> None:
    """trimesh reads a truncated ASCII PLY without complaint (or fails obscurely): check the rows first."""
    elements: list[list] = []  # [name, rows, number of scalar properties, has a list property]
    with open(p, "rb") as f:
        if f.readline().strip() != b"ply":
            return  # trimesh reports it
        is_ascii = False
        for line in f:
            parts = line.split()
            if parts[:1] == [b"format"]:
                is_ascii = parts[1:2] == [b"ascii"]
            elif parts[:1] == [b"element"] and len(parts) == 3 and parts[2].isdigit():
                elements.append([parts[1].decode("ascii", "replace"), int(parts[2]), 0, False])
            elif parts[:1] == [b"property"] and elements:
                elements[-1][3 if parts[1:2] == [b"list"] else 2] += 1
            elif parts[:1] == [b"end_header"]:
                break
        if not is_ascii:
            return
        rows = [ln.split() for ln in f if ln.strip()]
    start = 0
    for name, count, n_props, has_list in elements:
        if len(rows) < start + count:
            raise DatasetError(
                f"points: '{p}' is truncated: element '{name}' needs {count} rows, {max(len(rows) - start, 0)} remain"
            )
        if not has_list:
            short = [i for i in range(start, start + count) if len(rows[i]) != n_props]
            if short:
                raise DatasetError(f"points: '{p}' is truncated or malformed: row {short[0] - start} of element "
                                   f"'{name}' has {len(rows[short[0]])} values, expected {n_props}")  # fmt: skip
        start += count


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
