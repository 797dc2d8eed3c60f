"""The commands every scene trainer shares (``train``, ``render``, ``eval``), built once for NeRF, splatting, ...

``make_scene_app(trainer_cls, presets, preset_fn, help)`` returns a typer app; the model's own module adds its
extra commands (``nerf mesh``, ``splat export``). Every config field reaches the command line the same way:
``--set dotted.name=value`` (repeatable), with the list of fields and their docstrings in ``train --help``; the
common ones also have their own options (``--steps``, ``--minutes``, ``--downscale``, ``--device``, ``--seed``,
``--threads``). The CLI passes a config and overrides; the trainer applies the resume rule
(:mod:`human3d.train.core`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import typer

from human3d.cli.runner import check_output_dir, check_output_file, command, say
from human3d.errors import InvalidInputError

__all__ = ["make_scene_app", "train_overrides", "open_run", "config_epilog", "STEPS", "MINUTES", "DEVICE", "SEED",
           "THREADS", "SET", "PROGRESS"]

# the options every trained command shares (use as defaults: ``steps: Optional[int] = STEPS``)
STEPS = typer.Option(None, "--steps", min=1, help="Training steps (run.max_steps); a larger number on an existing "
                     "run trains it further.")
MINUTES = typer.Option(None, "--minutes", min=0.001, help="Time budget in minutes (run.time_budget_s; schedules "
                       "follow the elapsed time).")
DEVICE = typer.Option(None, "--device", help="auto (CUDA when available), cpu or cuda (run.device).")
SEED = typer.Option(None, "--seed", help="Random seed (run.seed).")
THREADS = typer.Option(None, "--threads", min=1, help="torch CPU threads (run.threads).")
SET = typer.Option([], "--set", help="Set any config field: --set NAME=VALUE with a dotted name (listed below); "
                   "the value is JSON when it parses, else a string. Repeatable.")
PROGRESS = typer.Option(True, "--progress/--no-progress", help="Show a progress bar.")


def config_epilog(config_cls, defaults) -> str:
    """``--help`` text listing every dotted config field, its default and its docstring."""
    values = defaults.flat()
    parts = ["Config fields (set any with --set NAME=VALUE; shown with the fast preset's values):"]
    for name, doc in config_cls.field_docs().items():
        v = values.get(name)
        parts.append(f"{name} = {json.dumps(list(v) if isinstance(v, tuple) else v)}: {' '.join(doc.split())}")
    return "\n\n".join(parts)


def train_overrides(set_: list[str], steps=None, minutes=None, downscale=None, device=None, seed=None,
                    threads=None) -> dict:  # fmt: skip
    """``{dotted name: value}`` from the shared options and ``--set`` items (``--set`` wins)."""
    from human3d.config import parse_value

    over: dict = {}
    for name, value in (("run.max_steps", steps), ("run.time_budget_s", None if minutes is None else minutes * 60.0),
                        ("data.downscale", downscale), ("run.device", device), ("run.seed", seed),
                        ("run.threads", threads)):  # fmt: skip
        if value is not None:
            over[name] = value
    for item in set_:
        key, sep, raw = str(item).partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--set: expected NAME=VALUE (e.g. run.max_steps=100), got '{item}'")
        over[key.strip()] = parse_value(raw.strip())
    return over


def open_run(trainer_cls, run: Path):
    """Open a finished or running run folder for rendering / evaluation / export."""
    return trainer_cls.from_run(run)


def make_scene_app(trainer_cls, presets: dict, preset_fn: Callable, help: str,
                   open_file: Callable | None = None, file_suffix: str = ".ply") -> typer.Typer:  # fmt: skip
    """A typer app with ``train``, ``render`` and ``eval`` for a :class:`human3d.train.scene.SceneTrainer`.

    ``open_file(path, data)`` (optional) lets ``render`` / ``eval`` take a model file (``file_suffix``, e.g. a
    3DGS ``.ply``) instead of a run folder: it returns a trainer-like object rendering that file with the cameras
    of the dataset ``data``; its outputs default to a folder named after the file (``model.ply`` -> ``model/``).
    """
    kind = trainer_cls.kind
    name = kind.lower()
    run_help = f"Run folder written by `human3d {name} train`" + (
        f", or a {file_suffix} file (rendered with the cameras of --data; outputs then default to a folder named "
        f"after it, model{file_suffix} -> model/)." if open_file else "."
    )
    data_opt = typer.Option(None, "--data", help="Dataset (Blender or COLMAP folder) whose cameras and images to "
                            f"use: required when RUN is a {file_suffix} file; for a run folder, replaces the run's "
                            "own dataset.")  # fmt: skip

    def is_file(run: Path) -> bool:
        return open_file is not None and Path(run).suffix.lower() == file_suffix

    def base(run: Path) -> Path:
        return Path(run).with_suffix("") if is_file(run) else Path(run)

    def open_any(run: Path, data: Optional[Path]):
        if is_file(run):
            if data is None:
                raise InvalidInputError(f"--data: '{run}' is a {file_suffix} file; name the dataset whose cameras "
                                        "to render with --data DATA")  # fmt: skip
            return open_file(Path(run), Path(data))
        return trainer_cls.from_run(run, data=data)
    app = typer.Typer(help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False)
    epilog = config_epilog(trainer_cls.config_class, preset_fn("fast"))

    @app.command(epilog=epilog)
    @command
    def train(
        data: Path = typer.Argument(..., help="Dataset folder: Blender/nerf_synthetic (transforms_*.json) or COLMAP "
                                    "(sparse/0 + images)."),
        preset: Optional[str] = typer.Option(None, "--preset", help=f"Config preset: {', '.join(sorted(presets))}. "
                                             "Default: 'fast' (CPU) for a new run; a resumed run keeps its own."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help=f"Run folder (default runs/{name}-<dataset>). "
                                           "An existing run there is resumed (only run.* settings may change)."),
        steps: Optional[int] = STEPS,
        minutes: Optional[float] = MINUTES,
        downscale: Optional[float] = typer.Option(None, "--downscale", min=1.0, help="Divide image sizes by this "
                                                  "(data.downscale)."),
        device: Optional[str] = DEVICE,
        seed: Optional[int] = SEED,
        threads: Optional[int] = THREADS,
        set_: list[str] = SET,
        eval_views: int = typer.Option(0, "--eval-views", min=0, help="After training, evaluate this many test "
                                       "views, evenly spaced (0: skip)."),
        progress: bool = PROGRESS,
    ) -> None:
        """Train on DATA; writes run.json, the checkpoint, log.jsonl and training.png to the run folder.
        Ctrl-C saves the checkpoint and exits 130; the same command resumes."""
        over = train_overrides(set_, steps, minutes, downscale, device, seed, threads)
        config = preset_fn(preset) if preset is not None else None
        run = check_output_dir(out if out is not None else Path("runs") / f"{name}-{Path(data).expanduser().resolve().name}")
        trainer = trainer_cls(run, data, config=config, overrides=over)
        if trainer.resumed:
            say(f"resuming '{run}' at step {trainer.step}")
        last = trainer.train(progress=progress)
        keep = ("step", "elapsed_s", "loss", "psnr", "n_gaussians", "outputs")
        summary = {"run": str(run), **{k: last[k] for k in keep if k in last}}
        typer.echo(json.dumps(summary))
        if eval_views > 0:
            m = trainer.evaluate("test", max_views=eval_views)
            say(f"{m['split']}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} over {m['n_views']} views")

    @app.command()
    @command
    def render(
        run: Path = typer.Argument(..., help=run_help),
        data: Optional[Path] = data_opt,
        split: str = typer.Option("test", "--split", help="Render every view of this split (test falls back to "
                                  "val when missing)."),
        orbit: Optional[int] = typer.Option(None, "--orbit", min=1, help="Instead, render an orbit of N frames."),
        video: Optional[Path] = typer.Option(None, "--video", help="MP4 path of the orbit (default RUN/orbit.mp4)."),
        fps: int = typer.Option(24, "--fps", min=1, help="Frames per second of the orbit video."),
        out: Optional[Path] = typer.Option(None, "--out", help="Folder of the split's PNGs (default "
                                           "RUN/renders/<split>)."),
    ) -> None:
        """Render a split's views as PNGs, or an orbit video (MP4)."""
        if video is not None and orbit is None:
            raise InvalidInputError("--video needs --orbit N")
        video = video if video is not None else base(run) / "orbit.mp4"
        if orbit is not None:
            check_output_file(video, "--video", (".mp4",))
        elif out is not None:
            check_output_dir(out)
        trainer = open_any(run, data)
        if orbit is not None:
            path = trainer.render_orbit(orbit, video, fps)
            say(f"wrote {path}")
        else:
            paths = trainer.render_split(split, out)
            say(f"wrote {len(paths)} images to {paths[0].parent if paths else out}")

    @app.command("eval")
    @command
    def evaluate(
        run: Path = typer.Argument(..., help=run_help),
        data: Optional[Path] = data_opt,
        split: str = typer.Option("test", "--split", help="Split to evaluate (test falls back to val when missing)."),
        max_views: Optional[int] = typer.Option(None, "--max-views", min=1, help="Evaluate at most this many evenly "
                                                "spaced views (default: run.eval_max_views, else all)."),
        write_images: bool = typer.Option(True, "--images/--no-images", help="Write the rendered PNGs too."),
    ) -> None:
        """PSNR / SSIM on a split; writes RUN/eval/<split>/metrics.json (LPIPS: no offline weights)."""
        trainer = open_any(run, data)
        m = trainer.evaluate(split, max_views=max_views, write_images=write_images)
        say(f"{m['split']}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} over {m['n_views']} views "
            f"-> {trainer.out / 'eval' / m['split'] / 'metrics.json'}")  # fmt: skip
        typer.echo(json.dumps({k: m[k] for k in ("split", "n_views", "psnr", "ssim", "step") if k in m}))

    return app
