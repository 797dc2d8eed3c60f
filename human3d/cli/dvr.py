"""``human3d dvr``: differentiable volumetric rendering: train occupancy + texture fields from images and masks,
render, evaluate (PSNR / SSIM / mask IoU), extract watertight meshes, make multi-view renders of a mesh
(shared commands: :mod:`human3d.cli.scene`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from human3d.cli.runner import check_output_dir, check_output_file, command, say
from human3d.cli.scene import make_scene_app, open_run
from human3d.dvr.config import PRESETS, preset
from human3d.dvr.trainer import DVRTrainer
from human3d.errors import InvalidInputError

app = make_scene_app(
    DVRTrainer, PRESETS, preset,
    help="Differentiable volumetric rendering (DVR): learn an occupancy surface and its texture from images with "
         "masks (alpha channel or DATA/masks/), render views and orbit videos, evaluate PSNR/SSIM/mask IoU, "
         "extract watertight meshes. Presets: fast (CPU), quality (GPU), tiny (tests).",
)  # fmt: skip
# the shared eval prints PSNR / SSIM; DVR's also reports the mask IoU
app.registered_commands = [c for c in app.registered_commands if c.name != "eval"]


@app.command("eval")
@command
def evaluate(
    run: Path = typer.Argument(..., help="Run folder written by `human3d dvr train`."),
    split: str = typer.Option("test", "--split", help="Split to evaluate (test falls back to val when missing)."),
    max_views: Optional[int] = typer.Option(None, "--max-views", min=1, help="Evaluate at most this many evenly "
                                            "spaced views (default: run.eval_max_views, else all)."),
    write_images: bool = typer.Option(True, "--images/--no-images", help="Write the rendered PNGs too."),
) -> None:
    """PSNR / SSIM and mask IoU on a split; writes RUN/eval/<split>/metrics.json (LPIPS: no offline weights)."""
    m = open_run(DVRTrainer, run).evaluate(split, max_views=max_views, write_images=write_images)
    iou = "n/a" if m.get("mask_iou") is None else f"{m['mask_iou']:.4f}"
    say(f"{m['split']}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, mask IoU {iou} over {m['n_views']} views "
        f"-> {Path(run) / 'eval' / m['split'] / 'metrics.json'}")  # fmt: skip
    typer.echo(json.dumps({k: m[k] for k in ("split", "n_views", "psnr", "ssim", "mask_iou", "step") if k in m}))


@app.command()
@command
def mesh(
    run: Path = typer.Argument(..., help="Run folder written by `human3d dvr train`."),
    out: Path = typer.Option(Path("mesh.obj"), "--out", help="Output mesh (.obj, .ply, .off, .stl, .glb)."),
    resolution: int = typer.Option(256, "--resolution", min=32, help="Marching-cubes cells per axis of the scene "
                                   "box's cube (MISE: 32 times a power of two)."),
    dense: bool = typer.Option(False, "--dense", help="Evaluate every grid vertex instead of MISE."),
) -> None:
    """Extract the occupancy surface (level march.threshold) as a watertight mesh in world units."""
    check_output_file(out, "--out", (".obj", ".ply", ".off", ".stl", ".glb"))
    info = open_run(DVRTrainer, run).extract_mesh(out, resolution, "dense" if dense else "mise")
    say(f"wrote {info['path']} ({info['vertices']} vertices, {info['faces']} faces, "
        f"{'watertight' if info['watertight'] else 'NOT watertight'}, {info['evaluations']} field evaluations)")  # fmt: skip


@app.command("make-renders")
@command
def make_renders(
    mesh_path: str = typer.Argument(..., metavar="MESH|anny", help="A mesh file (.obj, .ply, .off, .stl, .glb) or "
                                    "'anny' (the default Anny body)."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to write (Blender format: transforms_*.json, "
                             "train/, test/, mesh.obj)."),
    views: int = typer.Option(24, "--views", min=1, help="Training views (Fibonacci spiral around the object)."),
    test_views: int = typer.Option(8, "--test-views", min=1, help="Test views (an offset spiral)."),
    size: int = typer.Option(64, "--size", min=8, help="Image side in pixels."),
    shading: str = typer.Option("lambert", "--shading", help="lambert (world-fixed light) or vertex (the mesh's "
                                "vertex colours)."),
    distance: float = typer.Option(4.0, "--distance", min=1.01, help="Camera distance (the object is scaled into "
                                   "the unit ball)."),
) -> None:
    """Render a mesh from many views into an RGBA Blender dataset (alpha = exact mask) with its ground-truth
    mesh, for checking DVR / NeRF against a known surface."""
    from tqdm.auto import tqdm

    from human3d.synth.multiview import MultiviewConfig, anny_mesh, load_mesh_file, render_multiview

    check_output_dir(out)
    cfg = MultiviewConfig(n_train=views, n_test=test_views, size=size, shading=shading, distance=distance).validate()
    if mesh_path.lower() == "anny":
        v, f = anny_mesh()
        colors = None
    else:
        v, f, colors = load_mesh_file(mesh_path)
    if shading == "vertex" and colors is None:
        raise InvalidInputError(f"--shading vertex: '{mesh_path}' has no vertex colours (use --shading lambert)")
    with tqdm(total=views + test_views, desc="renders", unit="view") as bar:
        render_multiview(v, f, out, cfg, colors, source=mesh_path, progress=bar.update)
    say(f"wrote {views} + {test_views} views ({size} px) and mesh.obj to {out}")
