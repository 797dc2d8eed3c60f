"""``human3d nerf``: train, render, evaluate and mesh neural radiance fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from human3d.errors import Human3DError

app = typer.Typer(help="Neural radiance fields: train on Blender/COLMAP scenes, render views and orbit videos, "
                       "evaluate PSNR/SSIM, extract meshes.", no_args_is_help=True)  # fmt: skip


def _fail(e: Exception) -> None:
    typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@app.command()
def train(
    data: Path = typer.Argument(..., help="Dataset folder: Blender (transforms_*.json) or COLMAP (sparse/0 + images)."),
    preset: str = typer.Option("fast", help="Config preset: fast (CPU), quality (GPU) or nerf (PE-NeRF baseline)."),
    out: Path = typer.Option(Path("runs/nerf"), help="Run folder (config, checkpoint, logs); resumed if it exists."),
    steps: Optional[int] = typer.Option(None, help="Override the number of training steps."),
    minutes: Optional[float] = typer.Option(None, help="Stop after this many minutes of training."),
    downscale: Optional[float] = typer.Option(None, help="Divide image sizes by this factor."),
    device: str = typer.Option("auto", help="auto (CUDA if available), cpu or cuda."),
    seed: int = typer.Option(0, help="Random seed."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
    eval_views: int = typer.Option(0, help="After training, evaluate this many test views (0: skip)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
):
    """Train a NeRF on DATA (resumes from OUT's checkpoint when there is one)."""
    from human3d.nerf import NerfTrainer
    from human3d.nerf.config import preset as make_preset

    try:
        over = {"device": device, "seed": seed}
        if steps is not None:
            over["max_steps"] = steps
        if minutes is not None:
            over["time_budget_s"] = minutes * 60.0
        if downscale is not None:
            over["downscale"] = downscale
        if threads is not None:
            over["threads"] = threads
        cfg = make_preset(preset, **over)
        if (out / "run.json").is_file():  # resume: keep the run's config, apply only the explicit budget options
            from human3d.nerf.config import NerfConfig
            from human3d.runs import read_run

            saved = NerfConfig.from_dict(read_run(out)["config"])
            budget = {k: over[k] for k in ("max_steps", "time_budget_s") if k in over}
            cfg = saved.replace(**budget)
        trainer = NerfTrainer(cfg, data, out)
        if trainer.step > 0:
            typer.echo(f"resuming {out} at step {trainer.step}")
        summary = trainer.train(progress=progress)
        typer.echo(json.dumps({"run": str(out), **summary}))
        if eval_views > 0:
            m = trainer.evaluate("test", max_views=eval_views)
            typer.echo(f"{m['split']}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} over {m['n_views']} views")
    except (Human3DError, OSError) as e:
        _fail(e)


@app.command()
def render(
    run: Path = typer.Argument(..., help="Run folder written by `nerf train`."),
    split: str = typer.Option("test", help="Render every view of this split (test falls back to val)."),
    orbit: int = typer.Option(0, help="Instead, render an orbit of this many frames around the scene."),
    video: Optional[Path] = typer.Option(None, help="MP4 path for the orbit (default RUN/orbit.mp4)."),
    fps: int = typer.Option(24, help="Frames per second of the orbit video."),
    out: Optional[Path] = typer.Option(None, help="Folder for rendered split images (default RUN/renders/SPLIT)."),
):
    """Render the views of a split, or an orbit video."""
    from human3d.nerf import NerfTrainer

    try:
        trainer = NerfTrainer.from_run(run)
        if orbit > 0:
            path = trainer.render_orbit(orbit, video or run / "orbit.mp4", fps=fps)
            typer.echo(f"wrote {path}")
        else:
            paths = trainer.render_split(split, out)
            typer.echo(f"wrote {len(paths)} images to {paths[0].parent if paths else out}")
    except (Human3DError, OSError) as e:
        _fail(e)


@app.command("eval")
def evaluate(
    run: Path = typer.Argument(..., help="Run folder written by `nerf train`."),
    split: str = typer.Option("test", help="Split to evaluate (test falls back to val when missing)."),
    max_views: Optional[int] = typer.Option(None, help="Evaluate at most this many evenly spaced views."),
):
    """PSNR and SSIM on a split; writes the rendered images and metrics.json (LPIPS: not available offline)."""
    from human3d.nerf import NerfTrainer

    try:
        trainer = NerfTrainer.from_run(run)
        m = trainer.evaluate(split, max_views=max_views)
        typer.echo(
            f"{m['split']}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} over {m['n_views']} views "
            f"(LPIPS not computed: no offline weights) -> {run / 'eval' / m['split'] / 'metrics.json'}"
        )
    except (Human3DError, OSError) as e:
        _fail(e)


@app.command()
def mesh(
    run: Path = typer.Argument(..., help="Run folder written by `nerf train`."),
    out: Path = typer.Option(Path("scene.ply"), help="Output PLY mesh."),
    resolution: int = typer.Option(256, help="Density grid resolution per axis for marching cubes."),
    threshold: float = typer.Option(10.0, help="Density iso-level."),
):
    """Extract a coloured mesh with marching cubes on the density."""
    from human3d.nerf import NerfTrainer

    try:
        trainer = NerfTrainer.from_run(run)
        info = trainer.extract_mesh(out, resolution=resolution, threshold=threshold)
        typer.echo(f"wrote {info['path']} ({info['vertices']} vertices, {info['faces']} faces)")
    except (Human3DError, OSError) as e:
        _fail(e)
