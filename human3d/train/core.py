"""The training core every trained model in human3d stands on: run folder, resume rule, loop, checkpoints.

A **run folder** holds:

* ``run.json``: ``{"kind": ..., "config": {...}, "data": "<dataset path or null>"}``, written when the run starts;
* ``checkpoint.safetensors``: the model's state tensors (``model.*``), every optimizer in the one format of
  :func:`generative.training.flatten_optimizer_state` (``optim.<name>.*``), the RNG states (``rng.*``) and a JSON
  ``state`` metadata entry (step, elapsed seconds, the config, the model's extra state). Written atomically
  (temporary file + rename), so a ``kill -9`` at any moment leaves the previous checkpoint intact;
* ``log.jsonl``: one JSON row every ``run.log_every`` steps; ``training.png``: the training curve.

**The resume rule** (one, for every trainer). Opening a folder that has a ``run.json`` resumes that run: its saved
config is used, with the ``overrides`` and any ``config`` given applied on top. Changes to the ``run`` component
(``max_steps``, ``time_budget_s``, logging, checkpoint interval, device, threads) are accepted: a larger step count
or budget *extends* the run. Any other change (the model, the data processing, the optimiser) is refused with an
``InvalidInputError`` naming the fields: the checkpoint would not mean the same thing. Start a new ``--out`` for that.

**Interrupts.** SIGINT (Ctrl-C) and SIGTERM during :meth:`Trainer.train` finish the current step, write the
checkpoint and raise :class:`TrainingInterrupted` (the CLI prints where the checkpoint is and exits 130). A second
Ctrl-C stops at once (the last periodic checkpoint stays valid).

A model's trainer subclasses :class:`Trainer` and implements only :meth:`~Trainer.build`,
:meth:`~Trainer.train_step`, :meth:`~Trainer.state_tensors` / :meth:`~Trainer.load_state_tensors` and
:meth:`~Trainer.optimizers`; scene trainers (NeRF, splatting, DVR) subclass :class:`human3d.train.scene.SceneTrainer`
and add ``render(cameras) -> rgb``.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from generative.training import flatten_optimizer_state, select_device, unflatten_optimizer_state
from human3d.config import Config
from human3d.errors import Human3DError, InvalidInputError, ModelFileError
from human3d.io_utils import atomic_path, atomic_write_text

__all__ = [
    "RUN_FILE",
    "CHECKPOINT_FILE",
    "LOG_FILE",
    "RunConfig",
    "Trainer",
    "TrainingInterrupted",
    "check_run_folder",
    "plot_training_log",
    "read_log",
]

RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.safetensors"
LOG_FILE = "log.jsonl"


@dataclass
class RunConfig(Config):
    """How long and how a run trains: the component every trained model's config has as ``run``.

    These are the only fields a resumed run may change (see the resume rule in :mod:`human3d.train.core`)."""

    max_steps: int = 1000
    """Training steps (with ``time_budget_s``: the schedule length the time budget is mapped onto)."""
    time_budget_s: float | None = None
    """Stop after this many seconds of training (None: no time limit). Schedules then follow elapsed time."""
    budget_clock: str = "wall"
    """Clock of the time budget: ``"wall"`` (elapsed time) or ``"process"`` (this process's CPU time: a fair
    measure on a machine shared with other jobs)."""
    seed: int = 0
    """Seed of every random draw (batches, initialisation, jitter)."""
    device: str = "auto"
    """``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``."""
    threads: int | None = None
    """torch CPU intra-op threads, set process-wide by the trainer (None: leave torch's setting)."""
    log_every: int = 50
    """Append a row to ``log.jsonl`` every this many steps."""
    checkpoint_every: int = 500
    """Write the checkpoint every this many steps (and always at the end and on an interrupt)."""
    eval_max_views: int | None = None
    """Evaluate at most this many views, evenly spaced (None: all)."""

    def validate(self) -> None:
        for name in ("max_steps", "log_every", "checkpoint_every"):
            if not int(getattr(self, name)) > 0:
                raise InvalidInputError(f"run.{name}: expected a positive integer, got {getattr(self, name)}")
        if self.time_budget_s is not None and not (math.isfinite(self.time_budget_s) and self.time_budget_s > 0):
            raise InvalidInputError(f"run.time_budget_s: expected a positive number of seconds, got {self.time_budget_s}")
        if self.budget_clock not in ("wall", "process"):
            raise InvalidInputError(f"run.budget_clock: expected 'wall' or 'process', got '{self.budget_clock}'")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise InvalidInputError(f"run.device: expected 'auto', 'cpu' or 'cuda', got '{self.device}'")
        if self.threads is not None and not int(self.threads) > 0:
            raise InvalidInputError(f"run.threads: expected a positive integer or null, got {self.threads}")
        if self.eval_max_views is not None and not int(self.eval_max_views) > 0:
            raise InvalidInputError(f"run.eval_max_views: expected a positive integer or null (all), got "
                                    f"{self.eval_max_views}")  # fmt: skip


class TrainingInterrupted(Human3DError):
    """Training stopped on SIGINT/SIGTERM after writing its checkpoint (``checkpoint`` is its path)."""

    def __init__(self, checkpoint: Path, step: int, signal_name: str):
        super().__init__(f"{signal_name}: stopped at step {step}; checkpoint saved to '{checkpoint}' "
                         f"(run the same command again to resume)")  # fmt: skip
        self.checkpoint = Path(checkpoint)
        self.step = step
        self.signal_name = signal_name


def check_run_folder(run_dir, kind: str) -> Path:
    """Raise a clear error unless ``run_dir`` is a run folder with a checkpoint (``kind``: "NeRF", "splat", ...)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ModelFileError(f"run folder '{run_dir}' does not exist (expected a folder written by `{kind} train`)")
    if not (run_dir / RUN_FILE).is_file():
        raise ModelFileError(f"'{run_dir}' is not a {kind} run folder (no {RUN_FILE})")
    if not (run_dir / CHECKPOINT_FILE).is_file():
        raise ModelFileError(f"run '{run_dir}' has no checkpoint yet ({CHECKPOINT_FILE})")
    return run_dir


def plot_training_log(out, title: str) -> Path | None:
    """Write ``<out>/training.png`` from ``<out>/log.jsonl``: the training PSNR (its moving average when logged)
    or else the loss, against the step. None when fewer than two rows are usable or nothing is finite (a
    diverged run: the checkpoint and the log are what matter)."""
    from human3d.plots import line_chart

    rows = [r for r in read_log(out) if "step" in r]
    for key, label, ylabel in (("psnr_ema", "train PSNR (moving average)", "PSNR (dB)"),
                               ("psnr", "train PSNR (batch)", "PSNR (dB)"), ("loss", "loss", "loss")):  # fmt: skip
        if len(rows) >= 2 and all(key in r for r in rows):
            values = [float(r[key]) for r in rows]
            if not any(math.isfinite(v) for v in values):
                return None
            return line_chart({label: ([r["step"] for r in rows], values)}, Path(out) / "training.png",
                              title=title, xlabel="step", ylabel=ylabel, legend="lower right")  # fmt: skip
    return None


def read_log(out) -> list[dict]:
    """The rows of ``<out>/log.jsonl`` (a line cut short by a killed run is skipped)."""
    path = Path(out) / LOG_FILE
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


class _SignalGuard:
    """Within ``with``: the first SIGINT/SIGTERM sets ``requested`` (the loop stops after its step); a second
    SIGINT raises KeyboardInterrupt. Outside the main thread signals cannot be caught and nothing is installed."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._old: dict = {}

    def _handler(self, signum, frame) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> "_SignalGuard":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class Trainer:
    """Base of every trainer: run folder, resume rule, loop, checkpoints, training plot (see the module docstring).

    Args:
        out: the run folder (created; resumed when it holds a ``run.json``).
        data: dataset path (None: the resumed run's, or none for models that generate their data).
        config: the config of a new run (None: :meth:`default_config`); on resume, compared to the saved one.
        overrides: ``{dotted name: value}`` applied on top (the CLI's options and ``--set``).

    Subclasses set ``kind`` (used in messages and progress bars) and ``config_class`` (a :class:`Config` with a
    ``run: RunConfig`` component) and implement the methods marked "subclass".
    """

    kind: ClassVar[str] = "model"
    config_class: ClassVar[type[Config]]
    needs_data: ClassVar[bool] = True
    #: fields of a step's info shown in the progress bar (besides loss)
    progress_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, kind: str | None = None, config_class: type[Config] | None = None,
                          default_config: Callable[[], Config] | None = None, progress_fields: tuple | None = None,
                          needs_data: bool | None = None, **kw) -> None:  # fmt: skip
        """``class NerfTrainer(SceneTrainer, kind="NeRF", config_class=NerfConfig, default_config=preset)``."""
        super().__init_subclass__(**kw)
        for name, value in (("kind", kind), ("config_class", config_class), ("progress_fields", progress_fields),
                            ("needs_data", needs_data)):  # fmt: skip
            if value is not None:
                setattr(cls, name, value)
        if default_config is not None:
            cls.default_config = staticmethod(default_config)  # type: ignore[method-assign]

    def __init__(self, out, data=None, config: Config | None = None, overrides: dict[str, Any] | None = None):
        self.out = Path(out).expanduser()
        if self.out.exists() and not self.out.is_dir():
            raise InvalidInputError(f"out: '{self.out}' exists and is not a folder (expected a run folder)")
        saved = self._read_run() if (self.out / RUN_FILE).is_file() else None
        overrides = dict(overrides or {})
        if saved is not None:
            saved_config = self.config_class.from_dict(saved.get("config", {}), where=f"{self.out / RUN_FILE}: config")
            wanted = (config or saved_config).replace(**overrides)
            changed = {k: v for k, v in saved_config.diff(wanted).items() if not k.startswith("run.")}
            if changed:
                what = ", ".join(f"{k}: run has {a!r}, asked for {b!r}" for k, (a, b) in changed.items())
                raise InvalidInputError(
                    f"out: '{self.out}' is an existing {self.kind} run with another configuration ({what}); a "
                    f"resumed run may only change run.* settings (steps, time budget, logging, device). Use a new "
                    f"--out folder to train with these settings."
                )
            config = wanted
            if data is None and saved.get("data"):
                data = saved["data"]
        else:
            config = (config or self.default_config()).replace(**overrides)
        if self.needs_data and data is None:
            raise InvalidInputError(f"{self.kind}: need a dataset path for a new run (or an existing run folder)")
        self.config = config
        self.run: RunConfig = config.run  # type: ignore[attr-defined]
        self.data = None if data is None else Path(data).expanduser().resolve()
        if self.run.threads:
            torch.set_num_threads(int(self.run.threads))
        self.device = select_device(self.run.device)
        torch.manual_seed(self.run.seed)
        self.generator = torch.Generator(device="cpu").manual_seed(self.run.seed)
        self.step = 0
        self.elapsed = 0.0
        self.resumed = False
        self.build()
        if (self.out / CHECKPOINT_FILE).is_file():
            self.load_checkpoint(self.out / CHECKPOINT_FILE)
            self.resumed = True
        else:
            self.on_fresh_start()
        self.out.mkdir(parents=True, exist_ok=True)
        self._write_run()

    # ----------------------------------------------------------------------------------------- subclass API
    @classmethod
    def default_config(cls) -> Config:
        """The config of a new run when none is given (subclass: usually the CPU preset)."""
        return cls.config_class()

    def build(self) -> None:
        """Subclass: create the model and optimizers from ``self.config`` / ``self.data`` (fresh and resumed runs)."""
        raise NotImplementedError

    def on_fresh_start(self) -> None:
        """Subclass (optional): initialisation that only a new run does (a resumed run loads it instead)."""

    def train_step(self) -> dict:
        """Subclass: one optimisation step; returns JSON-able scalars, at least ``loss``. ``self.step`` is the
        number of steps done before this one."""
        raise NotImplementedError

    def after_step(self) -> dict:
        """Subclass (optional): work after ``self.step`` and ``self.elapsed`` were advanced (schedule events such
        as densification); its time counts as training time. Returns extra info for the log."""
        return {}

    def checkpoint_modules(self) -> dict[str, torch.nn.Module]:
        """The ``nn.Module`` s whose state dicts make the checkpoint, by key prefix (``""``: keys unprefixed).
        Default: ``{"": self.model}``; a trainer with several networks returns e.g. ``{"net": ..., "disc": ...}``
        (keys ``net.*``, ``disc.*``). Trainers whose state is not modules override :meth:`state_tensors` instead."""
        model = getattr(self, "model", None)
        if not isinstance(model, torch.nn.Module):
            raise NotImplementedError(f"{type(self).__name__}: implement checkpoint_modules or state_tensors "
                                      "(no nn.Module 'model')")  # fmt: skip
        return {"": model}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors to checkpoint (weights, buffers, statistics). Default: the state dicts of
        :meth:`checkpoint_modules`, each key under its module's prefix."""
        out: dict[str, torch.Tensor] = {}
        for prefix, module in self.checkpoint_modules().items():
            out.update({f"{prefix}.{k}" if prefix else k: v for k, v in module.state_dict().items()})
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], state: dict, path: Path) -> None:
        """Restore :meth:`state_tensors` (on CPU in ``tensors``) and :meth:`extra_state` (``state``); called before
        the optimizers are restored, so it may rebuild them (e.g. for a changed Gaussian count). Default: load each
        of :meth:`checkpoint_modules` from its prefixed keys, a missing, extra or misshapen tensor being a
        :class:`ModelFileError` naming the checkpoint and the prefix."""
        modules = self.checkpoint_modules()
        for prefix, module in modules.items():
            if prefix:
                own = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
            else:  # unprefixed: every key not claimed by a prefixed module
                others = tuple(p + "." for p in modules if p)
                own = {k: v for k, v in tensors.items() if not (others and k.startswith(others))}
            try:
                module.load_state_dict(own)
            except RuntimeError as e:
                where = f"the weights under '{prefix}.*'" if prefix else "the model's weights"
                raise ModelFileError(f"checkpoint '{path}': {where} do not match the run's configuration: {e}") from None

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Subclass: the optimizers to checkpoint, by name."""
        return {}

    def extra_state(self) -> dict:
        """Subclass (optional): JSON-able state to checkpoint besides tensors (counters, queues)."""
        return {}

    # ----------------------------------------------------------------------------------------- opening runs
    @classmethod
    def from_run(cls, run_dir, data=None, **overrides):
        """Open an existing run with its checkpoint (for evaluation, rendering, export or more training)."""
        return cls(check_run_folder(run_dir, cls.kind), data=data, overrides=overrides)

    def _read_run(self) -> dict:
        path = self.out / RUN_FILE
        try:
            run = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ModelFileError(f"run file '{path}' is unreadable: {e}") from None
        if not isinstance(run, dict) or not isinstance(run.get("config"), dict):
            raise ModelFileError(f"run file '{path}': expected an object with a 'config' object")
        if run.get("kind", self.kind) != self.kind:
            raise InvalidInputError(f"out: '{self.out}' is a {run['kind']} run, not a {self.kind} run")
        return run

    def _write_run(self) -> None:
        body = {"kind": self.kind, "config": self.config.to_dict(), "data": None if self.data is None else str(self.data)}
        atomic_write_text(self.out / RUN_FILE, json.dumps(body, indent=2))

    # ----------------------------------------------------------------------------------------- the loop
    def progress(self) -> float:
        """Fraction of the run done: steps over ``max_steps``, or elapsed time over the budget when one is set."""
        if self.run.time_budget_s:
            return min(1.0, self.elapsed / self.run.time_budget_s)
        return min(1.0, self.step / self.run.max_steps)

    def done(self) -> bool:
        return self.progress() >= 1.0

    def before_train(self) -> None:
        """Subclass (optional): move the training data to the device etc. (called by :meth:`train`)."""

    def train(self, callback: Callable[["Trainer", dict], None] | None = None, progress: bool = True) -> dict:
        """Train until ``run.max_steps`` (or ``run.time_budget_s``); checkpoints every ``run.checkpoint_every``
        steps, at the end and on SIGINT/SIGTERM (then raises :class:`TrainingInterrupted`).

        ``callback(trainer, info)`` runs after every step (an exception there stops training; the last checkpoint
        stays valid). Returns the last step's info with ``step`` and ``elapsed_s``.
        """
        from tqdm.auto import tqdm

        run = self.run
        clock = time.process_time if run.budget_clock == "process" else time.perf_counter
        self.before_train()
        total = None if run.time_budget_s else run.max_steps
        bar = tqdm(total=total, initial=self.step if total else 0, disable=not progress, desc=self.kind, unit="step",
                   dynamic_ncols=True)  # fmt: skip
        last: dict = {}
        psnr_ema = None
        with _SignalGuard() as guard:
            try:
                while not self.done() and guard.requested is None:
                    t0 = clock()
                    info = dict(self.train_step())
                    self.step += 1
                    t1 = clock()
                    self.elapsed += t1 - t0
                    info.update(self.after_step())
                    self.elapsed += clock() - t1
                    if "psnr" in info and math.isfinite(info["psnr"]):
                        psnr_ema = info["psnr"] if psnr_ema is None else 0.9 * psnr_ema + 0.1 * info["psnr"]
                        info["psnr_ema"] = psnr_ema
                    info.update(step=self.step, elapsed_s=round(self.elapsed, 4))
                    last = info
                    bar.update(1)
                    bar.set_postfix({k: _short(info[k]) for k in ("loss", *self.progress_fields) if k in info})
                    if self.step % run.log_every == 0 or self.done():
                        with open(self.out / LOG_FILE, "a") as fh:
                            fh.write(json.dumps(_jsonable(info)) + "\n")
                    if self.step % run.checkpoint_every == 0:
                        self.save_checkpoint()
                    if callback is not None:
                        callback(self, info)
            finally:
                bar.close()
            path = self.save_checkpoint()
            if guard.requested is not None:
                raise TrainingInterrupted(path, self.step, guard.requested)
        self.plot()
        outputs = {k: str(v) for k, v in self.finalize().items()}
        return {**last, "step": self.step, "elapsed_s": self.elapsed, **({"outputs": outputs} if outputs else {})}

    def finalize(self) -> dict[str, Path]:
        """Subclass (optional): write the run's end products after training (e.g. the splat ``.ply``);
        returns ``{name: path}``."""
        return {}

    def plot(self) -> Path | None:
        """Write ``training.png`` from ``log.jsonl`` (see :func:`plot_training_log`)."""
        return plot_training_log(self.out, f"{self.kind} training")

    # ----------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, path=None) -> Path:
        """Write model, optimizers, RNG states and counters atomically (safetensors + JSON metadata)."""
        path = Path(path) if path is not None else self.out / CHECKPOINT_FILE
        tensors = {f"model.{k}": v for k, v in self.state_tensors().items()}
        meta: dict[str, str] = {}
        for name, opt in self.optimizers().items():
            flatten_optimizer_state(name, opt, tensors, meta)
        tensors["rng.generator"] = self.generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        tensors = {k: torch.as_tensor(v).detach().cpu().contiguous() for k, v in tensors.items()}
        state = {"kind": self.kind, "step": self.step, "elapsed": self.elapsed, "config": self.config.to_dict(),
                 "extra": self.extra_state()}  # fmt: skip
        meta["state"] = json.dumps(_jsonable(state))
        self.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return path

    def load_checkpoint(self, path) -> None:
        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = dict(fh.metadata() or {})
            state = json.loads(meta["state"])
            tensors = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as e:
            raise ModelFileError(f"checkpoint '{path}' is corrupt or not a human3d {self.kind} checkpoint: {e}") from None
        if state.get("kind", self.kind) != self.kind:
            raise ModelFileError(f"checkpoint '{path}' is a {state.get('kind')} checkpoint, not a {self.kind} one")
        model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        self.load_state_tensors(model, dict(state.get("extra", {})), path)
        for name, opt in self.optimizers().items():
            sd = unflatten_optimizer_state(name, tensors, meta, path)
            try:
                opt.load_state_dict(sd)
            except (ValueError, KeyError, RuntimeError) as e:
                raise ModelFileError(f"checkpoint '{path}': optimizer '{name}' does not match the model ({e})") from None
            _optimizer_state_to(opt, self.device)
        try:
            self.generator.set_state(tensors["rng.generator"])
            torch.set_rng_state(tensors["rng.torch"])
            self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise ModelFileError(f"checkpoint '{path}': missing or malformed counters/RNG state ({e})") from None


def _optimizer_state_to(opt: torch.optim.Optimizer, device: torch.device) -> None:
    """Move moment tensors to ``device`` (Adam's ``step`` counters stay on the CPU, as torch keeps them)."""
    for st in opt.state.values():
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and k != "step":
                st[k] = v.to(device)


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v
