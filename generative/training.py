"""Training utilities shared by every generative model: seeding, device selection, batching, checkpoints, ``fit``.

Checkpoints are single safetensors files written atomically (``generative.io_utils.atomic_path``):

* ``module.<name>.<param>``: each module's ``state_dict`` (weights and buffers, e.g. ActNorm's init flag);
* ``optim.<name>.state.<param_id>.<key>``: optimizer state tensors (Adam moments and step counters), flattened by
  ``flatten_optimizer_state`` (the project's one optimizer-state format; ``unflatten_optimizer_state`` inverts it);
* ``rng.torch`` (and ``rng.cuda`` when present): the global torch RNG state, so that model noise (reparameterisation,
  diffusion timesteps, MADE orders) continues identically after a resume;
* metadata (``str -> str``): ``step``, the optimizer ``param_groups`` (JSON), non-tensor optimizer state (JSON) and
  the training config (JSON).

Batches are a pure function of ``(seed, step)`` (one random permutation of the data per epoch), so a run that was
interrupted and resumed from its last checkpoint produces the same weights as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from generative.errors import InvalidInputError, ModelFileError
from generative.io_utils import atomic_path

CHECKPOINT_FORMAT = "generative.checkpoint"


@dataclass
class TrainConfig:
    """Optimisation settings shared by all models (``fit``, ``GAN.fit``)."""

    steps: int = 1000
    """Total number of optimisation steps (one batch each). A resumed run continues up to this count."""
    batch_size: int = 256
    """Examples per step (the whole dataset when it is smaller)."""
    lr: float = 1e-3
    """Adam learning rate."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas."""
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW)."""
    grad_clip: float | None = None
    """Clip the global gradient norm to this value; None disables clipping."""
    seed: int = 0
    """Seed for the global RNGs (torch, numpy, random) and the batch order."""
    device: str = "auto"
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:1"``."""
    checkpoint: str | None = None
    """Path of the ``.safetensors`` checkpoint. If the file exists, training resumes from it."""
    checkpoint_every: int = 0
    """Also write the checkpoint every this many steps (0: only at the end)."""
    progress: bool = True
    """Show a tqdm progress bar."""
    log_every: int = 10
    """Record the step's logged values in the returned history every this many steps."""


@dataclass
class History:
    """What a training run returns: logged records and timing."""

    records: list[dict] = field(default_factory=list)
    """One dict per logged step: ``{"step": int, <name>: float, ...}``."""
    start_step: int = 0
    """Step the run started from (> 0 after a resume)."""
    end_step: int = 0
    """Step count when the run ended."""
    seconds: float = 0.0
    """Wall-clock time of this run."""

    def last(self, key: str = "loss") -> float:
        for r in reversed(self.records):
            if key in r:
                return r[key]
        raise KeyError(key)


# ----------------------------------------------------------------------------------------- seeding and devices
def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def select_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(device)`` (checked to exist)."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise InvalidInputError(f"device: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device: {device!r} requested but CUDA is not available")
    return dev


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Indices of the batch used at ``step``: a pure function of (n, batch_size, step, seed).

    Each epoch is one random permutation (seeded by ``seed`` and the epoch number); the last partial batch of an
    epoch is dropped. If ``n < batch_size`` every batch is a permutation of the whole dataset.
    """
    b = min(batch_size, n)
    per_epoch = n // b
    epoch, k = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    return perm[k * b : (k + 1) * b]


# ------------------------------------------------------------------------------------------------ checkpoints
def flatten_optimizer_state(name: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    """Flatten ``opt.state_dict()`` into ``tensors``/``meta`` (in place): the project's one optimizer-state format.

    * tensors ``optim.<name>.state.<param_id>.<key>``: every tensor in the per-parameter state (Adam's ``exp_avg``,
      ``exp_avg_sq``, ``step``), detached, on the CPU, contiguous;
    * metadata ``optim.<name>.param_groups``: the ``param_groups`` list as JSON (hyperparameters and param ids);
    * metadata ``optim.<name>.nontensor_state``: JSON ``{param_id: {key: value}}`` of non-tensor per-parameter state.

    ``unflatten_optimizer_state`` is the inverse. Several optimizers share one file under different ``name``s.
    """
    sd = opt.state_dict()
    nontensor: dict = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim.{name}.state.{pid}.{key}"] = val.detach().cpu().clone().contiguous()
            else:
                nontensor.setdefault(str(pid), {})[key] = val
    meta[f"optim.{name}.param_groups"] = json.dumps(sd["param_groups"])
    meta[f"optim.{name}.nontensor_state"] = json.dumps(nontensor)


def unflatten_optimizer_state(name: str, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], path) -> dict:
    """Rebuild the ``state_dict`` of optimizer ``name`` from the format of ``flatten_optimizer_state``.

    ``path`` only names the file in errors; raises ``ModelFileError`` when the metadata is missing or malformed.
    The result is meant for ``opt.load_state_dict`` (which moves state tensors to the parameters' device).
    """
    try:
        groups = json.loads(meta[f"optim.{name}.param_groups"])
        nontensor = json.loads(meta.get(f"optim.{name}.nontensor_state", "{}"))
    except (KeyError, json.JSONDecodeError) as e:
        raise ModelFileError(f"checkpoint '{path}': missing or malformed optimizer metadata for '{name}' ({e})") from None
    state: dict[int, dict] = {}
    prefix = f"optim.{name}.state."
    for key, val in tensors.items():
        if key.startswith(prefix):
            pid, sub = key[len(prefix) :].split(".", 1)
            state.setdefault(int(pid), {})[sub] = val
    for pid, st in nontensor.items():
        state.setdefault(int(pid), {}).update(st)
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    path,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    step: int = 0,
    config: dict | None = None,
) -> Path:
    """Write modules, optimizers, RNG state and ``step`` to one safetensors file, atomically."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, str] = {"format": CHECKPOINT_FORMAT, "version": "1", "step": str(int(step))}
    for name, mod in modules.items():
        for key, val in mod.state_dict().items():
            tensors[f"module.{name}.{key}"] = val.detach().cpu().clone().contiguous()
    for name, opt in (optimizers or {}).items():
        flatten_optimizer_state(name, opt, tensors, meta)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    meta["config"] = json.dumps(config or {})
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def read_safetensors(path, name: str = "weights") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file -> (tensors, metadata), raising ``ModelFileError`` on missing/corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{name}: '{path}' does not exist or is not a file")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{name}: '{path}' is not a readable safetensors file ({e})") from None
    return tensors, meta


def load_checkpoint(
    path,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    restore_rng: bool = True,
) -> int:
    """Load a checkpoint written by ``save_checkpoint`` into ``modules``/``optimizers``; return its step."""
    path = Path(path)
    tensors, meta = read_safetensors(path, "checkpoint")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"checkpoint '{path}': not a {CHECKPOINT_FORMAT} file (format={meta.get('format')!r})")
    for name, mod in modules.items():
        prefix = f"module.{name}."
        sd = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            mod.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise ModelFileError(f"checkpoint '{path}': weights of '{name}' do not match the model ({e})") from None
    for name, opt in (optimizers or {}).items():
        sd = unflatten_optimizer_state(name, tensors, meta, path)
        try:
            opt.load_state_dict(sd)
        except (ValueError, KeyError) as e:
            raise ModelFileError(f"checkpoint '{path}': optimizer '{name}' does not match ({e})") from None
    if restore_rng:
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
    try:
        return int(meta["step"])
    except (KeyError, ValueError):
        raise ModelFileError(f"checkpoint '{path}': missing or malformed 'step' metadata") from None


# ---------------------------------------------------------------------------------------------- training loop
StepFn = Callable[[Sequence[torch.Tensor], int], Mapping[str, float]]


def _check_data(data: Sequence[torch.Tensor | None]) -> tuple[torch.Tensor, ...]:
    arrays = tuple(d for d in data if d is not None)
    if not arrays:
        raise InvalidInputError("data: no training tensors given")
    for i, a in enumerate(arrays):
        if not isinstance(a, torch.Tensor):
            raise InvalidInputError(f"data[{i}]: expected a torch.Tensor, got {type(a).__name__}")
    n = arrays[0].shape[0] if arrays[0].dim() > 0 else 0
    if n == 0:
        raise InvalidInputError("data: the training set is empty")
    for i, a in enumerate(arrays):
        if a.dim() == 0 or a.shape[0] != n:
            raise InvalidInputError(f"data[{i}]: has {a.shape[0] if a.dim() else 0} rows, expected {n} like data[0]")
        if a.is_floating_point() and not bool(torch.isfinite(a).all()):
            raise InvalidInputError(f"data[{i}]: contains NaN/inf")
    return arrays


def train_loop(
    step_fn: StepFn,
    data: Sequence[torch.Tensor | None],
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    config: TrainConfig,
    desc: str = "train",
) -> History:
    """Run ``step_fn(batch, step)`` for steps ``[start, config.steps)`` with checkpoints, resume and a progress bar.

    ``data`` is a tuple of tensors with the same first dimension (e.g. ``(x,)`` or ``(x, labels)``; ``None`` entries
    are dropped); each step gets the rows ``batch_indices(...)`` of each, moved to the modules' device.
    ``step_fn`` does the whole update (zero_grad, backward, optimizer steps) and returns floats to log.
    The modules must already be on the target device and the optimizers built over their parameters.
    """
    arrays = _check_data(data)
    n = arrays[0].shape[0]
    ref = next((p for m in modules.values() for p in m.parameters()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    start = 0
    ckpt = Path(config.checkpoint) if config.checkpoint else None
    if ckpt is not None and ckpt.exists():
        start = load_checkpoint(ckpt, modules, optimizers)
    else:
        seed_everything(config.seed)
    for m in modules.values():
        m.train()
    history = History(start_step=start, end_step=start)
    t0 = time.perf_counter()
    bar = tqdm(range(start, config.steps), desc=desc, disable=not config.progress, initial=start, total=config.steps,
               dynamic_ncols=True, leave=False)
    cfg_json = {k: v for k, v in dataclasses.asdict(config).items()}
    step = start
    for step in bar:
        idx = batch_indices(n, config.batch_size, step, config.seed)
        batch = tuple(a[idx].to(device, non_blocking=True) for a in arrays)
        logs = step_fn(batch, step)
        history.end_step = step + 1
        if step % config.log_every == 0 or step == config.steps - 1:
            history.records.append({"step": step, **{k: float(v) for k, v in logs.items()}})
            bar.set_postfix({k: f"{float(v):.4g}" for k, v in logs.items()})
        if ckpt is not None and config.checkpoint_every > 0 and (step + 1) % config.checkpoint_every == 0:
            save_checkpoint(ckpt, modules, optimizers, step + 1, cfg_json)
    bar.close()
    if ckpt is not None and history.end_step > start:
        save_checkpoint(ckpt, modules, optimizers, history.end_step, cfg_json)
    history.seconds = time.perf_counter() - t0
    for m in modules.values():
        m.eval()
    return history


def make_optimizer(params, config: TrainConfig, lr: float | None = None) -> torch.optim.Optimizer:
    """AdamW with the config's lr / betas / weight decay (``lr`` overrides the config)."""
    return torch.optim.AdamW(
        [p for p in params if p.requires_grad], lr=config.lr if lr is None else lr, betas=tuple(config.betas),
        weight_decay=config.weight_decay,
    )


def fit(
    model: nn.Module,
    x: torch.Tensor,
    cond: torch.Tensor | None = None,
    config: TrainConfig | None = None,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    desc: str | None = None,
) -> History:
    """Train ``model`` by minimising ``model.loss(x_batch[, cond_batch])`` (or ``loss_fn(model, x, [cond])``).

    ``x`` [N, ...] (and ``cond`` [N] labels or [N, C] vectors) are the training set. Moves the model to
    ``config.device``; returns the :class:`History`. Resumes from ``config.checkpoint`` when that file exists.
    The model is left in ``eval()`` mode.
    """
    config = config or TrainConfig()
    device = select_device(config.device)
    model.to(device)
    opt = make_optimizer(model.parameters(), config)
    loss_fn = loss_fn or (lambda m, *b: m.loss(*b))
    params = [p for p in model.parameters() if p.requires_grad]

    def step_fn(batch, step):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, *batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"fit: non-finite loss {float(loss.detach())} at step {step}; lower the learning rate")
        loss.backward()
        logs = {"loss": float(loss.detach())}
        if config.grad_clip is not None:
            logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, config.grad_clip))
        opt.step()
        return logs

    return train_loop(step_fn, (x, cond), {"model": model}, {"model": opt}, config, desc or type(model).__name__)
