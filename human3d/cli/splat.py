"""``human3d splat``: train 3D Gaussian splatting on a Blender/COLMAP scene, render, evaluate and export .ply."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from human3d.errors import Human3DError, InvalidInputError

app = typer.Typer(help="3D Gaussian splatting: train on a posed-image dataset, render views or an orbit video, "
                  "evaluate PSNR/SSIM and export the standard 3DGS .ply.", add_completion=False,
                  no_args_is_help=True, pretty_exceptions_show_locals=False)  # fmt: skip
console = Console(stderr=True, soft_wrap=True, highlight=False)


def _say(msg: str) -> None:
    console.print(msg, markup=False)


def _fail(exc: Exception) -> None:
    console.print(Text("error: ", style="red") + Text(str(exc)))
    raise typer.Exit(2) from None


@app.command()
def train(
    data: Path = typer.Argument(..., help="Dataset folder: Blender/nerf_synthetic (transforms_*.json) or COLMAP "
                                "(sparse/0 + images)."),
    preset: str = typer.Option("fast", "--preset", help="Configuration preset: 'fast' (CPU: capped Gaussians, "
                               "coarse-to-fine, 3000 steps) or 'quality' (the reference 30k-step schedule)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default: runs/splat-<dataset>). An "
                                       "existing checkpoint there is resumed."),
    iterations: Optional[int] = typer.Option(None, "--iterations", min=1, help="Override the number of steps."),
    minutes: Optional[float] = typer.Option(None, "--minutes", min=0.01, help="Train for this many minutes "
                                            "instead (schedules follow the elapsed time)."),
    downscale: Optional[float] = typer.Option(None, "--downscale", min=1.0, help="Divide the image size by this."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads."),
    set_: list[str] = typer.Option([], "--set", help="Override any SplatConfig field, e.g. --set max_gaussians=50000 "
                                   "(value parsed as JSON when possible). Repeatable."),
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Evaluate on the test split after training."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train Gaussians on DATA; writes the checkpoint, log, point_cloud.ply and (with --eval) test metrics."""
    from human3d.splat.config import preset as make_preset
    from human3d.splat.trainer import SplatTrainer

    try:
        overrides = {}
        for item in set_:
            if "=" not in item:
                raise InvalidInputError(f"--set: expected KEY=VALUE, got '{item}'")
            k, v = item.split("=", 1)
            try:
                overrides[k.strip()] = json.loads(v)
            except json.JSONDecodeError:
                overrides[k.strip()] = v
        if iterations is not None:
            overrides["iterations"] = iterations
        if minutes is not None:
            overrides["time_budget_s"] = minutes * 60.0
        if downscale is not None:
            overrides["downscale"] = downscale
        if threads is not None:
            overrides["threads"] = threads
        cfg = make_preset(preset, **overrides)
        run = out if out is not None else Path("runs") / f"splat-{Path(data).resolve().name}"
        trainer = SplatTrainer(cfg, data, run)
        if trainer.step > 0:
            _say(f"resuming '{run}' at step {trainer.step}")
        last = trainer.train(progress=progress)
        ply = trainer.export_ply(run / "point_cloud.ply")
        _say(f"trained {last['step']} steps in {last['elapsed_s']:.0f} s: {last['n_gaussians']} Gaussians, "
                      f"train PSNR {last.get('psnr', float('nan')):.2f} dB; wrote {ply}")  # fmt: skip
        if evaluate:
            m = trainer.evaluate("test")
            _say(f"{m['split']}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} over {m['n_views']} views")
    except Human3DError as e:
        _fail(e)


@app.command()
def render(
    run: Path = typer.Argument(..., help="Run folder written by 'human3d splat train'."),
    split: str = typer.Option("test", "--split", help="Render every view of this dataset split (test falls back "
                              "to val when missing)."),
    orbit: Optional[int] = typer.Option(None, "--orbit", min=1, help="Instead, render an orbit of N frames."),
    video: Optional[Path] = typer.Option(None, "--video", help="MP4 path of the orbit (default RUN/orbit.mp4)."),
    fps: int = typer.Option(24, "--fps", min=1, help="Frames per second of the orbit video."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Folder of the split's PNGs (default "
                                           "RUN/renders/<split>)."),
) -> None:
    """Render a split's views as PNGs, or an orbit video."""
    from human3d.splat.trainer import SplatTrainer

    try:
        trainer = SplatTrainer.from_run(run)
        if orbit is not None:
            path = trainer.render_orbit(orbit, video if video is not None else Path(run) / "orbit.mp4", fps)
            _say(f"wrote {path}")
        else:
            if video is not None:
                raise InvalidInputError("--video needs --orbit N")
            paths = trainer.render_split(split, out_dir)
            _say(f"wrote {len(paths)} images to {paths[0].parent if paths else out_dir}")
    except Human3DError as e:
        _fail(e)


@app.command("eval")
def eval_(
    run: Path = typer.Argument(..., help="Run folder written by 'human3d splat train'."),
    split: str = typer.Option("test", "--split", help="Dataset split (test falls back to val when missing)."),
    max_views: Optional[int] = typer.Option(None, "--max-views", min=1, help="Evaluate at most this many views."),
    write_images: bool = typer.Option(True, "--images/--no-images", help="Write the rendered PNGs too."),
) -> None:
    """PSNR / SSIM of the run's renders against the split's images (writes RUN/eval/<split>/metrics.json)."""
    from human3d.splat.trainer import SplatTrainer

    try:
        m = SplatTrainer.from_run(run).evaluate(split, max_views=max_views, write_images=write_images)
        typer.echo(json.dumps({k: m[k] for k in ("split", "n_views", "psnr", "ssim", "n_gaussians", "step")}))
    except Human3DError as e:
        _fail(e)


@app.command()
def export(
    run: Path = typer.Argument(..., help="Run folder written by 'human3d splat train'."),
    ply: Path = typer.Option(..., "--ply", help="Output path of the standard 3DGS .ply (read by splat viewers)."),
) -> None:
    """Export the trained Gaussians to the standard 3DGS .ply."""
    from human3d.splat.trainer import SplatTrainer

    try:
        if Path(ply).suffix.lower() != ".ply":
            raise InvalidInputError(f"--ply: expected a path ending in .ply, got '{ply}'")
        trainer = SplatTrainer.from_run(run)
        path = trainer.export_ply(ply)
        _say(f"wrote {len(trainer.gaussians)} Gaussians to {path}")
    except Human3DError as e:
        _fail(e)
