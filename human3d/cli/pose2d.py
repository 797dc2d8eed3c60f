"""``human3d pose2d ...``: train and evaluate 2D pose heatmap networks on synthetic humans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from human3d.cli.runner import command, say
from human3d.cli.scene import DEVICE, MINUTES, PROGRESS, SEED, SET, STEPS, THREADS, config_epilog, train_overrides

app = typer.Typer(help="2D pose heatmap networks (SimpleBaseline, CPM) trained on synthetic humans.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False)  # fmt: skip


def _epilog() -> str:
    from human3d.pose2d.train import Pose2DConfig, preset

    return config_epilog(Pose2DConfig, preset("fast"))


def _summary(m: dict) -> str:
    from human3d.pose2d.train import DECODERS

    parts = [f"{d} {m[d]['pck@0.2']:.3f}" for d in DECODERS if d in m]
    return f"held-out synthetic PCK@0.2 ({m['n_people']} people): " + ", ".join(parts)


@app.command(epilog=_epilog())
@command
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder. An existing run there is resumed (only run.* "
                             "settings may change)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Config preset: fast (CPU, default for a new run), "
                                         "cpm (multi-stage network), full (longer, data refreshed on the fly)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Train on a fixed COCO folder written by `human3d synth "
                                        "make` instead of rendering a synthetic pool."),
    steps: Optional[int] = STEPS,
    minutes: Optional[float] = MINUTES,
    device: Optional[str] = DEVICE,
    seed: Optional[int] = SEED,
    threads: Optional[int] = THREADS,
    set_: list[str] = SET,
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Evaluate on the held-out synthetic set after "
                                  "training."),
    progress: bool = PROGRESS,
) -> None:
    """Train a heatmap network; writes run.json, the checkpoint, log.jsonl, training.png and eval/metrics.json to
    the run folder. Ctrl-C saves the checkpoint and exits 130; the same command resumes."""
    from human3d.pose2d.train import Pose2DTrainer
    from human3d.pose2d.train import preset as make_preset

    over = train_overrides(set_, steps, minutes, None, device, seed, threads)
    config = make_preset(preset) if preset is not None else None
    trainer = Pose2DTrainer(out, data, config=config, overrides=over)
    if trainer.resumed:
        say(f"resuming '{out}' at step {trainer.step}")
    last = trainer.train(progress=progress)
    summary = {"run": str(out), **{k: last[k] for k in ("step", "elapsed_s", "loss") if k in last},
               "n_parameters": trainer.n_parameters}  # fmt: skip
    if evaluate:
        m = trainer.evaluate()
        say(_summary(m))
        summary["pck@0.2"] = {d: m[d]["pck@0.2"] for d in ("argmax", "dark", "soft_argmax")}
    typer.echo(json.dumps(summary))


@app.command("eval")
@command
def evaluate(
    run: Path = typer.Argument(..., help="Run folder written by `human3d pose2d train`."),
    flip_test: bool = typer.Option(False, "--flip-test/--no-flip-test", help="Average with the mirrored crop's "
                                   "heatmaps."),
) -> None:
    """PCK@0.2/0.1/0.05 (bbox), PCK@0.2 (torso) and OKS AP on the held-out synthetic set per decoder; writes
    RUN/eval/metrics.json."""
    from human3d.pose2d.train import Pose2DTrainer

    m = Pose2DTrainer.from_run(run).evaluate(flip_test=flip_test)
    say(_summary(m) + f" -> {Path(run) / 'eval' / 'metrics.json'}")
    typer.echo(json.dumps(m))
