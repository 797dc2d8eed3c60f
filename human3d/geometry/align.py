"""Similarity alignment of point sets (Umeyama 1991) and camera-pose errors after it.

Used to compare a reconstruction in its own gauge (structure-from-motion recovers poses only up to a similarity:
scale, rotation, translation) with known poses. Everything here is float64 NumPy.

Convention: poses are OpenCV **camera-to-world** 4x4 matrices (``x_world = R @ x_cam + c``), the inverse of the
world-to-camera extrinsics of :mod:`human3d.geometry.cameras`.
"""

from __future__ import annotations

import numpy as np

from human3d.errors import InvalidInputError

__all__ = ["umeyama", "apply_similarity", "rotation_angle_deg", "pose_errors"]


def umeyama(src, dst, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """The similarity ``(s, R, t)`` minimising ``sum_i |dst_i - (s R src_i + t)|^2`` (closed form, Umeyama 1991).

    Args:
        src, dst: [N, D] corresponding points (N >= D for a unique rotation; N >= 2 needed).
        with_scale: False fixes ``s = 1`` (rigid alignment).

    Returns ``s`` (float), ``R`` [D, D] with ``det(R) = +1`` (a reflection is never returned: when the best
    orthogonal map is a reflection the smallest singular direction is flipped), ``t`` [D].
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.ndim != 2 or src.shape != dst.shape:
        raise InvalidInputError(f"umeyama: src and dst must both be [N, D], got {src.shape} and {dst.shape}")
    n, d = src.shape
    if n < 2 or not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise InvalidInputError(f"umeyama: need >= 2 finite point pairs, got {n}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = (xs**2).sum() / n
    if var_s <= 1e-300:
        raise InvalidInputError("umeyama: the source points all coincide (no scale or rotation is defined)")
    cov = xd.T @ xs / n  # [D, D]
    U, S, Vt = np.linalg.svd(cov)
    E = np.ones(d)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        E[-1] = -1.0
    R = (U * E) @ Vt
    s = float((S * E).sum() / var_s) if with_scale else 1.0
    t = mu_d - s * R @ mu_s
    return s, R, t


def apply_similarity(s: float, R: np.ndarray, t: np.ndarray, points) -> np.ndarray:
    """``s R p + t`` for points [N, D]."""
    return s * np.asarray(points, np.float64) @ np.asarray(R).T + np.asarray(t)


def rotation_angle_deg(Ra, Rb) -> np.ndarray:
    """Angle in degrees of ``Ra^T Rb`` for rotation batches [..., 3, 3] (the geodesic distance on SO(3)).

    Computed from the chordal distance, ``|Ra - Rb|_F = 2 sqrt(2) sin(angle / 2)``, which stays accurate near 0
    (``arccos((trace - 1) / 2)`` loses all digits below ~0.01 deg).
    """
    Ra, Rb = np.asarray(Ra, np.float64), np.asarray(Rb, np.float64)
    chord = np.linalg.norm(Ra - Rb, axis=(-2, -1)) / (2.0 * np.sqrt(2.0))
    return np.degrees(2.0 * np.arcsin(np.clip(chord, 0.0, 1.0)))


def pose_errors(est_c2w, true_c2w) -> dict:
    """Align estimated camera centres to the true ones with :func:`umeyama`, then compare every camera.

    Args:
        est_c2w, true_c2w: [N, 4, 4] (or [N, 3, 4]) OpenCV camera-to-world poses of the same N >= 3 cameras.

    Returns a dict: ``scale``, ``R`` [3, 3], ``t`` [3] (the similarity est -> true), ``center_error`` [N] (world
    units of the truth), ``rotation_error_deg`` [N] (angle between the true camera rotation and the aligned
    estimated one, ``R @ R_est``), and ``scene_radius`` (the largest distance of a true centre from their mean).
    """
    est = np.asarray(est_c2w, np.float64)
    true = np.asarray(true_c2w, np.float64)
    if est.shape != true.shape or est.ndim != 3 or est.shape[1:] not in ((4, 4), (3, 4)) or len(est) < 3:
        raise InvalidInputError(f"pose_errors: expected two [N>=3, 4, 4] pose arrays, got {est.shape} and {true.shape}")
    s, R, t = umeyama(est[:, :3, 3], true[:, :3, 3])
    centers = apply_similarity(s, R, t, est[:, :3, 3])
    c_true = true[:, :3, 3]
    return {
        "scale": s,
        "R": R,
        "t": t,
        "center_error": np.linalg.norm(centers - c_true, axis=-1),
        "rotation_error_deg": rotation_angle_deg(true[:, :3, :3], R @ est[:, :3, :3]),
        "scene_radius": float(np.linalg.norm(c_true - c_true.mean(0), axis=-1).max()),
    }
