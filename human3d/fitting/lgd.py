"""Learned gradient descent (Song, Chen & Hilliges, ECCV 2020, "Human Body Model Fitting by Learned Gradient
Descent"): stage 2 of SMPLify replaced by a few learned updates ``v_{s+1} = v_s + F_s(dE/dv, v_s, x)``.

The state ``v`` is stage 2's variables (:func:`~human3d.fitting.stages.stage_body`): the pose groups
``[B, G, 3]``, a rotation ``dg`` ``[B, 3]`` on top of stage 1's orientation, the translation ``[B, 3]`` and the
shape variables ``z`` ``[B, S]``. The gradient input is the gradient of the fitting's robust reprojection energy
(:func:`~human3d.fitting.energy.body_energy` with the priors off, Geman-McClure scale ``robust_sigma``) with
respect to ``v``, by autograd through the body model's keypoint function and the camera
(:func:`reprojection_gradient`). ``F_s`` is one small MLP per stage (:class:`LGDNet`) that reads, per person:

* the gradient (``asinh`` squashed; the translation's scaled by the depth),
* the current variables (translation as ``(x/z, y/z, log z)``),
* the 2D keypoints and the current projections, centred on the keypoints' box and divided by the person's size
  ``s`` (with their confidences and masked residuals), and the camera as ``log(f/s)`` and the box centre's offset
  from the principal point over ``f``;

and outputs the update (the translation's as ``(dx/z, dy/z, dlog z)``). Its last layer starts near zero, so an
untrained network leaves stage 1's result.

Training (``human3d.hmr.lgd_trainer.LGDTrainer``; ``tools/build_assets/train_lgd.py``) needs no images: mocap
poses of the corpus' *training* clips (:func:`human3d.motion.mocap.list_clips`, the ``HOLDOUT`` clips excluded) on
random Anny shapes, random yaw / tilt / depth and focal length, projected with pixel noise and keypoint dropout
(:func:`sample_problems`); stage 1 runs as in SMPLify and the unrolled stages are supervised with 3D keypoints
(root-aligned), the translation and the pose groups after every stage.

For the SMPL family the same training runs on the user's model file (``data.model=PATH``: the mocap mapped onto
its joints, random betas); weights record their family and are refused for another model (:func:`check_model`).
The shipped weights (``human3d/fitting/weights/anny_lgd.safetensors`` + its JSON card) are for Anny, COCO-17 or
BODY_25 keypoints (the network reads COCO-17; BODY_25 is converted) and identity extrinsics (camera frame = world,
as ``human3d fit`` has it).
"""

from __future__ import annotations

import importlib.resources
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from human3d.config import Config
from human3d.fitting.config import TrainingBodyConfig
from human3d.errors import InvalidInputError, ModelFileError
from human3d.fitting.energy import Weights, body_energy
from human3d.fitting.stages import FitProblem, FitState
from human3d.geometry.cameras import make_intrinsics, project_points
from human3d.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["LGDNetConfig", "LGDNet", "LGDState", "reprojection_gradient", "lgd_features", "apply_update",
           "stage_lgd", "gradient_descent", "sample_problems", "model_mocap_poses", "load_lgd", "save_lgd", "weights_dir",
           "DEFAULT_WEIGHTS"]  # fmt: skip

DEFAULT_WEIGHTS = "anny_lgd"
"""Stem of the shipped weights in :func:`weights_dir` (``.safetensors`` + ``.json`` card)."""

_ROOT_KP = ("left_hip", "right_hip")  # COCO-17 indices 11, 12: the root for root-aligned 3D losses


@dataclass
class LGDNetConfig(Config):
    """The update networks ``F_s``."""

    stages: int = 4
    """Learned updates (Song et al. use 3-4)."""
    hidden: int = 256
    """Width of each stage's MLP."""
    layers: int = 2
    """Hidden layers of each stage's MLP."""
    init_scale: float = 0.01
    """The last layer's initial weights are scaled by this (the first updates are then small)."""

    def validate(self) -> None:
        for name in ("stages", "hidden", "layers"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InvalidInputError(f"net.{name}: expected a positive integer, got {v!r}")


def _mlp(n_in: int, n_out: int, hidden: int, layers: int, init_scale: float) -> nn.Sequential:
    mods: list[nn.Module] = [nn.Linear(n_in, hidden), nn.LayerNorm(hidden), nn.SiLU()]
    for _ in range(layers - 1):
        mods += [nn.Linear(hidden, hidden), nn.SiLU()]
    last = nn.Linear(hidden, n_out)
    with torch.no_grad():
        last.weight.mul_(init_scale)
        last.bias.zero_()
    return nn.Sequential(*mods, last)


class LGDNet(nn.Module):
    """One MLP per stage: features ``[B, n_in]`` -> update ``[B, n_var]``."""

    def __init__(self, n_groups: int, n_shape: int, n_keypoints: int, config: LGDNetConfig | None = None):
        super().__init__()
        self.config = config or LGDNetConfig()
        self.n_groups, self.n_shape, self.n_keypoints = n_groups, n_shape, n_keypoints
        c = self.config
        self.stages = nn.ModuleList(_mlp(self.n_in, self.n_var, c.hidden, c.layers, c.init_scale) for _ in range(c.stages))

    @property
    def n_var(self) -> int:
        return self.n_groups * 3 + 3 + 3 + self.n_shape

    @property
    def n_in(self) -> int:
        return 2 * self.n_var + 7 * self.n_keypoints + 3

    def forward(self, s: int, features: torch.Tensor) -> torch.Tensor:
        return self.stages[s](features)


@dataclass
class LGDState:
    """Stage 2's variables (see the module docstring): ``groups`` [B, G, 3], ``dg`` [B, 3], ``transl`` [B, 3],
    ``z`` [B, S]."""

    groups: torch.Tensor
    dg: torch.Tensor
    transl: torch.Tensor
    z: torch.Tensor

    def tensors(self) -> list[torch.Tensor]:
        return [self.groups, self.dg, self.transl, self.z]

    def params(self, pb: FitProblem, R_body: torch.Tensor) -> dict[str, torch.Tensor]:
        """The body model's parameters of this state (``R_body`` [B, 3, 3]: stage 1's orientation)."""
        go = matrix_to_axis_angle(axis_angle_to_matrix(self.dg) @ R_body)
        return {"global_orient": go, "body_pose": pb.space.body_pose(self.groups), pb.shape.name: pb.shape(self.z),
                "transl": self.transl}  # fmt: skip


def _data_weights(pb: FitProblem) -> Weights:
    """The reprojection-only weights of :func:`body_energy` (priors, limits and silhouette off)."""
    return Weights(sigma=(pb.cfg.robust_sigma,), pose_prior=(0.0,), shape=None, angle_limit=0.0, silhouette=0.0,
                   silhouette_start=1.0)  # fmt: skip


def reprojection_energy_of(pb: FitProblem, state: LGDState, R_body: torch.Tensor):
    """``(E [B], X [B, K, 3])``: the robust reprojection energy of ``state`` and its model keypoints (world)."""
    inp = pb.inputs
    p = state.params(pb, R_body)
    X = pb.kp_fn(p)[inp.skeleton]
    e = body_energy(X, inp.K, inp.world_to_camera, inp.keypoints, pb.scale, state.groups, p["body_pose"], state.z,
                    None, pb.space, None, _data_weights(pb), 1.0)[0]  # fmt: skip
    return e, X


def reprojection_gradient(pb: FitProblem, state: LGDState, R_body: torch.Tensor, retain_graph: bool = False):
    """``(gradients, E [B], X [B, K, 3])``: ``dE/dv`` for each tensor of ``state`` (autograd through the body
    model and the camera; persons are independent, so the gradient of the sum is each person's). The state's
    tensors must require grad (leaves or not); the gradients are detached (an input, not a path to train through)."""
    e, X = reprojection_energy_of(pb, state, R_body)
    grads = torch.autograd.grad(e.sum(), state.tensors(), retain_graph=retain_graph, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g.detach() for t, g in zip(state.tensors(), grads)]
    return grads, e, X


def _box(kp: torch.Tensor):
    """Centre ``[B, 2]`` of the confident keypoints' box."""
    conf = kp[..., 2:3] > 0
    big = 1e9
    lo = torch.where(conf, kp[..., :2], torch.full_like(kp[..., :2], big)).amin(1)
    hi = torch.where(conf, kp[..., :2], torch.full_like(kp[..., :2], -big)).amax(1)
    ok = conf.any(1)
    return torch.where(ok, 0.5 * (lo + hi), torch.zeros_like(lo))


def lgd_features(pb: FitProblem, state: LGDState, grads: list[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    """The network's input ``[B, n_in]`` (module docstring) from the state, its gradient and its keypoints."""
    inp = pb.inputs
    kp, K = inp.keypoints, inp.K
    B = kp.shape[0]
    s = pb.scale[:, None]  # [B, 1] px
    c = _box(kp)  # [B, 2]
    f = K[:, 0, 0:1]
    conf = kp[..., 2]
    pr = project_points(X.detach(), K, inp.world_to_camera)
    tgt = (kp[..., :2] - c[:, None]) / s[..., None]
    proj = ((pr.uv - c[:, None]) / s[..., None]).clamp(-4, 4)
    res = (proj - tgt).clamp(-2, 2) * (conf[..., None] > 0)
    tr = state.transl.detach()
    z = tr[:, 2:3].clamp_min(0.3)
    g_groups, g_dg, g_tr, g_z = grads
    feats = [
        torch.asinh(g_groups.reshape(B, -1)), torch.asinh(g_dg), torch.asinh(g_tr * z), torch.asinh(g_z),
        state.groups.detach().reshape(B, -1), state.dg.detach(), tr[:, :2] / z, torch.log(z), state.z.detach(),
        (tgt * (conf[..., None] > 0)).reshape(B, -1), conf,
        proj.reshape(B, -1), res.reshape(B, -1),
        torch.log(f / s), (c - K[:, :2, 2]) / f,
    ]  # fmt: skip
    return torch.cat(feats, -1)


def apply_update(state: LGDState, delta: torch.Tensor) -> LGDState:
    """``state + delta`` (``delta`` ``[B, n_var]``; the translation's part is ``(dx/z, dy/z, dlog z)``)."""
    B, G = state.groups.shape[:2]
    i = G * 3
    dgr, ddg, dtr, dz = delta[:, :i], delta[:, i : i + 3], delta[:, i + 3 : i + 6], delta[:, i + 6 :]
    z = state.transl[:, 2:3].clamp_min(0.3)
    xy = state.transl[:, :2] + z * dtr[:, :2]
    zn = z * torch.exp(dtr[:, 2:3].clamp(-1.0, 1.0))
    return LGDState(state.groups + dgr.reshape(B, G, 3), state.dg + ddg, torch.cat([xy, zn], -1), state.z + dz)


def _coco(pb: FitProblem) -> None:
    if pb.inputs.skeleton != "coco17":
        raise InvalidInputError(f"optimizer 'lgd': the network reads COCO-17 keypoints, got '{pb.inputs.skeleton}' "
                                "(BODY_25 input is converted by the fitter)")  # fmt: skip


def initial_state(pb: FitProblem, start: FitState, groups_start: torch.Tensor) -> LGDState:
    B, dtype, device = pb.batch, pb.inputs.K.dtype, pb.inputs.K.device
    return LGDState(groups_start.clone(), torch.zeros(B, 3, dtype=dtype, device=device),
                    start.params["transl"].clone(), pb.z0.clone())  # fmt: skip


def unroll(net: LGDNet, pb: FitProblem, start: FitState, groups_start: torch.Tensor, train: bool = False):
    """Run every stage of ``net`` from ``start`` -> (states ``[S + 1]``, keypoints ``[S + 1]`` each ``[B, K, 3]``,
    final reprojection energy ``[B]``). ``train``: keep the graph through the network (for its loss)."""
    state = initial_state(pb, start, groups_start)
    for t in state.tensors():
        t.requires_grad_(True)
    states, Xs = [state], []
    with torch.enable_grad():
        for s in range(len(net.stages)):
            grads, _, X = reprojection_gradient(pb, state, start.R_body, retain_graph=train)
            Xs.append(X if train else X.detach())
            delta = net(s, lgd_features(pb, state, grads, X))
            state = apply_update(state, delta)
            if not train:
                state = LGDState(*(t.detach().requires_grad_(True) for t in state.tensors()))
            states.append(state)
        e, X = reprojection_energy_of(pb, state, start.R_body)
    Xs.append(X if train else X.detach())
    return states, Xs, e


def stage_lgd(pb: FitProblem, start: FitState, groups_start: torch.Tensor, net: LGDNet,
              final_energy) -> FitState:  # fmt: skip
    """Stage 2 by learned gradient descent from ``start`` with pose groups ``groups_start`` ``[B, G, 3]``;
    ``final_energy(params, groups, z) -> (total, rank)`` ``[B]`` scores the result as stage 2 would (so that
    restarts and hypotheses compare)."""
    _coco(pb)
    states, _, _ = unroll(net, pb, start, groups_start)
    last = states[-1]
    with torch.no_grad():
        p = {k: v.detach() for k, v in last.params(pb, start.R_body).items()}
        total, rank = final_energy(p, last.groups.detach(), last.z.detach())
    n = len(net.stages)
    pb.bar.update(pb.cfg.body_iters)
    return FitState(p, start.R_body, start.flipped, total, rank, n, n + 1, [])


def gradient_descent(pb: FitProblem, start: FitState, groups_start: torch.Tensor, steps: int, lr: float) -> LGDState:
    """The baseline LGD learns to beat: ``steps`` of plain gradient descent ``v -= lr * dE/dv`` on the same
    reprojection energy from the same start (the translation's step scaled by the depth squared, as the gradient
    of a projection falls with depth)."""
    state = initial_state(pb, start, groups_start)
    for _ in range(steps):
        state = LGDState(*(t.detach().requires_grad_(True) for t in state.tensors()))
        grads, _, _ = reprojection_gradient(pb, state, start.R_body)
        z2 = state.transl.detach()[:, 2:3].clamp_min(0.3) ** 2
        state = LGDState(state.groups.detach() - lr * grads[0], state.dg.detach() - lr * grads[1],
                         state.transl.detach() - lr * z2 * grads[2], state.z.detach() - lr * grads[3])  # fmt: skip
    return LGDState(*(t.detach() for t in state.tensors()))


# ---------------------------------------------------------------------------------------------------- training data
@dataclass
class LGDDataConfig(TrainingBodyConfig):
    """Synthetic fitting problems from mocap (no images)."""

    pool: int = 20000
    """Mocap frames drawn from the training clips (the pool batches sample from)."""
    fps: float = 10.0
    """Frame rate the clips are sampled at."""
    noise_px: tuple[float, ...] = (0.0, 4.0)
    """Pixel noise (std) range, per person, at a person size of 500 px (scaled with the size)."""
    drop: tuple[float, ...] = (0.0, 0.3)
    """Keypoint dropout probability range, per person."""
    depth: tuple[float, ...] = (2.5, 8.0)
    """Body depth range (m)."""
    focal: tuple[float, ...] = (600.0, 2400.0)
    """Focal length range (px) for a 1000 px image."""

    def validate(self) -> None:
        super().validate()
        for name in ("noise_px", "drop", "depth", "focal"):
            v = getattr(self, name)
            if len(v) != 2 or not v[0] <= v[1]:
                raise InvalidInputError(f"data.{name}: expected a range [lo, hi], got {v!r}")


def training_clips() -> list[str]:
    """The pose corpus' training clips (``human3d.motion.mocap.HOLDOUT`` and evaluation-only clips excluded)."""
    from human3d.motion.mocap import list_clips

    return [c.name for c in list_clips(include_eval=False, include_deepmimic=True) if c.split == "train"]


def model_mocap_poses(model, global_orient: torch.Tensor, body_pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Anny mocap poses (:func:`~human3d.fitting.synthetic.mocap_anny_poses`) as ``model``'s ``(global_orient,
    body_pose)`` (float32): unchanged for Anny (phenotype-shaped models), mapped onto the joints for the SMPL family
    (:func:`~human3d.fitting.synthetic.smpl_pose_from_anny`, as ``tools/bench/fit.py --model smpl`` poses them)."""
    if model.shape_param != "phenotypes":
        from human3d.fitting.synthetic import smpl_pose_from_anny

        global_orient, body_pose = smpl_pose_from_anny(global_orient, body_pose, model)
    return global_orient.float(), body_pose.float()


def _anny_shapes(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Anny phenotypes ``[n, 6]``: gender U(0, 1), age U(0.5, 0.9) (teen to older adult), the rest U(0.2, 0.8)."""
    ph = 0.2 + 0.6 * torch.rand(n, size, generator=g)
    ph[:, 0] = torch.rand(n, generator=g)
    ph[:, 1] = 0.5 + 0.4 * torch.rand(n, generator=g)
    return ph


def _betas(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """SMPL-family betas ``[n, size]``: N(0, 1) clipped to [-2, 2]."""
    return torch.randn(n, size, generator=g).clamp(-2.0, 2.0)


SHAPE_SAMPLERS = {"phenotypes": _anny_shapes, "betas": _betas}
"""Random training shapes per ``BodyModel.shape_param``: ``(n, size, generator) -> [n, size]``."""


def sample_problems(model, global_orient: torch.Tensor, body_pose: torch.Tensor, data: LGDDataConfig,
                    generator: torch.Generator, skeleton: str = "coco17"):  # fmt: skip
    """Synthetic fitting problems for ``model``'s poses ``[n, 3]`` / ``[n, Jp*3]`` (mocap, already on its joints) on
    random shapes (:data:`SHAPE_SAMPLERS`: Anny phenotypes or SMPL-family betas): random yaw
    (any heading), tilt, position, depth and focal length; projected with noise and dropout.

    Returns ``(keypoints2d [n, K, 3], K [n, 3, 3], params, keypoints3d [n, K, 3])`` (camera frame = world)."""
    n = global_orient.shape[0]
    g = generator

    def U(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=g)

    R_root = axis_angle_to_matrix(global_orient)
    fwd = R_root[:, :, 2]
    heading = torch.atan2(fwd[:, 0], fwd[:, 2])
    yaw = U(0.0, 2 * math.pi, n)
    Ry = axis_angle_to_matrix(torch.stack([torch.zeros(n), yaw - heading, torch.zeros(n)], -1))
    tilt = axis_angle_to_matrix(torch.stack([U(-0.25, 0.25, n), torch.zeros(n), U(-0.1, 0.1, n)], -1))
    flip = axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0])).expand(n, 3, 3)
    sp = model.shape_param
    shape = SHAPE_SAMPLERS[sp](n, model.parameter_shapes()[sp][0], g)
    params = {"global_orient": matrix_to_axis_angle(tilt @ flip @ Ry @ R_root), "body_pose": body_pose,
              sp: shape, "transl": torch.zeros(n, 3)}  # fmt: skip
    with torch.no_grad():
        root = model(params).joints[:, 0]
        depth = U(*data.depth, n)
        focal = U(*data.focal, n)
        xy = (torch.rand(n, 2, generator=g) - 0.5) * 0.5 * depth[:, None] * 1000.0 / focal[:, None]
        params["transl"] = torch.cat([xy, depth[:, None]], 1) - root
        X = model.keypoint_function()(params)[skeleton]
        K = make_intrinsics(focal, focal, torch.full((n,), 500.0), torch.full((n,), 500.0))
        uv = project_points(X, K).uv
        size = (uv.amax(1) - uv.amin(1)).amax(-1)  # [n] px
        noise = U(*data.noise_px, n) * size / 500.0
        uv = uv + noise[:, None, None] * torch.randn(uv.shape, generator=g)
        conf = (torch.rand(uv.shape[:2], generator=g) >= U(*data.drop, n)[:, None]).float()
    kp = torch.cat([uv * conf[..., None], conf[..., None]], -1)
    return kp, K, {k: v.clone() for k, v in params.items()}, X


def lgd_loss(pb: FitProblem, states: list[LGDState], Xs: list[torch.Tensor], gt_X: torch.Tensor,
             gt_groups: torch.Tensor, gt_transl: torch.Tensor) -> tuple[torch.Tensor, dict]:  # fmt: skip
    """The unrolled stages' supervision: per stage ``s >= 1`` (weight ``s / S``), root-aligned 3D keypoint error
    (m, L1 of the distances), the translation's (m, over the depth) and the pose groups' (rad, 0.1 x)."""
    from human3d.body.skeletons import skeleton_names

    names = skeleton_names("coco17")
    ri = [names.index(n) for n in _ROOT_KP]
    S = len(states) - 1
    gt_rel = gt_X - gt_X[:, ri].mean(1, keepdim=True)
    total, info = 0.0, {}
    for s in range(1, S + 1):
        X = Xs[s]
        rel = X - X[:, ri].mean(1, keepdim=True)
        e3d = (rel - gt_rel).norm(dim=-1).mean()
        et = ((X[:, ri].mean(1) - gt_X[:, ri].mean(1)).norm(dim=-1) / gt_X[:, ri].mean(1)[:, 2].clamp_min(0.3)).mean()
        eg = (states[s].groups - gt_groups).abs().mean()
        total = total + (s / S) * (e3d + 0.1 * et + 0.1 * eg)
        info[f"mpjpe_mm_{s}"] = float(e3d.detach()) * 1000
    return total, info


# ---------------------------------------------------------------------------------------------------- weights
def weights_dir() -> Path:
    """``human3d/fitting/weights`` (package data, found through :mod:`importlib.resources`)."""
    folder = importlib.resources.files("human3d.fitting") / "weights"
    if not isinstance(folder, Path):
        raise ModelFileError(f"LGD weights {folder!s}: expected a folder on disk (install unzipped)")
    return folder


def save_lgd(net: LGDNet, path, card: dict) -> Path:
    """Write ``net`` as safetensors (float32; its shape facts in the metadata) and ``card`` beside it (``.json``)."""
    from human3d.io_utils import save_weights_with_card

    meta = {"kind": "lgd", "net": json.dumps(net.config.to_dict()), "n_groups": net.n_groups,
            "n_shape": net.n_shape, "n_keypoints": net.n_keypoints,
            "model": card.get("model", getattr(net, "model_family", "anny"))}  # fmt: skip
    return save_weights_with_card(path, {k: v.float() for k, v in net.state_dict().items()}, meta, card)


def _build_lgd(tensors: dict, meta: dict) -> LGDNet:
    net = LGDNet(int(meta["n_groups"]), int(meta["n_shape"]), int(meta["n_keypoints"]),
                 LGDNetConfig.from_dict(json.loads(meta["net"])))  # fmt: skip
    net.load_state_dict(tensors)
    net.model_family = meta.get("model", "anny")
    return net.eval()


@lru_cache(maxsize=4)
def _load(path: str) -> LGDNet:
    from human3d.io_utils import read_weights

    return read_weights(path, "lgd", "LGD weights", _build_lgd)


def load_lgd(path=None) -> LGDNet:
    """The LGD network at ``path`` (None: the shipped :data:`DEFAULT_WEIGHTS`), cached per path."""
    p = Path(path) if path is not None else weights_dir() / f"{DEFAULT_WEIGHTS}.safetensors"
    return _load(str(p.resolve()))


def check_model(net: LGDNet, pb: FitProblem) -> None:
    """The network fits this problem's model (pose groups, shape size, COCO-17 keypoints)."""
    _coco(pb)
    w2c = pb.inputs.world_to_camera
    if not torch.allclose(w2c, torch.eye(4, dtype=w2c.dtype, device=w2c.device).expand_as(w2c)):
        raise InvalidInputError("optimizer 'lgd': expected identity camera extrinsics (camera frame = world, as "
                                "`human3d fit` has it); got a camera with a world-to-camera transform")
    fam = getattr(net, "model_family", "anny")
    if pb.model.family != fam or net.n_groups != pb.space.num_groups or net.n_shape != pb.shape.dim:
        raise InvalidInputError(
            f"optimizer 'lgd': the network was trained for a '{fam}' model ({net.n_groups} pose groups, {net.n_shape} "
            f"shape values); got a '{pb.model.family}' model with {pb.space.num_groups} groups and {pb.shape.dim} "
            "shape values: train LGD for this model (LGDTrainer with data.model=PATH) or give matching weights")
