"""Anny, the embedded default body model (PyPI ``anny`` by NAVER: Apache-2.0 code, CC0 assets; no user files).

:class:`AnnyBody` wraps ``anny.Anny()`` (rig "anny", topology "anny": 104 bones, 13,718 vertices, 27,420
triangles) behind the :class:`~human3d.body.model.BodyModel` interface, with smplx-like parameter names.

Parameters (smplx-equivalent names)
-----------------------------------
===============  ===========================  ==========================================================
name             shape                        meaning
===============  ===========================  ==========================================================
global_orient    [B, 3]                       axis-angle of the root bone, about the root joint (radians)
body_pose        [B, 309] or [B, 103, 3]      axis-angle of every other bone, in the order of
                                              ``joint_names[1:]``, relative to its parent (see below)
phenotypes       [B, 6]                       shape, order ``PHENOTYPE_LABELS`` = gender, age, muscle,
                                              weight, height, proportions; default 0.5 (see below)
transl           [B, 3]                       translation added to every vertex / joint (metres)
===============  ===========================  ==========================================================

Frame
    All human3d body models share smplx's world frame: **Y up, the body facing +Z, metres** (its left hand on
    +X). Anny itself is Z up and faces -Y; every output is Anny's rotated by the fixed ``C = ANNY_TO_CANONICAL``
    (-90 degrees about X: ``(x, y, z)_anny -> (x, z, -y)``), and rotations are expressed in the canonical axes
    (an axis-angle ``r`` here is ``C^T r`` in Anny's axes). C is folded into the root's delta transform, so
    Anny's kinematic chain emits canonical coordinates directly (no extra pass over the vertices).
Pose
    Anny's default "local-ref" parameterization: each bone's rotation relative to its parent, in axes that are
    world-aligned (canonical X/Y/Z) when the skeleton is in its reference pose, the same convention as SMPL's
    ``body_pose``. Zero pose is Anny's reference A-pose (identity deltas; the mesh differs from the template's
    bind pose by up to ~1 cm because Anny's reference bone orientations do), with the root joint (pelvis) at
    the origin for every phenotype. ``global_orient`` rotates the posed body about the root joint, then
    ``transl`` is added, exactly as in smplx (here the root joint sits at the origin before ``transl``).
Shape
    ``phenotypes`` are Anny's phenotype values, interpolated between its anchors. Valid range: [0, 1] for
    gender (0 male, 1 female), muscle, weight, height, proportions; [-1/3, 1] for age (-1/3 newborn, 0 baby,
    1/3 child, 2/3 young adult, 1 old). **Values outside the range raise** :class:`InvalidInputError` (Anny
    would silently clamp them with a zero gradient); optimisers should clamp after each step with
    :meth:`AnnyBody.clamp_phenotypes` or parameterise through a sigmoid.
Outputs
    ``joints`` [B, 104, 3] are the posed bone heads (``joints[:, 0]`` = root = ``transl``); keypoints
    ``"coco17"`` come from Anny's COCO regressor (vertex blends), ``"body25"`` from the same 23 regressed points
    (COCO-17 + big/small toe and heel per foot) plus the neck / mid-hip midpoints.
Skinning
    ``skinning="lbs"`` (pure torch, dense weights), ``"warp_lbs"`` (NVIDIA warp kernel, with its own backward;
    its gradients match "lbs" to round-off) or ``"auto"`` (default): warp where it runs on the model's device,
    else lbs. Measured on CPU (``tools/bench/body_anny.py --threads 1``, CPU time per call): at B=64 the whole
    forward takes 103 ms with warp vs 367 ms with lbs, forward+backward 299 vs 845 ms; at B=1 the forward is on
    par (15 vs 16 ms: Anny's rest-shape computation dominates) and forward+backward takes 20 vs 34 ms. Hence
    the default.
Cache
    The first build takes ~2 min and writes ~0.8 GB; see :mod:`human3d.body.cache` for where. Built models are
    kept per process (keyed by cache folder, skinning, dtype, device), so later ``AnnyBody()`` calls are instant.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import torch
from torch import nn

from human3d.body import cache as _cache
from human3d.body.model import BodyModel, BodyOutput
from human3d.body.skeletons import COCO17, gather_keypoints
from human3d.errors import InvalidInputError, ModelFileError
from human3d.geometry.rotations import axis_angle_to_matrix

__all__ = ["AnnyBody", "ANNY_TO_CANONICAL", "PHENOTYPE_LABELS", "ANNY_FIT_RANGES", "anny_delta_transforms",
           "clear_model_cache"]  # fmt: skip

PHENOTYPE_LABELS = ["gender", "age", "muscle", "weight", "height", "proportions"]

# Range fitting lets each phenotype take (a sigmoid maps logits into it, :meth:`AnnyBody.fit_shape_bounds`): the
# full valid range except age, held to children and older (1/3 = child, 2/3 = young adult, 1 = old).
ANNY_FIT_RANGES = {"gender": (0.0, 1.0), "age": (1.0 / 3.0, 1.0), "muscle": (0.0, 1.0), "weight": (0.0, 1.0),
                   "height": (0.0, 1.0), "proportions": (0.0, 1.0)}  # fmt: skip

# Rotation taking Anny's frame (Z up, facing -Y) to the canonical one (Y up, facing +Z): x' = x, y' = z, z' = -y.
ANNY_TO_CANONICAL = ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0))

SKINNING_METHODS = ("auto", "lbs", "warp_lbs")

# The Anny configuration wrapped here (anny's defaults).
_ANNY_KWARGS = dict(rig="anny", topology="anny", pose_parameterization="local-ref")


# ---- pure functions ---------------------------------------------------------------------------------------------
def anny_delta_transforms(rotvecs: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Anny delta transforms [B, J, 4, 4] from canonical-frame axis-angles [B, J, 3] (root first).

    ``D_j = left_j @ R(r_j) @ right_j`` with ``left``, ``right`` [J, 3, 3] (see ``AnnyBody.delta_factors``);
    translations are zero (``transl`` is added after skinning).
    """
    rot = left @ axis_angle_to_matrix(rotvecs) @ right  # [B, J, 3, 3]
    out = rot.new_zeros(rot.shape[:-2] + (4, 4))  # [B, J, 4, 4]
    out[..., :3, :3] = rot
    out[..., 3, 3] = 1.0
    return out


# ---- building (once per process) ---------------------------------------------------------------------------------
_BUILT: dict[tuple, nn.Module] = {}
_LOCK = threading.Lock()


def clear_model_cache() -> None:
    """Forget the per-process built Anny modules (the on-disk cache is untouched)."""
    with _LOCK:
        _BUILT.clear()


def _warp_supports(device: torch.device) -> bool:
    if device.type not in ("cpu", "cuda"):
        return False
    try:
        _cache.configure_warp()
        import warp

        return device.type == "cpu" or bool(warp.is_cuda_available())
    except Exception:
        return False


def _resolve_skinning(skinning: str, device: torch.device) -> str:
    if skinning not in SKINNING_METHODS:
        raise InvalidInputError(f"skinning: expected one of {list(SKINNING_METHODS)}, got {skinning!r}")
    if skinning == "auto":
        return "warp_lbs" if _warp_supports(device) else "lbs"
    if skinning == "warp_lbs" and not _warp_supports(device):
        raise InvalidInputError(
            f"skinning='warp_lbs': NVIDIA warp is not installed or does not run on device '{device}'; "
            "use skinning='lbs' or 'auto'"
        )
    return skinning


def _build_anny(folder: Path, skinning: str) -> nn.Module:
    """``anny.Anny()`` (float64, CPU), loading from / building into ``folder``."""
    if skinning == "warp_lbs":
        _cache.configure_warp()  # before anny imports warp (which initialises it)
    import anny

    _cache.configure_anny_cache(folder)
    slow = not _cache.anny_cache_ready(folder, **_ANNY_KWARGS)
    try:
        with _cache.build_notice(folder, slow):
            return anny.Anny(**_ANNY_KWARGS, skinning_method=skinning)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"Anny cache '{folder}': could not load or build the model data ({type(exc).__name__}: {exc}). "
            f"If a previous build was interrupted, delete '{folder}' and retry."
        ) from exc


def _light_copy(module: nn.Module) -> nn.Module:
    """A copy sharing the tensors but not the parameter/buffer dicts, so ``.to()`` on it leaves ``module`` alone."""
    new = copy.copy(module)
    new._parameters = dict(module._parameters)
    new._buffers = dict(module._buffers)
    new._non_persistent_buffers_set = set(module._non_persistent_buffers_set)
    new._modules = {name: None if sub is None else _light_copy(sub) for name, sub in module._modules.items()}
    return new


def _with_extras(module: nn.Module) -> tuple[nn.Module, dict]:
    """The module plus what AnnyBody derives from it once: triangle faces and the COCO keypoint regressor."""
    import anny

    regressor = anny.KeypointsRegressor.coco(module)  # 23 vertex blends, rows sum to 1
    extras = {
        "faces": module.get_triangular_faces(),  # [F, 3] int64
        "keypoint_weights": regressor.regression_weights.clone(),  # [23, V]
        "keypoint_labels": list(regressor.labels),
    }
    return module, extras


def _get_anny(folder: Path, skinning: str, dtype: torch.dtype, device: torch.device) -> tuple[nn.Module, dict]:
    key = (str(folder), skinning, dtype, str(device))
    with _LOCK:
        if key not in _BUILT:
            base_key = (str(folder), skinning, torch.float64, "cpu")
            if base_key not in _BUILT:
                _BUILT[base_key] = _with_extras(_build_anny(folder, skinning))
            if key != base_key:
                module, extras = _BUILT[base_key]
                extras = {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
                          if isinstance(v, torch.Tensor) else v for k, v in extras.items()}  # fmt: skip
                _BUILT[key] = (_light_copy(module).to(device=device, dtype=dtype), extras)
        module, extras = _BUILT[key]
        return _light_copy(module), dict(extras)


# ---- the model --------------------------------------------------------------------------------------------------
class AnnyBody(BodyModel):
    """Anny behind the BodyModel interface (see the module docstring for parameters, frame and conventions).

    Args:
        skinning: "auto" (default: warp where available, else lbs), "lbs" (pure torch) or "warp_lbs".
        device: where the model lives (default CPU).
        dtype: floating dtype of the model and its outputs (default float32).
        cache_dir: Anny cache folder (default ``$ANNY_CACHE_DIR`` or ``~/.cache/human3d/anny``).
    """

    family = "anny"
    shape_param = "phenotypes"
    prior_family = "anny"
    hinge_joints = (("elbow.L", "upperarm01.L", "lowerarm01.L", "wrist.L", +1),
                    ("elbow.R", "upperarm01.R", "lowerarm01.R", "wrist.R", +1),
                    ("knee.L", "upperleg01.L", "lowerleg01.L", "foot.L", -1),
                    ("knee.R", "upperleg01.R", "lowerleg01.R", "foot.R", -1))  # fmt: skip

    def __init__(
        self,
        skinning: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise InvalidInputError(f"dtype: expected a floating torch.dtype, got {dtype!r}")
        device = torch.device(device if device is not None else "cpu")
        self.skinning = _resolve_skinning(skinning, device)
        folder = _cache.anny_cache_dir(cache_dir)
        self.cache_dir = folder
        self.anny, extras = _get_anny(folder, self.skinning, dtype, device)
        anny_model = self.anny
        if list(anny_model.phenotype_labels) != PHENOTYPE_LABELS:  # pragma: no cover - guards an anny update
            raise ModelFileError(f"anny: unexpected phenotype labels {anny_model.phenotype_labels}")
        self._joint_names = list(anny_model.bone_labels)

        C = torch.tensor(ANNY_TO_CANONICAL, dtype=dtype, device=device)  # [3, 3]
        self.register_buffer("frame_rotation", C, persistent=False)
        # Delta factors D_j = left_j R(r_j) right_j. Every bone but the root: D_j = C^T R_j C (the canonical-axes
        # rotation R_j expressed in Anny's axes). Root ("local-ref": its world rotation is U_0^T D_0 U_0, U_0 its
        # reference orientation): D_0 = U_0 R_0 C U_0^T, so that the root's world rotation is R_0 C. This folds the
        # frame change C into Anny's kinematic chain: its outputs come out in the canonical frame at no extra cost.
        n = len(self._joint_names)
        left = C.T.expand(n, 3, 3).clone()  # [J, 3, 3]
        right = C.expand(n, 3, 3).clone()  # [J, 3, 3]
        ref = anny_model.reference_bone_orientations
        u0 = ref[0].to(C) if ref is not None else torch.eye(3, dtype=dtype, device=device)
        left[0], right[0] = u0, C @ u0.T
        self.register_buffer("delta_left", left, persistent=False)
        self.register_buffer("delta_right", right, persistent=False)
        self.register_buffer("faces", extras["faces"], persistent=False)  # [F, 3] int64
        self.keypoint_labels = extras["keypoint_labels"]
        if self.keypoint_labels[: len(COCO17)] != COCO17:  # pragma: no cover - guards an anny update
            raise ModelFileError(f"anny: unexpected COCO keypoint labels {self.keypoint_labels}")
        self.register_buffer("keypoint_weights", extras["keypoint_weights"], persistent=False)  # [23, V]
        lo = torch.stack([anny_model.anchors[name][0] for name in PHENOTYPE_LABELS])  # [6]
        hi = torch.stack([anny_model.anchors[name][-1] for name in PHENOTYPE_LABELS])  # [6]
        self.register_buffer("phenotype_low", lo.clone(), persistent=False)
        self.register_buffer("phenotype_high", hi.clone(), persistent=False)

    # ---- interface ----------------------------------------------------------------------------------------------
    @property
    def joint_names(self) -> list[str]:
        return self._joint_names

    @property
    def phenotype_labels(self) -> list[str]:
        return list(PHENOTYPE_LABELS)

    @property
    def num_vertices(self) -> int:
        return int(self.anny.template_vertices.shape[0])

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return {
            "global_orient": (3,),
            "body_pose": (3 * (self.num_joints - 1),),
            "phenotypes": (len(PHENOTYPE_LABELS),),
            "transl": (3,),
        }

    def default_value(self, name: str) -> float:
        return 0.5 if name == "phenotypes" else 0.0

    # ---- facts for fitting ----------------------------------------------------------------------------------------
    def pose_groups(self) -> list[tuple[str, list[str]]]:
        """The bones mocap drives (:data:`generative.priors.pose.ANNY_PRIOR_GROUPS`: trunk, neck, head and per side
        clavicle, shoulder, elbow, wrist, hip, knee, ankle), the groups of the shipped Anny pose priors."""
        from generative.priors.pose import ANNY_PRIOR_GROUPS

        return [(n, list(ms)) for n, ms in ANNY_PRIOR_GROUPS]

    def fit_shape_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Phenotype ranges of :data:`ANNY_FIT_RANGES` ``[6]`` each (order ``PHENOTYPE_LABELS``)."""
        lo = torch.tensor([ANNY_FIT_RANGES[n][0] for n in PHENOTYPE_LABELS], dtype=self.dtype, device=self.faces.device)
        hi = torch.tensor([ANNY_FIT_RANGES[n][1] for n in PHENOTYPE_LABELS], dtype=self.dtype, device=self.faces.device)
        return lo, hi

    def keypoint_function(self):
        """Mesh-free keypoints (:class:`~human3d.body.anny_keypoints.AnnyKeypoints`, exact to round-off)."""
        from human3d.body.anny_keypoints import anny_keypoint_function

        return anny_keypoint_function(self)

    def validate_params(self, params: dict[str, torch.Tensor], check: bool = True) -> dict[str, torch.Tensor]:
        """Base checks (names, shapes, NaN/inf) plus the phenotype range (see the module docstring); ``check=False``
        skips them (see :meth:`BodyModel.validate_params`)."""
        full = super().validate_params(params, check)
        if not check:
            return full
        ph = full["phenotypes"]
        tol = 1e-6
        bad = (ph < self.phenotype_low - tol) | (ph > self.phenotype_high + tol)  # [B, 6]
        if bool(bad.any()):
            cols = bad.any(0).nonzero().flatten().tolist()
            ranges = ", ".join(
                f"{PHENOTYPE_LABELS[c]} in [{self.phenotype_low[c].item():.3g}, {self.phenotype_high[c].item():.3g}]"
                for c in cols
            )
            raise InvalidInputError(
                f"phenotypes: values out of range for {[PHENOTYPE_LABELS[c] for c in cols]} (expected {ranges}); "
                "clamp with AnnyBody.clamp_phenotypes"
            )
        return full

    def clamp_phenotypes(self, phenotypes: torch.Tensor) -> torch.Tensor:
        """Clamp phenotypes [B, 6] into their valid ranges (e.g. after an optimiser step, under no_grad)."""
        return torch.maximum(torch.minimum(phenotypes, self.phenotype_high), self.phenotype_low)

    def delta_transforms(self, global_orient: torch.Tensor, body_pose: torch.Tensor) -> torch.Tensor:
        """Anny's delta transforms [B, 104, 4, 4] ("local-ref") for our pose; they include the frame change C."""
        rotvecs = torch.cat([global_orient[:, None], body_pose.reshape(body_pose.shape[0], -1, 3)], 1)  # [B, J, 3]
        return anny_delta_transforms(rotvecs, self.delta_left, self.delta_right)

    def _forward(self, params: dict[str, torch.Tensor]) -> BodyOutput:
        deltas = self.delta_transforms(params["global_orient"], params["body_pose"])  # [B, J, 4, 4]
        ph = params["phenotypes"]  # [B, 6]
        if ph.shape[0] > 1 and ph.stride(0) == 0:
            ph = ph[:1]  # one shape for the whole batch (expanded): build the rest model once
        out = self.anny(deltas, ph)  # canonical frame (C is in the root delta), root joint at the origin
        transl = params["transl"][:, None]  # [B, 1, 3]
        vertices = out["vertices"]  # [B, V, 3]
        # Regress before translating (weights sum to 1): smaller magnitudes, less float32 round-off.
        points = torch.einsum("kv,bvd->bkd", self.keypoint_weights, vertices) + transl  # [B, 23, 3]
        vertices = vertices + transl
        joints = out["bone_poses"][..., :3, 3] + transl  # [B, J, 3] posed bone heads
        named = dict(zip(self.keypoint_labels, points.unbind(1)))
        keypoints = {"coco17": points[:, : len(COCO17)], "body25": gather_keypoints(named, "body25")}
        return BodyOutput(vertices=vertices, joints=joints, faces=self.faces, keypoints=keypoints)

    def extra_repr(self) -> str:
        return f"skinning={self.skinning!r}, joints={self.num_joints}, vertices={self.num_vertices}"
