"""Brute-force oracles for the implicit-surface tests: exact point-to-triangle distance (Ericson, *Real-Time
Collision Detection* 5.1.5, every point against every face) and the inside test by the generalised winding number
(Jacobson et al. 2013, solid angles by Van Oosterom & Strackee). Slow and simple on purpose: O(N F) in numpy."""

from __future__ import annotations

import numpy as np


def point_triangle_distance(p: np.ndarray, tri: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Unsigned distance of points p [N, 3] to the nearest of the triangles tri [F, 3, 3] -> [N]."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]  # [F, 3]
    ab, ac = b - a, c - a
    out = np.empty(len(p))
    for s in range(0, len(p), chunk):
        q = p[s : s + chunk, None, :]  # [n, 1, 3]
        ap, bp, cp = q - a, q - b, q - c  # [n, F, 3]
        d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
        d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
        d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
        va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
        with np.errstate(divide="ignore", invalid="ignore"):
            denom = va + vb + vc
            v_in, w_in = vb / denom, vc / denom
            t_ab = d1 / (d1 - d3)
            t_ac = d2 / (d2 - d6)
            t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        # barycentric (v, w) of the closest point, region by region (later regions override earlier ones)
        v = np.nan_to_num(v_in)
        w = np.nan_to_num(w_in)
        r = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)  # edge BC
        v, w = np.where(r, 1 - t_bc, v), np.where(r, t_bc, w)
        r = (vb <= 0) & (d2 >= 0) & (d6 <= 0)  # edge AC
        v, w = np.where(r, 0, v), np.where(r, t_ac, w)
        r = (vc <= 0) & (d1 >= 0) & (d3 <= 0)  # edge AB
        v, w = np.where(r, t_ab, v), np.where(r, 0, w)
        r = (d6 >= 0) & (d5 <= d6)  # vertex C
        v, w = np.where(r, 0, v), np.where(r, 1, w)
        r = (d3 >= 0) & (d4 <= d3)  # vertex B
        v, w = np.where(r, 1, v), np.where(r, 0, w)
        r = (d1 <= 0) & (d2 <= 0)  # vertex A
        v, w = np.where(r, 0, v), np.where(r, 0, w)
        closest = a + v[..., None] * ab + w[..., None] * ac  # [n, F, 3]
        out[s : s + chunk] = np.sqrt(((q - closest) ** 2).sum(-1).min(-1))
    return out


def winding_number(p: np.ndarray, tri: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Generalised winding number of points p [N, 3] w.r.t. a closed outward-oriented mesh -> [N] (1 in, 0 out)."""
    out = np.empty(len(p))
    for s in range(0, len(p), chunk):
        r = tri[None] - p[s : s + chunk, None, None, :]  # [n, F, 3, 3]
        a, b, c = r[..., 0, :], r[..., 1, :], r[..., 2, :]
        la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
        det = (a * np.cross(b, c)).sum(-1)
        den = la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la + (c * a).sum(-1) * lb
        out[s : s + chunk] = (2 * np.arctan2(det, den)).sum(-1) / (4 * np.pi)
    return out
