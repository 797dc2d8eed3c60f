"""HMR (Kanazawa et al., CVPR 2018) in our own torch: a small residual encoder and an IEF regressor.

* **Input**: a square crop around the person, ``[B, 3, S, S]`` float RGB in [0, 1] (:func:`crop_images`; the
  crop's centre and side come from the person's keypoints or box, :func:`person_crop`).
* **Encoder** (:class:`ResEncoder`): a strided stem and one residual basic block per stage (GroupNorm, ReLU),
  global average pooling -> a feature ``[B, F]``.
* **Keypoints** (optional, ``keypoint_input``): the person's COCO-17 keypoints in the crop's normalised coordinates
  (``2 (uv - centre) / side``, with their confidences; zeros where missing) through a small MLP, concatenated to the
  image feature (:func:`crop_keypoints`). A person without keypoints gets all zeros (trained with dropout).
* **IEF** (:class:`IEFRegressor`): ``theta_{t+1} = theta_t + MLP([feature, theta_t])`` for ``iterations`` steps from
  the mean parameters (a buffer); the last layer starts near zero (``init_scale``), so an untrained network
  returns the mean. ``theta = [global_orient 6D, G pose groups 6D, shape S, camera (s, tx, ty)]``.
* **Rotations**: 6D (Zhou et al. 2019) -> matrix by Gram-Schmidt (:func:`human3d.geometry.rotations.rotation_6d_to_matrix`),
  as SPIN. ``global_orient`` is in the **camera frame** (OpenCV: x right, y down, z forward); the pose groups are
  the fitting's (:func:`human3d.fitting.priors.pose_space`: ``body_pose = space.body_pose(groups)``).
* **Camera**: weak perspective in the crop's normalised coordinates ``x_n = s (X_xy + t)`` with ``x_n`` in
  [-1, 1] across the crop. :func:`weak_to_perspective` turns it into a translation for a pinhole camera ``K``
  (focal ``f = K[0, 0]``, principal point ``K[:2, 2]``): ``t_z = 2 f / (side s)``,
  ``t_xy = (tx, ty) + (centre - principal point) t_z / f`` (the crop's ``side`` and ``centre`` in image pixels).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from human3d.config import Config
from human3d.errors import InvalidInputError, ModelFileError
from human3d.geometry.rotations import matrix_to_axis_angle, matrix_to_rotation_6d, rotation_6d_to_matrix

__all__ = ["HMRNetConfig", "ResEncoder", "IEFRegressor", "HMRNet", "decode_theta", "weak_to_perspective",
           "crop_images", "person_crop", "keypoint_boxes", "crop_keypoints", "to_model_params", "shape_facts", "check_weights_match", "save_hmr", "load_hmr_file", "CROP_PADDING"]  # fmt: skip

CROP_PADDING = 1.25
"""Crop side = this x the longer side of the person's box (keypoints' box or given box)."""


@dataclass
class HMRNetConfig(Config):
    """The regressor."""

    crop_size: int = 96
    """Input crop side in pixels."""
    widths: tuple = (16, 32, 64, 128)
    """Channels of the encoder's stages (each halves the resolution; the stem halves it first)."""
    hidden: int = 512
    """Width of the IEF MLP's two hidden layers."""
    iterations: int = 3
    """IEF iterations (HMR: 3)."""
    init_scale: float = 0.01
    """Scale of the IEF output layer's initial weights (near zero: the first prediction is the mean)."""
    keypoint_input: bool = True
    """Also read the person's COCO-17 keypoints (crop coordinates and confidences) besides the image."""
    keypoint_hidden: int = 256
    """Width of the keypoint embedding MLP."""

    def validate(self) -> None:
        if not (isinstance(self.crop_size, int) and 32 <= self.crop_size <= 512):
            raise InvalidInputError(f"net.crop_size: expected an int in [32, 512], got {self.crop_size!r}")
        if not (len(self.widths) >= 1 and all(isinstance(w, int) and w > 0 for w in self.widths)):
            raise InvalidInputError(f"net.widths: expected positive ints, got {self.widths!r}")
        if not (isinstance(self.iterations, int) and self.iterations >= 1 and self.hidden > 0):
            raise InvalidInputError(f"net.iterations / hidden: expected positive ints, got {self.iterations!r} / "
                                    f"{self.hidden!r}")  # fmt: skip


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


class _Block(nn.Module):
    """Residual basic block (two 3x3 convs), strided by ``stride``."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.n1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.n2 = _norm(c_out)
        self.skip = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm(c_out))
                     if stride != 1 or c_in != c_out else nn.Identity())  # fmt: skip

    def forward(self, x):
        y = F.relu(self.n1(self.conv1(x)))
        return F.relu(self.n2(self.conv2(y)) + self.skip(x))


class ResEncoder(nn.Module):
    """``[B, 3, S, S]`` in [0, 1] -> ``[B, widths[-1]]`` (stem, one strided block per stage, average pool)."""

    def __init__(self, widths=(16, 32, 64, 128)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 5, 2, 2, bias=False), _norm(widths[0]), nn.ReLU())
        chans = [widths[0], *widths]
        self.blocks = nn.Sequential(*[_Block(a, b, 2) for a, b in zip(chans[:-1], chans[1:])])
        self.dim = widths[-1]

    def forward(self, x):
        x = (x - 0.45) / 0.25  # roughly standardised RGB
        return self.blocks(self.stem(x)).mean((2, 3))


class IEFRegressor(nn.Module):
    """Iterative error feedback: ``theta_{t+1} = theta_t + MLP([feature, theta_t])`` from ``mean`` ``[D]``."""

    def __init__(self, feat_dim: int, mean: torch.Tensor, hidden: int, iterations: int, init_scale: float):
        super().__init__()
        D = mean.numel()
        self.register_buffer("mean", mean.clone().float())
        self.iterations = iterations
        self.mlp = nn.Sequential(nn.Linear(feat_dim + D, hidden), nn.ReLU(), nn.Dropout(0.1),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, D))  # fmt: skip
        with torch.no_grad():
            self.mlp[-1].weight.mul_(init_scale)
            self.mlp[-1].bias.zero_()

    def forward(self, feat: torch.Tensor) -> list[torch.Tensor]:
        """``feat`` [B, F] -> the estimates after each iteration, ``iterations`` x ``[B, D]``."""
        theta = self.mean.expand(feat.shape[0], -1)
        out = []
        for _ in range(self.iterations):
            theta = theta + self.mlp(torch.cat([feat, theta], -1))
            out.append(theta)
        return out


def mean_theta(mean_groups: torch.Tensor, n_shape: int, shape_mean: float = 0.5) -> torch.Tensor:
    """The IEF start ``[D]``: upright body facing the camera (OpenCV: 180 deg about x), the pose groups' mean
    axis-angles ``[G, 3]``, shape ``shape_mean``, camera ``(0.9, 0, 0)``."""
    from human3d.geometry.rotations import axis_angle_to_matrix

    go = axis_angle_to_matrix(torch.tensor([torch.pi, 0.0, 0.0]))
    gr = axis_angle_to_matrix(mean_groups.float())
    return torch.cat([matrix_to_rotation_6d(go), matrix_to_rotation_6d(gr).flatten(),
                      torch.full((n_shape,), shape_mean), torch.tensor([0.9, 0.0, 0.0])])  # fmt: skip


class HMRNet(nn.Module):
    """Encoder + IEF. ``forward(crops [B, 3, S, S]) -> iterations x theta [B, D]`` (see :func:`decode_theta`)."""

    def __init__(self, n_groups: int, n_shape: int, config: HMRNetConfig | None = None,
                 mean_groups: torch.Tensor | None = None, shape_mean: float = 0.5):  # fmt: skip
        super().__init__()
        self.config = config or HMRNetConfig()
        self.config.validate()
        self.n_groups, self.n_shape = int(n_groups), int(n_shape)
        mg = torch.zeros(n_groups, 3) if mean_groups is None else mean_groups
        self.encoder = ResEncoder(tuple(self.config.widths))
        c = self.config
        feat = self.encoder.dim
        self.kp_embed = None
        if c.keypoint_input:
            self.kp_embed = nn.Sequential(nn.Linear(17 * 3, c.keypoint_hidden), nn.ReLU(),
                                          nn.Linear(c.keypoint_hidden, c.keypoint_hidden), nn.ReLU())  # fmt: skip
            feat += c.keypoint_hidden
        self.ief = IEFRegressor(feat, mean_theta(mg, n_shape, shape_mean), c.hidden, c.iterations, c.init_scale)

    @property
    def theta_dim(self) -> int:
        return 6 + 6 * self.n_groups + self.n_shape + 3

    def forward(self, crops: torch.Tensor, keypoints: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``crops`` [B, 3, S, S]; ``keypoints`` [B, 17, 3] crop coordinates (:func:`crop_keypoints`; None: none)."""
        S = self.config.crop_size
        if crops.ndim != 4 or crops.shape[1:] != (3, S, S):
            raise InvalidInputError(f"crops: expected [B, 3, {S}, {S}], got {list(crops.shape)}")
        feat = self.encoder(crops)
        if self.kp_embed is not None:
            B = crops.shape[0]
            kp = torch.zeros(B, 17, 3, dtype=feat.dtype, device=feat.device) if keypoints is None else keypoints
            if kp.shape != (B, 17, 3):
                raise InvalidInputError(f"keypoints: expected [{B}, 17, 3] COCO-17 crop coordinates, got {list(kp.shape)}")
            feat = torch.cat([feat, self.kp_embed(kp.reshape(B, -1))], -1)
        return self.ief(feat)

    def decode(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        return decode_theta(theta, self.n_groups, self.n_shape)


def decode_theta(theta: torch.Tensor, n_groups: int, n_shape: int) -> dict[str, torch.Tensor]:
    """``theta`` [B, D] -> ``R_root`` [B, 3, 3] (camera frame), ``R_groups`` [B, G, 3, 3], ``shape`` [B, S],
    ``cam`` [B, 3] (s, tx, ty)."""
    B, G = theta.shape[0], n_groups
    i = 6 + 6 * G
    return {"R_root": rotation_6d_to_matrix(theta[:, :6]),
            "R_groups": rotation_6d_to_matrix(theta[:, 6:i].reshape(B, G, 6)),
            "shape": theta[:, i : i + n_shape], "cam": theta[:, i + n_shape : i + n_shape + 3]}  # fmt: skip


def weak_to_perspective(cam: torch.Tensor, centre: torch.Tensor, side: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Weak-perspective ``cam`` [B, 3] (s, tx, ty) of a crop (``centre`` [B, 2], ``side`` [B] image pixels) ->
    camera-frame translation [B, 3] for intrinsics ``K`` [B, 3, 3] (module docstring; ``s`` floored at 0.05)."""
    f = K[:, 0, 0]
    s = cam[:, 0].clamp_min(0.05)
    tz = 2 * f / (side * s)
    xy = cam[:, 1:] + (centre - K[:, :2, 2]) * (tz / f)[:, None]
    return torch.cat([xy, tz[:, None]], -1)


def to_model_params(dec: dict[str, torch.Tensor], space, shape_name: str, transl: torch.Tensor,
                    shape_bounds: tuple[float, float] | None = (0.0, 1.0)) -> dict[str, torch.Tensor]:  # fmt: skip
    """Decoded theta -> the body model's parameters (axis-angle ``global_orient`` [B, 3], ``body_pose`` from the
    groups, the shape clamped to ``shape_bounds``, ``transl`` [B, 3])."""
    groups = matrix_to_axis_angle(dec["R_groups"])  # [B, G, 3]
    shape = dec["shape"] if shape_bounds is None else dec["shape"].clamp(*shape_bounds)
    return {"global_orient": matrix_to_axis_angle(dec["R_root"]), "body_pose": space.body_pose(groups),
            shape_name: shape, "transl": transl}  # fmt: skip


# ------------------------------------------------------------------------------------------------------ crops
def person_crop(keypoints: torch.Tensor | None = None, boxes: torch.Tensor | None = None,
                padding: float = CROP_PADDING, min_side: float = 8.0) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Square crop ``(centre [B, 2], side [B])`` in image pixels from keypoints ``[B, K, 3]`` (confidence > 0:
    their box) or boxes ``[B, 4]`` (x, y, w, h): the box's centre, ``padding`` x its longer side."""
    if boxes is None:
        if keypoints is None:
            raise InvalidInputError("person_crop: give keypoints [B, K, 3] or boxes [B, 4]")
        if not bool((keypoints[..., 2] > 0).any(1).all()):
            raise InvalidInputError("person_crop: a person has no keypoint with confidence > 0 (give its box)")
        boxes = keypoint_boxes(keypoints)
    centre = boxes[:, :2] + 0.5 * boxes[:, 2:]
    return centre, (padding * boxes[:, 2:].amax(-1)).clamp_min(min_side)


def crop_keypoints(kp: torch.Tensor, centre: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """Image keypoints ``[B, K, 3]`` (u, v, confidence) -> the network's input: ``2 (uv - centre) / side`` clamped
    to [-2, 2] and the confidence clamped to [0, 1]; zeros where the confidence is 0."""
    conf = kp[..., 2:3].clamp(0, 1)
    uv = (2 * (kp[..., :2] - centre[:, None]) / side[:, None, None]).clamp(-2, 2)
    return torch.cat([uv, conf], -1) * (conf > 0)


def keypoint_boxes(kp: torch.Tensor) -> torch.Tensor:
    """Boxes ``[B, 4]`` (x, y, w, h) of the confident keypoints ``[B, K, 3]`` (at least 1 px; rows without any get
    a 1-px box at the origin)."""
    on = kp[..., 2:3] > 0
    big = 1e9
    lo = torch.where(on, kp[..., :2], big).amin(1)
    hi = torch.where(on, kp[..., :2], -big).amax(1)
    lo = torch.where(on.any(1), lo, torch.zeros_like(lo))
    hi = torch.where(on.any(1), hi, torch.ones_like(hi))
    return torch.cat([lo, (hi - lo).clamp_min(1.0)], -1)


def crop_images(images: torch.Tensor, centre: torch.Tensor, side: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear square crops ``[B, C, size, size]`` of ``images`` [B, C, H, W] centred at ``centre`` [B, 2] spanning
    ``side`` [B] image pixels (continuous pixel convention; zeros outside the image)."""
    B, _, H, W = images.shape
    theta = torch.zeros(B, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = side / W
    theta[:, 1, 1] = side / H
    theta[:, 0, 2] = 2 * centre[:, 0] / W - 1
    theta[:, 1, 2] = 2 * centre[:, 1] / H - 1
    grid = F.affine_grid(theta, [B, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# ---------------------------------------------------------------------------------------------------- weights
def shape_facts(model) -> tuple[str, int, float, tuple[float, float] | None]:
    """The body model's shape facts HMR needs: ``(name, size, IEF start value, clamp bounds)``. Bounded shapes
    (Anny's phenotypes, ``fit_shape_bounds`` not None) live in [0, 1] and start at 0.5; unbounded ones (SMPL-family
    betas) start at 0 (the mean shape) and are not clamped."""
    name = model.shape_param
    size = int(model.parameter_shapes()[name][0])
    bounded = model.fit_shape_bounds() is not None
    return name, size, (0.5 if bounded else 0.0), ((0.0, 1.0) if bounded else None)


def check_weights_match(net: HMRNet, model, what: str = "HMR") -> None:
    """Raise one :class:`InvalidInputError` naming ``body_model`` when ``net`` (its ``model_family``,
    ``shape_param``, ``n_shape``, ``n_groups``) was not trained for ``model``'s family and shape size."""
    from human3d.fitting.priors import pose_space

    name, size, _, _ = shape_facts(model)
    want = (getattr(net, "model_family", "anny"), getattr(net, "shape_param", "phenotypes"), int(net.n_shape),
            int(net.n_groups))  # fmt: skip
    have = (getattr(model, "family", None), name, size, pose_space(model).num_groups)
    if want != have:
        raise InvalidInputError(
            f"body_model: the {what} weights are for a {want[0]!r} model ({want[2]} {want[1]}, {want[3]} pose groups); "
            f"got a {have[0]!r} model ({have[2]} {have[1]}, {have[3]} pose groups): train weights for this model "
            f"(`human3d hmr train --set data.model=PATH`) or give matching ones")


def save_hmr(net: HMRNet, path, card: dict) -> Path:
    """Write ``net`` as safetensors (float32; its shape facts in the metadata) and ``card`` beside it (``.json``)."""
    from safetensors.torch import save_file

    from human3d.io_utils import atomic_path, atomic_write_text

    path = Path(path)
    meta = {"kind": "hmr", "net": json.dumps(net.config.to_dict()), "n_groups": str(net.n_groups),
            "n_shape": str(net.n_shape), "model": str(card.get("model", "anny")),
            "shape_param": str(card.get("shape_param", "phenotypes"))}  # fmt: skip
    tensors = {k: v.detach().cpu().float().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    atomic_write_text(path.with_suffix(".json"), json.dumps(card, indent=2) + "\n")
    return path


def load_hmr_file(path) -> HMRNet:
    """An :class:`HMRNet` from a file written by :func:`save_hmr` (eval mode)."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"HMR weights '{p}' not found (expected a .safetensors file written by save_hmr)")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("kind") != "hmr":
            raise ModelFileError(f"HMR weights '{p}': metadata kind is {meta.get('kind')!r}, expected 'hmr'")
        cfg = HMRNetConfig.from_dict(json.loads(meta["net"]))
        cfg.widths = tuple(cfg.widths)
        net = HMRNet(int(meta["n_groups"]), int(meta["n_shape"]), cfg)
        net.load_state_dict(tensors)
    except ModelFileError:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable file is a bad model file
        raise ModelFileError(f"HMR weights '{p}': cannot be read ({type(e).__name__}: {e})") from None
    net.model_family = meta.get("model", "anny")
    net.shape_param = meta.get("shape_param", "phenotypes")
    return net.eval()
