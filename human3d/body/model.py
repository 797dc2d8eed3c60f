"""The body-model interface shared by every family (SMPL / SMPL-H / SMPL-X and Anny).

A :class:`BodyModel` is an ``nn.Module`` holding the model's constant tensors as buffers. Calling it with a dict
of parameters (smplx names; see each family's ``parameter_shapes``) returns a :class:`BodyOutput`.

Parameter names
---------------
===============  ==========================  =========================================================
name             shape                       meaning
===============  ==========================  =========================================================
global_orient    [B, 3]                      axis-angle of the root joint (radians)
body_pose        [B, (J-1)*3] or [B, J-1, 3]  axis-angle of every other body joint, relative to parent
betas            [B, n_betas]                SMPL family shape coefficients
phenotypes       [B, P]                      Anny shape: phenotype values in [0, 1] (see anny.py)
transl           [B, 3]                      translation added to every vertex and joint (metres)
===============  ==========================  =========================================================

Families may add their own (``left_hand_pose``, ``jaw_pose``, ``expression`` ... for SMPL-X).
Missing parameters default to zeros (Anny phenotypes default to 0.5, its neutral value).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from human3d.body.skeletons import skeleton_names
from human3d.errors import InvalidInputError, check_tensor


@dataclass
class BodyOutput:
    """What a body model returns. Coordinates in metres, in the model's world frame (after ``transl``)."""

    vertices: torch.Tensor  # [B, V, 3]
    joints: torch.Tensor  # [B, J, 3] the model's own kinematic joints (names: model.joint_names)
    faces: torch.Tensor  # [F, 3] int64 triangle indices (shared by the batch)
    keypoints: dict[str, torch.Tensor] = field(default_factory=dict)  # skeleton -> [B, K, 3]
    params: dict[str, torch.Tensor] = field(default_factory=dict)  # the full parameter set used (defaults filled)


class BodyModel(nn.Module):
    """Base class: subclasses set ``family``, ``joint_names``, ``faces`` and implement ``_forward``.

    Besides the forward, a model states the facts fitting needs about it (so that fitting never asks which family
    it is): :attr:`prior_family` (whose pose priors and pose statistics apply), :meth:`pose_groups` (the pose
    variables fitting optimises), :attr:`hinge_joints` (elbows and knees), :meth:`fit_shape_bounds` (the range the
    fitter keeps the shape in) and :meth:`keypoint_function` (keypoints without the mesh, where a model has a fast
    path).
    """

    family: str = "base"
    shape_param: str = "betas"  # name of the shape parameter ("betas" or "phenotypes")
    skeletons: tuple[str, ...] = ("coco17", "body25")
    prior_family: str | None = None
    """Key of the pose priors and pose statistics that fit this model (``"anny"`` or ``"smpl"``; SMPL-H and SMPL-X
    share SMPL's 21 body joints); None: no fitting support."""
    hinge_joints: tuple[tuple[str, str, str, str, int], ...] = ()
    """Elbows and knees for the joint-angle limits: ``(name, upper joint, hinge joint, lower joint, sign)`` with
    sign +1 for an elbow (the forearm swings forward) and -1 for a knee (the shin swings backward)."""

    # ---- facts for fitting (override per family) -------------------------------------------------------------------
    def pose_groups(self) -> list[tuple[str, list[str]]]:
        """The pose variables fitting optimises: ``(group name, body_pose joints it drives)`` (one axis-angle per
        group, split equally over its joints). Default: one group per ``body_pose`` joint."""
        jp = self.parameter_shapes()["body_pose"][0] // 3
        return [(n, [n]) for n in self.joint_names[1 : 1 + jp]]

    def fit_shape_bounds(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(lo, hi)`` ``[S]`` the fitter keeps the shape parameter inside (through a sigmoid), or None
        (unbounded, e.g. betas)."""
        return None

    def keypoint_function(self) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
        """``params -> {skeleton: [B, K, 3]}`` equal to ``self(params).keypoints``, without input validation (the
        caller's parameters are known good: an optimiser's inner loop). Models with a mesh-free path override it."""
        return lambda params: self(params, validate=False).keypoints

    # ---- to implement (plus a registered buffer ``faces`` [F, 3] int64) -------------------------------------------
    @property
    def joint_names(self) -> list[str]:
        raise NotImplementedError

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shapes of every parameter, e.g. ``{"global_orient": (3,), "body_pose": (69,), ...}``."""
        raise NotImplementedError

    def default_value(self, name: str) -> float:
        """Value of a parameter that is not given (0 for poses / betas; Anny phenotypes use 0.5)."""
        return 0.0

    def _forward(self, params: dict[str, torch.Tensor]) -> BodyOutput:
        raise NotImplementedError

    # ---- shared ---------------------------------------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        raise NotImplementedError

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def keypoint_names(self, skeleton: str) -> list[str]:
        return skeleton_names(skeleton)

    def default_params(self, batch_size: int = 1, requires_grad: bool = False) -> dict[str, torch.Tensor]:
        """Fresh parameter tensors at their default values (a starting point for fitting)."""
        ref = self.faces  # device
        dtype = self.dtype
        out = {}
        for name, shape in self.parameter_shapes().items():
            t = torch.full((batch_size, *shape), self.default_value(name), dtype=dtype, device=ref.device)
            out[name] = t.requires_grad_(requires_grad)
        return out

    @property
    def dtype(self) -> torch.dtype:
        for b in self.buffers():
            if b.is_floating_point():
                return b.dtype
        return torch.float32

    def validate_params(self, params: dict[str, torch.Tensor], check: bool = True) -> dict[str, torch.Tensor]:
        """Check names, shapes and finiteness; fill defaults; return a new dict with flat [B, D] tensors.

        ``check=False`` only fills defaults and reshapes (no checks, no host synchronisation): for inner loops whose
        parameters are known to be good."""
        if not check:
            return self._fill_params(params)
        shapes = self.parameter_shapes()
        unknown = sorted(set(params) - set(shapes))
        if unknown:
            raise InvalidInputError(
                f"{self.family}: unknown parameter(s) {unknown}; this model takes {sorted(shapes)}"
            )
        batch = None
        for name, value in params.items():
            if value is None:
                continue
            if not isinstance(value, torch.Tensor):
                raise InvalidInputError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
            if value.dim() < 1:
                raise InvalidInputError(f"{name}: expected a batch-first tensor [B, ...], got a scalar")
            b = value.shape[0]
            if batch is None:
                batch = b
            elif b != batch and b != 1 and batch != 1:
                raise InvalidInputError(f"{name}: batch size {b} differs from the other parameters' ({batch})")
            batch = max(batch, b)
        for name, shape in shapes.items():
            value = params.get(name)
            if value is not None:
                flat = value.reshape(value.shape[0], -1)
                want = int(torch.tensor(shape).prod()) if shape else 1
                if flat.shape[1] != want:
                    raise InvalidInputError(
                        f"{name}: expected {want} values per sample (shape [B, {', '.join(map(str, shape))}]), "
                        f"got tensor of shape {tuple(value.shape)}"
                    )
                check_tensor(flat, name, (None, want), dtype_floating=True)
        return self._fill_params(params)

    def _fill_params(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The unchecked path of :meth:`validate_params`: defaults filled, ``[B, *shape]`` tensors of the model
        dtype, batch-1 entries expanded."""
        shapes = self.parameter_shapes()
        given = {k: v for k, v in params.items() if v is not None}
        batch = max((v.shape[0] for v in given.values()), default=1)
        out = {}
        for name, shape in shapes.items():
            value = given.get(name)
            if value is None:
                value = torch.full((batch, *shape), self.default_value(name), dtype=self.dtype, device=self.faces.device)
            else:
                value = value.reshape(value.shape[0], *shape).to(self.dtype)
                if value.shape[0] != batch:
                    value = value.expand(batch, *shape)
            out[name] = value
        return out

    def forward(
        self, params: dict[str, torch.Tensor] | None = None, validate: bool = True, **kwargs: torch.Tensor
    ) -> BodyOutput:
        """Run the model. Parameters come as a dict and/or keyword arguments (smplx names).

        ``validate=False`` skips the checks of :meth:`validate_params` (names, shapes, NaN/inf, ranges: one host
        synchronisation each), as ``human3d.splat.rasterize(..., validate=False)`` does: for inner loops whose
        parameters are known to be good."""
        merged = dict(params or {})
        merged.update(kwargs)
        full = self.validate_params(merged, check=validate)
        out = self._forward(full)
        out.params = full
        return out
