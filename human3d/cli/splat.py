"""``human3d splat``: train 3D Gaussian splatting on a Blender/COLMAP scene, render, evaluate and export .ply
(shared commands: :mod:`human3d.cli.scene`)."""

from __future__ import annotations

from pathlib import Path

import typer

from human3d.cli.runner import check_output_file, command, say
from human3d.cli.scene import make_scene_app, open_run
from human3d.splat.config import PRESETS, preset
from human3d.splat.trainer import SplatTrainer

app = make_scene_app(
    SplatTrainer, PRESETS, preset,
    help="3D Gaussian splatting: train on a posed-image dataset, render views or an orbit video, evaluate "
         "PSNR/SSIM and export the standard 3DGS .ply. Presets: fast (CPU: capped Gaussians, coarse-to-fine, "
         "3000 steps), quality (the reference 30k-step schedule).",
)  # fmt: skip


@app.command()
@command
def export(
    run: Path = typer.Argument(..., help="Run folder written by 'human3d splat train'."),
    ply: Path = typer.Option(..., "--ply", help="Output path of the standard 3DGS .ply (read by splat viewers)."),
) -> None:
    """Export the trained Gaussians to the standard 3DGS .ply."""
    check_output_file(ply, "--ply", (".ply",))
    trainer = open_run(SplatTrainer, run)
    path = trainer.export_ply(ply)
    say(f"wrote {len(trainer.gaussians)} Gaussians to {path}")
