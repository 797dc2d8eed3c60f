"""``LGDTrainer``: learned gradient descent (:mod:`human3d.fitting.lgd`) trained on the training core.

Each step draws ``optim.batch_size`` mocap frames from the pool of the corpus' training clips
(:func:`human3d.fitting.lgd.training_clips`; the held-out clips are never read), makes synthetic fitting problems of
them (:func:`~human3d.fitting.lgd.sample_problems`: random shapes, cameras, noise and dropout), runs SMPLify's stage
1 on them as :func:`~human3d.fitting.smplify.smplify` does, unrolls the network's stages from the mean pose and
minimises :func:`~human3d.fitting.lgd.lgd_loss`. ``finalize`` writes ``RUN/lgd.safetensors`` (+ its card).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from human3d.config import Config, from_preset
from human3d.errors import InvalidInputError
from human3d.fitting.config import SMPLifyConfig
from human3d.fitting.inputs import prepare_inputs
from human3d.fitting.lgd import (LGDDataConfig, LGDNet, LGDNetConfig, lgd_loss, model_mocap_poses, sample_problems,
                                 save_lgd, training_clips, unroll)  # fmt: skip
from human3d.fitting.optim import Progress
from human3d.fitting.stages import init_camera, make_problem, restart_poses, stage_rigid
from human3d.train.core import RunConfig, Trainer

__all__ = ["LGDConfig", "LGDOptimConfig", "LGDTrainer", "preset", "PRESETS", "cosine_lr"]


@dataclass
class LGDOptimConfig(Config):
    """The optimiser."""

    batch_size: int = 64
    """Training examples per step."""
    lr: float = 1e-3
    """Adam's initial step size (cosine decay to ``lr_final`` x it)."""
    lr_final: float = 0.05
    """Final step size as a fraction of ``lr``."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""

    def validate(self) -> None:
        if not (isinstance(self.batch_size, int) and self.batch_size > 0):
            raise InvalidInputError(f"optim.batch_size: expected a positive integer, got {self.batch_size!r}")
        if not (self.lr > 0 and 0 < self.lr_final <= 1):
            raise InvalidInputError(f"optim.lr / lr_final: expected lr > 0 and 0 < lr_final <= 1, got {self.lr} / "
                                    f"{self.lr_final}")  # fmt: skip


def cosine_lr(o: LGDOptimConfig, progress: float) -> float:
    """``o.lr`` decayed by a half cosine to ``o.lr_final`` x it over ``progress`` in [0, 1]."""
    f = o.lr_final + 0.5 * (1 - o.lr_final) * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))
    return o.lr * f


@dataclass
class LGDConfig(Config):
    """Learned gradient descent training: net + data + optim + run."""

    net: LGDNetConfig = field(default_factory=LGDNetConfig)
    """The update networks."""
    data: LGDDataConfig = field(default_factory=LGDDataConfig)
    """The synthetic problems."""
    optim: LGDOptimConfig = field(default_factory=LGDOptimConfig)
    """The optimiser."""
    run: RunConfig = field(default_factory=lambda: RunConfig(max_steps=1500, log_every=25, checkpoint_every=250))
    """Steps, time budget, seed, device, logging."""


PRESETS: dict[str, dict] = {
    "fast": {},  # ~0.5 s a step at batch 64 on one CPU thread
    "tiny": {"net.hidden": 64, "data.pool": 2000, "optim.batch_size": 16, "run.max_steps": 20},  # tests
}


def preset(name: str = "fast", **overrides) -> LGDConfig:
    """An :class:`LGDConfig` from :data:`PRESETS` with dotted ``overrides``."""
    return from_preset(LGDConfig, PRESETS, name, overrides)


class LGDTrainer(Trainer, kind="LGD", config_class=LGDConfig, default_config=lambda: preset("fast"),
                 progress_fields=("mpjpe_mm",), needs_data=False):  # fmt: skip
    """Learned gradient descent on synthetic keypoints of mocap poses (module docstring)."""

    def build(self) -> None:
        from human3d.fitting.priors import pose_space
        from human3d.hmr.trainer import load_training_model

        d = self.config.data
        self.model = load_training_model(d.model, d.model_type, d.num_betas)
        self.space = pose_space(self.model)
        self.fit_cfg = SMPLifyConfig(threads=None)
        shape_dim = self.model.parameter_shapes()[self.model.shape_param][0]
        self.net = LGDNet(self.space.num_groups, shape_dim, 17, self.config.net).to(self.device)
        self.net.model_family = self.model.family
        self.opt = torch.optim.Adam(self.net.parameters(), lr=self.config.optim.lr)
        self._pool = None

    def pool(self):
        """(global_orient, body_pose) of ``data.pool`` frames of the training clips (read on first use)."""
        if self._pool is None:
            from human3d.fitting.synthetic import mocap_anny_poses

            d = self.config.data
            go, bp, _ = mocap_anny_poses(d.pool, self.run.seed, training_clips(), fps=d.fps)
            self._pool = model_mocap_poses(self.model, go, bp)
        return self._pool

    def lr_at(self, progress: float) -> float:
        return cosine_lr(self.config.optim, progress)

    def problem(self, generator: torch.Generator, n: int):
        """A batch: (FitProblem, stage 1's state, starting groups, gt 3D keypoints, gt groups, gt params)."""
        go, bp = self.pool()
        idx = torch.randint(0, go.shape[0], (n,), generator=generator)
        kp, K, params, X = sample_problems(self.model, go[idx], bp[idx], self.config.data, generator)
        inputs = prepare_inputs(self.model, kp, K, "coco17", self.fit_cfg)
        keep = inputs.fitted.nonzero().flatten()
        inputs = inputs.subset(keep)
        pb = make_problem(self.model, inputs, None, self.fit_cfg, Progress(False, 0))
        with torch.enable_grad():
            rigid = stage_rigid(pb, *init_camera(pb))
        gt_groups = self.space.groups_from_body_pose(params["body_pose"][keep])
        return pb, rigid, restart_poses(pb, 1)[0], X[keep], gt_groups, {k: v[keep] for k, v in params.items()}

    def train_step(self) -> dict:
        lr = self.lr_at(self.progress())
        for g in self.opt.param_groups:
            g["lr"] = lr
        pb, rigid, g0, gt_X, gt_groups, params = self.problem(self.generator, self.config.optim.batch_size)
        self.net.train()
        states, Xs, _ = unroll(self.net, pb, rigid, g0, train=True)
        loss, info = lgd_loss(pb, states, Xs, gt_X, gt_groups, params["transl"])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.config.optim.grad_clip)
        self.opt.step()
        S = len(states) - 1
        return {"loss": float(loss.detach()), "lr": lr, "mpjpe_mm": info[f"mpjpe_mm_{S}"]}

    def checkpoint_modules(self) -> dict[str, torch.nn.Module]:
        return {"net": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.opt}

    def export_weights(self, path, card: dict | None = None):
        """The network as safetensors + a JSON provenance card (what ships)."""
        n_params = sum(p.numel() for p in self.net.parameters())
        base = {"kind": "lgd", "model": self.model.family, "shape_param": self.model.shape_param,
                "n_shape": int(self.net.n_shape), "skeleton": "coco17", "steps": self.step,
                "train_seconds": round(self.elapsed, 1), "n_parameters": n_params,
                "training_clips": training_clips(), "config": self.config.to_dict(),
                "data": "synthetic keypoints of mocap poses of the training clips (human3d.motion.mocap HOLDOUT "
                        "excluded), random " + self.model.shape_param + " and cameras, pixel noise and keypoint dropout; no images"}  # fmt: skip
        return save_lgd(self.net.cpu(), path, {**base, **(card or {})})

    def finalize(self) -> dict:
        path = self.export_weights(self.out / "lgd.safetensors")
        self.net.to(self.device)
        return {"weights": path}
