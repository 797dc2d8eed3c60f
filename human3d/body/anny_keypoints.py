"""Model keypoints without the mesh: the fitting hot path.

Fitting to 2D keypoints needs the model's keypoints only. For SMPL-family models the full forward is cheap
(6,890 vertices); for Anny (13,718 vertices, 136 blend shapes, 104 bones) skinning every vertex and building the
rest mesh dominates. Anny's keypoints are linear blends of skinned vertices, and linear blend skinning is linear in
the rest vertices, which are linear in the blend-shape coefficients, so (per keypoint ``k`` and bone ``j``)::

    kp_k = sum_j T_j @ M_kj,   M_kj = sum_i a_ki w_ij [v_i, 1],   v_i = t_i + sum_c coeff_c S_ci

with ``a`` the keypoint regressor, ``w`` the skinning weights and ``T_j`` the bone transforms. ``M`` is therefore
``M0 + coeff . MS`` with ``M0`` ``[K, J, 4]`` and ``MS`` ``[C, K, J, 3]`` precomputed once per model: the
keypoints cost one bone-transform chain and a few small products, exactly equal (to float round-off) to
regressing the full skinned mesh. :meth:`AnnyBody.keypoint_function <human3d.body.anny.AnnyBody.keypoint_function>`
returns it (other models use the plain forward, :meth:`human3d.body.model.BodyModel.keypoint_function`).
"""

from __future__ import annotations

from typing import Callable

import torch

from human3d.body.skeletons import gather_keypoints

__all__ = ["AnnyKeypoints", "anny_keypoint_function"]

KeypointFn = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


class AnnyKeypoints:
    """Exact, mesh-free keypoints of an :class:`~human3d.body.anny.AnnyBody` (see the module docstring).

    Call with a parameter dict (smplx names; defaults filled by the model, unchecked) -> ``{"coco17": [B, 17, 3],
    "body25": [B, 25, 3]}`` in the canonical frame (Y up, metres), identical to ``model(params).keypoints``.
    """

    def __init__(self, model, chunk: int = 8):
        self.model = model
        a = model.anny
        dtype = a.template_vertices.dtype
        A = model.keypoint_weights.to(dtype)  # [K, V]
        V, J = a.template_vertices.shape[0], a.bone_count
        W = torch.zeros(V, J, dtype=dtype, device=A.device)  # dense skinning weights [V, J]
        W.scatter_add_(1, a.vertex_bone_indices.long(), a.vertex_bone_weights.to(dtype))
        X = torch.cat([a.template_vertices, torch.ones(V, 1, dtype=dtype, device=A.device)], 1)  # [V, 4]
        # M0[k, j, d] = sum_v A[k, v] W[v, j] X[v, d]
        self.M0 = torch.einsum("kvd,vj->kjd", A[:, :, None] * X[None], W)  # [K, J, 4]
        S = a.blendshapes  # [C, V, 3]
        parts = []
        for c0 in range(0, S.shape[0], chunk):
            s = S[c0 : c0 + chunk]  # [c, V, 3]
            parts.append(torch.einsum("ckvd,vj->ckjd", A[None, :, :, None] * s[:, None], W))  # [c, K, J, 3]
        self.MS = torch.cat(parts, 0)  # [C, K, J, 3]
        self.labels = list(model.keypoint_labels)
        self.n_local = len(a.local_change_labels)
        self.n_facial = len(a.facial_action_labels)
        self.frame = None  # extra rotation of the chain's output (None: the chain is already canonical)
        self.ok = self._self_check(model)

    @torch.no_grad()
    def _self_check(self, model) -> bool:
        """Compare with the full forward on random parameters; adopt the output frame that matches it.

        Guards against changes of AnnyBody's internals (e.g. where the Anny -> canonical rotation is applied):
        if neither the chain's own frame nor ``model.frame_rotation`` reproduces the model's keypoints, the
        fast path is disabled and :func:`anny_keypoint_function` falls back to the full forward.
        """
        g = torch.Generator().manual_seed(0)
        dt = model.dtype
        p = {"global_orient": torch.randn(2, 3, generator=g).to(dt) * 0.5,
             "body_pose": torch.randn(2, model.parameter_shapes()["body_pose"][0], generator=g).to(dt) * 0.2,
             "phenotypes": (0.2 + 0.6 * torch.rand(2, 6, generator=g)).to(dt),
             "transl": torch.randn(2, 3, generator=g).to(dt)}  # fmt: skip
        p = {k: v.to(model.faces.device) for k, v in p.items()}
        ref = model(p).keypoints["coco17"]
        for frame in (None, getattr(model, "frame_rotation", None)):
            if frame is None and self.frame is not None:
                continue
            self.frame = frame
            if float((self(p)["coco17"] - ref).abs().max()) < 1e-4:
                return True
        return False

    def __call__(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        m, a = self.model, self.model.anny
        full = m.validate_params(params, check=False)
        B = full["global_orient"].shape[0]
        ph = full["phenotypes"].to(a.template_vertices.dtype)
        zeros = ph.new_zeros
        coeffs = a._get_phenotype_blendshape_coefficients(ph, zeros(B, self.n_local), zeros(B, self.n_facial))
        rest = _rest_bone_poses(a, coeffs)  # [B, J, 4, 4]
        deltas = m.delta_transforms(full["global_orient"], full["body_pose"])  # [B, J, 4, 4]
        T, _ = a.get_bone_transforms(deltas, rest)  # [B, J, 4, 4]
        Mx = self.M0[None, ..., :3] + torch.einsum("bc,ckjd->bkjd", coeffs, self.MS)  # [B, K, J, 3]
        Mw = self.M0[..., 3]  # [K, J] (sum of weights; the homogeneous coordinate)
        # kp[b, k] = sum_j R_bj @ Mx[b, k, j] + t_bj * Mw[k, j]
        kp = torch.einsum("bjde,bkje->bkd", T[..., :3, :3], Mx) + torch.einsum("bjd,kj->bkd", T[..., :3, 3], Mw)
        if self.frame is not None:
            kp = kp @ self.frame.T
        kp = kp + full["transl"][:, None]  # [B, 23, 3]
        named = dict(zip(self.labels, kp.unbind(1)))
        return {"coco17": kp[:, :17], "body25": gather_keypoints(named, "body25")}


def _rest_bone_poses(a, coeffs: torch.Tensor) -> torch.Tensor:
    """Anny's rest bone poses [B, J, 4, 4] for blend-shape coefficients [B, C], without the rest mesh.

    Same as ``a.get_rest_model(coeffs)["rest_bone_poses"]`` for the "cached" bone orientation (Anny's default);
    other orientation modes fall back to the full rest model.
    """
    if a.bone_orientation != "cached":
        return a.get_rest_model(coeffs)["rest_bone_poses"]
    import roma

    heads = a.template_bone_heads[None] + torch.einsum("cpd,bc->bpd", a.bone_heads_blendshapes, coeffs)
    M = a.bone_template_orientation_matrices[None] + torch.einsum("ba,akij->bkij", coeffs, a.bone_orientation_blendshapes)
    R = roma.special_procrustes(M)
    if a.rest_orientation_refiner is not None:
        R = a.rest_orientation_refiner(R, heads)
    poses = roma.Rigid(linear=R, translation=heads).to_homogeneous()
    if a.root_identity_orientation:
        poses[:, 0, :3, :3] = torch.eye(3, device=poses.device, dtype=poses.dtype)
    return poses


_CACHE: dict[int, AnnyKeypoints] = {}


def anny_keypoint_function(model) -> KeypointFn:
    """``params -> {skeleton: [B, K, 3]}`` equal to ``model(params).keypoints`` for an AnnyBody: the mesh-free
    :class:`AnnyKeypoints` (built once per Anny module), or the unchecked full forward if its self-check failed."""
    key = id(model.anny)
    if key not in _CACHE:
        _CACHE[key] = AnnyKeypoints(model)
    if _CACHE[key].ok:
        return _CACHE[key]
    return lambda params: model(params, validate=False).keypoints
