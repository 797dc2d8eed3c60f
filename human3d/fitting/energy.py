"""SMPLify's energies, per person ``[B]``, built from :mod:`human3d.fitting.losses`.

Residuals are in units of the person's size ``s`` (the longer side of the confident keypoints' bounding box), so
the weights do not depend on image resolution::

    E = sum_k c_k GM(|pi(X_k) - x_k|^2 / s^2; sigma) / sigma^2          (robust reprojection, Geman-McClure)
      + w_pose(t) * E_prior(pose) + w_shape(t) * |z|^2                 (annealed priors)
      + w_limit * E_limits(elbows, knees) + w_sil * E_sil(mask)         (hinge limits; optional silhouette)

``t`` in [0, 1] is the position in stage 2 (see :mod:`human3d.fitting.optim`); the weights' schedules are
``SMPLifyConfig``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from human3d.fitting.losses import hinge_limit_energy, reprojection_energy
from human3d.fitting.optim import anneal
from human3d.fitting.priors import PoseSpace, PoseTerm, hinge_angles
from human3d.geometry.cameras import project_points

__all__ = ["Weights", "rigid_energy", "body_energy"]


@dataclass(frozen=True)
class Weights:
    """The energy's weights and schedules (from ``SMPLifyConfig``; tuples anneal through stage 2)."""

    sigma: tuple[float, ...]  # Geman-McClure scale (fraction of the person's size): start -> end
    pose_prior: tuple[float, ...]  # pose-prior weight (or |z|^2's, when fitting a VAE latent)
    shape: tuple[float, ...] | None  # shape-prior weight; None: the shape is not optimised
    angle_limit: float
    silhouette: float
    silhouette_start: float  # t from which the silhouette term is on


def rigid_energy(X_cam: torch.Tensor, K: torch.Tensor, target: torch.Tensor, scale: torch.Tensor, sigma: float,
                 weights: torch.Tensor, depth: torch.Tensor, depth0: torch.Tensor, depth_weight: float) -> torch.Tensor:  # fmt: skip
    """Stage 1's energy ``[N]``: weighted robust reprojection of camera-frame points ``X_cam`` ``[N, K, 3]``
    (intrinsics ``K`` ``[N, 3, 3]``, keypoints ``target`` ``[N, K, 3]``, per-keypoint ``weights`` ``[N, K]``) plus
    ``depth_weight * ((depth - depth0) / 0.1 m)^2`` keeping the depth ``[N]`` near its similar-triangles estimate."""
    pr = project_points(X_cam, K)
    e = reprojection_energy(pr.uv, pr.valid, target, scale, sigma, weights)
    return e + depth_weight * (depth - depth0) ** 2 / (0.1**2)


BODY_HEIGHT_M = 1.7
"""The length the 3D keypoint residuals are divided by (so the term is unit-free, as the 2D one)."""


def keypoints3d_energy(X: torch.Tensor, target: torch.Tensor, w2c: torch.Tensor, root: tuple[int, int]) -> torch.Tensor:
    """``mean_k |(X_k - X_root) - Y_k|^2 / BODY_HEIGHT_M^2`` ``[B]``: model keypoints ``X`` ``[B, K, 3]`` (world)
    against root-relative camera-frame targets ``target`` ``[B, K, 3]`` (m); ``root``: the two keypoints whose
    mean is the root (the hips)."""
    Xc = X @ w2c[:, :3, :3].transpose(1, 2)  # camera axes (the translation cancels in root-relative)
    rel = Xc - Xc[:, list(root)].mean(1, keepdim=True)
    return ((rel - target.to(X)) ** 2).sum(-1).mean(-1) / BODY_HEIGHT_M**2


def body_energy(X: torch.Tensor, K: torch.Tensor, w2c: torch.Tensor, target: torch.Tensor, scale: torch.Tensor,
                groups: torch.Tensor, body_pose: torch.Tensor, z_shape: torch.Tensor, z_latent: torch.Tensor | None,
                space: PoseSpace, term: PoseTerm | None, w: Weights, t: float, silhouette=None,
                vertices: torch.Tensor | None = None, keypoints3d: torch.Tensor | None = None,
                keypoints3d_weight: float | torch.Tensor = 0.0,
                root: tuple[int, int] = (11, 12)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Stage 2's energy at schedule position ``t`` (module docstring) -> ``(total, data, prior)`` ``[B]`` each.

    ``X`` ``[B, K, 3]`` model keypoints (world frame), ``groups`` ``[B, G, 3]`` / ``body_pose`` ``[B, Jp*3]`` the
    pose, ``z_shape`` ``[B, S]`` the shape variables (0 = initial shape), ``z_latent`` ``[B, L]`` a VAE prior's
    latent (its prior energy is then ``|z|^2``), ``silhouette`` a
    :class:`~human3d.fitting.silhouette.SilhouetteTerm` scoring ``vertices`` ``[B, V, 3]``; ``keypoints3d``
    ``[B, K, 3]`` root-relative camera-frame targets weighted by ``keypoints3d_weight`` (a number, or ``[B]`` per
    person; :func:`keypoints3d_energy`; part of the data term)."""
    pr = project_points(X, K, w2c)
    data = reprojection_energy(pr.uv, pr.valid, target, scale, anneal(w.sigma, t))
    if keypoints3d is not None and (isinstance(keypoints3d_weight, torch.Tensor) or keypoints3d_weight > 0):
        w3 = keypoints3d_weight.to(X) if isinstance(keypoints3d_weight, torch.Tensor) else keypoints3d_weight
        data = data + w3 * keypoints3d_energy(X, keypoints3d, w2c, root)
    if z_latent is not None:
        prior_e = (z_latent**2).sum(-1)
        prior_w = anneal(w.pose_prior, t)
    elif term is not None:
        prior_e = term.energy(groups, body_pose)
        prior_w = anneal(w.pose_prior, t)
    else:
        prior_e, prior_w = torch.zeros_like(data), 0.0
    e = data + prior_w * prior_e
    if w.shape is not None:
        e = e + anneal(w.shape, t) * (z_shape**2).sum(-1)
    if w.angle_limit > 0:
        ang, lo, hi = hinge_angles(groups, space)
        e = e + w.angle_limit * hinge_limit_energy(ang.reshape(ang.shape[0], -1), lo.flatten(), hi.flatten())
    if silhouette is not None and t >= w.silhouette_start:
        e = e + w.silhouette * silhouette.energy(vertices)
    return e, data, prior_e
