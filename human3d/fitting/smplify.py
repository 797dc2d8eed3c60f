"""Staged SMPLify: fit a body model to 2D keypoints, every person of every image in one batched optimisation.

Stages (Bogo et al., ECCV 2016, "Keep it SMPL"; Pavlakos et al., CVPR 2019, SMPLify-X):

0. **Set-up.** Keypoints with NaN/inf coordinates, or farther outside the image than ``outside_margin``, become
   missing (confidence 0). A person with fewer than ``min_keypoints`` confident keypoints, or whose keypoints
   span under ``min_extent_px``, is *skipped*: the result says why and holds finite default parameters, and the
   others are fitted as usual.
1. **Camera and global orientation on the torso.** With the pose at zero and the shape neutral, the model's
   keypoints are a rigid body: this stage optimises a rotation and translation of that body (no model
   evaluation per iteration), on the torso keypoints (plus the face at a lower weight). The translation starts
   from similar triangles on the torso (:func:`~human3d.fitting.camera_init.similar_triangles_translation`);
   the orientation from upright, facing the camera and - when ``try_flip`` - also facing away; each person keeps
   the better of the two.
2. **Full body.** Pose (the :class:`~human3d.fitting.priors.PoseSpace` groups), shape, global orientation and
   translation against all keypoints, with the pose- and shape-prior weights annealed from strong to weak
   (Adam with a large epsilon, see ``SMPLifyConfig.adam_eps``). With a VAE prior the pose is the decoder's
   output and its latent code is optimised (VPoser-style, ``latent_pose``). ``restarts`` > 1 repeats the stage
   from perturbed limb poses and keeps, per person, the run with the lowest data + prior energy.

Energy per person (residuals in units of the person's size ``s``, the longer side of the confident keypoints'
bounding box, so weights do not depend on image resolution)::

    E = sum_k c_k GM(|pi(X_k) - x_k|^2 / s^2; sigma) / sigma^2          (robust reprojection, Geman-McClure)
      + w_pose(t) * E_prior(pose) + w_shape(t) * |z|^2                 (annealed priors)
      + w_limit * E_limits(elbows, knees) + w_sil * E_sil(mask)         (hinge limits; optional silhouette)

``E_sil`` (only with masks, from ``silhouette_start`` of stage 2 on) is the two-sided Chamfer / distance-transform
energy of :func:`~human3d.fitting.losses.silhouette_chamfer_energy` between the projected mesh vertices and the
mask's outline, in the same units (``SMPLifyConfig.silhouette_loss``).

Cameras follow :mod:`human3d.geometry.cameras` (OpenCV, pixels with centres at ``j + 0.5``). Parameters are
returned in the model's world frame (the given cameras' extrinsics are respected; with identity extrinsics the
world is the camera frame, as in the CLI).
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from human3d.body.skeletons import convert_keypoints, skeleton_names
from human3d.errors import InvalidInputError, check_tensor
from human3d.fitting.camera_init import body_frame, facing_rotations, similar_triangles_translation
from human3d.fitting.config import SMPLifyConfig
from human3d.fitting.keypoint_fn import keypoint_function
from human3d.fitting.losses import (
    geman_mcclure,
    hinge_limit_energy,
    keypoint_scale,
    reprojection_error_px,
    soft_iou_energy,
)
from human3d.fitting.priors import PoseSpace, PoseTerm, hinge_angles, make_pose_term, pose_space
from human3d.geometry.cameras import Cameras, project_points
from human3d.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["smplify", "SMPLifyResult", "ANNY_FIT_RANGES"]

_SKELETON_BY_K = {17: "coco17", 25: "body25", 18: "openpose_coco18"}
_TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "neck", "mid_hip")
_FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")

# Range the fitter lets each Anny phenotype take (a sigmoid maps logits into it): the full valid range except age,
# held to children and older (1/3 = child, 2/3 = young adult, 1 = old).
ANNY_FIT_RANGES = {"gender": (0.0, 1.0), "age": (1.0 / 3.0, 1.0), "muscle": (0.0, 1.0), "weight": (0.0, 1.0),
                   "height": (0.0, 1.0), "proportions": (0.0, 1.0)}  # fmt: skip


@dataclass
class SMPLifyResult:
    """Parameters and diagnostics of a batched fit (index ``b`` = the ``b``-th input person)."""

    params: dict[str, torch.Tensor]  # model parameters [B, ...] (model names), detached; finite for everyone
    fitted: torch.Tensor  # [B] bool: False for skipped persons (see skip_reason)
    skip_reason: list[str | None]  # why a person was skipped (None if fitted)
    reprojection_error_px: torch.Tensor  # [B] mean pixel error over confident keypoints (0 where skipped)
    keypoints2d: torch.Tensor  # [B, K, 2] projected model keypoints (skeleton ``skeleton``)
    target: torch.Tensor  # [B, K, 3] the cleaned input keypoints (u, v, confidence) used by the fit
    joints_behind_camera: torch.Tensor  # [B] int: model joints at or behind the camera's near plane
    flipped: torch.Tensor  # [B] bool: the facing-away initialisation won stage 1
    energy: torch.Tensor  # [B] final total energy
    iterations: int  # optimiser iterations (stage 1 + stage 2)
    evaluations: int  # body-model keypoint evaluations in stage 2 (L-BFGS line searches add some)
    time_s: float  # wall time of the whole call
    skeleton: str  # keypoint skeleton the fit used ("coco17" or "body25")
    prior: str  # pose prior used ("none", "simple", "vae", ...)
    dropped_keypoints: torch.Tensor  # [B] keypoints made missing (NaN coordinates or outside the image)
    history: list[float] = field(default_factory=list)  # mean energy per stage-2 iteration

    def person(self, b: int) -> dict:
        """JSON-ready diagnostics of person ``b`` (None for values that do not apply)."""
        ok = bool(self.fitted[b])
        n = int(self.fitted.sum()) or 1
        return {
            "fitted": ok,
            "skip_reason": self.skip_reason[b],
            "reprojection_error_px": float(self.reprojection_error_px[b]) if ok else None,
            "joints_behind_camera": int(self.joints_behind_camera[b]) if ok else None,
            "flipped_init": bool(self.flipped[b]) if ok else None,
            "energy": float(self.energy[b]) if ok else None,
            "iterations": self.iterations if ok else 0,
            "time_s": self.time_s / n if ok else 0.0,
            "prior": self.prior,
            "dropped_keypoints": int(self.dropped_keypoints[b]),
            "num_keypoints": int((self.target[b, :, 2] > 0).sum()),
        }


# ---- input handling ------------------------------------------------------------------------------------------------
def _as_keypoints(keypoints2d, skeleton: str | None) -> tuple[torch.Tensor, str]:
    if isinstance(keypoints2d, np.ndarray):
        keypoints2d = torch.from_numpy(np.ascontiguousarray(keypoints2d))
    if not isinstance(keypoints2d, torch.Tensor):
        raise InvalidInputError(f"keypoints2d: expected a tensor [B, K, 3], got {type(keypoints2d).__name__}")
    kp = keypoints2d.detach().to(torch.float32)
    if kp.dim() == 2:
        kp = kp[None]
    check_tensor(kp, "keypoints2d", (None, None, 3), finite=False)
    if kp.shape[0] == 0:
        raise InvalidInputError("keypoints2d: empty batch (no persons)")
    if skeleton is None:
        skeleton = _SKELETON_BY_K.get(kp.shape[1])
        if skeleton is None:
            raise InvalidInputError(
                f"keypoints2d: cannot tell the skeleton from K={kp.shape[1]} keypoints; expected 17 (COCO), "
                "25 (OpenPose BODY_25) or 18 (OpenPose COCO-18), or pass skeleton="
            )
    names = skeleton_names(skeleton)
    if len(names) != kp.shape[1]:
        raise InvalidInputError(f"keypoints2d: skeleton {skeleton!r} has {len(names)} keypoints, got {kp.shape[1]}")
    return kp, skeleton


def _as_camera(camera, B: int, dtype) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int] | None]:
    """-> K [B, 3, 3], world_to_camera [B, 4, 4], (W, H) or None."""
    size = None
    if isinstance(camera, Cameras):
        K, w2c, size = camera.K, camera.world_to_camera, (int(camera.width), int(camera.height))
    elif isinstance(camera, torch.Tensor):
        K = camera if camera.dim() == 3 else camera[None]
        check_tensor(K, "camera", (None, 3, 3))
        w2c = torch.eye(4, dtype=K.dtype, device=K.device).expand(K.shape[0], 4, 4)
    else:
        raise InvalidInputError(f"camera: expected Cameras or intrinsics K [B, 3, 3], got {type(camera).__name__}")
    if K.shape[0] == 1 and B > 1:
        K, w2c = K.expand(B, 3, 3), w2c.expand(B, 4, 4)
    if K.shape[0] != B:
        raise InvalidInputError(f"camera: {K.shape[0]} cameras for {B} persons (give 1 or one per person)")
    if not bool((K[:, 0, 0] > 0).all() and (K[:, 1, 1] > 0).all()):
        raise InvalidInputError("camera: focal lengths K[0,0], K[1,1] must be positive")
    return K.to(dtype), w2c.to(dtype), size


def _clean_keypoints(kp, sizes, cfg: SMPLifyConfig):
    """NaN/inf -> missing; outside the image (beyond the margin) -> missing. Returns kp, dropped [B]."""
    kp = kp.clone()
    conf = kp[..., 2]
    bad = ~torch.isfinite(kp).all(-1) | ~torch.isfinite(conf)
    conf = torch.nan_to_num(conf, nan=0.0, posinf=0.0, neginf=0.0).clamp(0.0, 1.0)
    dropped = bad & (torch.nan_to_num(kp[..., 2], nan=1.0) != 0)
    if sizes is not None:
        W, H = sizes[:, 0:1], sizes[:, 1:2]  # [B, 1]
        m = cfg.outside_margin
        u, v = kp[..., 0], kp[..., 1]
        out = (u < -m * W) | (u > (1 + m) * W) | (v < -m * H) | (v > (1 + m) * H)
        out = out & ~bad & (conf > 0)
        dropped = dropped | out
        bad = bad | out
    conf = torch.where(bad, torch.zeros_like(conf), conf)
    kp[..., :2] = torch.where(bad[..., None], torch.zeros_like(kp[..., :2]), kp[..., :2])
    kp[..., 2] = conf
    return kp, dropped.sum(-1)


def _skip_reasons(kp, cfg: SMPLifyConfig) -> list[str | None]:
    n = (kp[..., 2] > 0).sum(-1)
    ext = keypoint_scale(kp, min_scale=0.0)
    out = []
    for b in range(kp.shape[0]):
        if int(n[b]) == 0:
            out.append("no keypoints with confidence > 0")
        elif int(n[b]) < cfg.min_keypoints:
            out.append(f"only {int(n[b])} keypoint(s) with confidence > 0 (need {cfg.min_keypoints})")
        elif float(ext[b]) < cfg.min_extent_px:
            out.append(f"keypoints span {float(ext[b]):.1f} px (need {cfg.min_extent_px})")
        else:
            out.append(None)
    return out


# ---- shape parametrisation ------------------------------------------------------------------------------------------
class _Shape:
    """Maps unconstrained variables z [B, S] (0 = initial shape) to the model's shape parameter."""

    def __init__(self, model, B: int, dtype, device):
        self.name = model.shape_param
        self.dim = model.parameter_shapes()[self.name][0]
        self.anny = model.family == "anny"
        if self.anny:
            labels = list(getattr(model, "phenotype_labels", ANNY_FIT_RANGES))
            lo = torch.tensor([ANNY_FIT_RANGES[n][0] for n in labels], dtype=dtype, device=device)
            hi = torch.tensor([ANNY_FIT_RANGES[n][1] for n in labels], dtype=dtype, device=device)
            init = torch.full_like(lo, model.default_value(self.name)).clamp(lo + 1e-3, hi - 1e-3)
            self.lo, self.span = lo, hi - lo
            self.z0 = torch.logit((init - lo) / (hi - lo))
        self.B, self.dtype, self.device = B, dtype, device

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        if self.anny:
            return self.lo + self.span * torch.sigmoid(z + self.z0)
        return z

    def inverse(self, value: torch.Tensor) -> torch.Tensor:
        if self.anny:
            u = ((value - self.lo) / self.span).clamp(1e-4, 1 - 1e-4)
            return torch.logit(u) - self.z0
        return value.clone()


# ---- the fit -------------------------------------------------------------------------------------------------------
def _anneal(values: tuple[float, ...], t: float) -> float:
    """Piecewise geometric interpolation through ``values`` at t in [0, 1] (linear where a value is 0)."""
    if len(values) == 1:
        return float(values[0])
    x = t * (len(values) - 1)
    i = min(int(x), len(values) - 2)
    f = x - i
    a, b = float(values[i]), float(values[i + 1])
    if a > 0 and b > 0:
        return math.exp((1 - f) * math.log(a) + f * math.log(b))
    return (1 - f) * a + f * b


def _data_energy(uv, valid, target, scale, sigma, weights=None):
    """[B] robust reprojection energy normalised to saturate at 1 per keypoint (see module docstring)."""
    conf = target[..., 2] if weights is None else target[..., 2] * weights
    d2 = ((uv - target[..., :2]) ** 2).sum(-1) / (scale[:, None] ** 2)  # [B, K]
    rho = geman_mcclure(d2, sigma) / (sigma * sigma)
    rho = torch.where(valid, rho, torch.ones_like(rho))  # behind the camera: the saturated penalty
    return (conf * rho).sum(-1)


def smplify(
    model,
    keypoints2d,
    camera,
    prior="auto",
    *,
    skeleton: str | None = None,
    config: SMPLifyConfig | None = None,
    image_size=None,
    masks: list | torch.Tensor | None = None,
    progress: bool | Callable[[int, int], None] = False,
    init: dict[str, torch.Tensor] | None = None,
    **overrides,
) -> SMPLifyResult:
    """Fit ``model`` to 2D keypoints of ``B`` persons at once (see the module docstring for the stages).

    Args:
        model: a :class:`~human3d.body.model.BodyModel` (Anny or the SMPL family).
        keypoints2d: ``[B, K, 3]`` (u, v, confidence) pixels, tensor or array; K = 17 (COCO), 25 (BODY_25) or 18
            (OpenPose COCO-18, converted to BODY_25). Confidence 0 = missing.
        camera: :class:`~human3d.geometry.cameras.Cameras` (one, or one per person) or intrinsics ``K``
            ``[B, 3, 3]`` / ``[3, 3]`` (identity extrinsics).
        prior: pose prior: ``"auto"`` (default: the learned flow, for Anny and SMPL-family models,
            see :func:`~human3d.fitting.config.default_prior`), ``"simple"`` (built-in diagonal Gaussian from mocap
            statistics), ``"gaussian" | "vae" | "flow" | "diffusion" | "gan"`` (the shipped learned priors, for
            Anny and for SMPL-family ``body_pose``), ``"none"``/None, or any object with ``energy(x)`` (see
            :func:`~human3d.fitting.priors.make_pose_term`).
        skeleton: keypoint skeleton name, if K alone does not tell.
        config: :class:`SMPLifyConfig`; keyword ``overrides`` replace its fields (e.g. ``body_iters=30``).
        image_size: ``(W, H)`` or ``[B, 2]`` per person (default: the Cameras' size); used to drop keypoints
            outside the image and for the silhouette term.
        masks: optional person masks at the image's resolution: ``[B, H, W]``, or a list with a ``[H, W]``
            tensor/array or None (no silhouette term) per person; bool or float in [0, 1] (binarised at 0.5 by the
            default ``"chamfer"`` loss). Each should be that person's whole silhouette: the term pulls the body
            onto the mask's outline, so a mask that includes other people or misses occluded parts misleads it.
            The same mask object given to several persons is a mask of all of them: it then only keeps each
            body inside it (no pull to cover it). Wrong count or size, values outside [0, 1], NaN/inf or an
            empty mask raise ``InvalidInputError``.
            See ``SMPLifyConfig.silhouette_*``.
        progress: True for a tqdm bar, or a callable ``(done, total)``.
        init: optional starting parameters ``[B, ...]`` (model names). With ``global_orient`` and ``transl``
            stage 1 is skipped; ``body_pose`` starts the pose groups (least-squares projection onto them) and the
            shape parameter the shape.
    Returns:
        :class:`SMPLifyResult`.
    """
    cfg = (config or SMPLifyConfig()).replace(**overrides) if overrides else (config or SMPLifyConfig())
    previous = torch.get_num_threads()
    if cfg.num_threads is not None and cfg.num_threads != previous:
        torch.set_num_threads(int(cfg.num_threads))
    try:
        return _smplify(model, keypoints2d, camera, prior, skeleton, cfg, image_size, masks, progress, init)
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def _smplify(model, keypoints2d, camera, prior, skeleton, cfg, image_size, masks, progress, init) -> SMPLifyResult:
    t_start = time.perf_counter()
    kp_in, skeleton = _as_keypoints(keypoints2d, skeleton)
    dtype = model.dtype
    device = model.faces.device
    kp_in = kp_in.to(device)
    B = kp_in.shape[0]
    K, w2c, cam_size = _as_camera(camera, B, dtype)
    K, w2c = K.to(device), w2c.to(device)
    if image_size is None and cam_size is not None:
        image_size = cam_size
    sizes = None
    if image_size is not None:
        sizes = torch.as_tensor(image_size, dtype=torch.float32, device=device).reshape(-1, 2).expand(B, 2)
        if not bool(torch.isfinite(sizes).all() and (sizes > 0).all()):
            raise InvalidInputError(f"image_size: expected positive (W, H), got {image_size}")
    if skeleton == "openpose_coco18":
        kp_in, skeleton = convert_keypoints(kp_in, "openpose_coco18", "body25"), "body25"
    shared = None
    if masks is not None:
        masks, shared = _check_masks(masks, B, sizes)
    kp, dropped = _clean_keypoints(kp_in, sizes, cfg)
    reasons = _skip_reasons(kp, cfg)
    ok = torch.tensor([r is None for r in reasons], device=device)
    space = pose_space(model)
    term = make_pose_term(prior, space, model)
    if term is not None:
        term.to(device)  # learned priors load on the CPU
    prior_name = term.name if term is not None else "none"
    kp_fn = keypoint_function(model)

    params = model.default_params(B)
    params = {k: v.to(device) for k, v in params.items()}
    res_uv = torch.zeros(B, kp.shape[1], 2, dtype=dtype, device=device)
    energy = torch.zeros(B, dtype=dtype, device=device)
    flipped = torch.zeros(B, dtype=torch.bool, device=device)
    history: list[float] = []
    iters = evals = 0
    idx = ok.nonzero().flatten()
    if idx.numel():
        bar = _Progress(progress, cfg.camera_iters + cfg.body_iters)
        mask_sub = None
        if masks is not None:
            mask_sub = ([masks[int(i)] for i in idx], [shared[int(i)] for i in idx])
        init_sub = None
        if init is not None:
            full = model.validate_params({k: torch.as_tensor(v).to(device) for k, v in init.items()})
            given = set(init)
            init_sub = {k: v[idx].to(dtype) for k, v in full.items() if k in given}
        fit = _fit(model, kp_fn, space, term, kp[idx], K[idx], w2c[idx], None if sizes is None else sizes[idx],
                   skeleton, cfg, mask_sub, bar, init_sub)  # fmt: skip
        bar.close()
        for name, value in fit["params"].items():
            params[name] = params[name].clone()
            params[name][idx] = value.detach().to(params[name].dtype)
        energy[idx] = fit["energy"].detach()
        flipped[idx] = fit["flipped"]
        history, iters, evals = fit["history"], fit["iterations"], fit["evaluations"]
        # A person whose optimisation produced non-finite values gets its stage-1 result (never NaN out).
        bad = ~torch.stack([torch.isfinite(params[n][idx]).reshape(len(idx), -1).all(-1) for n in params]).all(0)
        for j in bad.nonzero().flatten().tolist():
            b = int(idx[j])
            for name, value in fit["stage1"].items():
                params[name][b] = value[j].detach()

    # Final evaluation: projected keypoints, reprojection error, joints behind the camera.
    with torch.no_grad():
        out = model(params)
        X = out.keypoints[skeleton]
        proj = project_points(X, K, w2c)
        res_uv = proj.uv
        err = reprojection_error_px(proj.uv, proj.valid, kp)
        err = torch.where(ok, err, torch.zeros_like(err))
        jproj = project_points(out.joints, K, w2c)
        behind = (~jproj.valid).sum(-1)
    return SMPLifyResult(
        params={k: v.detach() for k, v in params.items()},
        fitted=ok,
        skip_reason=reasons,
        reprojection_error_px=err,
        keypoints2d=res_uv,
        target=kp,
        joints_behind_camera=behind,
        flipped=flipped,
        energy=energy,
        iterations=iters,
        evaluations=evals,
        time_s=time.perf_counter() - t_start,
        skeleton=skeleton,
        prior=prior_name if term is not None else "none",
        dropped_keypoints=dropped,
        history=history,
    )


class _Progress:
    def __init__(self, progress, total: int):
        self.fn, self.bar, self.done, self.total = None, None, 0, total
        if callable(progress):
            self.fn = progress
        elif progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="smplify", unit="it", leave=False)

    def update(self, n: int = 1):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        if self.fn is not None:
            self.fn(self.done, self.total)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _fit(model, kp_fn, space: PoseSpace, term: PoseTerm | None, kp, K, w2c, sizes, skeleton, cfg, masks, bar,
         init=None):  # fmt: skip
    B = kp.shape[0]
    dtype, device = K.dtype, K.device
    names = skeleton_names(skeleton)
    scale = keypoint_scale(kp)  # [B] px
    sigma = cfg.robust_sigma
    torso_w = torch.tensor([1.0 if n in _TORSO else (0.3 if n in _FACE else 0.0) for n in names], dtype=dtype,
                           device=device)  # fmt: skip
    n_torso = ((kp[..., 2] > 0) & (torso_w[None] >= 1.0)).sum(-1)
    # Persons without >= 3 torso keypoints use every keypoint in stage 1.
    w1 = torch.where((n_torso >= 3)[:, None], torso_w[None].expand(B, -1), torch.ones_like(kp[..., 2]))  # [B, K]
    R_w2c, T_w2c = w2c[:, :3, :3], w2c[:, :3, 3]

    shape = _Shape(model, B, dtype, device)
    z = torch.zeros(B, shape.dim, dtype=dtype, device=device)
    init = init or {}
    if shape.name in init:
        z = shape.inverse(init[shape.name])
    base = {"global_orient": torch.zeros(B, 3, dtype=dtype, device=device),
            "body_pose": torch.zeros(B, space.n_pose_joints * 3, dtype=dtype, device=device),
            shape.name: shape(z), "transl": torch.zeros(B, 3, dtype=dtype, device=device)}  # fmt: skip
    with torch.no_grad():
        kp0 = kp_fn(base)[skeleton]  # [B, K, 3] model frame, zero pose
        li = {n: names.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")}
        frame = body_frame(*(kp0[:, li[n]] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")))
        yaws = (0.0, math.pi) if cfg.try_flip else (0.0,)
        R0 = facing_rotations(frame, yaws)  # [Y, B, 3, 3] model -> camera
        Y = R0.shape[0]
        Xc = torch.einsum("ybij,bkj->ybki", R0, kp0)  # [Y, B, K, 3]
        t0 = torch.stack([similar_triangles_translation(kp[..., :2], Xc[y], K, kp[..., 2] * w1) for y in range(Y)])

    # ---- stage 1: rigid body (rotation + translation) per hypothesis ----
    d1 = torch.zeros(Y, B, 3, dtype=dtype, device=device, requires_grad=True)
    t1 = t0.clone().requires_grad_(True)
    KY, kpY, scY, w1Y = K.repeat(Y, 1, 1), kp.repeat(Y, 1, 1), scale.repeat(Y), w1.repeat(Y, 1)
    kp0Y = kp0.repeat(Y, 1, 1)

    def stage1_energy():
        R = axis_angle_to_matrix(d1) @ R0  # [Y, B, 3, 3]
        X = torch.einsum("nij,nkj->nki", R.reshape(-1, 3, 3), kp0Y) + t1.reshape(-1, 1, 3)  # [YB, K, 3]
        pr = project_points(X, KY)
        e = _data_energy(pr.uv, pr.valid, kpY, scY, sigma, w1Y)
        e = e + cfg.depth_weight * (t1.reshape(-1, 3)[:, 2] - t0.reshape(-1, 3)[:, 2]) ** 2 / (0.1**2)
        return e.reshape(Y, B)

    skip1 = "global_orient" in init and "transl" in init
    if not skip1:
        _optimize([d1, t1], stage1_energy, cfg.camera_iters, cfg.optimizer, cfg.lr_camera, cfg.lbfgs_lr, bar)
    else:
        bar.update(cfg.camera_iters)
    with torch.no_grad():
        e1 = stage1_energy()  # [Y, B]
        best = e1.argmin(0)  # [B]
        ar = torch.arange(B, device=device)
        Rc = (axis_angle_to_matrix(d1) @ R0)[best, ar]  # [B, 3, 3] model -> camera
        tc = t1[best, ar]  # [B, 3]
        flipped = best == 1
        # model parameters: global orientation in the world, translation from one rigid evaluation
        R_body = R_w2c.transpose(-1, -2) @ Rc
        go = matrix_to_axis_angle(R_body)
        kp1 = kp_fn({**base, "global_orient": go})[skeleton]  # [B, K, 3] world, transl 0
        want_cam = torch.einsum("bij,bkj->bki", Rc, kp0) + tc[:, None]
        want = torch.einsum("bji,bkj->bki", R_w2c, want_cam - T_w2c[:, None])  # R^T (x - T)
        transl0 = (want - kp1).mean(1)
        if skip1:
            R_body, transl0 = axis_angle_to_matrix(init["global_orient"]), init["transl"].clone()
            go = init["global_orient"].clone()
            flipped = torch.zeros_like(flipped)
    stage1 = {"global_orient": go.clone(), "transl": transl0.clone(), **{k: v.clone() for k, v in base.items()
              if k not in ("global_orient", "transl")}}  # fmt: skip

    # ---- stage 2: full body ----
    g0 = space.groups_from_body_pose(init["body_pose"]) if "body_pose" in init else None
    if g0 is None:  # start from the mean pose (arms down), not the model's rest pose
        g0 = space.mean.to(device, dtype)[None].expand(B, -1, -1)
    lat = term.latent if (term is not None and cfg.latent_pose) else None
    prior_sched = cfg.prior_weights(term.name if term is not None else "none")
    use_sil = masks is not None and any(m is not None for m in masks[0]) and cfg.silhouette_weight > 0
    sil = _Silhouette(model, masks, K, w2c, scale, cfg) if use_sil else None
    state = {"evals": 0}
    history: list[float] = []

    def run(g_start, n_iters, prog):
        """One stage-2 optimisation from pose groups ``g_start`` [B, G, 3] -> final params, energies."""
        if lat is not None:  # VPoser-style: optimise the VAE latent, pose = decode(z)
            with torch.no_grad():
                zl = lat.encode(g_start.to(dtype)).detach().clone()
            zl.requires_grad_(True)
            pose_vars = [zl]
        else:
            groups0 = g_start.clone()
            groups0.requires_grad_(True)
            pose_vars = [groups0]

        def pose_groups():
            return lat.decode(zl) if lat is not None else groups0

        dg = torch.zeros(B, 3, dtype=dtype, device=device, requires_grad=True)
        tr = transl0.clone().requires_grad_(True)
        zz = z.clone().requires_grad_(cfg.optimize_shape)
        variables = pose_vars + [dg, tr] + ([zz] if cfg.optimize_shape else [])
        st = {"t": 0.0}

        def assemble(groups):
            go2 = matrix_to_axis_angle(axis_angle_to_matrix(dg) @ R_body)
            return {"global_orient": go2, "body_pose": space.body_pose(groups), shape.name: shape(zz), "transl": tr}

        def energy_terms():
            state["evals"] += 1
            groups = pose_groups()
            p = assemble(groups)
            if sil is None:
                X = kp_fn(p)[skeleton]
            else:  # the silhouette needs the mesh; its keypoints are the same as kp_fn's
                out = model(p)
                X, verts = out.keypoints[skeleton], out.vertices
            pr = project_points(X, K, w2c)
            t = st["t"]
            data = _data_energy(pr.uv, pr.valid, kp, scale, _anneal((cfg.robust_sigma_start, cfg.robust_sigma), t))
            if lat is not None:
                prior_e = (zl**2).sum(-1)
                prior_w = _anneal(cfg.latent_weights, t)
            elif term is not None:
                prior_e = term.energy(groups, p["body_pose"])
                prior_w = _anneal(prior_sched, t)
            else:
                prior_e, prior_w = torch.zeros_like(data), 0.0
            e = data + prior_w * prior_e
            if cfg.optimize_shape:
                e = e + _anneal(cfg.shape_weights, t) * (zz**2).sum(-1)
            if cfg.angle_limit_weight > 0:
                ang, lo, hi = hinge_angles(groups, space)
                e = e + cfg.angle_limit_weight * hinge_limit_energy(ang.reshape(B, -1), lo.flatten(), hi.flatten())
            if sil is not None and t >= cfg.silhouette_start:
                e = e + cfg.silhouette_weight * sil.energy(verts)
            return e, data, prior_e

        def on_step(i, e):
            history.append(float(e.mean()))

        its = _optimize(variables, lambda: energy_terms()[0], n_iters, cfg.optimizer, cfg.lr_body, cfg.lbfgs_lr,
                        prog, anneal=lambda frac: st.__setitem__("t", frac), on_step=on_step, tol=cfg.tol,
                        n_sub=len(prior_sched), lr_final=cfg.lr_body_final, eps=cfg.adam_eps)  # fmt: skip
        with torch.no_grad():
            st["t"] = 1.0
            e_final, data, prior_e = energy_terms()
            final = {k: v.detach() for k, v in assemble(pose_groups()).items()}
        # restarts are ranked by the data term plus the prior at a fixed (mid-schedule) weight
        sel_w = cfg.restart_prior_weight
        return final, e_final, data + sel_w * prior_e, its

    starts = _restart_poses(g0, space, cfg.restarts)
    n2 = cfg.body_iters
    final, e_final, e_sel, its2 = run(starts[0], n2, bar)
    for g_r in starts[1:]:
        f_r, e_r, s_r, i_r = run(g_r, n2, _Progress(False, 0))
        its2 += i_r
        better = s_r < e_sel  # [B]
        for k in final:
            final[k] = torch.where(better.reshape(-1, *[1] * (final[k].dim() - 1)), f_r[k], final[k])
        e_final = torch.where(better, e_r, e_final)
        e_sel = torch.where(better, s_r, e_sel)
    return {"params": final, "energy": e_final, "flipped": flipped, "history": history,
            "iterations": cfg.camera_iters + its2, "evaluations": state["evals"], "stage1": stage1}  # fmt: skip


def _restart_poses(g0: torch.Tensor, space: PoseSpace, n: int) -> list[torch.Tensor]:
    """Starting pose groups for ``n`` stage-2 runs: ``g0``, then deterministic perturbations of the limbs
    (the arms' and legs' groups moved by -/+ 1 prior standard deviation about their mean; the trunk kept)."""
    out = [g0]
    if n <= 1:
        return out
    gen = torch.Generator().manual_seed(1234)
    std = space.std.to(g0)
    limb = torch.tensor([any(s in nm for s in ("upperarm", "lowerarm", "upperleg", "lowerleg"))
                         for nm in space.group_names], dtype=g0.dtype, device=g0.device)[:, None]  # fmt: skip
    for r in range(1, n):
        eps = torch.randn(space.num_groups, 3, generator=gen).to(g0)
        out.append(g0 + limb * std * eps)
    return out


def _optimize(variables, energy_fn, n_iters, optimizer, lr, lbfgs_lr, bar, anneal=None, on_step=None, tol=0.0,
              n_sub=3, lr_final=0.1, eps=1e-8) -> int:  # fmt: skip
    """Minimise ``energy_fn().sum()`` over ``variables``; returns the iterations run."""
    if n_iters <= 0:
        return 0
    if optimizer == "adam":
        opt = torch.optim.Adam(variables, lr=lr, eps=eps)
        last = None
        for i in range(n_iters):
            frac = i / max(n_iters - 1, 1)
            if anneal is not None:
                anneal(frac)
            for g in opt.param_groups:  # cosine decay to lr_final x the initial step
                g["lr"] = lr * (lr_final + (1 - lr_final) * 0.5 * (1 + math.cos(math.pi * frac)))
            opt.zero_grad(set_to_none=True)
            e = energy_fn()
            e.sum().backward()
            opt.step()
            bar.update(1)
            if on_step is not None:
                on_step(i, e.detach())
            if tol > 0 and i % 10 == 9:
                cur = float(e.detach().sum())
                if last is not None and (last - cur) <= tol * abs(last):
                    bar.update(n_iters - i - 1)
                    return i + 1
                last = cur
        return n_iters
    # L-BFGS: constant weights per sub-stage
    n_sub = max(1, min(n_sub, n_iters)) if anneal is not None else 1
    done = 0
    for s in range(n_sub):
        its = n_iters // n_sub + (1 if s < n_iters % n_sub else 0)
        if anneal is not None:
            anneal(s / max(n_sub - 1, 1))
        opt = torch.optim.LBFGS(variables, lr=lbfgs_lr, max_iter=its, history_size=10,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)  # fmt: skip
        last_e = {}

        def closure():
            opt.zero_grad(set_to_none=True)
            e = energy_fn()
            last_e["e"] = e.detach()
            loss = e.sum()
            loss.backward()
            return loss

        opt.step(closure)
        n_done = int(opt.state[opt._params[0]].get("n_iter", its))
        done += n_done
        bar.update(its)
        if on_step is not None and "e" in last_e:
            on_step(s, last_e["e"])
    return done


def _check_masks(masks, B: int, sizes) -> tuple[list, list[bool]]:
    """Validate ``masks`` (see :func:`smplify`) -> B entries (a float32 ``[H, W]`` tensor or None) and, per
    person, whether the same mask object was given to another person too (a shared mask)."""
    if isinstance(masks, np.ndarray):
        masks = torch.from_numpy(np.ascontiguousarray(masks))
    if isinstance(masks, torch.Tensor):
        if masks.dim() == 2:
            masks = masks[None]
        if masks.dim() != 3:
            raise InvalidInputError(f"masks: expected [B, H, W] or a list of [H, W] masks, got {tuple(masks.shape)}")
        masks = list(masks)
    if not isinstance(masks, (list, tuple)):
        raise InvalidInputError(f"masks: expected a tensor [B, H, W] or a list, got {type(masks).__name__}")
    if len(masks) != B:
        raise InvalidInputError(f"masks: expected {B} entries (one per person, None for none), got {len(masks)}")
    ids = [id(m) for m in masks]
    shared = [m is not None and ids.count(id(m)) > 1 for m in masks]
    out = []
    for b, m in enumerate(masks):
        if m is None:
            out.append(None)
            continue
        if isinstance(m, np.ndarray):
            m = torch.from_numpy(np.ascontiguousarray(m))
        if not isinstance(m, torch.Tensor):
            raise InvalidInputError(f"masks[{b}]: expected a [H, W] tensor/array or None, got {type(m).__name__}")
        if m.dim() != 2 or m.shape[0] < 2 or m.shape[1] < 2:
            raise InvalidInputError(f"masks[{b}]: expected [H, W] (H, W >= 2), got shape {tuple(m.shape)}")
        m = m.detach().to(torch.float32)
        if not bool(torch.isfinite(m).all()):
            raise InvalidInputError(f"masks[{b}]: contains NaN or inf")
        lo, hi = float(m.min()), float(m.max())
        if lo < 0.0 or hi > 1.0:
            raise InvalidInputError(f"masks[{b}]: values must lie in [0, 1] (bool or float; divide 8-bit masks by "
                                    f"255), got [{lo:g}, {hi:g}]")  # fmt: skip
        if sizes is not None:
            W, H = int(round(float(sizes[b, 0]))), int(round(float(sizes[b, 1])))
            if tuple(m.shape) != (H, W):
                raise InvalidInputError(f"masks[{b}]: is {m.shape[1]}x{m.shape[0]} (WxH), the image is {W}x{H}; "
                                        "give masks at the image's resolution")  # fmt: skip
        if not bool((m > 0.5).any()):
            raise InvalidInputError(f"masks[{b}]: empty (no pixel > 0.5); pass None for a person without a mask")
        out.append(m)
    return out, shared


_COVER_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> {n: vertex indices}


def _cover_vertices(model, n: int) -> torch.Tensor:
    """Farthest-point sample of ``n`` vertices of the model's rest mesh (cached per model)."""
    per_model = _COVER_CACHE.setdefault(model, {})
    if n not in per_model:
        with torch.no_grad():
            rest = model(model.default_params(1)).vertices[0]  # [V, 3]
        per_model[n] = _farthest_points(rest.to(torch.float32), n)
    return per_model[n]


def _farthest_points(x: torch.Tensor, n: int) -> torch.Tensor:
    """Indices [n] of a farthest-point sample of points ``x`` [V, 3] (deterministic: starts at vertex 0)."""
    V = x.shape[0]
    if n >= V:
        return torch.arange(V, device=x.device)
    idx = torch.zeros(n, dtype=torch.long, device=x.device)
    d = ((x - x[0]) ** 2).sum(-1)
    for i in range(1, n):
        idx[i] = d.argmax()
        d = torch.minimum(d, ((x - x[idx[i]]) ** 2).sum(-1))
    return idx


class _Silhouette:
    """Silhouette term against per-person masks (``cfg.silhouette_loss``); a person whose mask is None has none.

    Each mask is cropped to its bounding box (plus a margin) and resampled so the crop's longer side has
    ``cfg.silhouette_size`` pixels; the camera intrinsics are mapped to the crop (pixel centres stay at ``j + 0.5``).

    * ``"chamfer"``: :func:`~human3d.fitting.losses.silhouette_chamfer_energy` on the projected vertices
      (distance transform of the mask + Chamfer from mask boundary points to a farthest-point vertex subset).
    * ``"soft_iou"``: ``1 - soft IoU`` of :func:`~human3d.render.soft.render_soft_silhouette` in the crop.
    """

    MARGIN = 0.15  # crop margin, fraction of the mask's bounding box's longer side

    def __init__(self, model, masks, K, w2c, scale, cfg):
        """``masks``: (list of B ``[H, W]`` tensors or None, list of B bools: mask shared with other persons)."""
        import torch.nn.functional as F

        from human3d.fitting.losses import mask_boundary_points, mask_distance_transform

        masks, shared = masks
        B, dtype, device = K.shape[0], K.dtype, K.device
        self.model, self.faces, self.loss = model, model.faces, cfg.silhouette_loss
        self.has = torch.tensor([m is not None for m in masks], device=device)
        S = int(cfg.silhouette_size)
        crops, Ks, factors = [], [], []
        for b, m in enumerate(masks):
            if m is None:
                m = torch.ones(2, 2)
            m = (m > 0.5).float() if self.loss == "chamfer" else m.to(torch.float32)  # chamfer: binary at 0.5
            ii, jj = (m > 0.5).nonzero(as_tuple=True)
            i0, i1, j0, j1 = int(ii.min()), int(ii.max()) + 1, int(jj.min()), int(jj.max()) + 1
            pad = int(math.ceil(self.MARGIN * max(i1 - i0, j1 - j0))) + 2
            i0, i1, j0, j1 = i0 - pad, i1 + pad, j0 - pad, j1 + pad
            H, W = m.shape
            oi, oj = max(0, -i0), max(0, -j0)  # where the image's (0, 0) sits in the padded array
            crop = F.pad(m, (oj, max(0, j1 - W), oi, max(0, i1 - H)))[i0 + oi : i1 + oi, j0 + oj : j1 + oj]
            f = min(1.0, S / max(i1 - i0, j1 - j0))
            h, w = max(2, round((i1 - i0) * f)), max(2, round((j1 - j0) * f))
            fy, fx = h / (i1 - i0), w / (j1 - j0)
            if (h, w) != tuple(crop.shape):
                crop = F.interpolate(crop[None, None], size=(h, w), mode="area")[0, 0]
            Kb = K[b].clone()
            Kb[0] = Kb[0] * fx - torch.tensor([0.0, 0.0, j0 * fx], dtype=dtype, device=device)
            Kb[1] = Kb[1] * fy - torch.tensor([0.0, 0.0, i0 * fy], dtype=dtype, device=device)
            crops.append(crop.clamp(0, 1))
            Ks.append(Kb)
            factors.append(math.sqrt(fx * fy))
        self.H, self.W = max(c.shape[0] for c in crops), max(c.shape[1] for c in crops)
        self.cameras = Cameras(torch.stack(Ks), w2c, self.W, self.H)
        self.scale = scale * torch.tensor(factors, dtype=dtype, device=device)  # person size in crop pixels
        if self.loss == "soft_iou":
            target = torch.zeros(B, self.H, self.W)
            for b, c in enumerate(crops):
                target[b, : c.shape[0], : c.shape[1]] = c
            self.target = target.to(device, dtype)
            return
        # chamfer: distance transforms (a crop smaller than the grid is padded with background: the transform of
        # the padded mask is the same as the crop's, the mask being inside the crop), boundary points
        dist = torch.zeros(B, self.H, self.W)
        pts = torch.zeros(B, cfg.silhouette_points, 2)
        valid = torch.zeros(B, cfg.silhouette_points, dtype=torch.bool)
        for b, c in enumerate(crops):
            full = torch.zeros(self.H, self.W)
            full[: c.shape[0], : c.shape[1]] = c
            dist[b] = mask_distance_transform(full)
            if not shared[b]:  # a shared mask only keeps the body inside it (no coverage term)
                p = mask_boundary_points(c, cfg.silhouette_points)
                pts[b, : p.shape[0]], valid[b, : p.shape[0]] = p, True
        self.dist, self.pts, self.valid = dist.to(device, dtype), pts.to(device, dtype), valid.to(device)
        self.cover = _cover_vertices(model, cfg.silhouette_vertices).to(device)

    def energy(self, vertices: torch.Tensor) -> torch.Tensor:
        """[B] silhouette energy of posed vertices [B, V, 3] (world frame); 0 for persons without a mask."""
        if self.loss == "soft_iou":
            from human3d.fitting.losses import soft_iou_energy
            from human3d.render.soft import render_soft_silhouette

            sil = render_soft_silhouette(vertices, self.faces, self.cameras, sigma=1.0, compute_depth=False,
                                         cull_backfaces=True).silhouette  # fmt: skip
            e = soft_iou_energy(sil, self.target)
        else:
            from human3d.fitting.losses import silhouette_chamfer_energy

            pr = project_points(vertices, self.cameras.K, self.cameras.world_to_camera)
            e = silhouette_chamfer_energy(pr.uv, self.dist, self.pts, self.valid, self.scale,
                                          uv_cover=pr.uv[:, self.cover], vertex_valid=pr.valid)  # fmt: skip
        return torch.where(self.has, e, torch.zeros_like(e))
