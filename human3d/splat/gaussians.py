"""3D Gaussians: parameters, activations and covariance.

Each Gaussian has a mean ``mu`` (world, metres), a log-scale ``s`` (3 axes), a rotation quaternion ``q`` (WXYZ,
unnormalised, as the 3DGS ``.ply`` ``rot_0..3``), an opacity logit and spherical-harmonic colour coefficients of
degree 0..3 (``[N, K, 3]``, see :mod:`human3d.splat.sh`). Activations follow the reference implementation:
``scale = exp(s)``, ``opacity = sigmoid(logit)``, ``R = R(q / |q|)`` and

    Sigma = R S S^T R^T,   S = diag(scale).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from human3d.errors import InvalidInputError, check_tensor
from human3d.geometry.rotations import quaternion_to_matrix
from human3d.splat.sh import num_sh_bases, rgb_to_sh

__all__ = ["quat_scale_to_covariance", "quat_scale_to_matrix", "Gaussians", "PARAM_NAMES", "knn_mean_distance"]

#: Names of the learnable tensors of :class:`Gaussians` (also the optimiser groups of the trainer).
PARAM_NAMES = ("means", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest")


def quat_scale_to_covariance(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Covariances [..., 3, 3] = R S S^T R^T from WXYZ quaternions [..., 4] (normalised here) and scales [..., 3]."""
    M = quaternion_to_matrix(quats) * scales[..., None, :]  # [..., 3, 3] = R S
    return M @ M.transpose(-1, -2)


def quat_scale_to_matrix(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """M = R S [N, 3, 3] (so that Sigma = M M^T), written element-wise (fast on the CPU for large N).

    ``quats`` [N, 4] WXYZ (normalised here), ``scales`` [N, 3].
    """
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    sx, sy, sz = scales.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
    return torch.stack(
        [
            (1 - 2 * (yy + zz)) * sx, 2 * (xy - wz) * sy, 2 * (xz + wy) * sz,
            2 * (xy + wz) * sx, (1 - 2 * (xx + zz)) * sy, 2 * (yz - wx) * sz,
            2 * (xz - wy) * sx, 2 * (yz + wx) * sy, (1 - 2 * (xx + yy)) * sz,
        ],
        dim=-1,
    ).reshape(quats.shape[:-1] + (3, 3))  # fmt: skip


def knn_mean_distance(points: torch.Tensor, k: int = 3) -> torch.Tensor:
    """sqrt of the mean squared distance of each point [N, 3] to its ``k`` nearest neighbours -> [N].

    The 3DGS initial scale (``distCUDA2``), computed with a KD-tree on the CPU.
    """
    from scipy.spatial import cKDTree

    pts = points.detach().cpu().double().numpy()
    n = pts.shape[0]
    if n < 2:
        return torch.full((n,), 0.01, dtype=points.dtype, device=points.device)
    kk = min(k, n - 1)
    d, _ = cKDTree(pts).query(pts, k=kk + 1)  # first neighbour is the point itself
    d2 = (np.asarray(d).reshape(n, -1)[:, 1:] ** 2).mean(axis=1)
    d2 = np.maximum(d2, 1e-7)
    return torch.from_numpy(np.sqrt(d2)).to(points)


class Gaussians(nn.Module):
    """A set of N 3D Gaussians (thin module holding the learnable tensors).

    Attributes (``nn.Parameter``):
        means: [N, 3] world positions (metres).
        log_scales: [N, 3] log standard deviations along the local axes.
        quats: [N, 4] WXYZ rotation quaternions (unnormalised).
        opacity_logits: [N] opacity before the sigmoid.
        sh_dc: [N, 1, 3] degree-0 SH coefficients.
        sh_rest: [N, K-1, 3] higher-order SH coefficients, K = (max_sh_degree + 1)^2.
    """

    def __init__(
        self,
        means: torch.Tensor,
        log_scales: torch.Tensor,
        quats: torch.Tensor,
        opacity_logits: torch.Tensor,
        sh_dc: torch.Tensor,
        sh_rest: torch.Tensor,
    ):
        super().__init__()
        check_tensor(means, "means", ("N", 3))
        n = means.shape[0]
        check_tensor(log_scales, "log_scales", (n, 3))
        check_tensor(quats, "quats", (n, 4))
        check_tensor(opacity_logits, "opacity_logits", (n,))
        check_tensor(sh_dc, "sh_dc", (n, 1, 3))
        check_tensor(sh_rest, "sh_rest", (n, None, 3))
        k = 1 + sh_rest.shape[1]
        if k not in (1, 4, 9, 16):
            raise InvalidInputError(f"sh_rest: expected 0, 3, 8 or 15 higher-order bases, got {sh_rest.shape[1]}")
        self.max_sh_degree = int(round(math.sqrt(k))) - 1
        for name, t in zip(PARAM_NAMES, (means, log_scales, quats, opacity_logits, sh_dc, sh_rest)):
            setattr(self, name, nn.Parameter(t.detach().clone().float().contiguous()))

    # ---- constructors -------------------------------------------------------------------------------------
    @classmethod
    def from_points(
        cls,
        points: torch.Tensor,
        colors: torch.Tensor | None = None,
        sh_degree: int = 3,
        opacity: float = 0.1,
        scale_factor: float = 1.0,
    ) -> "Gaussians":
        """Initialise from a point cloud [N, 3] with optional colours [N, 3] in [0, 1] (3DGS initialisation).

        Scales are isotropic, the root-mean-square distance to the 3 nearest neighbours (times
        ``scale_factor``); rotations are identity; opacity is ``opacity``; higher SH bands are zero.
        """
        check_tensor(points, "points", ("N", 3))
        n = points.shape[0]
        if n == 0:
            raise InvalidInputError("points: need at least one point to initialise Gaussians")
        if colors is None:
            colors = torch.full((n, 3), 0.5)
        check_tensor(colors, "colors", (n, 3))
        if not 0.0 < opacity < 1.0:
            raise InvalidInputError(f"opacity: expected a value in (0, 1), got {opacity}")
        points = points.detach().float().cpu()
        dist = knn_mean_distance(points) * scale_factor
        log_scales = torch.log(dist)[:, None].repeat(1, 3)
        quats = torch.zeros(n, 4)
        quats[:, 0] = 1.0
        logit = math.log(opacity / (1.0 - opacity))
        sh_dc = rgb_to_sh(colors.detach().float().cpu().clamp(0, 1))[:, None, :]
        sh_rest = torch.zeros(n, num_sh_bases(sh_degree) - 1, 3)
        return cls(points, log_scales, quats, torch.full((n,), logit), sh_dc, sh_rest)

    @classmethod
    def random_in_box(
        cls,
        n: int,
        lo,
        hi,
        sh_degree: int = 3,
        opacity: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> "Gaussians":
        """``n`` Gaussians uniformly in the box [lo, hi] (3-vectors) with random colours (Blender-scene init)."""
        if int(n) <= 0:
            raise InvalidInputError(f"n: expected a positive number of Gaussians, got {n}")
        lo = torch.as_tensor(lo, dtype=torch.float32).reshape(3)
        hi = torch.as_tensor(hi, dtype=torch.float32).reshape(3)
        if not bool((hi > lo).all()):
            raise InvalidInputError(f"scene bounds: expected lo < hi on every axis, got lo={lo.tolist()}, hi={hi.tolist()}")
        pts = lo + (hi - lo) * torch.rand(int(n), 3, generator=generator)
        cols = torch.rand(int(n), 3, generator=generator)
        return cls.from_points(pts, cols, sh_degree=sh_degree, opacity=opacity)

    @classmethod
    def from_tensors(cls, tensors: dict) -> "Gaussians":
        """Build from a dict with the keys of :data:`PARAM_NAMES` (e.g. a checkpoint)."""
        missing = [k for k in PARAM_NAMES if k not in tensors]
        if missing:
            raise InvalidInputError(f"Gaussian tensors: missing {missing}")
        return cls(*(tensors[k] for k in PARAM_NAMES))

    # ---- activations ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def num_sh_bases(self) -> int:
        return 1 + self.sh_rest.shape[1]

    @property
    def scales(self) -> torch.Tensor:  # [N, 3]
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> torch.Tensor:  # [N]
        return torch.sigmoid(self.opacity_logits)

    @property
    def sh(self) -> torch.Tensor:  # [N, K, 3]
        return torch.cat([self.sh_dc, self.sh_rest], dim=1)

    @property
    def covariances(self) -> torch.Tensor:  # [N, 3, 3]
        return quat_scale_to_covariance(self.quats, self.scales)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Detached copies of the raw parameters, keyed by :data:`PARAM_NAMES`."""
        return {k: getattr(self, k).detach().clone() for k in PARAM_NAMES}

    def check_finite(self, where: str = "Gaussians") -> None:
        """Raise :class:`InvalidInputError` naming the parameter that holds NaN/inf values."""
        for k in PARAM_NAMES:
            t = getattr(self, k)
            bad = ~torch.isfinite(t)
            if bool(bad.any()):
                raise InvalidInputError(f"{where}: parameter '{k}' contains {int(bad.sum())} NaN/inf value(s)")

    def extra_repr(self) -> str:
        return f"n={len(self)}, max_sh_degree={self.max_sh_degree}"
