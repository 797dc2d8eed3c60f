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

3. **Hypotheses** (:mod:`~human3d.fitting.hypotheses`). A given ``init`` (e.g. an HMR regressor's prediction)
   is stage 2 run once more from it, next to the default; a default fit failing a plausibility check (joint
   limits, interpenetrating limbs, a depth order contradicting the keypoints' visibility) is retried from stage
   1's other facing (``flip``) and from its mirrored pose (``mirror``). Each person keeps the hypothesis with the
   lowest ranking energy, so an ``init`` never leaves a higher energy than the fit without it (with
   ``default_hypothesis=False`` the checks and retries apply to the init's fit); ``SMPLifyResult.hypotheses`` says which won and every one's energy. Per-iteration
   records of both stages (reprojection pixels, prior energy, weight schedules) are in ``SMPLifyResult.trace``.

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
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from human3d.body.anny import ANNY_FIT_RANGES  # noqa: F401 - re-exported (its owner is human3d.body.anny)
from human3d.errors import InvalidInputError
from human3d.fitting.config import SMPLifyConfig
from human3d.fitting.hypotheses import FitChecks, check_fit, choose, retry_starts, scatter
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
    # per person (None where skipped): {"winner": hypothesis, "energies": {hypothesis: ranking energy or None (not
    # tried)}, "flagged_before_retry": bool} and the chosen fit's plausibility checks (FitChecks.person)
    hypotheses: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    keypoints3d_weight: torch.Tensor | None = None  # [B] the 3D keypoint term's weight per person (None: no 3D term)
    # per-iteration records of the fitted persons (columns = ``trace["fitted_index"]``): "stage1_reprojection_px"
    # [N1, N]; "stage2_reprojection_px" / "stage2_prior" / "stage2_data" / "stage2_total" [N2 + 1, N] (the last row:
    # the final parameters); "stage2_t", "stage2_pose_prior_weight", "stage2_shape_weight" [N2 + 1]
    trace: dict = field(default_factory=dict)

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
            "hypothesis": self.hypotheses[b] if ok and b < len(self.hypotheses) else None,
            "checks": self.checks[b] if ok and b < len(self.checks) else None,
            "keypoints3d_weight": float(self.keypoints3d_weight[b]) if ok and self.keypoints3d_weight is not None
            else None,
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
    init: dict[str, torch.Tensor] | str | None = None,
    keypoints3d=None,
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
        init: optional starting parameters ``[B, ...]`` (model names), e.g. a regressor's: one more hypothesis
            next to the default (camera init, flip, restarts), each person keeping the lower energy. With
            ``global_orient`` and ``transl`` its stage 1 is skipped; ``body_pose`` starts the pose groups
            (least-squares projection onto them) and the shape parameter the shape. ``"lift"``: the keypoint
            lifter (:mod:`~human3d.fitting.lift`; COCO-17, identity extrinsics) lifts the keypoints to 3D; its
            start (orientation and translation, :func:`~human3d.fitting.lift.lift_start`) *replaces* the default
            start, and its 3D keypoints become ``keypoints3d`` (unless given). The flip / mirror retries still
            apply to flagged persons.
        keypoints3d: optional ``[B, K, 3]`` 3D keypoints of the same skeleton, camera frame, metres, relative to
            the mid-hip (mean of the two hip keypoints), all finite: stage 2 adds
            ``keypoints3d_weight`` x their mean squared error (:func:`~human3d.fitting.energy.keypoints3d_energy`).
    Returns:
        :class:`SMPLifyResult`.
    """
    cfg = (config or SMPLifyConfig()).replace(**overrides) if overrides else (config or SMPLifyConfig())
    with _torch_threads(cfg.threads), torch.enable_grad():  # (also when called under torch.no_grad())
        t_start = time.perf_counter()
        lift = isinstance(init, str)
        if lift and init != "lift":
            raise InvalidInputError(f"init: expected a dict of starting parameters or 'lift', got {init!r}")
        inputs = prepare_inputs(model, keypoints2d, camera, skeleton, cfg, image_size, masks, None if lift else init)
        if keypoints3d is not None:
            inputs = replace(inputs, keypoints3d=_check_keypoints3d(keypoints3d, inputs))
        if lift:
            inputs, cfg = _lift_inputs(model, inputs, cfg)
        if inputs.keypoints3d is not None:
            inputs = replace(inputs, keypoints3d_weight=_keypoints3d_weights(inputs, cfg))
        term = make_pose_term(prior, pose_space(model), model)
        fit = _fit(model, inputs, term, cfg, progress)
        return _report(model, inputs, term, fit, time.perf_counter() - t_start)


def _check_keypoints3d(keypoints3d, inputs: FitInputs) -> torch.Tensor:
    """``keypoints3d`` checked (shape, finite) as a ``[B, K, 3]`` tensor in the inputs' dtype."""
    Y = torch.as_tensor(keypoints3d)
    B, Kp = inputs.keypoints.shape[:2]
    if Y.shape != (B, Kp, 3):
        raise InvalidInputError(f"keypoints3d: expected [{B}, {Kp}, 3] (the keypoints' persons and skeleton, "
                                f"x y z in metres), got {tuple(Y.shape)}")  # fmt: skip
    Y = Y.to(inputs.K)
    if not bool(torch.isfinite(Y).all()):
        raise InvalidInputError("keypoints3d: contains NaN/inf (fit persons without 3D keypoints in another call)")
    return Y


def _keypoints3d_weights(inputs: FitInputs, cfg: SMPLifyConfig) -> torch.Tensor:
    """The 3D term's weight per person ``[B]``: ``cfg.keypoints3d_weight``, or with ``"auto"`` the ramp of
    :func:`~human3d.fitting.lift.auto_keypoints3d_weight` on how well the 2D keypoints agree with the 3D ones
    (:func:`~human3d.fitting.lift.lift_residual`; identity extrinsics: the 3D keypoints are camera-frame)."""
    kp, Y = inputs.keypoints, inputs.keypoints3d
    if cfg.keypoints3d_weight != "auto":
        return torch.full((kp.shape[0],), float(cfg.keypoints3d_weight), dtype=kp.dtype, device=kp.device)
    from human3d.fitting.lift import AUTO_WEIGHTS, auto_keypoints3d_weight, lift_residual

    with torch.no_grad():
        w = auto_keypoints3d_weight(lift_residual(Y.to(kp), kp, inputs.K.to(kp)))
    return torch.where(torch.isfinite(w), w, torch.full_like(w, AUTO_WEIGHTS[0]))  # skipped persons: unused


def _lift_inputs(model, inputs: FitInputs, cfg: SMPLifyConfig) -> tuple[FitInputs, SMPLifyConfig]:
    """``init="lift"``: the lifter's start as the init (replacing the default start) and its 3D keypoints as
    ``keypoints3d`` (unless given)."""
    from human3d.fitting.lift import lift_keypoints, lift_start, load_lifter

    if inputs.skeleton != "coco17":
        raise InvalidInputError(f"init 'lift': the lifter reads COCO-17 keypoints, got '{inputs.skeleton}'")
    w2c = inputs.world_to_camera
    if not torch.allclose(w2c, torch.eye(4, dtype=w2c.dtype, device=w2c.device).expand_as(w2c)):
        raise InvalidInputError("init 'lift': expected identity camera extrinsics (camera frame = world, as "
                                "`human3d fit` has it); got a camera with a world-to-camera transform")
    net = load_lifter(cfg.lift_weights).to(inputs.K.device)
    Y = lift_keypoints(inputs.keypoints, inputs.K, net)  # [B, 17, 3]
    start = lift_start(model, Y, inputs.keypoints, inputs.K)
    ok = inputs.fitted & torch.stack([torch.isfinite(v).all(-1) for v in start.values()]).all(0)
    init = {k: torch.where(ok[:, None], v, torch.full_like(v, float("nan"))) for k, v in start.items()}
    Y3 = inputs.keypoints3d if inputs.keypoints3d is not None else Y
    return replace(inputs, init=init, keypoints3d=Y3), cfg.replace(default_hypothesis=False)


@dataclass
class _Fit:
    idx: torch.Tensor  # [N] the fitted persons
    rigid: FitState  # stage 1 (default hypothesis)
    best: FitState  # the chosen stage-2 state
    names: list[str]  # hypotheses
    winner: torch.Tensor  # [N] index into names
    ranks: torch.Tensor  # [N, H] ranking energy per hypothesis (inf: not tried)
    checks: FitChecks  # of the chosen fit
    flagged_before: torch.Tensor  # [N] bool: the checks failed before retries (on the default fit; init-only: the init's)


def _fit(model, inputs: FitInputs, term, cfg: SMPLifyConfig, progress) -> _Fit | None:
    """The stages on the persons that can be fitted, over the hypotheses (default; ``init`` when given; the
    retries of :mod:`~human3d.fitting.hypotheses` for flagged persons), each person keeping the lowest energy."""
    idx = inputs.fitted.nonzero().flatten()
    if not idx.numel():
        return None
    if term is not None:
        term.to(inputs.K.device)  # learned priors load on the CPU
    bar = Progress(progress, cfg.camera_iters + cfg.body_iters)
    sub = inputs.subset(idx)
    pb = make_problem(model, replace(sub, init=None), term, cfg, bar)
    rigid = stage_rigid(pb, *init_camera(pb))
    if cfg.optimizer == "lgd":  # learned gradient descent replaces stage 2's iterations
        from human3d.fitting.lgd import check_model, load_lgd, stage_lgd

        net = load_lgd(cfg.lgd_weights).to(inputs.K.device)
        check_model(net, pb)
        stage2 = lambda p_, st, g, b=None: stage_lgd(p_, st, g, net, lambda q, g_, z: score(p_, q, g_, z))  # noqa: E731
    else:
        stage2 = stage_body
    default = sub.init is None or cfg.default_hypothesis
    cands = {}
    if default:
        runs = [stage2(pb, rigid, g, bar_i) for g, bar_i in zip(restart_poses(pb, cfg.restarts), _bars(pb, cfg))]
        cands["default"] = select(runs)
    bar.close()
    if sub.init is not None:  # one more hypothesis from the given start (stage 1 skipped with orient + transl)
        # persons whose init holds NaN/inf (none given for them) start from the defaults and never win
        ok = torch.stack([torch.isfinite(v).reshape(v.shape[0], -1).all(-1) for v in sub.init.values()]).all(0)
        dflt = {k: v.to(sub.K) for k, v in model.default_params(len(idx)).items()}
        init = {k: torch.where(ok.reshape(-1, *[1] * (v.dim() - 1)), torch.nan_to_num(v), dflt[k].to(v.dtype))
                for k, v in sub.init.items()}  # fmt: skip
        pbi = make_problem(model, replace(sub, init=init), term, cfg, Progress(False, 0))
        st = stage2(pbi, stage_rigid(pbi, *init_camera(pbi)), restart_poses(pbi, 1)[0], Progress(False, 0))
        inf = torch.full_like(st.rank, float("inf"))
        cands["init"] = replace(st, rank=torch.where(ok, st.rank, inf), energy=torch.where(ok, st.energy, inf))
        if not default and not bool(ok.all()):  # init-only: the default start for the persons without an init
            j = (~ok).nonzero().flatten()
            pbj = make_problem(model, replace(sub, init=None).subset(j), term, cfg, Progress(False, 0))
            part = select([stage2(pbj, stage_rigid(pbj, *init_camera(pbj)), g, Progress(False, 0))
                           for g in restart_poses(pbj, cfg.restarts)])  # fmt: skip
            cands = {"default": scatter(cands["init"], part, j), **cands}
    # The retries start from the default fit when it ran (so an init only adds a candidate: the result is never
    # higher in energy than without it), else from the init's.
    best = cands["default"] if default else choose(cands)[0]
    checks = _checks(pb, best, cfg)
    flagged = checks.flagged
    todo = torch.ones_like(flagged) if cfg.retry_all else flagged
    if cfg.retry_hypotheses and bool(todo.any()):
        j = todo.nonzero().flatten()
        pbj = make_problem(model, replace(sub, init=None).subset(j), term, cfg, Progress(False, 0))
        g_mean = restart_poses(pb, 1)[0]
        for name, (start, g) in retry_starts(pb, rigid, best, cfg.retry_hypotheses, j, g_mean).items():
            cands[name] = scatter(best, stage2(pbj, start, g, Progress(False, 0)), j)
    if cfg.check_weight > 0 and len(cands) > 1:  # failed checks count against a hypothesis
        cands = {n: replace(c, rank=c.rank + cfg.check_weight * _checks(pb, c, cfg).total) for n, c in cands.items()}
    best, winner, ranks = choose(cands)
    if len(cands) > 1 or not default:
        checks = _checks(pb, best, cfg)
    return _Fit(idx, rigid, best, list(cands), winner, ranks, checks, flagged)


def _checks(pb, state: FitState, cfg: SMPLifyConfig) -> FitChecks:
    """:func:`~human3d.fitting.hypotheses.check_fit` of a stage-2 state."""
    inp = pb.inputs
    with torch.no_grad():
        X = pb.kp_fn(state.params)[inp.skeleton]
        groups = pb.space.groups_from_body_pose(state.params["body_pose"])
        return check_fit(X, inp.world_to_camera, inp.keypoints, inp.skeleton, groups, pb.space, cfg.occluded_confidence)


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
    hyp: list = [None] * B
    checks: list = [None] * B
    trace: dict[str, torch.Tensor] = {}
    if fit is not None:
        idx, rigid, best = fit.idx, fit.rigid, fit.best
        for n, i in enumerate(idx.tolist()):
            hyp[i] = {"winner": fit.names[int(fit.winner[n])], "flagged_before_retry": bool(fit.flagged_before[n]),
                      "energies": {h: (float(fit.ranks[n, k]) if torch.isfinite(fit.ranks[n, k]) else None)
                                   for k, h in enumerate(fit.names)}}  # fmt: skip
            checks[i] = fit.checks.person(n)
        trace = {f"stage1_{k}": v for k, v in rigid.trace.items()}
        trace.update({f"stage2_{k}": v for k, v in best.trace.items()})
        trace["fitted_index"] = idx
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
        hypotheses=hyp, checks=checks, trace=trace,
        keypoints3d_weight=None if inputs.keypoints3d_weight is None else inputs.keypoints3d_weight.detach().cpu(),
    )  # fmt: skip
