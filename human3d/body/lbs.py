"""Linear blend skinning for the SMPL family, as pure functions.

The formulas are those of SMPL (Loper et al., SIGGRAPH Asia 2015):

    v_shaped  = T + S @ betas                                  (shape blend shapes)
    J         = J_regressor @ v_shaped                         (rest joints)
    v_posed   = v_shaped + P @ vec(R_1..R_K - I)               (pose correctives, root excluded)
    G_k       = G_parent(k) @ [R_k | J_k - J_parent(k)]         (kinematic chain)
    v         = sum_k w_vk (G_k @ [I | -J_k]) @ [v_posed; 1]   (skinning)

Conventions: batch-first, metres, radians, rotation matrices act on column vectors, axis-angle vectors have
the angle as their norm. ``shapedirs`` uses the file layout ``[V, 3, S]``; ``posedirs`` the matmul-ready layout
``[P, V*3]`` (as smplx). :func:`lbs` composes the steps from raw model arrays; :class:`human3d.body.smpl` uses the
same steps with constants folded ahead of time (joint regressor applied to the shape basis, one fused blend
matmul), which gives the same result up to float rounding.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch

from human3d.errors import InvalidInputError

__all__ = [
    "batch_rodrigues",
    "blend_shapes",
    "vertices2joints",
    "pose_features",
    "kinematic_levels",
    "batch_rigid_transform",
    "skinning",
    "lbs",
]


def batch_rodrigues(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``[..., 3]`` -> rotation matrices ``[..., 3, 3]``.

    Uses ``R = cos(t) I + sinc(t) [r]_x + (1 - cos t) / t^2 r r^T`` with ``(1 - cos t) / t^2`` written as
    ``0.5 sinc(t/2)^2`` (no cancellation in float32) and Taylor expansions near ``t = 0``, so values and gradients
    are finite and exact at the identity.
    """
    x, y, z = rotvec.unbind(-1)  # [...]
    t2 = x * x + y * y + z * z  # [...] squared angle
    small = t2 < 1e-8
    t = torch.sqrt(torch.where(small, torch.ones_like(t2), t2))  # safe angle (unused where small)
    half_sin = torch.sin(0.5 * t)
    a = torch.where(small, 1.0 - t2 / 6.0, torch.sin(t) / t)  # sin(t)/t
    b = torch.where(small, 0.5 - t2 / 24.0, 2.0 * (half_sin / t) ** 2)  # (1 - cos t)/t^2
    c = torch.where(small, 1.0 - 0.5 * t2, torch.cos(t))  # cos t
    bx, by, bz = b * x, b * y, b * z
    ax, ay, az = a * x, a * y, a * z
    rows = (
        c + bx * x, bx * y - az, bx * z + ay,
        bx * y + az, c + by * y, by * z - ax,
        bx * z - ay, by * z + ax, c + bz * z,
    )  # fmt: skip
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))  # [..., 3, 3]


def blend_shapes(betas: torch.Tensor, shapedirs: torch.Tensor) -> torch.Tensor:
    """Per-vertex displacement ``[B, V, 3]`` of coefficients ``betas [B, S]`` along ``shapedirs [V, 3, S]``."""
    V = shapedirs.shape[0]
    out = betas @ shapedirs.reshape(V * 3, -1).T  # [B, V*3]
    return out.view(betas.shape[0], V, 3)


def vertices2joints(J_regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Joints ``[B, J, 3]`` regressed from ``vertices [B, V, 3]`` by ``J_regressor [J, V]`` (dense)."""
    return torch.einsum("jv,bvc->bjc", J_regressor, vertices)


def pose_features(rot_mats: torch.Tensor) -> torch.Tensor:
    """SMPL pose-corrective feature ``[B, (J-1)*9]``: ``R_k - I`` of every non-root joint, row-major flattened."""
    ident = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    return (rot_mats[:, 1:] - ident).flatten(1)


@lru_cache(maxsize=32)
def _levels_cached(parents: tuple[int, ...]) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    depth = [0] * len(parents)
    for j, p in enumerate(parents):
        if j == 0:
            if p >= 0:
                raise InvalidInputError(f"parents: joint 0 must be the root (parent -1), got parent {p}")
            continue
        if not 0 <= p < j:
            raise InvalidInputError(f"parents: joint {j} has parent {p}; parents must precede their children")
        depth[j] = depth[p] + 1
    levels = []
    for d in range(max(depth) + 1):
        joints = tuple(j for j in range(len(parents)) if depth[j] == d)
        if d == 0:
            if joints != (0,):
                raise InvalidInputError("parents: the tree must have exactly one root (joint 0)")
            levels.append((joints, ()))
            continue
        prev = levels[-1][0]
        levels.append((joints, tuple(prev.index(parents[j]) for j in joints)))
    return tuple(levels)


def kinematic_levels(parents: Sequence[int] | torch.Tensor) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """Group the joints of a tree by depth: ``((joints_at_depth_d, index_of_each_parent_in_level_d-1), ...)``.

    ``parents[0]`` must be negative (root) and every other parent must precede its child (true for SMPL files).
    """
    if isinstance(parents, torch.Tensor):
        parents = parents.tolist()
    return _levels_cached(tuple(int(p) for p in parents))


@lru_cache(maxsize=64)
def _level_plan(levels, device: torch.device):
    """Index tensors (on ``device``) to run :func:`batch_rigid_transform` level by level."""
    order = [j for joints, _ in levels for j in joints]
    inverse = [0] * len(order)
    for pos, j in enumerate(order):
        inverse[j] = pos
    steps, start = [], 0
    for joints, parent_pos in levels:
        end = start + len(joints)
        pp = torch.tensor(parent_pos, dtype=torch.long, device=device) if parent_pos else None
        steps.append((start, end, pp))
        start = end
    perm = torch.tensor(order, dtype=torch.long, device=device)
    inv = None if order == sorted(order) else torch.tensor(inverse, dtype=torch.long, device=device)
    return perm, inv, steps


def batch_rigid_transform(
    rot_mats: torch.Tensor,
    joints: torch.Tensor,
    parents: Sequence[int] | torch.Tensor,
    levels=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose the kinematic chain.

    Args:
        rot_mats: ``[B, J, 3, 3]`` local rotation of every joint relative to its parent.
        joints: ``[B, J, 3]`` rest-pose joint positions.
        parents: ``[J]`` parent index of each joint (root: -1).
        levels: optional precomputed :func:`kinematic_levels` of ``parents``.

    Returns:
        posed_joints ``[B, J, 3]`` and the skinning transforms ``[B, J, 3, 4]`` that map rest-pose points to posed
        points (``G_k @ [I | -J_k]``, affine 3x4 part).

    The tree is processed one depth level at a time (about 9 levels for SMPL, 11 with fingers), each level one
    batched 4x4 matmul, instead of one matmul per joint.
    """
    if levels is None:
        levels = kinematic_levels(parents)
    B, J = joints.shape[:2]
    perm, inverse, steps = _level_plan(levels, joints.device)
    if not isinstance(parents, torch.Tensor):
        parents = torch.as_tensor(parents)
    parents = parents.to(device=joints.device, dtype=torch.long)
    parent_joints = torch.cat([torch.zeros_like(joints[:, :1]), joints.index_select(1, parents[1:])], dim=1)
    rel = joints - parent_joints  # [B, J, 3] offset of each joint from its parent (root: absolute)
    bottom = joints.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(B, J, 1, 4)
    local = torch.cat([torch.cat([rot_mats, rel.unsqueeze(-1)], dim=-1), bottom], dim=-2)  # [B, J, 4, 4]
    local = local.index_select(1, perm)  # joints in level order: each level is a contiguous slice

    chain = []  # per level: [B, n_level, 4, 4] world transforms
    for start, end, parent_pos in steps:
        if parent_pos is None:
            chain.append(local[:, start:end])
        else:
            chain.append(chain[-1].index_select(1, parent_pos) @ local[:, start:end])
    world = torch.cat(chain, dim=1)  # [B, J, 4, 4] in level order
    if inverse is not None:
        world = world.index_select(1, inverse)
    rot = world[..., :3, :3]  # [B, J, 3, 3]
    posed_joints = world[..., :3, 3]  # [B, J, 3]
    trans = posed_joints - (rot @ joints.unsqueeze(-1)).squeeze(-1)  # [B, J, 3]
    return posed_joints, torch.cat([rot, trans.unsqueeze(-1)], dim=-1)


class _ApplyBlended(torch.autograd.Function):
    """``out[v, :, b] = M[v, :, :3, b] @ p[v, :, b] + M[v, :, 3, b] (+ t[:, b])`` for batch-last tensors.

    A fused element-wise kernel chain: the forward allocates only its output (no ``[V, 3, 4, B]`` product, no
    homogeneous copy of the points) and the backward only the gradients. The backward is written with
    differentiable ops, so double backward works.
    """

    @staticmethod
    def forward(ctx, blended, points, transl):  # [V, 3, 4, B], [V, 3, B], [3, B] or None -> [V, 3, B]
        out = blended[:, :, 3] + transl if transl is not None else blended[:, :, 3].clone()
        for k in range(3):
            out.addcmul_(blended[:, :, k], points[:, k : k + 1])
        ctx.save_for_backward(blended, points)
        ctx.has_transl = transl is not None
        return out

    @staticmethod
    def backward(ctx, grad):  # grad [V, 3, B]
        blended, points = ctx.saved_tensors
        grad = grad.contiguous()  # it arrives as a view of [B, V, 3] storage: one transpose, then fast passes
        grad_blended = grad_points = grad_transl = None
        if ctx.needs_input_grad[0]:
            homogeneous = torch.cat([points, torch.ones_like(points[:, :1])], dim=1)  # [V, 4, B]
            grad_blended = grad.unsqueeze(2) * homogeneous.unsqueeze(1)  # [V, 3, 4, B]
        if ctx.needs_input_grad[1]:
            grad_points = blended[:, 0, :3] * grad[:, 0:1]  # [V, 3, B]
            for i in (1, 2):
                grad_points.addcmul_(blended[:, i, :3], grad[:, i : i + 1])
        if ctx.has_transl and ctx.needs_input_grad[2]:
            grad_transl = grad.sum(0)  # [3, B]
        return grad_blended, grad_points, grad_transl


def skinning(
    v_posed: torch.Tensor,
    transforms: torch.Tensor,
    lbs_weights: torch.Tensor,
    transl: torch.Tensor | None = None,
) -> torch.Tensor:
    """Blend per-joint affine transforms ``[B, J, 3, 4]`` with ``lbs_weights [V, J]`` and apply to ``v_posed [B, V, 3]``.

    Works batch-last inside: one GEMM ``[V, J] @ [J, 12*B]`` blends the transforms of the whole batch, and the
    blended ``3x4`` matrices are applied with contiguous element-wise ops over the batch. ``v_posed`` may be any
    strided view; a ``[B, V, 3]`` view of ``[V, 3, B]`` storage (as :class:`human3d.body.smpl.SMPLFamily` passes)
    avoids a transpose. ``transl [B, 3]``, if given, is added to every vertex in the same pass. Returns a
    contiguous ``[B, V, 3]`` tensor.
    """
    B, J = transforms.shape[:2]
    V = lbs_weights.shape[0]
    flat = transforms.reshape(B, J, 12).permute(1, 2, 0).reshape(J, 12 * B)  # [J, 12*B]
    blended = (lbs_weights @ flat).view(V, 3, 4, B)  # [V, 3, 4, B]
    points = v_posed.permute(1, 2, 0)  # [V, 3, B]
    out = _ApplyBlended.apply(blended, points, None if transl is None else transl.T)  # [V, 3, B]
    return out.permute(2, 0, 1).contiguous()


def lbs(
    betas: torch.Tensor,
    pose: torch.Tensor,
    v_template: torch.Tensor,
    shapedirs: torch.Tensor,
    posedirs: torch.Tensor,
    J_regressor: torch.Tensor,
    parents: Sequence[int] | torch.Tensor,
    lbs_weights: torch.Tensor,
    pose2rot: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The full SMPL function from raw model arrays.

    Args:
        betas: ``[B, S]`` shape (and, for SMPL-X, expression) coefficients.
        pose: ``[B, J*3]`` axis-angle, or ``[B, J, 3, 3]`` rotation matrices when ``pose2rot=False``.
        v_template: ``[V, 3]``; shapedirs: ``[V, 3, S]``; posedirs: ``[(J-1)*9, V*3]``;
        J_regressor: ``[J, V]`` dense; parents: ``[J]``; lbs_weights: ``[V, J]``.

    Returns:
        vertices ``[B, V, 3]`` and posed joints ``[B, J, 3]`` (no translation).
    """
    B = max(betas.shape[0], pose.shape[0])
    V = v_template.shape[0]
    if pose2rot:
        rot_mats = batch_rodrigues(pose.reshape(pose.shape[0], -1, 3))  # [B, J, 3, 3]
    else:
        rot_mats = pose.reshape(pose.shape[0], -1, 3, 3)
    rot_mats = rot_mats.expand(B, *rot_mats.shape[1:])
    v_shaped = v_template + blend_shapes(betas, shapedirs).expand(B, V, 3)  # [B, V, 3]
    joints = vertices2joints(J_regressor, v_shaped)  # [B, J, 3]
    v_posed = v_shaped + (pose_features(rot_mats) @ posedirs).view(B, V, 3)  # [B, V, 3]
    posed_joints, transforms = batch_rigid_transform(rot_mats, joints, parents)
    return skinning(v_posed, transforms, lbs_weights), posed_joints

