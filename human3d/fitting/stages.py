"""SMPLify's stages over a small state (see :mod:`human3d.fitting.smplify` for the method).

* :func:`make_problem`: what every stage needs (keypoints, cameras, the person sizes, the pose space and prior
  term, the shape map, the silhouette term);
* :func:`init_camera`: the rigid body of the model's rest keypoints, its facing hypotheses and the
  similar-triangles translation of each;
* :func:`stage_rigid`: stage 1, camera-frame rotation and translation of that rigid body on the torso;
* :func:`stage_body`: stage 2 from given pose groups, pose, shape, orientation and translation against every
  keypoint;
* :func:`restart_poses` and :func:`select`: stage 2's restarts and the per-person choice among them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from human3d.body.skeletons import skeleton_names
from human3d.fitting.camera_init import body_frame, facing_rotations, similar_triangles_translation
from human3d.fitting.config import SMPLifyConfig
from human3d.fitting.energy import Weights, body_energy, rigid_energy
from human3d.fitting.inputs import FitInputs
from human3d.fitting.losses import keypoint_scale, reprojection_error_px
from human3d.fitting.optim import Progress, Schedule, anneal, minimize
from human3d.fitting.priors import PoseSpace, PoseTerm, pose_space
from human3d.fitting.silhouette import SilhouetteTerm
from human3d.geometry.cameras import project_points
from human3d.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["ShapeMap", "FitProblem", "FitState", "make_problem", "init_camera", "stage_rigid", "stage_body",
           "restart_poses", "perturbed_starts", "select", "stage2_weights", "score"]  # fmt: skip

_TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "neck", "mid_hip")
_FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")


class ShapeMap:
    """Unconstrained variables ``z`` ``[B, S]`` (0 = the model's default shape) -> the model's shape parameter:
    through a sigmoid into :meth:`~human3d.body.model.BodyModel.fit_shape_bounds` where the model has bounds,
    else the identity."""

    def __init__(self, model, dtype, device):
        self.name = model.shape_param
        self.dim = model.parameter_shapes()[self.name][0]
        bounds = model.fit_shape_bounds()
        self.bounded = bounds is not None
        if self.bounded:
            lo, hi = (b.to(device, dtype) for b in bounds)
            init = torch.full_like(lo, model.default_value(self.name)).clamp(lo + 1e-3, hi - 1e-3)
            self.lo, self.span = lo, hi - lo
            self.z0 = torch.logit((init - lo) / (hi - lo))

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.lo + self.span * torch.sigmoid(z + self.z0) if self.bounded else z

    def inverse(self, value: torch.Tensor) -> torch.Tensor:
        if self.bounded:
            u = ((value - self.lo) / self.span).clamp(1e-4, 1 - 1e-4)
            return torch.logit(u) - self.z0
        return value.clone()


@dataclass
class FitProblem:
    """Everything the stages share (persons ``b`` of the fitted subset)."""

    model: object
    kp_fn: object  # params -> {skeleton: [B, K, 3]} (BodyModel.keypoint_function)
    inputs: FitInputs
    space: PoseSpace
    term: PoseTerm | None
    cfg: SMPLifyConfig
    scale: torch.Tensor  # [B] person size (px)
    shape: ShapeMap
    z0: torch.Tensor  # [B, S] starting shape variables
    base: dict[str, torch.Tensor]  # zero-pose parameters at the starting shape
    silhouette: SilhouetteTerm | None
    bar: Progress

    @property
    def batch(self) -> int:
        return self.inputs.keypoints.shape[0]


@dataclass
class FitState:
    """Where a fit stands after a stage (per person ``[B, ...]``)."""

    params: dict[str, torch.Tensor]  # model parameters (global_orient, body_pose, shape, transl)
    R_body: torch.Tensor  # [B, 3, 3] world rotation of the body (global_orient as a matrix)
    flipped: torch.Tensor  # [B] bool: the facing-away hypothesis won stage 1
    energy: torch.Tensor | None = None  # [B] final total energy (stage 2)
    rank: torch.Tensor | None = None  # [B] data + restart_prior_weight x prior: what ranks restarts
    iterations: int = 0
    evaluations: int = 0  # body-model keypoint evaluations (stage 2)
    history: list[float] = field(default_factory=list)  # mean energy per stage-2 iteration
    # per-iteration records [N, B] (per person) or [N] (schedules); stage 2 appends its final evaluation (t = 1):
    # "reprojection_px" (mean over confident keypoints), "prior", "data", "total", "pose_prior_weight", "shape_weight"
    trace: dict[str, torch.Tensor] = field(default_factory=dict)
    other: "FitState | None" = None  # stage 1: the other facing hypothesis's state (when try_flip)


def _stack_trace(rows: list[dict]) -> dict[str, torch.Tensor]:
    """Per-iteration dicts of tensors -> a dict of stacked tensors ``[N, ...]``."""
    return {k: torch.stack([torch.as_tensor(r[k]) for r in rows]) for k in rows[0]} if rows else {}


def make_problem(model, inputs: FitInputs, term: PoseTerm | None, cfg: SMPLifyConfig, bar: Progress) -> FitProblem:
    """The shared set-up of the stages for ``inputs`` (fitted persons only)."""
    kp, K = inputs.keypoints, inputs.K
    B, dtype, device = kp.shape[0], K.dtype, K.device
    space = pose_space(model)
    scale = keypoint_scale(kp)  # [B] px
    shape = ShapeMap(model, dtype, device)
    init = inputs.init or {}
    z = shape.inverse(init[shape.name]) if shape.name in init else torch.zeros(B, shape.dim, dtype=dtype, device=device)
    base = {"global_orient": torch.zeros(B, 3, dtype=dtype, device=device),
            "body_pose": torch.zeros(B, space.n_pose_joints * 3, dtype=dtype, device=device),
            shape.name: shape(z), "transl": torch.zeros(B, 3, dtype=dtype, device=device)}  # fmt: skip
    masks = inputs.masks
    use_sil = masks is not None and any(m is not None for m in masks[0]) and cfg.silhouette_weight > 0
    sil = SilhouetteTerm(model, masks, K, inputs.world_to_camera, scale, cfg) if use_sil else None
    return FitProblem(model, model.keypoint_function(), inputs, space, term, cfg, scale, shape, z, base, sil, bar)


def init_camera(pb: FitProblem):
    """Stage 1's start: rest keypoints ``kp0`` ``[B, K, 3]`` (model frame), facing rotations ``R0``
    ``[Y, B, 3, 3]`` (model -> camera; facing the camera, and away when ``try_flip``), their similar-triangles
    translations ``t0`` ``[Y, B, 3]`` and the per-keypoint weights ``w1`` ``[B, K]`` (torso 1, face 0.3; every
    keypoint for persons with under 3 torso keypoints)."""
    kp, K, cfg = pb.inputs.keypoints, pb.inputs.K, pb.cfg
    B, dtype, device = pb.batch, K.dtype, K.device
    names = skeleton_names(pb.inputs.skeleton)
    torso_w = torch.tensor([1.0 if n in _TORSO else (0.3 if n in _FACE else 0.0) for n in names], dtype=dtype,
                           device=device)  # fmt: skip
    n_torso = ((kp[..., 2] > 0) & (torso_w[None] >= 1.0)).sum(-1)
    w1 = torch.where((n_torso >= 3)[:, None], torso_w[None].expand(B, -1), torch.ones_like(kp[..., 2]))  # [B, K]
    with torch.no_grad():
        kp0 = pb.kp_fn(pb.base)[pb.inputs.skeleton]  # [B, K, 3] model frame, zero pose
        corners = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
        frame = body_frame(*(kp0[:, names.index(n)] for n in corners))
        R0 = facing_rotations(frame, (0.0, math.pi) if cfg.try_flip else (0.0,))  # [Y, B, 3, 3]
        Xc = torch.einsum("ybij,bkj->ybki", R0, kp0)  # [Y, B, K, 3]
        t0 = torch.stack([similar_triangles_translation(kp[..., :2], Xc[y], K, kp[..., 2] * w1)
                          for y in range(R0.shape[0])])  # fmt: skip
    return kp0, R0, t0, w1


def stage_rigid(pb: FitProblem, kp0, R0, t0, w1) -> FitState:
    """Stage 1: per facing hypothesis, a camera-frame rotation and translation of the rigid rest keypoints on the
    torso; each person keeps the better hypothesis. Skipped (the given pose kept) when ``init`` has
    ``global_orient`` and ``transl``."""
    cfg, inp = pb.cfg, pb.inputs
    kp, K, w2c = inp.keypoints, inp.K, inp.world_to_camera
    Y, B = R0.shape[:2]
    R_w2c, T_w2c = w2c[:, :3, :3], w2c[:, :3, 3]
    d1 = torch.zeros(Y, B, 3, dtype=K.dtype, device=K.device, requires_grad=True)
    t1 = t0.clone().requires_grad_(True)
    KY, kpY, scY, w1Y, kp0Y = K.repeat(Y, 1, 1), kp.repeat(Y, 1, 1), pb.scale.repeat(Y), w1.repeat(Y, 1), kp0.repeat(Y, 1, 1)

    def energy(t: float) -> torch.Tensor:  # [Y, B]
        R = axis_angle_to_matrix(d1) @ R0  # [Y, B, 3, 3]
        X = torch.einsum("nij,nkj->nki", R.reshape(-1, 3, 3), kp0Y) + t1.reshape(-1, 1, 3)  # [YB, K, 3]
        e = rigid_energy(X, KY, kpY, scY, cfg.robust_sigma, w1Y, t1.reshape(-1, 3)[:, 2], t0.reshape(-1, 3)[:, 2],
                         cfg.depth_weight)  # fmt: skip
        return e.reshape(Y, B)

    rows: list[torch.Tensor] = []  # [Y, B] reprojection px of every keypoint per iteration

    def record():
        with torch.no_grad():
            R = axis_angle_to_matrix(d1) @ R0
            X = torch.einsum("nij,nkj->nki", R.reshape(-1, 3, 3), kp0Y) + t1.reshape(-1, 1, 3)
            pr = project_points(X, KY)
            rows.append(reprojection_error_px(pr.uv, pr.valid, kpY).reshape(Y, B))

    init = inp.init or {}
    skip = "global_orient" in init and "transl" in init
    if skip:
        pb.bar.update(cfg.camera_iters)
    else:
        minimize([d1, t1], energy, Schedule(cfg.optimizer, cfg.camera_iters, cfg.lr_camera, cfg.lbfgs_lr), pb.bar,
                 on_step=record)  # fmt: skip
    with torch.no_grad():
        best = energy(1.0).argmin(0)  # [B]
        ar = torch.arange(B, device=K.device)
        Rall = axis_angle_to_matrix(d1) @ R0  # [Y, B, 3, 3] model -> camera

        def state(y: torch.Tensor) -> FitState:  # the facing hypotheses y [B] as model parameters
            Rc, tc = Rall[y, ar], t1[y, ar]  # [B, 3, 3], [B, 3]
            # model parameters: global orientation in the world, translation from one rigid evaluation
            R_body = R_w2c.transpose(-1, -2) @ Rc
            go = matrix_to_axis_angle(R_body)
            kp1 = pb.kp_fn({**pb.base, "global_orient": go})[inp.skeleton]  # [B, K, 3] world, transl 0
            want_cam = torch.einsum("bij,bkj->bki", Rc, kp0) + tc[:, None]
            want = torch.einsum("bji,bkj->bki", R_w2c, want_cam - T_w2c[:, None])  # R^T (x - T)
            transl = (want - kp1).mean(1)
            flipped = y == 1
            if skip:
                R_body, transl = axis_angle_to_matrix(init["global_orient"]), init["transl"].clone()
                go = init["global_orient"].clone()
                flipped = torch.zeros_like(flipped)
            params = {**{k: v.clone() for k, v in pb.base.items()}, "global_orient": go.clone(),
                      "transl": transl.clone()}  # fmt: skip
            trace = {"reprojection_px": torch.stack([r[y, ar] for r in rows])} if rows else {}
            return FitState(params, R_body, flipped, iterations=cfg.camera_iters, trace=trace)

        out = state(best)
        if Y > 1 and not skip:
            out.other = state(1 - best)
    return out


def stage_body(pb: FitProblem, start: FitState, groups_start: torch.Tensor, bar: Progress | None = None) -> FitState:
    """Stage 2 from ``start`` (stage 1's result) with pose groups ``groups_start`` ``[B, G, 3]``: pose, shape,
    orientation (a rotation on top of ``start``'s) and translation against all keypoints, the weights annealed
    (:class:`~human3d.fitting.energy.Weights`). ``bar``: where iterations are counted (default ``pb.bar``)."""
    cfg, inp, space, term, shape = pb.cfg, pb.inputs, pb.space, pb.term, pb.shape
    B, dtype, device = pb.batch, inp.K.dtype, inp.K.device
    lat = term.latent if (term is not None and cfg.latent_pose) else None
    if lat is not None:  # VPoser-style: optimise the VAE latent, pose = decode(z)
        with torch.no_grad():
            zl = lat.encode(groups_start.to(dtype)).detach().clone()
        pose_var = zl.requires_grad_(True)
    else:
        zl = None
        pose_var = groups_start.clone().requires_grad_(True)
    dg = torch.zeros(B, 3, dtype=dtype, device=device, requires_grad=True)
    tr = start.params["transl"].clone().requires_grad_(True)
    zz = pb.z0.clone().requires_grad_(cfg.optimize_shape)
    variables = [pose_var, dg, tr] + ([zz] if cfg.optimize_shape else [])
    prior_sched = cfg.prior_weights(term.name if term is not None else "none")
    w = stage2_weights(cfg, prior_sched, lat is not None)
    evals = [0]

    def assemble():
        groups = lat.decode(zl) if lat is not None else pose_var
        go = matrix_to_axis_angle(axis_angle_to_matrix(dg) @ start.R_body)
        return groups, {"global_orient": go, "body_pose": space.body_pose(groups), shape.name: shape(zz), "transl": tr}

    stash: dict = {}
    rows: list[dict] = []

    def record():  # what the last evaluation saw (before the step)
        X, t, data, prior_e, total = stash["X"], stash["t"], stash["data"], stash["prior"], stash["total"]
        pr = project_points(X, inp.K, inp.world_to_camera)
        rows.append({"reprojection_px": reprojection_error_px(pr.uv, pr.valid, inp.keypoints), "data": data,
                     "prior": prior_e, "total": total, "t": t, "pose_prior_weight": anneal(w.pose_prior, t),
                     "shape_weight": anneal(w.shape, t) if w.shape is not None else 0.0})  # fmt: skip

    def terms(t: float):
        evals[0] += 1
        groups, p = assemble()
        verts = None
        if pb.silhouette is None:
            X = pb.kp_fn(p)[inp.skeleton]
        else:  # the silhouette needs the mesh; its keypoints are the same as kp_fn's
            out = pb.model(p, validate=False)
            X, verts = out.keypoints[inp.skeleton], out.vertices
        out = body_energy(X, inp.K, inp.world_to_camera, inp.keypoints, pb.scale, groups, p["body_pose"], zz, zl,
                          space, term, w, t, pb.silhouette, verts, **keypoints3d_terms(pb))  # fmt: skip
        stash.update(X=X.detach(), t=float(t), total=out[0].detach(), data=out[1].detach(), prior=out[2].detach())
        return out

    history: list[float] = []
    sched = Schedule(cfg.optimizer, cfg.body_iters, cfg.lr_body, cfg.lbfgs_lr, cfg.lr_body_final, cfg.adam_eps,
                     len(prior_sched), cfg.tol)  # fmt: skip
    its = minimize(variables, lambda t: terms(t)[0], sched, bar or pb.bar, history, on_step=record)
    with torch.no_grad():
        e_final, data, prior_e = terms(1.0)
        record()  # the final state's terms close the trace
        final = {k: v.detach() for k, v in assemble()[1].items()}
    # restarts are ranked by the data term plus the prior at a fixed (mid-schedule) weight
    return FitState(final, start.R_body, start.flipped, e_final, data + cfg.restart_prior_weight * prior_e,
                    its, evals[0], history, _stack_trace(rows))  # fmt: skip


def keypoints3d_terms(pb: FitProblem) -> dict:
    """:func:`~human3d.fitting.energy.body_energy`'s 3D keypoint arguments for this problem (none without targets)."""
    Y = pb.inputs.keypoints3d
    if Y is None:
        return {}
    from human3d.body.skeletons import skeleton_names

    names = skeleton_names(pb.inputs.skeleton)
    root = (names.index("left_hip"), names.index("right_hip"))
    w = pb.inputs.keypoints3d_weight
    return {"keypoints3d": Y, "keypoints3d_weight": w if w is not None else float(pb.cfg.keypoints3d_weight),
            "root": root}  # fmt: skip


def stage2_weights(cfg: SMPLifyConfig, prior_sched: tuple[float, ...], latent: bool) -> Weights:
    """Stage 2's energy weights and schedules (``latent``: the prior is a VAE latent's ``|z|^2``)."""
    return Weights(sigma=(cfg.robust_sigma_start, cfg.robust_sigma),
                   pose_prior=cfg.latent_weights if latent else prior_sched,
                   shape=cfg.shape_weights if cfg.optimize_shape else None, angle_limit=cfg.angle_limit_weight,
                   silhouette=cfg.silhouette_weight, silhouette_start=cfg.silhouette_start)  # fmt: skip


def score(pb: FitProblem, params: dict[str, torch.Tensor], groups: torch.Tensor, z: torch.Tensor):
    """Stage 2's energy at its end (``t = 1``; the prior on the pose groups) of given parameters ->
    ``(total, rank)`` ``[B]`` as :func:`stage_body` reports them, so that runs of other optimisers compare."""
    cfg, inp, term = pb.cfg, pb.inputs, pb.term
    w = stage2_weights(cfg, cfg.prior_weights(term.name if term is not None else "none"), False)
    verts = None
    if pb.silhouette is None:
        X = pb.kp_fn(params)[inp.skeleton]
    else:
        out = pb.model(params, validate=False)
        X, verts = out.keypoints[inp.skeleton], out.vertices
    total, data, prior_e = body_energy(X, inp.K, inp.world_to_camera, inp.keypoints, pb.scale, groups,
                                       params["body_pose"], z, None, pb.space, term, w, 1.0, pb.silhouette, verts,
                                       **keypoints3d_terms(pb))  # fmt: skip
    return total, data + cfg.restart_prior_weight * prior_e


def restart_poses(pb: FitProblem, n: int) -> list[torch.Tensor]:
    """Starting pose groups ``[B, G, 3]`` of the ``n`` stage-2 runs: ``init``'s body pose (projected onto the
    groups) or the prior's mean pose, then deterministic perturbations of the limbs (the arms' and legs' groups
    moved by -/+ 1 prior standard deviation about it; the trunk kept)."""
    space, init = pb.space, pb.inputs.init or {}
    K = pb.inputs.K
    if "body_pose" in init:
        g0 = space.groups_from_body_pose(init["body_pose"])
    else:  # start from the mean pose (arms down), not the model's rest pose
        g0 = space.mean.to(K.device, K.dtype)[None].expand(pb.batch, -1, -1)
    return perturbed_starts(g0, space, n)


def perturbed_starts(g0: torch.Tensor, space: PoseSpace, n: int) -> list[torch.Tensor]:
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


def select(runs: list[FitState]) -> FitState:
    """Per person, the run with the lowest ranking energy (the first on ties); iterations, evaluations and
    histories are summed / concatenated over the runs."""
    best = runs[0]
    params, energy, rank, R, flipped = dict(best.params), best.energy, best.rank, best.R_body, best.flipped
    trace = dict(best.trace)
    for r in runs[1:]:
        better = r.rank < rank  # [B]
        for k in params:
            params[k] = torch.where(better.reshape(-1, *[1] * (params[k].dim() - 1)), r.params[k], params[k])
        energy = torch.where(better, r.energy, energy)
        rank = torch.where(better, r.rank, rank)
        R = torch.where(better[:, None, None], r.R_body, R)
        flipped = torch.where(better, r.flipped, flipped)
        for k, v in list(trace.items()):  # per-person records follow the winner (same lengths: same schedule)
            o = r.trace.get(k)
            if o is None or o.shape != v.shape:
                trace.pop(k)
            elif v.dim() == 2:
                trace[k] = torch.where(better[None], o, v)
    return replace(best, params=params, energy=energy, rank=rank, R_body=R, flipped=flipped, trace=trace,
                   iterations=sum(r.iterations for r in runs), evaluations=sum(r.evaluations for r in runs),
                   history=[h for r in runs for h in r.history])  # fmt: skip
