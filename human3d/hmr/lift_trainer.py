"""``LiftTrainer``: the 2D -> 3D keypoint lifter (:mod:`human3d.fitting.lift`) trained on the training core.

At the start (:meth:`LiftTrainer.pool`) every frame of the corpus' training clips at ``data.fps``
(:func:`human3d.fitting.lgd.training_clips`; the ``HOLDOUT`` clips are never read) is posed on
``data.shapes_per_frame`` random shapes and its COCO-17 keypoints computed once (no body model after that). Each
step draws ``optim.batch_size`` of them through :func:`~human3d.fitting.lift.sample_lift_batch` (random heading,
tilt, mirror, camera, noise and dropout) and minimises the mean per-keypoint distance (m) between the lift and the
root-relative truth. ``finalize`` writes ``RUN/lift.safetensors`` (+ its card).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from human3d.config import Config, from_preset
from human3d.fitting.lift import KeypointLifter, LiftDataConfig, LiftNetConfig, sample_lift_batch, save_lifter
from human3d.hmr.lgd_trainer import LGDOptimConfig, cosine_lr
from human3d.train.core import RunConfig, Trainer

__all__ = ["LiftConfig", "LiftTrainer", "preset", "PRESETS", "pool_keypoints"]


@dataclass
class LiftConfig(Config):
    """Keypoint lifter training: net + data + optim + run."""

    net: LiftNetConfig = field(default_factory=LiftNetConfig)
    """The lifter network."""
    data: LiftDataConfig = field(default_factory=LiftDataConfig)
    """The synthetic keypoint pairs."""
    optim: LGDOptimConfig = field(default_factory=lambda: LGDOptimConfig(batch_size=256, lr_final=0.02,
                                                                         grad_clip=1e9))
    """The optimiser (Adam, cosine decay; the same component as LGD's; no gradient clipping by default)."""
    run: RunConfig = field(default_factory=lambda: RunConfig(max_steps=20000, log_every=100, checkpoint_every=1000))
    """Steps, time budget, seed, device, logging."""


PRESETS: dict[str, dict] = {
    "fast": {},  # ~0.1 s a step at batch 256 on one CPU thread
    "tiny": {"net.width": 64, "net.blocks": 1, "data.fps": 2.0, "data.shapes_per_frame": 1, "optim.batch_size": 32,
             "run.max_steps": 20},  # tests
}


def preset(name: str = "fast", **overrides) -> LiftConfig:
    """A :class:`LiftConfig` from :data:`PRESETS` with dotted ``overrides``."""
    return from_preset(LiftConfig, PRESETS, name, overrides)


@torch.no_grad()
def pool_keypoints(model, data: LiftDataConfig, seed: int, chunk: int = 512) -> torch.Tensor:
    """COCO-17 keypoints ``[P, 17, 3]`` of every training-clip frame at ``data.fps`` on ``data.shapes_per_frame``
    random shapes, in camera axes (the mocap orientation turned upright for a camera looking along +z, y down),
    centred on the mid-hip."""
    from human3d.fitting.lgd import SHAPE_SAMPLERS, model_mocap_poses, training_clips
    from human3d.fitting.lift import root_relative
    from human3d.fitting.synthetic import default_data_root, named_clip_poses
    from human3d.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    go, bp = named_clip_poses(training_clips(), default_data_root(), fps=data.fps)
    go, bp = model_mocap_poses(model, go, bp)
    g = torch.Generator().manual_seed(seed)
    if data.prior_poses > 0:  # upright poses from the shipped prior (it scores body_pose only)
        from generative.priors.pose import load_pose_prior

        prior = load_pose_prior(data.prior, model=model.prior_family)
        pb = prior.to_body_pose(prior.sample(data.prior_poses, generator=g)).float()
        jp = bp.shape[1]
        pb = torch.nn.functional.pad(pb, (0, max(0, jp - pb.shape[1])))[:, :jp]  # SMPL: hands at rest
        go, bp = torch.cat([go, torch.zeros(data.prior_poses, 3)]), torch.cat([bp, pb])
    sp = model.shape_param
    size = model.parameter_shapes()[sp][0]
    flip = axis_angle_to_matrix(torch.tensor([[math.pi, 0.0, 0.0]]))  # mocap y up -> camera y down
    kf = model.keypoint_function()
    out = []
    for _ in range(data.shapes_per_frame):
        for i in range(0, go.shape[0], chunk):
            n = go[i : i + chunk].shape[0]
            R = flip @ axis_angle_to_matrix(go[i : i + chunk])
            p = {"global_orient": matrix_to_axis_angle(R), "body_pose": bp[i : i + chunk],
                 sp: SHAPE_SAMPLERS[sp](n, size, g), "transl": torch.zeros(n, 3)}  # fmt: skip
            out.append(root_relative(kf(p)["coco17"].float()))
    return torch.cat(out)


class LiftTrainer(Trainer, kind="lift", config_class=LiftConfig, default_config=lambda: preset("fast"),
                  progress_fields=("mpjpe_mm",), needs_data=False):  # fmt: skip
    """The keypoint lifter on synthetic 2D/3D pairs of mocap poses (module docstring)."""

    def build(self) -> None:
        from human3d.hmr.trainer import load_training_model

        d = self.config.data
        self.body = load_training_model(d.model, d.model_type, d.num_betas)
        self.model = KeypointLifter(self.config.net).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.config.optim.lr)
        self._pool = None

    def pool(self) -> torch.Tensor:
        if self._pool is None:
            self._pool = pool_keypoints(self.body, self.config.data, self.run.seed)
        return self._pool


    def train_step(self) -> dict:
        lr = cosine_lr(self.config.optim, self.progress())
        for g in self.opt.param_groups:
            g["lr"] = lr
        x, y, _ = sample_lift_batch(self.pool(), self.config.data, self.config.optim.batch_size, self.generator)
        self.model.train()
        loss = (self.model(x.to(self.device)) - y.to(self.device)).norm(dim=-1).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.opt.step()
        return {"loss": float(loss.detach()), "lr": lr, "mpjpe_mm": float(loss.detach()) * 1000}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.opt}

    def export_weights(self, path, card: dict | None = None):
        """The lifter as safetensors + a JSON provenance card (what ships)."""
        from human3d.fitting.lgd import training_clips

        base = {"kind": "lift", "model": self.body.family, "skeleton": "coco17", "steps": self.step,
                "train_seconds": round(self.elapsed, 1),
                "n_parameters": sum(p.numel() for p in self.model.parameters()),
                "pool_size": int(self.pool().shape[0]), "training_clips": training_clips(),
                "config": self.config.to_dict(),
                "output": "COCO-17 3D keypoints, camera frame (OpenCV), metres, relative to the mid-hip",
                "data": "3D keypoints of mocap frames of the training clips (human3d.motion.mocap HOLDOUT excluded) "
                        "on random " + self.body.shape_param + ", turned, mirrored and projected with noise and "
                        "dropout; no images"}  # fmt: skip
        return save_lifter(self.model.cpu(), path, {**base, **(card or {})})

    def finalize(self) -> dict:
        path = self.export_weights(self.out / "lift.safetensors")
        self.model.to(self.device)
        return {"weights": path}
