"""Rotation conversions (batch-first, any leading shape), built on ``roma``.

Conventions
-----------
* axis-angle (rotation vector): ``[..., 3]``, angle = norm in radians (smplx / SMPL convention);
* rotation matrix: ``[..., 3, 3]``, acting on column vectors (``x' = R @ x``);
* quaternion: **WXYZ** at this API (scalar first, as kornia, pytorch3d and the 3DGS ``.ply`` ``rot_0..3``);
  roma's native XYZW order is converted explicitly;
* 6D: the first two *columns* of the matrix, ``[..., 6]`` = ``[R[:, 0], R[:, 1]]`` (Zhou et al., CVPR 2019),
  orthonormalised by Gram-Schmidt on the way back.
"""

from __future__ import annotations

import roma
import torch
import torch.nn.functional as F

from human3d.errors import InvalidInputError

__all__ = [
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "axis_angle_to_quaternion",
    "quaternion_to_axis_angle",
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
    "euler_to_matrix",
    "quat_wxyz_to_xyzw",
    "quat_xyzw_to_wxyz",
]


def quat_wxyz_to_xyzw(q: torch.Tensor) -> torch.Tensor:  # [..., 4] -> [..., 4]
    return torch.cat([q[..., 1:], q[..., :1]], dim=-1)


def quat_xyzw_to_wxyz(q: torch.Tensor) -> torch.Tensor:  # [..., 4] -> [..., 4]
    return torch.cat([q[..., 3:], q[..., :3]], dim=-1)


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """[..., 3] rotation vectors -> [..., 3, 3] matrices (Rodrigues; smooth gradient at zero)."""
    return roma.rotvec_to_rotmat(rotvec)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] rotation matrices -> [..., 3] rotation vectors with angle in [0, pi]."""
    return roma.rotmat_to_rotvec(matrix)


def quaternion_to_matrix(quat_wxyz: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """[..., 4] WXYZ quaternions (normalised first unless ``normalize=False``) -> [..., 3, 3]."""
    q = F.normalize(quat_wxyz, dim=-1) if normalize else quat_wxyz
    return roma.unitquat_to_rotmat(quat_wxyz_to_xyzw(q))


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] -> [..., 4] unit WXYZ quaternions with non-negative w."""
    q = quat_xyzw_to_wxyz(roma.rotmat_to_unitquat(matrix))
    return torch.where(q[..., :1] < 0, -q, q)


def axis_angle_to_quaternion(rotvec: torch.Tensor) -> torch.Tensor:
    """[..., 3] -> [..., 4] WXYZ."""
    return quat_xyzw_to_wxyz(roma.rotvec_to_unitquat(rotvec))


def quaternion_to_axis_angle(quat_wxyz: torch.Tensor) -> torch.Tensor:
    """[..., 4] WXYZ (normalised first) -> [..., 3]."""
    return roma.unitquat_to_rotvec(quat_wxyz_to_xyzw(F.normalize(quat_wxyz, dim=-1)))


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """[..., 6] -> [..., 3, 3]; the two 3-vectors become the first two columns after Gram-Schmidt."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] -> [..., 6]: the first two columns, concatenated."""
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def euler_to_matrix(angles: torch.Tensor, order: str, degrees: bool = False) -> torch.Tensor:
    """[..., 3] Euler angles -> [..., 3, 3].

    ``order`` is a string like ``"ZYX"`` naming the axes in the order the angles are listed, applied as
    *intrinsic* rotations (BVH convention: ``R = R_axis0(a0) @ R_axis1(a1) @ R_axis2(a2)``).
    """
    if not isinstance(order, str) or len(order) != 3 or set(order.upper()) - set("XYZ"):
        raise InvalidInputError(f"order: expected three letters from 'XYZ' (e.g. 'ZYX'), got {order!r}")
    order = order.upper()
    if degrees:
        angles = torch.deg2rad(angles)
    axes = {"X": 0, "Y": 1, "Z": 2}
    out = None
    for i, ax in enumerate(order):
        rotvec = torch.zeros(angles.shape[:-1] + (3,), dtype=angles.dtype, device=angles.device)
        rotvec[..., axes[ax]] = angles[..., i]
        r = axis_angle_to_matrix(rotvec)
        out = r if out is None else out @ r
    return out
