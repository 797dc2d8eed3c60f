"""``HMRTrainer``: the HMR regressor (:mod:`human3d.hmr.model`) trained on synthetic people on the training core.

**Body model** (``data.model``): Anny (shape output: its 6 phenotypes in [0, 1]) or an SMPL / SMPL-H / SMPL-X model
file given by path (shape output: its ``data.num_betas`` betas, unbounded, starting at the mean shape); the weights'
card and metadata record the family, shape parameter and size, and :mod:`human3d.hmr.predict` refuses weights of
another model.

**Data.** A fixed training set is rendered once by :class:`human3d.synth.SynthGenerator` (one person per image,
poses from the mocap corpus' *training* clips, :func:`human3d.fitting.lgd.training_clips` -- the ``HOLDOUT`` clips
of ``tools/bench/hmr.py`` are never read -- and a fraction from the shipped Gaussian pose prior) and cached in
``RUN/train_set.safetensors`` (``data.n_images`` images of ``data.render_size`` px as uint8 with their labels,
converted to the camera frame: ``global_orient_cam = R_w2c R_go``, ``transl_cam = R_w2c transl + t_w2c``, about the point
``global_orient`` turns the body, :func:`root_pivot`). Each step draws ``optim.batch_size`` of them and crops
around the keypoints' box (:func:`~human3d.hmr.model.person_crop`) with random centre / scale jitter and a
per-channel colour gain.

**Losses** (per IEF iteration ``t``, weight ``t / T``): 2D keypoint reprojection (L1 in crop units, keypoints in the
image; the weak-perspective camera turned into a translation with the image's true ``K``,
:func:`~human3d.hmr.model.weak_to_perspective`), root-aligned 3D keypoints (L1 of the distances, metres), the
parameters (rotation matrices of the root and the pose groups, squared error; the phenotypes'), and HMR's
adversarial prior (:mod:`generative.priors.adversarial`) on the final pose groups. The discriminators are first
fitted on real poses against perturbed ones (``adv.pretrain_steps``), then updated every step on real mocap poses
of the training clips against the regressor's poses mixed with perturbed ones.

``finalize`` writes ``RUN/hmr.safetensors`` and ``RUN/hmr_disc.safetensors`` (+ their cards).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from human3d.config import Config, from_preset
from human3d.fitting.config import TrainingBodyConfig
from human3d.errors import InvalidInputError
from human3d.hmr.lgd_trainer import LGDOptimConfig
from human3d.hmr.model import (HMRNet, HMRNetConfig, crop_images, crop_keypoints, person_crop, save_hmr,
                               to_model_params, weak_to_perspective)  # fmt: skip
from human3d.train.core import RunConfig, Trainer

__all__ = ["HMRDataConfig", "HMRLossConfig", "HMRAdvConfig", "HMROptimConfig", "HMRConfig", "HMRTrainer",
           "preset", "PRESETS", "render_training_set", "hmr_losses", "ROOT_KP", "load_training_model",
           "camera_frame", "root_pivot"]  # fmt: skip

ROOT_KP = (11, 12)
"""COCO-17 hips: the root of the root-aligned 3D losses (their midpoint)."""


@dataclass
class HMRDataConfig(TrainingBodyConfig):
    """The pre-rendered synthetic training set and its augmentation (``model``: the body model trained for; with
    an SMPL-family file the shape output is its ``betas``)."""

    n_images: int = 3000
    """Images rendered once (cached in the run folder)."""
    render_size: int = 128
    """Side of the rendered images in pixels (the crops are resampled to ``net.crop_size``)."""
    prior_fraction: float = 0.2
    """Fraction of poses sampled from the shipped Gaussian pose prior (the rest: mocap training clips)."""
    out_of_frame: float = 0.1
    """Probability that the person is framed partly outside the image."""
    min_keypoints: int = 6
    """Images whose person has fewer COCO-17 keypoints inside the image are dropped."""
    jitter_centre: float = 0.06
    """Standard deviation of the crop centre's shift, as a fraction of the crop side."""
    jitter_scale: tuple = (0.9, 1.15)
    """Range of the crop side's random factor."""
    pool: int = 20000
    """Real mocap poses (training clips, 10 fps) the discriminators see."""
    kp_noise: float = 0.02
    """Standard deviation of the noise on the input keypoints (crop units: the crop side is 2)."""
    kp_drop: float = 0.15
    """Fraction of input keypoints dropped (confidence 0)."""
    kp_none: float = 0.1
    """Fraction of persons given no input keypoints at all (as a bare photo's whole-image box)."""

    def validate(self) -> None:
        super().validate()
        if not (isinstance(self.n_images, int) and self.n_images >= 8):
            raise InvalidInputError(f"data.n_images: expected an int >= 8, got {self.n_images!r}")
        if not (isinstance(self.render_size, int) and 32 <= self.render_size <= 1024):
            raise InvalidInputError(f"data.render_size: expected an int in [32, 1024], got {self.render_size!r}")
        lo, hi = self.jitter_scale
        if not (0 < lo <= hi):
            raise InvalidInputError(f"data.jitter_scale: expected 0 < lo <= hi, got {self.jitter_scale!r}")


@dataclass
class HMRLossConfig(Config):
    """Weights of the loss terms."""

    kp2d: float = 1.0
    """2D reprojection (L1, crop units: the crop's half side = 1)."""
    kp3d: float = 5.0
    """Root-aligned 3D keypoints (L1 of the distances, metres)."""
    pose: float = 1.0
    """Rotation matrices of the root and the pose groups (mean squared entry error)."""
    shape: float = 1.0
    """Shape parameters (mean squared error)."""
    adversarial: float = 0.01
    """The adversarial prior's generator term (mean -log D of the predicted pose groups)."""


@dataclass
class HMRAdvConfig(Config):
    """The adversarial pose prior's discriminators."""

    embed: int = 32
    """Per-joint embedding width."""
    hidden: int = 256
    """All-joint discriminator width."""
    lr: float = 1e-4
    """Adam step size of the discriminators during HMR training."""
    pretrain_steps: int = 1500
    """Steps on real vs perturbed poses before HMR training (fresh runs only)."""


@dataclass
class HMROptimConfig(LGDOptimConfig):
    """The optimiser (LGD's fields and checks, HMR's defaults, plus weight decay)."""

    batch_size: int = 32
    """Images per step."""
    lr: float = 5e-4
    """Adam's initial step size (cosine decay to ``lr_final`` x it)."""
    lr_final: float = 0.1
    """Final step size as a fraction of ``lr``."""
    grad_clip: float = 5.0
    """Gradient-norm clip."""
    weight_decay: float = 1e-5
    """Adam's L2 weight decay."""


@dataclass
class HMRConfig(Config):
    """HMR training: net + data + loss + adv + optim + run."""

    net: HMRNetConfig = field(default_factory=HMRNetConfig)
    """The regressor."""
    data: HMRDataConfig = field(default_factory=HMRDataConfig)
    """The synthetic training set."""
    loss: HMRLossConfig = field(default_factory=HMRLossConfig)
    """Loss weights."""
    adv: HMRAdvConfig = field(default_factory=HMRAdvConfig)
    """The adversarial prior."""
    optim: HMROptimConfig = field(default_factory=HMROptimConfig)
    """The optimiser."""
    run: RunConfig = field(default_factory=lambda: RunConfig(max_steps=4000, log_every=25, checkpoint_every=200))
    """Steps, time budget, seed, device, logging."""


PRESETS: dict[str, dict] = {
    "fast": {},  # 96 px crops of 128 px renders, 0.4 M parameters
    "tiny": {"net.crop_size": 64, "net.widths": [8, 16, 32], "net.hidden": 64, "data.n_images": 16,
             "data.render_size": 64, "data.pool": 500, "adv.pretrain_steps": 5, "adv.hidden": 32,
             "optim.batch_size": 4, "run.max_steps": 3, "run.log_every": 1},  # tests  # fmt: skip
}


def preset(name: str = "fast", **overrides) -> HMRConfig:
    """An :class:`HMRConfig` from :data:`PRESETS` with dotted ``overrides``."""
    return from_preset(HMRConfig, PRESETS, name, overrides)


# ------------------------------------------------------------------------------------------------------ data
def load_training_model(model: str = "anny", model_type: str = "smpl", num_betas: int = 10):
    """The body model of ``data.model``: Anny, or the SMPL-family file at the path ``model`` (``model_type``)."""
    from human3d.body import load_body_model

    if model == "anny":
        return load_body_model("anny")
    return load_body_model(model_type, model_path=model, num_betas=num_betas)


def root_pivot(model, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """The point ``[N, 3]`` ``global_orient`` turns the body about (before ``transl``): the root joint of the
    un-rotated, un-translated body (Anny: its origin; SMPL family: the shape's pelvis)."""
    z = {**params, "global_orient": torch.zeros_like(params["global_orient"]),
         "transl": torch.zeros_like(params["transl"])}  # fmt: skip
    with torch.no_grad():
        return model(z).joints[:, 0].to(params["transl"])


def camera_frame(params: dict[str, torch.Tensor], w2c: torch.Tensor, pivot: torch.Tensor | None = None
                 ) -> dict[str, torch.Tensor]:  # fmt: skip
    """World-frame body parameters ``[N, ...]`` -> the same body in the camera frame of ``w2c`` [N, 4, 4].
    ``pivot`` [N, 3]: the point ``global_orient`` turns about (:func:`root_pivot`; None: the origin, Anny's):
    ``R_go' = R R_go``, ``transl' = R (pivot + transl) + t - pivot``."""
    from human3d.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    R, t = w2c[:, :3, :3], w2c[:, :3, 3]
    go = matrix_to_axis_angle(R @ axis_angle_to_matrix(params["global_orient"]))
    c = torch.zeros_like(params["transl"]) if pivot is None else pivot
    return {**params, "global_orient": go, "transl": (R @ (params["transl"] + c)[..., None])[..., 0] + t - c}


def render_training_set(model, n: int, size: int, seed: int, clips, prior_fraction: float = 0.2,
                        out_of_frame: float = 0.1, min_keypoints: int = 6, chunk: int = 32,
                        progress: bool = True) -> dict[str, torch.Tensor]:  # fmt: skip
    """``n`` synthetic one-person images with camera-frame labels: ``images`` [N, H, W, 3] uint8, ``kp2d``
    [N, 17, 3] (u, v, flag 0 outside / 1 hidden / 2 visible), ``kp3d`` [N, 17, 3] camera frame, ``K`` [N, 3, 3],
    ``global_orient`` / ``body_pose`` / the shape (``phenotypes`` or ``betas``) / ``transl`` (camera frame)."""
    from tqdm import tqdm

    from human3d.synth import SynthConfig, SynthGenerator

    gen = SynthGenerator(model, SynthConfig(size=size, max_people=1, prior_fraction=prior_fraction,
                                            clips=tuple(clips), out_of_frame=out_of_frame))  # fmt: skip
    keep: dict[str, list] = {}
    total, b = 0, 0
    with tqdm(total=n, desc="rendering", unit="img", disable=not progress) as bar:
        while total < n:
            batch = gen.generate(chunk, seed=seed * 100003 + b)
            b += 1
            w2c = batch.cameras.world_to_camera
            R, t = w2c[:, :3, :3], w2c[:, :3, 3]
            kp2d = batch.keypoints2d["coco17"][:, 0]
            ok = (kp2d[..., 2] > 0).sum(-1) >= min_keypoints
            p0 = {k: v[:, 0] for k, v in batch.params.items()}
            p = camera_frame(p0, w2c, root_pivot(model, p0))
            kp3d = (batch.keypoints3d["coco17"][:, 0] @ R.transpose(1, 2)) + t[:, None]
            rows = {"images": (batch.images * 255).round().to(torch.uint8), "kp2d": kp2d, "kp3d": kp3d,
                    "K": batch.cameras.K, **p}  # fmt: skip
            for k, v in rows.items():
                keep.setdefault(k, []).append(v[ok])
            total += int(ok.sum())
            bar.update(int(ok.sum()))
    return {k: torch.cat(v)[:n].contiguous() for k, v in keep.items()}


def augment_crops(images: torch.Tensor, kp2d: torch.Tensor, size: int, g: torch.Generator | None,
                  jitter_centre: float = 0.0, jitter_scale=(1.0, 1.0)):  # fmt: skip
    """Crops ``[B, 3, size, size]`` in [0, 1] of uint8 images ``[B, H, W, 3]`` around the in-image keypoints'
    box, jittered, with a per-channel gain in [0.8, 1.2] when ``g`` is given. Returns (crops, centre, side)."""
    B = images.shape[0]
    centre, side = person_crop(kp2d)
    if g is not None:
        centre = centre + jitter_centre * side[:, None] * torch.randn(B, 2, generator=g)
        lo, hi = jitter_scale
        side = side * (lo + (hi - lo) * torch.rand(B, generator=g))
    x = images.permute(0, 3, 1, 2).float() / 255.0
    crops = crop_images(x, centre, side, size)
    if g is not None:
        crops = (crops * (0.8 + 0.4 * torch.rand(B, 3, 1, 1, generator=g))).clamp(0, 1)
    return crops, centre, side


def hmr_losses(net: HMRNet, thetas: list[torch.Tensor], batch: dict, centre, side, kp_fn, space, w,
               shape_name: str = "phenotypes", shape_bounds: tuple[float, float] | None = (0.0, 1.0)) -> tuple:
    """The supervised losses over IEF iterations (module docstring) -> (total, info, final pose groups [B, G*3]).
    ``shape_name`` / ``shape_bounds``: the body model's shape parameter and its clamp
    (:func:`~human3d.hmr.model.shape_facts`; Anny's phenotypes by default)."""
    from human3d.geometry.cameras import project_points
    from human3d.geometry.rotations import axis_angle_to_matrix

    K, kp2d, gt3d = batch["K"], batch["kp2d"], batch["kp3d"]
    gt_root = axis_angle_to_matrix(batch["global_orient"])
    gt_groups = axis_angle_to_matrix(space.groups_from_body_pose(batch["body_pose"]))
    gt_rel = gt3d - gt3d[:, ROOT_KP].mean(1, keepdim=True)
    on = (kp2d[..., 2] > 0).float()  # in the image
    tgt = (kp2d[..., :2] - centre[:, None]) / (0.5 * side[:, None, None])
    T = len(thetas)
    total, info = 0.0, {}
    for t, theta in enumerate(thetas, 1):
        dec = net.decode(theta)
        transl = weak_to_perspective(dec["cam"], centre, side, K)
        p = to_model_params(dec, space, shape_name, transl, shape_bounds)
        X = kp_fn(p)["coco17"]  # [B, 17, 3] camera frame
        uv = project_points(X, K).uv
        pred = ((uv - centre[:, None]) / (0.5 * side[:, None, None])).clamp(-3, 3)
        l2d = ((pred - tgt).abs().sum(-1) * on).sum() / on.sum().clamp_min(1)
        rel = X - X[:, ROOT_KP].mean(1, keepdim=True)
        e3d = (rel - gt_rel).norm(dim=-1)
        lpose = ((dec["R_root"] - gt_root) ** 2).mean() + ((dec["R_groups"] - gt_groups) ** 2).mean()
        lshape = ((dec["shape"] - batch[shape_name]) ** 2).mean()
        term = w.kp2d * l2d + w.kp3d * e3d.mean() + w.pose * lpose + w.shape * lshape
        total = total + (t / T) * term
        info[f"mpjpe_mm_{t}"] = float(e3d.detach().mean()) * 1000
        info[f"kp2d_{t}"] = float(l2d.detach())
    from human3d.geometry.rotations import matrix_to_axis_angle

    groups = matrix_to_axis_angle(dec["R_groups"]).reshape(theta.shape[0], -1)
    return total, info, groups


class HMRTrainer(Trainer, kind="HMR", config_class=HMRConfig, default_config=lambda: preset("fast"),
                 progress_fields=("mpjpe_mm",), needs_data=False):  # fmt: skip
    """HMR on a pre-rendered synthetic set (module docstring)."""

    def build(self) -> None:
        from generative.priors.adversarial import (AdversarialPosePrior, FactorisedDiscriminator,
                                                   FactorisedDiscriminatorConfig)  # fmt: skip
        from human3d.fitting.priors import pose_space
        from human3d.hmr.model import shape_facts

        d = self.config.data
        self.model = load_training_model(d.model, d.model_type, d.num_betas)
        self.space = pose_space(self.model)
        self.kp_fn = self.model.keypoint_function()
        self.shape_name, n_shape, shape_mean, self.shape_bounds = shape_facts(self.model)
        G = self.space.num_groups
        self.net = HMRNet(G, n_shape, self.config.net, self.space.mean, shape_mean).to(self.device)
        o = self.config.optim
        self.opt = torch.optim.Adam(self.net.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        a = self.config.adv
        disc = FactorisedDiscriminator(FactorisedDiscriminatorConfig(G, a.embed, a.hidden))
        self.disc = AdversarialPosePrior(disc).to(self.device)
        self.opt_d = torch.optim.Adam(self.disc.model.parameters(), lr=a.lr, betas=(0.5, 0.999))
        self._set = None
        self._pool = None

    # ---- data -----------------------------------------------------------------------------------------------------
    def train_set(self) -> dict[str, torch.Tensor]:
        """The pre-rendered set (rendered on first use, cached in ``RUN/train_set.safetensors``)."""
        if self._set is None:
            from safetensors.torch import load_file, save_file

            from human3d.fitting.lgd import training_clips
            from human3d.io_utils import atomic_path

            path = self.out / "train_set.safetensors"
            d = self.config.data
            if path.is_file():
                self._set = load_file(str(path))
            else:
                self._set = render_training_set(self.model, d.n_images, d.render_size, self.run.seed,
                                                training_clips(), d.prior_fraction, d.out_of_frame, d.min_keypoints)  # fmt: skip
                with atomic_path(path) as tmp:
                    save_file(self._set, str(tmp))
        return self._set

    def pool(self) -> torch.Tensor:
        """Real pose groups ``[N, G*3]`` of the training clips (the discriminators' real data)."""
        if self._pool is None:
            from human3d.fitting.lgd import model_mocap_poses, training_clips
            from human3d.fitting.synthetic import mocap_anny_poses

            go, bp, _ = mocap_anny_poses(self.config.data.pool, self.run.seed, training_clips(), fps=10.0)
            bp = model_mocap_poses(self.model, go, bp)[1]
            self._pool = self.space.groups_from_body_pose(bp.float()).reshape(bp.shape[0], -1).to(self.device)
        return self._pool

    def on_fresh_start(self) -> None:
        from generative.priors.adversarial import fit_adversarial_prior

        g = torch.Generator().manual_seed(self.run.seed + 7)
        fit_adversarial_prior(self.disc, self.pool(), self.config.adv.pretrain_steps, 256, 1e-3, g)

    def before_train(self) -> None:
        self.train_set()  # rendered before the clock starts

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        s = self.train_set()
        return {k: v[idx].to(self.device) for k, v in s.items()}

    def lr_at(self, progress: float) -> float:
        o = self.config.optim
        return o.lr * (o.lr_final + 0.5 * (1 - o.lr_final) * (1 + math.cos(math.pi * min(1.0, max(0.0, progress)))))

    # ---- the step -------------------------------------------------------------------------------------------------
    def train_step(self) -> dict:
        from generative.priors.adversarial import discriminator_loss, perturb_poses

        lr = self.lr_at(self.progress())
        for grp in self.opt.param_groups:
            grp["lr"] = lr
        c, g = self.config, self.generator
        n = self.train_set()["images"].shape[0]
        idx = torch.randint(0, n, (c.optim.batch_size,), generator=g)
        b = self.batch(idx)
        crops, centre, side = augment_crops(b["images"], b["kp2d"], c.net.crop_size, g, c.data.jitter_centre,
                                            c.data.jitter_scale)  # fmt: skip
        kin = crop_keypoints(b["kp2d"], centre, side)
        kin = torch.cat([kin[..., :2] + c.data.kp_noise * torch.randn(kin[..., :2].shape, generator=g),
                         kin[..., 2:]], -1)  # fmt: skip
        keep = ((torch.rand(kin.shape[:2], generator=g) >= c.data.kp_drop)
                & (torch.rand(kin.shape[0], 1, generator=g) >= c.data.kp_none))  # fmt: skip
        kin = kin * keep[..., None] * (kin[..., 2:] > 0)
        self.net.train()
        thetas = self.net(crops.to(self.device), kin.to(self.device))
        loss, info, groups = self.step_losses(thetas, b, idx, centre, side)
        adv = self.disc.energy(groups).mean()
        total = loss + c.loss.adversarial * adv
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.optim.grad_clip)
        self.opt.step()
        # discriminators: real mocap poses vs the regressor's (and perturbed ones)
        pool = self.pool()
        real = pool[torch.randint(0, pool.shape[0], (2 * groups.shape[0],), generator=g).to(self.device)]
        fake = torch.cat([groups.detach(), perturb_poses(real[: groups.shape[0]], g)])
        self.disc.train()
        ld = discriminator_loss(self.disc, real, fake)
        self.opt_d.zero_grad(set_to_none=True)
        ld.backward()
        self.opt_d.step()
        self.disc.eval()
        T = len(thetas)
        return {"loss": float(total.detach()), "lr": lr, "mpjpe_mm": info[f"mpjpe_mm_{T}"],
                "mpjpe_mm_1": info["mpjpe_mm_1"], "kp2d": info[f"kp2d_{T}"], "adv": float(adv.detach()),
                "disc": float(ld.detach())}  # fmt: skip

    def step_losses(self, thetas, b: dict, idx: torch.Tensor, centre, side) -> tuple:
        """The step's supervised losses of batch ``b`` (images ``idx`` of the set): :func:`hmr_losses` (the hook
        :class:`~human3d.hmr.spin.SpinHMRTrainer` overrides) -> (total, info, final pose groups [B, G*3])."""
        return hmr_losses(self.net, thetas, b, centre, side, self.kp_fn, self.space, self.config.loss,
                          self.shape_name, self.shape_bounds)

    # ---- state ----------------------------------------------------------------------------------------------------
    def checkpoint_modules(self) -> dict[str, torch.nn.Module]:
        return {"net": self.net, "disc": self.disc}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.opt, "adam_disc": self.opt_d}

    # ---- products -------------------------------------------------------------------------------------------------
    def card(self) -> dict:
        from human3d.fitting.lgd import training_clips

        d = self.config.data
        return {"kind": "hmr", "model": self.model.family, "shape_param": self.shape_name,
                "n_shape": int(self.net.n_shape), "model_file": None if d.model == "anny" else str(d.model),
                "skeleton": "coco17", "steps": self.step,
                "train_seconds": round(self.elapsed, 1),
                "n_parameters": sum(p.numel() for p in self.net.parameters()),
                "training_clips": training_clips(), "config": self.config.to_dict(),
                "data": f"synthetic one-person {self.model.family} images (human3d.synth) rendered once: mocap poses of the training "
                        "clips (human3d.motion.mocap HOLDOUT excluded) and the shipped Gaussian prior's samples, "
                        f"random {self.shape_name}, cameras, clothing, backgrounds, occluders"}  # fmt: skip

    def export_weights(self, path, card: dict | None = None) -> Path:
        """The regressor as safetensors + card, and the discriminators beside it (``<stem>_disc.safetensors``)."""
        from generative.priors import save_prior

        path = Path(path)
        out = save_hmr(self.net.cpu(), path, {**self.card(), **(card or {})})
        save_prior(self.disc.cpu(), path.with_name(path.stem + "_disc.safetensors"),
                   {"data": "mocap pose groups of the training clips vs the HMR regressor's and perturbed poses",
                    "training_clips": self.card()["training_clips"], "steps": self.step})  # fmt: skip
        self.net.to(self.device)
        self.disc.to(self.device)
        return out

    def finalize(self) -> dict:
        return {"weights": self.export_weights(self.out / "hmr.safetensors")}
