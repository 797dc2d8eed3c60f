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

Where each part lives: inputs and their checks :mod:`~human3d.fitting.inputs`; the energies
:mod:`~human3d.fitting.energy` (built from :mod:`~human3d.fitting.losses`); the silhouette term
:mod:`~human3d.fitting.silhouette`; Adam / L-BFGS and their schedules :mod:`~human3d.fitting.optim`; the stages
:mod:`~human3d.fitting.stages`; what each body model brings (pose groups, hinges, shape bounds, fast keypoints,
prior family) :class:`~human3d.body.model.BodyModel`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from human3d.body.anny import ANNY_FIT_RANGES  # noqa: F401 - re-exported (its owner is human3d.body.anny)
from human3d.fitting.config import SMPLifyConfig
from human3d.fitting.inputs import FitInputs, prepare_inputs
from human3d.fitting.losses import reprojection_error_px
from human3d.fitting.optim import Progress
from human3d.fitting.priors import make_pose_term, pose_space
from human3d.fitting.stages import (FitState, init_camera, make_problem, restart_poses, score, select, stage_body,
                                    stage_rigid)
from human3d.geometry.cameras import project_points

__all__ = ["smplify", "SMPLifyResult", "ANNY_FIT_RANGES"]


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
    with _torch_threads(cfg.threads):
        t_start = time.perf_counter()
        inputs = prepare_inputs(model, keypoints2d, camera, skeleton, cfg, image_size, masks, init)
        term = make_pose_term(prior, pose_space(model), model)
        fit = _fit(model, inputs, term, cfg, progress)
        return _report(model, inputs, term, fit, time.perf_counter() - t_start)


def _fit(model, inputs: FitInputs, term, cfg: SMPLifyConfig, progress) -> tuple[torch.Tensor, FitState, FitState] | None:
    """The stages on the persons that can be fitted -> (their indices, stage 1's state, the selected stage 2's)."""
    idx = inputs.fitted.nonzero().flatten()
    if not idx.numel():
        return None
    if term is not None:
        term.to(inputs.K.device)  # learned priors load on the CPU
    bar = Progress(progress, cfg.camera_iters + cfg.body_iters)
    pb = make_problem(model, inputs.subset(idx), term, cfg, bar)
    rigid = stage_rigid(pb, *init_camera(pb))
    if cfg.optimizer == "lgd":  # learned gradient descent replaces stage 2's iterations
        from human3d.fitting.lgd import check_model, load_lgd, stage_lgd

        net = load_lgd(cfg.lgd_weights).to(inputs.K.device)
        check_model(net, pb)
        runs = [stage_lgd(pb, rigid, g, net, lambda p, g_, z: score(pb, p, g_, z)) for g in restart_poses(pb, cfg.restarts)]
    else:
        runs = [stage_body(pb, rigid, g, bar_i) for g, bar_i in zip(restart_poses(pb, cfg.restarts), _bars(pb, cfg))]
    bar.close()
    return idx, rigid, select(runs)


def _bars(pb, cfg):
    """The progress of each stage-2 run: the first counts on the bar, restarts silently."""
    yield pb.bar
    for _ in range(1, cfg.restarts):
        yield Progress(False, 0)


class _torch_threads:
    """Context: torch intra-op threads set to ``n`` (None: unchanged), restored afterwards."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        self.previous = torch.get_num_threads()
        if self.n is not None and self.n != self.previous:
            torch.set_num_threads(int(self.n))

    def __exit__(self, *exc):
        if torch.get_num_threads() != self.previous:
            torch.set_num_threads(self.previous)
        return False


def _report(model, inputs: FitInputs, term, fit, seconds: float) -> SMPLifyResult:
    """Scatter the fitted persons' parameters into the batch (defaults for the skipped), evaluate the model once
    and collect the diagnostics."""
    kp, K, w2c, ok = inputs.keypoints, inputs.K, inputs.world_to_camera, inputs.fitted
    B, dtype, device = kp.shape[0], model.dtype, model.faces.device
    params = {k: v.to(device) for k, v in model.default_params(B).items()}
    energy = torch.zeros(B, dtype=dtype, device=device)
    flipped = torch.zeros(B, dtype=torch.bool, device=device)
    history, iters, evals = [], 0, 0
    if fit is not None:
        idx, rigid, best = fit
        for name, value in best.params.items():
            params[name] = params[name].clone()
            params[name][idx] = value.detach().to(params[name].dtype)
        energy[idx] = best.energy.detach()
        flipped[idx] = best.flipped
        history, iters, evals = best.history, rigid.iterations + best.iterations, best.evaluations
        # A person whose optimisation produced non-finite values gets its stage-1 result (never NaN out).
        bad = ~torch.stack([torch.isfinite(params[n][idx]).reshape(len(idx), -1).all(-1) for n in params]).all(0)
        for j in bad.nonzero().flatten().tolist():
            for name, value in rigid.params.items():
                params[name][int(idx[j])] = value[j].detach()
    # Final evaluation: projected keypoints, reprojection error, joints behind the camera.
    with torch.no_grad():
        out = model(params)
        proj = project_points(out.keypoints[inputs.skeleton], K, w2c)
        err = reprojection_error_px(proj.uv, proj.valid, kp)
        err = torch.where(ok, err, torch.zeros_like(err))
        behind = (~project_points(out.joints, K, w2c).valid).sum(-1)
    return SMPLifyResult(
        params={k: v.detach() for k, v in params.items()}, fitted=ok, skip_reason=inputs.skip_reason,
        reprojection_error_px=err, keypoints2d=proj.uv, target=kp, joints_behind_camera=behind, flipped=flipped,
        energy=energy, iterations=iters, evaluations=evals, time_s=seconds, skeleton=inputs.skeleton,
        prior=term.name if term is not None else "none", dropped_keypoints=inputs.dropped, history=history,
    )  # fmt: skip
