"""Mesh extraction from implicit fields: dense marching cubes, OccNet's coarse-to-fine MISE, normals from the field.

A *field* is a callable ``fn(x [N, 3]) -> [N]`` that is **negative inside** (an SDF, or ``-logit`` of an
occupancy network); the surface is its ``level`` set. Grids cover the cube ``[lo, hi]^3`` with ``R`` cells per axis
and ``R + 1`` vertices; the value array ``[R+1, R+1, R+1]`` is indexed (x, y, z): vertex (i, j, k) sits at
``lo + (i, j, k) (hi - lo) / R``. Meshes come out in the field's coordinates with faces wound counter-clockwise
around the outward normal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from human3d.errors import InvalidInputError

__all__ = [
    "grid_points",
    "evaluate_field",
    "dense_grid",
    "marching_cubes",
    "mise_grid",
    "extract_mesh",
    "field_normals",
    "mesh_area_volume",
    "ExtractedMesh",
]


def grid_points(resolution: int, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    """Vertices of the ``resolution^3``-cell grid -> [(R+1)^3, 3] float32 in (x, y, z) index order."""
    t = np.linspace(lo, hi, resolution + 1, dtype=np.float32)
    return np.stack(np.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3)


@torch.no_grad()
def evaluate_field(fn, points: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """fn over points [N, 3] in chunks, without autograd -> [N] float32."""
    out = np.empty(len(points), np.float32)
    for s in range(0, len(points), chunk):
        x = torch.from_numpy(np.ascontiguousarray(points[s : s + chunk], dtype=np.float32))
        out[s : s + chunk] = fn(x).reshape(-1).float().numpy()
    return out


def dense_grid(fn, resolution: int = 128, lo: float = -1.0, hi: float = 1.0, chunk: int = 65536) -> np.ndarray:
    """The field on every grid vertex -> [R+1, R+1, R+1]."""
    if resolution < 2:
        raise InvalidInputError(f"resolution: expected >= 2 cells per axis, got {resolution}")
    n = resolution + 1
    return evaluate_field(fn, grid_points(resolution, lo, hi), chunk).reshape(n, n, n)


def mesh_area_volume(vertices: np.ndarray, faces: np.ndarray) -> tuple[float, float]:
    """Surface area and signed volume (divergence theorem; positive for outward-wound closed meshes)."""
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return 0.5 * float(np.linalg.norm(cross, axis=1).sum()), float((cross * tri[:, 0]).sum() / 6.0)


def marching_cubes(values: np.ndarray, lo: float = -1.0, hi: float = 1.0, level: float = 0.0):
    """scikit-image marching cubes of a vertex grid [R+1]^3 -> vertices [V, 3] float32, faces [F, 3] int64
    (outward winding for a negative-inside field). Raises when the level set does not cross the grid."""
    from skimage.measure import marching_cubes as sk_mc

    if values.ndim != 3 or min(values.shape) < 2:
        raise InvalidInputError(f"values: expected a 3-D grid, got shape {values.shape}")
    if not (values.min() < level < values.max()):
        raise InvalidInputError(
            f"field: the level set {level} does not cross the grid (values in [{values.min():.3g}, "
            f"{values.max():.3g}]); the shape is empty or fills the box"
        )
    spacing = (hi - lo) / (values.shape[0] - 1)
    v, f, _, _ = sk_mc(values, level=level, spacing=(spacing,) * 3)
    v = (v + lo).astype(np.float32)
    f = f.astype(np.int64)
    if mesh_area_volume(v, f)[1] < 0:  # outward for negative-inside fields
        f = f[:, ::-1].copy()
    return v, f


def _upsample(g: np.ndarray) -> np.ndarray:
    """Trilinear 2x refinement of a vertex grid [n+1]^3 -> [2n+1]^3 (old vertices kept at even indices)."""
    for ax in range(3):
        g = np.moveaxis(g, ax, 0)
        out = np.empty((2 * g.shape[0] - 1,) + g.shape[1:], g.dtype)
        out[0::2] = g
        out[1::2] = 0.5 * (g[:-1] + g[1:])
        g = np.moveaxis(out, 0, ax)
    return g


def _straddling_cells(g: np.ndarray, level: float) -> np.ndarray:
    """Cells [n]^3 whose 8 corner values include both sides of ``level``."""
    corners = [g[a : a + g.shape[0] - 1, b : b + g.shape[1] - 1, c : c + g.shape[2] - 1]
               for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    cmin, cmax = np.minimum.reduce(corners), np.maximum.reduce(corners)
    return (cmin <= level) & (cmax >= level)


def mise_grid(
    fn,
    resolution: int = 128,
    init_resolution: int = 32,
    lo: float = -1.0,
    hi: float = 1.0,
    level: float = 0.0,
    dilate: int = 1,
    chunk: int = 65536,
) -> tuple[np.ndarray, int]:
    """OccNet's multiresolution iso-surface extraction: evaluate an ``init_resolution^3`` grid, then repeatedly
    halve the cells, evaluating the field only at the new vertices of cells whose corners straddle ``level``
    (dilated by ``dilate`` cells so thin features next to them are caught); elsewhere values are interpolated
    trilinearly (same sign, so no surface appears there). ``resolution = init_resolution * 2^k``.

    Returns the vertex grid [R+1]^3 (exact where the surface is, interpolated away from it) and the number of
    field evaluations (a dense grid costs ``(R+1)^3``).
    """
    from scipy.ndimage import binary_dilation

    k = np.log2(resolution / init_resolution)
    if init_resolution < 2 or k < 0 or abs(k - round(k)) > 1e-9:
        raise InvalidInputError(
            f"resolution: expected init_resolution ({init_resolution}) times a power of two, got {resolution}"
        )
    g = dense_grid(fn, init_resolution, lo, hi, chunk)
    n_eval = g.size
    n = init_resolution
    while n < resolution:
        active = _straddling_cells(g, level)
        if dilate:
            active = binary_dilation(active, iterations=dilate)
        g = _upsample(g)
        n *= 2
        fine = active.repeat(2, 0).repeat(2, 1).repeat(2, 2)  # [n]^3 fine cells inside active coarse cells
        need = np.zeros((n + 1,) * 3, bool)
        for a in (0, 1):
            for b in (0, 1):
                for c in (0, 1):
                    need[a : a + n, b : b + n, c : c + n] |= fine
        need[0::2, 0::2, 0::2] = False  # already evaluated at the coarser level
        idx = np.argwhere(need)  # [M, 3]
        if len(idx):
            pts = (lo + idx.astype(np.float32) * ((hi - lo) / n)).astype(np.float32)
            g[need] = evaluate_field(fn, pts, chunk)  # argwhere and boolean indexing share C order
            n_eval += len(idx)
    return g, n_eval


@dataclass
class ExtractedMesh:
    vertices: np.ndarray  # [V, 3] float32, field coordinates
    faces: np.ndarray  # [F, 3] int64, outward winding
    normals: np.ndarray  # [V, 3] unit normals from the field's gradient
    n_evaluations: int


def field_normals(fn, points: np.ndarray, chunk: int = 32768) -> np.ndarray:
    """Outward unit normals ``grad f / |grad f|`` of a negative-inside field at points [N, 3] -> [N, 3]."""
    out = np.empty((len(points), 3), np.float32)
    for s in range(0, len(points), chunk):
        with torch.enable_grad():
            x = torch.from_numpy(np.ascontiguousarray(points[s : s + chunk], np.float32)).requires_grad_(True)
            (g,) = torch.autograd.grad(fn(x).sum(), x)
        out[s : s + chunk] = torch.nn.functional.normalize(g, dim=-1).numpy()
    return out


def extract_mesh(
    fn,
    resolution: int = 128,
    method: str = "mise",
    init_resolution: int = 32,
    lo: float = -1.0,
    hi: float = 1.0,
    level: float = 0.0,
    chunk: int = 65536,
) -> ExtractedMesh:
    """Mesh of the ``level`` set of ``fn`` on ``[lo, hi]^3`` by ``method`` "mise" (coarse-to-fine) or "dense",
    with vertex normals from the field's gradient."""
    if method == "mise":
        g, n_eval = mise_grid(fn, resolution, min(init_resolution, resolution), lo, hi, level, chunk=chunk)
    elif method == "dense":
        g = dense_grid(fn, resolution, lo, hi, chunk)
        n_eval = g.size
    else:
        raise InvalidInputError(f"method: expected 'mise' or 'dense', got {method!r}")
    v, f = marching_cubes(g, lo, hi, level)
    return ExtractedMesh(v, f, field_normals(fn, v), n_eval)
