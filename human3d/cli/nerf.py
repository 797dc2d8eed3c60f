"""``human3d nerf``: train, render, evaluate and mesh neural radiance fields (shared commands: :mod:`human3d.cli.scene`)."""

from __future__ import annotations

from pathlib import Path

import typer

from human3d.cli.runner import check_output_file, command, say
from human3d.cli.scene import make_scene_app, open_run
from human3d.nerf.config import PRESETS, preset
from human3d.nerf.trainer import NerfTrainer

app = make_scene_app(
    NerfTrainer, PRESETS, preset,
    help="Neural radiance fields: train on Blender/COLMAP scenes, render views and orbit videos, evaluate "
         "PSNR/SSIM, extract meshes. Presets: fast (CPU), quality (GPU), nerf (the PE-NeRF baseline).",
)  # fmt: skip


@app.command()
@command
def mesh(
    run: Path = typer.Argument(..., help="Run folder written by `human3d nerf train`."),
    out: Path = typer.Option(Path("scene.ply"), "--out", help="Output PLY mesh (vertex colours)."),
    resolution: int = typer.Option(256, "--resolution", min=2, help="Density grid resolution per axis for "
                                   "marching cubes."),
    threshold: float = typer.Option(10.0, "--threshold", help="Density iso-level."),
) -> None:
    """Extract a coloured mesh with marching cubes on the density."""
    check_output_file(out, "--out", (".ply", ".obj", ".glb", ".stl"))
    info = open_run(NerfTrainer, run).extract_mesh(out, resolution=resolution, threshold=threshold)
    say(f"wrote {info['path']} ({info['vertices']} vertices, {info['faces']} faces)")
