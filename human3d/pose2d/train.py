"""Training 2D pose heatmap networks on synthetic humans, on the training core (:mod:`human3d.train.core`).

``Pose2DConfig`` = ``data`` (where people come from: :mod:`human3d.synth` rendered on the fly into a pool, or a
COCO folder written by ``human3d synth make``) + ``augment`` (rotation, scale, shift, flip with left/right swap,
half body, colour) + ``model`` (network and heatmap targets) + ``optim`` + ``run``.

A step: draw ``optim.batch_size`` people from the pool, crop and augment them (:func:`human3d.pose2d.data.sample_crops`),
encode unbiased Gaussian targets at stride 4 with target weights (:func:`human3d.pose2d.heatmaps.gaussian_targets`:
labelled joints inside the crop), and minimise SimpleBaseline's weighted MSE ``0.5 * mean(w_k (h - t)^2)``, summed
over the stages of a multi-stage network (intermediate supervision). Learning rate: Adam with cosine decay to
``optim.lr_final`` over the run's progress (steps, or time when a time budget is set).

The pool: ``data.n_images`` synthetic images rendered in chunks of ``data.chunk`` with seeds ``chunk_seed(run.seed,
c)``; when ``data.refresh_every > 0`` the oldest chunk is replaced by a new one every that many steps (data
generated on the fly). The chunk seeds are checkpointed, so a resumed run rebuilds the same pool. Evaluation uses
``data.eval_images`` images from seeds no training chunk uses (:func:`eval_seed`), cropped at their ground-truth
boxes, and reports PCK per decoder (argmax + quarter shift, DARK, soft-argmax).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from dataclasses import field as _default
from pathlib import Path

import torch

from human3d.config import Config, from_preset
from human3d.errors import InvalidInputError
from human3d.io_utils import atomic_write_text
from human3d.pose2d.data import Augment, PersonPool, concat_pools, load_coco_pool, pool_from_synth, sample_crops
from human3d.pose2d.heatmaps import decode_argmax, decode_dark, gaussian_targets, heatmap_to_image, soft_argmax
from human3d.pose2d.networks import STRIDE, build_network, count_parameters
from human3d.train.core import RunConfig, Trainer

__all__ = ["Pose2DDataConfig", "Pose2DAugmentConfig", "Pose2DModelConfig", "Pose2DOptimConfig", "Pose2DConfig",
           "PRESETS", "preset", "Pose2DTrainer", "DECODERS", "decode", "predict", "heatmap_loss",
           "chunk_seed", "eval_seed", "evaluate_pool", "synthetic_eval_pool"]  # fmt: skip

DECODERS = ("argmax", "dark", "soft_argmax")


@dataclass
class Pose2DDataConfig(Config):
    """Where the training and evaluation people come from."""

    synth_size: int = 128
    """Side in pixels of the rendered synthetic images."""
    max_people: int = 1
    """People per synthetic image (1 to this many; every person with enough labelled joints is a sample)."""
    prior_fraction: float = 0.3
    """Share of synthetic poses sampled from the shipped pose prior (the rest from mocap)."""
    n_images: int = 256
    """Synthetic images in the training pool."""
    chunk: int = 32
    """Images rendered together (the pool is made of chunks; refreshes replace one chunk)."""
    refresh_every: int = 0
    """Replace the oldest chunk with newly rendered images every this many steps (0: a fixed pool)."""
    eval_images: int = 256
    """Held-out synthetic images for evaluation (seeds no training chunk uses). 256 images (~4000 labelled joints)
    give a 95 % interval of about +-0.01 on PCK@0.2 near 0.94; 64 images (the size before) give +-0.02, too wide
    to tell 0.94 from 0.95. The first chunks are the same images whatever the size."""
    eval_seed: int = 0
    """Seed of the held-out set (with run.seed it does not change: one fixed benchmark set per value)."""
    min_keypoints: int = 5
    """People with fewer labelled joints are not used."""
    crop_size: int = 128
    """Network input side in pixels (a multiple of 32); heatmaps are crop_size / 4."""
    padding: float = 1.25
    """Crop side = padding * max(box width, box height)."""

    def validate(self) -> None:
        for name in ("synth_size", "max_people", "n_images", "chunk", "eval_images", "min_keypoints", "crop_size"):
            if not int(getattr(self, name)) > 0:
                raise InvalidInputError(f"data.{name}: expected a positive integer, got {getattr(self, name)}")
        if self.crop_size % 32:
            raise InvalidInputError(f"data.crop_size: expected a multiple of 32, got {self.crop_size}")
        if self.refresh_every < 0:
            raise InvalidInputError(f"data.refresh_every: expected >= 0 steps, got {self.refresh_every}")
        if not 0.0 <= self.prior_fraction <= 1.0:
            raise InvalidInputError(f"data.prior_fraction: expected a fraction in [0, 1], got {self.prior_fraction}")
        if not self.padding >= 1.0:
            raise InvalidInputError(f"data.padding: expected >= 1, got {self.padding}")


@dataclass
class Pose2DAugmentConfig(Config):
    """Training-time augmentation of the crops (evaluation crops are plain)."""

    rotation: float = 30.0
    """Rotation range in degrees: U(-rotation, rotation) with probability rotation_prob."""
    rotation_prob: float = 0.6
    """Probability of rotating a crop."""
    scale: float = 0.25
    """Crop side multiplied by clip(1 + scale * N(0, 1), 1 - scale, 1 + scale)."""
    shift: float = 0.05
    """Crop centre moved by up to this fraction of the side on each axis (box noise)."""
    flip: float = 0.5
    """Probability of a horizontal flip (left and right joints swapped)."""
    half_body: float = 0.3
    """Probability of cropping only the upper or the lower body (when it has >= 3 labelled joints)."""
    colour: float = 0.2
    """Brightness / contrast jitter amplitude."""

    def validate(self) -> None:
        for name in ("rotation_prob", "flip", "half_body"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidInputError(f"augment.{name}: expected a probability in [0, 1], got {getattr(self, name)}")
        for name in ("rotation", "scale", "shift", "colour"):
            if not getattr(self, name) >= 0:
                raise InvalidInputError(f"augment.{name}: expected >= 0, got {getattr(self, name)}")
        if self.scale >= 1:
            raise InvalidInputError(f"augment.scale: expected < 1, got {self.scale}")

    def to_augment(self) -> Augment:
        return Augment(self.rotation, self.rotation_prob, self.scale, self.shift, self.flip, self.half_body,
                       self.colour)  # fmt: skip


@dataclass
class Pose2DModelConfig(Config):
    """The heatmap network and its targets."""

    arch: str = "simple"
    """``simple`` (SimpleBaseline: residual backbone + deconvolutions) or ``cpm`` (multi-stage, intermediate
    supervision)."""
    widths: tuple = (16, 24, 48, 80, 112)
    """SimpleBaseline: channels of the stem and the four residual stages."""
    blocks: tuple = (1, 1, 1, 1)
    """SimpleBaseline: residual blocks per stage."""
    deconv: tuple = (64, 48, 48)
    """SimpleBaseline: channels of the three transposed convolutions."""
    cpm_stages: int = 3
    """CPM: number of stages (each supervised)."""
    cpm_width: int = 40
    """CPM: channels of the shared features and inside each stage."""
    sigma: float = 1.5
    """Standard deviation of the Gaussian targets, in heatmap cells (stride 4)."""

    def validate(self) -> None:
        if self.arch not in ("simple", "cpm"):
            raise InvalidInputError(f"model.arch: expected 'simple' or 'cpm', got '{self.arch}'")
        if not self.sigma > 0:
            raise InvalidInputError(f"model.sigma: expected > 0 cells, got {self.sigma}")

    def build(self, num_joints: int = 17) -> torch.nn.Module:
        if self.arch == "simple":
            return build_network("simple", num_joints, widths=tuple(self.widths), blocks=tuple(self.blocks),
                                 deconv=tuple(self.deconv))  # fmt: skip
        return build_network("cpm", num_joints, feat=self.cpm_width, width=self.cpm_width, stages=self.cpm_stages)


@dataclass
class Pose2DOptimConfig(Config):
    """The optimiser."""

    batch_size: int = 16
    """People per step."""
    lr: float = 2e-3
    """Adam learning rate at the start."""
    lr_final: float = 1e-4
    """Learning rate at the end of the run (cosine decay over its progress)."""
    weight_decay: float = 0.0
    """Adam weight decay."""

    def validate(self) -> None:
        if not int(self.batch_size) > 0:
            raise InvalidInputError(f"optim.batch_size: expected a positive integer, got {self.batch_size}")
        if not (self.lr > 0 and self.lr_final > 0):
            raise InvalidInputError(f"optim.lr / lr_final: expected positive rates, got {self.lr} / {self.lr_final}")


@dataclass
class Pose2DConfig(Config):
    """2D pose heatmap training: data + augment + model + optim + run."""

    data: Pose2DDataConfig = _default(default_factory=Pose2DDataConfig)
    """Where people come from (synthetic pool or COCO folder) and how they are cropped."""
    augment: Pose2DAugmentConfig = _default(default_factory=Pose2DAugmentConfig)
    """Training augmentation."""
    model: Pose2DModelConfig = _default(default_factory=Pose2DModelConfig)
    """The network and its heatmap targets."""
    optim: Pose2DOptimConfig = _default(default_factory=Pose2DOptimConfig)
    """The optimiser."""
    run: RunConfig = _default(default_factory=lambda: RunConfig(max_steps=2000, log_every=25, checkpoint_every=250))
    """Steps, time budget, seed, device, logging."""


PRESETS: dict[str, dict] = {
    # CPU: a 0.5 M-parameter SimpleBaseline at 128^2 on a fixed pool of 256 rendered images (~1 minute to render)
    "fast": {},
    # the same recipe with the multi-stage network
    "cpm": {"model.arch": "cpm"},
    # longer: a pool refreshed on the fly (new people every 50 steps), people from several per image
    "full": {"data.n_images": 1024, "data.refresh_every": 50, "data.max_people": 2, "run.max_steps": 20000,
             "run.checkpoint_every": 500, "run.log_every": 50},
}


def preset(name: str = "fast", **overrides) -> Pose2DConfig:
    """A :class:`Pose2DConfig` from :data:`PRESETS` with dotted ``overrides``."""
    return from_preset(Pose2DConfig, PRESETS, name, overrides)


def chunk_seed(run_seed: int, chunk: int) -> int:
    """Seed of training chunk ``chunk`` (below 2**40 for any run seed < 2**20)."""
    return int(run_seed) * 1_000_003 + int(chunk)


def eval_seed(seed: int, chunk: int) -> int:
    """Seed of held-out chunk ``chunk`` (at 2**40 and above: never a training chunk's)."""
    return 2**40 + int(seed) * 1_000_003 + int(chunk)


def synthetic_eval_pool(data: Pose2DDataConfig, generator=None) -> PersonPool:
    """The held-out synthetic people of a data config: ``data.eval_images`` images rendered in chunks with
    :func:`eval_seed` (``generator``: a :class:`~human3d.synth.SynthGenerator` of the same data config)."""
    if generator is None:
        from human3d.synth import SynthConfig, SynthGenerator

        generator = SynthGenerator(config=SynthConfig(size=data.synth_size, max_people=data.max_people,
                                                      prior_fraction=data.prior_fraction))  # fmt: skip
    n_chunks = max(1, math.ceil(data.eval_images / data.chunk))
    sizes = [min(data.chunk, data.eval_images - c * data.chunk) for c in range(n_chunks)]
    return concat_pools([pool_from_synth(generator.generate(n, seed=eval_seed(data.eval_seed, c)), data.min_keypoints)
                         for c, n in enumerate(sizes)])  # fmt: skip


def heatmap_loss(stages: list[torch.Tensor], target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum_stages 0.5 * mean_{B,K,H,W}(w_k (h - t)^2)`` (SimpleBaseline's JointsMSELoss with target weights).

    ``stages``: list of ``[B, K, H, W]``; ``target`` ``[B, K, H, W]``; ``weight`` ``[B, K]``."""
    w = weight[..., None, None]
    return sum(0.5 * ((h - target) * w).square().mean() for h in stages)


def decode(heatmaps: torch.Tensor, decoder: str) -> torch.Tensor:
    """Heatmaps ``[B, K, H, W]`` -> ``uv`` ``[B, K, 2]`` in heatmap coordinates with one of :data:`DECODERS`."""
    if decoder == "argmax":
        return decode_argmax(heatmaps)[0]
    if decoder == "dark":
        return decode_dark(heatmaps)[0]
    if decoder == "soft_argmax":
        # network heatmaps are Gaussian-like with peak ~1: a sharp softmax keeps the background's mass small
        return soft_argmax(heatmaps, beta=40.0)[0]
    raise InvalidInputError(f"decoder: expected one of {', '.join(DECODERS)}, got '{decoder}'")


@torch.no_grad()
def predict(net: torch.nn.Module, crops: torch.Tensor, flip_test: bool = False) -> torch.Tensor:
    """Heatmaps ``[B, K, S/4, S/4]`` of crops ``[B, 3, S, S]`` (eval mode); ``flip_test`` averages them with the
    mirrored heatmaps of the mirrored crops (left/right channels swapped; the mirror is exact in the continuous
    pixel convention, so no shift is needed)."""
    from human3d.pose2d.crops import flip_permutation

    h = net(crops)
    if flip_test:
        hf = net(crops.flip(-1)).flip(-1)[:, flip_permutation("coco17")]
        h = 0.5 * (h + hf)
    return h


def evaluate_pool(net: torch.nn.Module, pool: PersonPool, crop_size: int, padding: float = 1.25,
                  decoders=DECODERS, batch_size: int = 64, flip_test: bool = False, device="cpu") -> dict:  # fmt: skip
    """PCK of ``net`` on every person of ``pool``, cropped at its box, per decoder.

    Returns ``{decoder: {"pck@0.2", "pck@0.2_95ci" (bootstrap over people, :func:`~human3d.pose2d.metrics.pck_interval`),
    "pck@0.1", "pck@0.05" (bbox-normalised), "pck_torso@0.2", "oks_ap"}, "n_people", "n_joints",
    "predictions": {decoder: [M, K, 2] image pixels}}``."""
    from human3d.pose2d.crops import apply_affine
    from human3d.pose2d.metrics import bbox_size, oks_ap, pck, pck_interval, pck_per_joint, torso_size

    was = net.training
    net.eval()
    preds: dict[str, list] = {d: [] for d in decoders}
    for s in range(0, len(pool), batch_size):
        idx = torch.arange(s, min(len(pool), s + batch_size))
        crops, _, A, _ = sample_crops(pool, idx, crop_size, padding)
        h = predict(net, crops.to(device), flip_test).float().cpu()
        for d in decoders:
            preds[d].append(apply_affine(A, heatmap_to_image(decode(h, d), STRIDE)))
    net.train(was)
    gt, vis = pool.keypoints[..., :2], pool.keypoints[..., 2]
    norm = bbox_size(pool.boxes)
    torso = torso_size(gt, vis)
    out: dict = {"n_people": len(pool), "n_joints": int((vis > 0).sum()), "predictions": {}}
    gts = [{"image_id": int(pool.image_index[m]), "keypoints": gt[m].numpy(), "visible": vis[m].numpy(),
            "area": float(pool.areas[m]), "bbox": pool.boxes[m].tolist()} for m in range(len(pool))]  # fmt: skip
    for d in decoders:
        p = torch.cat(preds[d])
        dets = [{"image_id": int(pool.image_index[m]), "keypoints": p[m].numpy(), "score": 1.0}
                for m in range(len(pool))]  # fmt: skip
        out[d] = {"pck@0.2": pck(p, gt, vis, norm, 0.2),
                  "pck@0.2_95ci": pck_interval(*pck_per_joint(p, gt, vis, norm)), "pck@0.1": pck(p, gt, vis, norm, 0.1),
                  "pck@0.05": pck(p, gt, vis, norm, 0.05), "pck_torso@0.2": pck(p, gt, vis, torso, 0.2),
                  "oks_ap": oks_ap(dets, gts)["AP"]}  # fmt: skip
        out["predictions"][d] = p
    return out


class Pose2DTrainer(Trainer, kind="pose2d", config_class=Pose2DConfig, default_config=lambda: preset("fast"),
                    progress_fields=("lr",), needs_data=False):  # fmt: skip
    """2D pose heatmap training (see the module docstring). ``data``: None (synthetic pool) or a COCO folder /
    JSON file written by ``human3d synth make`` (a fixed pre-generated set)."""

    def build(self) -> None:
        c = self.config
        self.net = c.model.build(17).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=c.optim.lr, weight_decay=c.optim.weight_decay)
        self._synth = None
        self._pool: PersonPool | None = None
        self._eval_pool: PersonPool | None = None
        self.chunks: list[int] = []  # seeds of the pool's chunks, oldest first
        self._chunk_pools: dict[int, PersonPool] = {}
        self.next_chunk = 0

    @property
    def n_parameters(self) -> int:
        return count_parameters(self.net)

    # ---------------------------------------------------------------------------------------------- data
    def synth(self):
        if self._synth is None:
            from human3d.synth import SynthConfig, SynthGenerator

            d = self.config.data
            self._synth = SynthGenerator(config=SynthConfig(size=d.synth_size, max_people=d.max_people,
                                                            prior_fraction=d.prior_fraction))  # fmt: skip
        return self._synth

    def _render(self, seed: int, n: int) -> PersonPool:
        return pool_from_synth(self.synth().generate(n, seed=seed), self.config.data.min_keypoints)

    def on_fresh_start(self) -> None:
        d = self.config.data
        if self.data is None:
            n_chunks = max(1, math.ceil(d.n_images / d.chunk))
            self.chunks = [chunk_seed(self.run.seed, c) for c in range(n_chunks)]
            self.next_chunk = n_chunks
        else:
            self.pool()  # read --data now: a bad file fails before the run folder is written

    def pool(self) -> PersonPool:
        """The training pool (rendered or read on first use)."""
        if self._pool is None:
            d = self.config.data
            if self.data is not None:
                path = self.data / "annotations.json" if self.data.is_dir() else self.data
                self._pool = load_coco_pool(path, min_keypoints=d.min_keypoints)
            else:
                for s in self.chunks:
                    if s not in self._chunk_pools:
                        self._chunk_pools[s] = self._render(s, d.chunk)
                self._pool = concat_pools([self._chunk_pools[s] for s in self.chunks])
        return self._pool

    def eval_pool(self) -> PersonPool:
        """The held-out synthetic people (:func:`eval_seed`; the same for every run with this data config)."""
        if self._eval_pool is None:
            self._eval_pool = synthetic_eval_pool(self.config.data, self.synth())
        return self._eval_pool

    def _refresh(self) -> None:
        d = self.config.data
        old = self.chunks.pop(0)
        self._chunk_pools.pop(old, None)
        s = chunk_seed(self.run.seed, self.next_chunk)
        self.next_chunk += 1
        self.chunks.append(s)
        self._chunk_pools[s] = self._render(s, d.chunk)
        self._pool = None

    # ---------------------------------------------------------------------------------------------- training
    def lr_at(self, progress: float) -> float:
        o = self.config.optim
        return o.lr_final + 0.5 * (o.lr - o.lr_final) * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))

    def batch(self, generator: torch.Generator | None = None):
        """An augmented training batch: ``(crops [B, 3, S, S], targets [B, K, S/4, S/4], weights [B, K])``."""
        c = self.config
        pool = self.pool()
        g = self.generator if generator is None else generator
        idx = torch.randint(0, len(pool), (c.optim.batch_size,), generator=g)
        crops, kp, _, _ = sample_crops(pool, idx, c.data.crop_size, c.data.padding, c.augment.to_augment(), g)
        hm = c.data.crop_size // STRIDE
        target, weight = gaussian_targets(kp[..., :2] / STRIDE, (hm, hm), c.model.sigma, kp[..., 2])
        return crops, target, weight

    def train_step(self) -> dict:
        if self.data is None and self.config.data.refresh_every and self.step and \
                self.step % self.config.data.refresh_every == 0:  # fmt: skip
            self._refresh()
        crops, target, weight = self.batch()
        lr = self.lr_at(self.progress())
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.net.train()
        stages = self.net.forward_stages(crops.to(self.device))
        loss = heatmap_loss(stages, target.to(self.device), weight.to(self.device))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.detach()), "lr": lr}

    # ---------------------------------------------------------------------------------------------- state
    def checkpoint_modules(self) -> dict[str, torch.nn.Module]:
        return {"": self.net}

    def load_state_tensors(self, tensors, state, path) -> None:
        super().load_state_tensors(tensors, state, path)  # the network (the core's default)
        self.chunks = [int(s) for s in state.get("chunks", [])]
        self.next_chunk = int(state.get("next_chunk", len(self.chunks)))
        self._pool = None

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.opt}

    def extra_state(self) -> dict:
        return {"chunks": self.chunks, "next_chunk": self.next_chunk, "n_parameters": self.n_parameters}

    # ---------------------------------------------------------------------------------------------- evaluation
    def evaluate(self, flip_test: bool = False, write: bool = True) -> dict:
        """PCK / OKS AP on the held-out synthetic people per decoder; writes ``RUN/eval/metrics.json``."""
        d = self.config.data
        m = evaluate_pool(self.net, self.eval_pool(), d.crop_size, d.padding, flip_test=flip_test, device=self.device)
        m.pop("predictions")
        m.update(step=self.step, flip_test=flip_test, n_parameters=self.n_parameters)
        if write:
            path = self.out / "eval" / "metrics.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(m, indent=2))
        return m

    def export_weights(self, path) -> Path:
        """The network's weights as safetensors with the model config in the metadata (what ships)."""
        from safetensors.torch import save_file

        from human3d.io_utils import atomic_path

        path = Path(path)
        meta = {"kind": "pose2d", "model": json.dumps(self.config.model.to_dict()),
                "crop_size": str(self.config.data.crop_size), "padding": str(self.config.data.padding),
                "skeleton": "coco17", "step": str(self.step)}  # fmt: skip
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return path
