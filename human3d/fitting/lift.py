"""A learned 2D -> 3D keypoint lifter (Martinez et al., ICCV 2017, "A simple yet effective baseline for 3d human pose
estimation") used as SMPLify's start and as a soft 3D target: ``smplify(..., init="lift")`` /
``human3d fit --init lift``.

Convention. The lifter reads one person's COCO-17 keypoints ``[17, 3]`` (pixels + confidence; 0 = missing) and the
intrinsics, and predicts the 17 keypoints in 3D, **camera frame (OpenCV: x right, y down, z forward), metres,
relative to the mid-hip** (mean of COCO-17 ``left_hip`` and ``right_hip``). Its input (:func:`lift_features`) is
invariant to where the person is in the image and how large: keypoints centred on their box and divided by its
longer side ``s``, their confidences, ``log(f / s)`` and the box centre's offset from the principal point over
``f`` (which way the camera looks at the person).

The network (:class:`KeypointLifter`) is a residual MLP (``width`` x ``blocks`` residual blocks of two linear
layers, LayerNorm, ReLU, dropout). :func:`lift_keypoints` averages its prediction with the mirrored prediction of
the mirrored input (flip test), which makes the lift exactly mirror-equivariant.

From the lifted keypoints :func:`lift_start` makes SMPLify's start: the orientation by Procrustes of the model's
rest torso onto the lifted torso, the translation by linear least squares on the 2D keypoints (the lifted shape
placed where it reprojects best). SMPLify then adds ``SMPLifyConfig.keypoints3d_weight`` x the root-relative 3D
keypoint error to its energy (:func:`human3d.fitting.energy.keypoints3d_energy`), so the 2D keypoints refine the
pose while the lift holds the limbs' depth.

Training (:class:`human3d.hmr.lift_trainer.LiftTrainer`; ``tools/build_assets/train_lift.py``) needs no images and
no body model in the loop: the 3D keypoints of mocap frames of the corpus' *training* clips (``HOLDOUT`` excluded)
on random shapes are computed once; every step turns, mirrors and places them in front of a random camera and
projects them with noise proportional to the person's size and keypoint dropout (:func:`sample_lift_batch`).
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
from human3d.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["LiftNetConfig", "KeypointLifter", "LiftDataConfig", "lift_features", "lift_keypoints", "lift_start",
           "lift_residual", "auto_keypoints3d_weight", "AUTO_WEIGHTS", "AUTO_WEIGHT_RESIDUALS",
           "sample_lift_batch", "root_relative", "mirror_keypoints2d", "mirror_keypoints3d", "save_lifter",
           "load_lifter", "placement", "quantize_int8", "DEFAULT_WEIGHTS", "COCO17_FLIP"]  # fmt: skip

DEFAULT_WEIGHTS = "anny_lift"
"""Stem of the shipped weights in ``human3d/fitting/weights`` (``.safetensors`` + ``.json`` card)."""

COCO17_FLIP = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
"""COCO-17 index of each keypoint's mirror partner (left <-> right)."""

_HIPS = (11, 12)  # COCO-17 left_hip, right_hip: the root of the lifted keypoints
_TORSO = (5, 6, 11, 12)  # shoulders and hips: what the start's orientation is solved on
N_KEYPOINTS = 17
N_FEATURES = 3 * N_KEYPOINTS + 3


@dataclass
class LiftNetConfig(Config):
    """The lifter network."""

    width: int = 1024
    """Width of the residual MLP (Martinez et al. use 1024)."""
    blocks: int = 2
    """Residual blocks (two linear layers each)."""
    dropout: float = 0.2
    """Dropout inside the blocks (training only)."""

    def validate(self) -> None:
        for name in ("width", "blocks"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InvalidInputError(f"net.{name}: expected a positive integer, got {v!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise InvalidInputError(f"net.dropout: expected a value in [0, 1), got {self.dropout!r}")


class _Block(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.f = nn.Sequential(nn.Linear(width, width), nn.LayerNorm(width), nn.ReLU(), nn.Dropout(dropout),
                               nn.Linear(width, width), nn.LayerNorm(width), nn.ReLU(), nn.Dropout(dropout))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


class KeypointLifter(nn.Module):
    """Features ``[B, 54]`` (:func:`lift_features`) -> root-relative camera-frame 3D keypoints ``[B, 17, 3]`` (m)."""

    def __init__(self, config: LiftNetConfig | None = None):
        super().__init__()
        self.config = c = config or LiftNetConfig()
        self.net = nn.Sequential(nn.Linear(N_FEATURES, c.width), nn.LayerNorm(c.width), nn.ReLU(),
                                 *[_Block(c.width, c.dropout) for _ in range(c.blocks)],
                                 nn.Linear(c.width, 3 * N_KEYPOINTS))  # fmt: skip

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).view(-1, N_KEYPOINTS, 3)


def _box(kp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre ``[B, 2]`` and longer side ``[B]`` (>= 1 px) of the confident keypoints' box."""
    on = kp[..., 2:3] > 0
    lo = torch.where(on, kp[..., :2], torch.full_like(kp[..., :2], 1e9)).amin(1)
    hi = torch.where(on, kp[..., :2], torch.full_like(kp[..., :2], -1e9)).amax(1)
    ok = on.any(1)
    centre = torch.where(ok, 0.5 * (lo + hi), torch.zeros_like(lo))
    side = torch.where(ok[:, 0], (hi - lo).amax(-1), torch.ones_like(lo[:, 0])).clamp_min(1.0)
    return centre, side


def lift_features(kp: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """The lifter's input ``[B, 54]`` from COCO-17 keypoints ``kp`` ``[B, 17, 3]`` and intrinsics ``K`` ``[B, 3, 3]``
    (module docstring): centred / scaled keypoints (0 where missing), confidences (> 0 -> 1), ``log(f / s)`` and
    the box centre's offset from the principal point over ``f``."""
    c, s = _box(kp)
    on = (kp[..., 2:3] > 0).to(kp.dtype)
    xy = (kp[..., :2] - c[:, None]) / s[:, None, None] * on
    f = K[:, 0, 0]
    return torch.cat([xy.flatten(1), on[..., 0], torch.log(f / s)[:, None], (c - K[:, :2, 2]) / f[:, None]], 1)


def root_relative(X: torch.Tensor) -> torch.Tensor:
    """COCO-17 3D keypoints ``[..., 17, 3]`` minus their mid-hip."""
    return X - X[..., list(_HIPS), :].mean(-2, keepdim=True)


def mirror_keypoints2d(kp: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """The image mirrored about the principal point's column: ``u -> 2 c_x - u`` and left <-> right labels
    (missing keypoints stay missing)."""
    m = kp[:, list(COCO17_FLIP)].clone()
    u = 2 * K[:, None, 0, 2] - m[..., 0]
    m[..., 0] = torch.where(m[..., 2] > 0, u, m[..., 0])
    return m


def mirror_keypoints3d(X: torch.Tensor) -> torch.Tensor:
    """Camera-frame 3D keypoints mirrored about the ``x = 0`` plane with left <-> right labels."""
    m = X[..., list(COCO17_FLIP), :].clone()
    m[..., 0] = -m[..., 0]
    return m


def _check_lift_inputs(kp, K) -> None:
    if not isinstance(kp, torch.Tensor) or kp.dim() != 3 or kp.shape[1:] != (N_KEYPOINTS, 3):
        shape = tuple(kp.shape) if isinstance(kp, torch.Tensor) else type(kp).__name__
        raise InvalidInputError(f"lift: keypoints expected [B, 17, 3] (COCO-17 u, v, confidence), got {shape}")
    if not isinstance(K, torch.Tensor) or K.shape != (kp.shape[0], 3, 3):
        shape = tuple(K.shape) if isinstance(K, torch.Tensor) else type(K).__name__
        raise InvalidInputError(f"lift: K expected [{kp.shape[0]}, 3, 3], got {shape}")
    if not bool(torch.isfinite(kp).all() and torch.isfinite(K).all()):
        raise InvalidInputError("lift: keypoints or K contain NaN/inf (mark missing keypoints with confidence 0)")


def lift_keypoints(kp: torch.Tensor, K: torch.Tensor, net: KeypointLifter | None = None,
                   flip_test: bool = True) -> torch.Tensor:  # fmt: skip
    """Lift COCO-17 keypoints ``kp`` ``[B, 17, 3]`` (pixels, confidence) seen by ``K`` ``[B, 3, 3]`` to
    root-relative camera-frame 3D keypoints ``[B, 17, 3]`` (m; module docstring). ``net``: default the shipped
    weights. ``flip_test``: average with the mirrored lift of the mirrored input."""
    _check_lift_inputs(kp, K)
    net = net if net is not None else load_lifter()
    p = next(net.parameters())
    kp32, K32 = kp.to(p), K.to(p)
    was = net.training
    net.eval()
    with torch.no_grad():
        Y = net(lift_features(kp32, K32))
        if flip_test:
            Ym = net(lift_features(mirror_keypoints2d(kp32, K32), K32))
            Y = 0.5 * (Y + mirror_keypoints3d(Ym))
    net.train(was)
    return Y.to(kp.dtype)


def _procrustes_rotation(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Rotations ``R`` ``[N, 3, 3]`` minimising ``sum_i |R a_i - b_i|^2`` for centred points ``[N, P, 3]``."""
    U, _, Vt = torch.linalg.svd(A.transpose(1, 2) @ B)
    d = torch.det(Vt.transpose(1, 2) @ U.transpose(1, 2))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return Vt.transpose(1, 2) @ D @ U.transpose(1, 2)


def placement(Y: torch.Tensor, kp: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """The camera-frame position ``t`` ``[B, 3]`` of the root of root-relative keypoints ``Y`` ``[B, 17, 3]`` that
    best reprojects them onto ``kp`` ``[B, 17, 3]`` (confidence-weighted linear least squares of
    ``(u - c_x)(Y_z + t_z) = f_x (Y_x + t_x)`` and the same for ``v``; identity extrinsics)."""
    fx, fy = K[:, 0, 0][:, None], K[:, 1, 1][:, None]
    u, v = kp[..., 0] - K[:, None, 0, 2], kp[..., 1] - K[:, None, 1, 2]
    w = (kp[..., 2] > 0).to(kp.dtype)
    z = torch.zeros_like(u)
    A = torch.cat([torch.stack([fx.expand_as(u), z, -u], -1), torch.stack([z, fy.expand_as(v), -v], -1)], 1)
    b = torch.cat([u * Y[..., 2] - fx * Y[..., 0], v * Y[..., 2] - fy * Y[..., 1]], 1)
    ww = torch.cat([w, w], 1)
    return torch.linalg.lstsq(A * ww[..., None], (b * ww)[..., None]).solution[..., 0]


def lift_start(model, Y: torch.Tensor, kp: torch.Tensor, K: torch.Tensor, params=None) -> dict[str, torch.Tensor]:
    """SMPLify's start from lifted keypoints ``Y`` ``[B, 17, 3]``: ``{global_orient, transl}`` ``[B, 3]`` (camera
    frame = world) putting ``model``'s rest pose (``params``: its parameters, default the model's defaults) with
    its torso turned onto ``Y``'s (Procrustes on shoulders and hips) and its mid-hip where ``Y`` reprojects best
    onto ``kp`` (:func:`placement`)."""
    B = Y.shape[0]
    with torch.no_grad():
        p = params if params is not None else model.default_params(1)
        out = model(p)
        rest = out.keypoints["coco17"][:1].to(Y)  # [1, 17, 3]
        j0 = out.joints[:1, 0].to(Y)  # [1, 3] the root joint global_orient turns about
    rest_rel = root_relative(rest)
    R = _procrustes_rotation(rest_rel[:, list(_TORSO)].expand(B, -1, -1), Y[:, list(_TORSO)])
    t_mid = placement(Y, kp.to(Y), K.to(Y))
    mid = rest[:, list(_HIPS)].mean(1)  # [1, 3]
    transl = t_mid - j0 - ((mid - j0)[:, None] @ R.transpose(1, 2))[:, 0]
    return {"global_orient": matrix_to_axis_angle(R), "transl": transl}


AUTO_WEIGHT_RESIDUALS = (0.012, 0.025)
"""``keypoints3d_weight="auto"``: the lift's reprojection residual (over the person's size, :func:`lift_residual`)
up to which the 3D term gets ``AUTO_WEIGHTS[0]`` and from which it gets ``AUTO_WEIGHTS[1]`` (log-linear between).
Chosen on the validation people (the six held-out clips the benchmark does not use; README)."""
AUTO_WEIGHTS = (30.0, 1000.0)
"""``keypoints3d_weight="auto"``: the 3D term's weight where the 2D keypoints agree with the lift (good 2D: the 2D
keypoints refine the pose) and where they do not (noisy 2D on a small person: the fit follows the lift)."""


def lift_residual(Y: torch.Tensor, kp: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """How far the 2D keypoints ``kp`` ``[B, K, 3]`` are from the root-relative 3D keypoints ``Y`` ``[B, K, 3]``
    placed where they reproject best (:func:`placement`): the RMS per-axis reprojection residual over the confident
    keypoints divided by their box's longer side, ``[B]`` (unit-free; about 0.012 for the shipped lifter on exact
    keypoints, rising with the 2D noise)."""
    t = placement(Y, kp, K)
    P = (Y + t[:, None]) @ K.transpose(1, 2)  # [B, K, 3]
    uv = P[..., :2] / P[..., 2:3].clamp_min(1e-6)
    on = (kp[..., 2] > 0).to(Y.dtype)
    sq = ((uv - kp[..., :2]) ** 2).sum(-1) * on
    _, size = _box(kp)
    return (sq.sum(1) / (2 * on.sum(1)).clamp_min(1.0)).sqrt() / size


def auto_keypoints3d_weight(residual: torch.Tensor) -> torch.Tensor:
    """``keypoints3d_weight="auto"``: per-person weights ``[B]`` from :func:`lift_residual` ``[B]``:
    ``AUTO_WEIGHTS[0]`` up to ``AUTO_WEIGHT_RESIDUALS[0]``, ``AUTO_WEIGHTS[1]`` from ``AUTO_WEIGHT_RESIDUALS[1]``,
    log-linear between (a monotone ramp: the worse the 2D keypoints agree with the lift, the more the lift is
    trusted)."""
    (r0, r1), (w0, w1) = AUTO_WEIGHT_RESIDUALS, AUTO_WEIGHTS
    a = ((residual - r0) / (r1 - r0)).clamp(0.0, 1.0)
    return w0 * (w1 / w0) ** a


# ---------------------------------------------------------------------------------------------------- training data
@dataclass
class LiftDataConfig(TrainingBodyConfig):
    """Synthetic 2D/3D keypoint pairs from mocap (no images)."""

    fps: float = 15.0
    """Frame rate the training clips are sampled at (every frame at that rate is in the pool)."""
    shapes_per_frame: int = 2
    """Random body shapes per pool frame (the pool's 3D keypoints are computed once at the start)."""
    prior_poses: int = 0
    """Further pool poses sampled from the shipped pose prior ``prior`` (upright; poses no clip has)."""
    prior: str = "flow"
    """The pose prior of ``prior_poses`` (``generative.priors.pose.load_pose_prior`` kinds; trained on the
    training clips only)."""
    noise: tuple[float, ...] = (0.0, 0.06)
    """Keypoint noise (std per axis) range, per person, as a fraction of the person's size (longer box side)."""
    drop: tuple[float, ...] = (0.0, 0.3)
    """Keypoint dropout probability range, per person (``all_seen`` of the persons keep every keypoint)."""
    all_seen: float = 0.3
    """Fraction of persons with no dropped keypoint."""
    depth: tuple[float, ...] = (2.5, 8.0)
    """Body depth range (m)."""
    focal: tuple[float, ...] = (600.0, 2400.0)
    """Focal length range (px) for a 1000 px image."""
    mirror: float = 0.5
    """Probability of mirroring a person (left <-> right)."""

    def validate(self) -> None:
        super().validate()
        for name in ("noise", "drop", "depth", "focal"):
            v = getattr(self, name)
            if len(v) != 2 or not v[0] <= v[1]:
                raise InvalidInputError(f"data.{name}: expected a range [lo, hi], got {v!r}")
        if self.shapes_per_frame < 1 or self.fps <= 0:
            raise InvalidInputError("data.shapes_per_frame / data.fps: expected positive values, got "
                                    f"{self.shapes_per_frame} / {self.fps}")  # fmt: skip


def sample_lift_batch(body_kp: torch.Tensor, data: LiftDataConfig, n: int,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, tuple]:  # fmt: skip
    """A training batch from the pool: ``body_kp`` ``[P, 17, 3]`` 3D keypoints of upright bodies in camera axes
    (mocap orientation applied, y down, any heading); ``n`` of them turned about the vertical to a uniformly random
    heading, tilted, mirrored with probability ``data.mirror``, put at a random depth and
    offset before a random camera and projected with noise and dropout.

    Returns ``(features [n, 54], target [n, 17, 3] root-relative camera frame, (kp [n, 17, 3], K [n, 3, 3]))``."""
    g = generator

    def U(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=g)

    i = torch.randint(0, body_kp.shape[0], (n,), generator=g)
    zero = torch.zeros(n)
    Ry = axis_angle_to_matrix(torch.stack([zero, U(0.0, 2 * math.pi, n), zero], -1))
    tilt = axis_angle_to_matrix(torch.stack([U(-0.25, 0.25, n), zero, U(-0.1, 0.1, n)], -1))
    X = body_kp[i] @ (tilt @ Ry).transpose(1, 2)  # [n, 17, 3]
    X = torch.where((torch.rand(n, generator=g) < data.mirror)[:, None, None], mirror_keypoints3d(X), X)
    depth, focal = U(*data.depth, n), U(*data.focal, n)
    xy = (torch.rand(n, 2, generator=g) - 0.5) * 0.5 * depth[:, None] * 1000.0 / focal[:, None]
    Xc = X + torch.cat([xy, depth[:, None]], 1)[:, None]
    uv = Xc[..., :2] / Xc[..., 2:3].clamp_min(0.1) * focal[:, None, None] + 500.0
    size = (uv.amax(1) - uv.amin(1)).amax(-1)
    uv = uv + (U(*data.noise, n) * size)[:, None, None] * torch.randn(uv.shape, generator=g)
    conf = (torch.rand(n, N_KEYPOINTS, generator=g) >= U(*data.drop, n)[:, None]).float()
    conf = torch.where((torch.rand(n, generator=g) < data.all_seen)[:, None], torch.ones_like(conf), conf)
    kp = torch.cat([uv * conf[..., None], conf[..., None]], -1)
    K = torch.zeros(n, 3, 3)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = focal, focal, 500.0, 500.0, 1.0
    return lift_features(kp, K), root_relative(Xc), (kp, K)


# ---------------------------------------------------------------------------------------------------- weights
def _weights_dir() -> Path:
    folder = importlib.resources.files("human3d.fitting") / "weights"
    if not isinstance(folder, Path):
        raise ModelFileError(f"lifter weights {folder!s}: expected a folder on disk (install unzipped)")
    return folder


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8 quantisation of a matrix ``[O, I]`` -> ``(q [O, I] int8, scale [O, 1] float32)`` with
    ``w ~ q * scale`` and ``|w - q * scale| <= scale / 2``."""
    scale = (w.abs().amax(1, keepdim=True) / 127.0).clamp_min(1e-12).float()
    return torch.round(w.float() / scale).clamp(-127, 127).to(torch.int8), scale


def save_lifter(net: KeypointLifter, path, card: dict) -> Path:
    """Write ``net`` as safetensors and ``card`` beside it (``.json``): linear weights as per-row int8 with their
    scales (``NAME.q8`` / ``NAME.scale``; a quarter of float32), the rest float16; loaded back as float32."""
    from human3d.io_utils import save_weights_with_card

    tensors = {}
    for k, v in net.state_dict().items():
        if v.dim() == 2:
            tensors[k + ".q8"], tensors[k + ".scale"] = quantize_int8(v.detach())
        else:
            tensors[k] = v.detach().half()
    meta = {"kind": "lift", "net": json.dumps(net.config.to_dict()), "model": card.get("model", "anny"),
            "dtype": "int8 linear weights (per-row scales), float16 others"}  # fmt: skip
    return save_weights_with_card(path, tensors, meta, card)


def _build_lifter(tensors: dict, meta: dict) -> KeypointLifter:
    net = KeypointLifter(LiftNetConfig.from_dict(json.loads(meta["net"])))
    state = {}
    for k, v in tensors.items():
        if k.endswith(".q8"):
            state[k[:-3]] = v.float() * tensors[k[:-3] + ".scale"].float()
        elif not k.endswith(".scale"):
            state[k] = v.float()
    net.load_state_dict(state)
    net.model_family = meta.get("model", "anny")
    return net.eval()


@lru_cache(maxsize=4)
def _load(path: str) -> KeypointLifter:
    from human3d.io_utils import read_weights

    return read_weights(path, "lift", "lifter weights", _build_lifter)


def load_lifter(path=None) -> KeypointLifter:
    """The lifter at ``path`` (None: the shipped :data:`DEFAULT_WEIGHTS`), cached per path."""
    p = Path(path) if path is not None else _weights_dir() / f"{DEFAULT_WEIGHTS}.safetensors"
    return _load(str(p.resolve()))
