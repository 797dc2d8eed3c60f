"""``human3d implicit``: reconstruct surfaces as signed distance fields (IGR, hash-grid SDF), extract meshes and
evaluate them (Chamfer-L1, normal consistency, F-score, volumetric IoU)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from human3d.cli.runner import check_output_dir, check_output_file, command, say
from human3d.cli.scene import (
    DEVICE, MINUTES, PROGRESS, SEED, SET, STEPS, THREADS, config_epilog, train_overrides,
)  # fmt: skip
from human3d.implicit.trainer import PRESETS, SurfaceFitConfig, SurfaceFitTrainer, compare_meshes, preset

app = typer.Typer(
    help="Implicit surfaces: fit an SDF to a point cloud or mesh (IGR or the fast hash-grid SDF), extract meshes "
         "(MISE / dense marching cubes), evaluate against a reference mesh.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
)  # fmt: skip


@app.command(epilog=config_epilog(SurfaceFitConfig, preset("fast")))
@command
def fit(
    data: Path = typer.Argument(..., help="Point cloud (.ply with or without normals, .xyz: x y z [nx ny nz]) or a "
                                "mesh (.obj/.ply/.off/.stl: points and normals are sampled from it)."),
    method: Optional[str] = typer.Option(None, "--method", help="igr or hashsdf (default hashsdf, the fast CPU path)."),
    preset_name: Optional[str] = typer.Option(None, "--preset", help=f"Config preset: {', '.join(sorted(PRESETS))}."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/implicit-<input>); an "
                                       "existing run there is resumed."),
    steps: Optional[int] = STEPS,
    minutes: Optional[float] = MINUTES,
    device: Optional[str] = DEVICE,
    seed: Optional[int] = SEED,
    threads: Optional[int] = THREADS,
    set_: list[str] = SET,
    progress: bool = PROGRESS,
) -> None:
    """Fit a signed distance field to DATA; writes the run folder, mesh.obj (input units) and turntable.png.
    Ctrl-C saves the checkpoint and exits 130; the same command resumes."""
    over = train_overrides(set_, steps, minutes, None, device, seed, threads)
    if method is not None:
        over["method"] = method
    config = preset(preset_name) if preset_name is not None else None
    run = check_output_dir(out if out is not None else Path("runs") / f"implicit-{Path(data).stem}")
    trainer = SurfaceFitTrainer(run, data, config=config, overrides=over)
    if trainer.resumed:
        say(f"resuming '{run}' at step {trainer.step}")
    last = trainer.train(progress=progress)
    typer.echo(json.dumps({"run": str(run), **{k: last[k] for k in ("step", "elapsed_s", "loss", "outputs") if k in last}}))


@app.command()
@command
def mesh(
    run: Path = typer.Argument(..., help="Run folder written by `human3d implicit fit`."),
    out: Path = typer.Option(Path("surface.obj"), "--out", help="Output mesh (.obj, .ply, .off, .stl)."),
    resolution: int = typer.Option(256, "--resolution", min=2, help="Marching-cubes cells per axis (MISE: 32 "
                                   "times a power of two)."),
    dense: bool = typer.Option(False, "--dense", help="Evaluate every grid vertex instead of MISE."),
) -> None:
    """Extract the zero level set as a mesh in the input's units (normals from the field's gradient)."""
    from human3d.implicit.io import write_mesh

    check_output_file(out, suffixes=(".obj", ".ply", ".off", ".stl", ".glb"))
    m = SurfaceFitTrainer.from_run(run).extract(resolution, "dense" if dense else "mise")
    write_mesh(out, m.vertices, m.faces, m.normals)
    say(f"wrote {out} ({len(m.vertices)} vertices, {len(m.faces)} faces, {m.n_evaluations} field evaluations)")


@app.command("eval")
@command
def evaluate(
    run: Path = typer.Argument(..., help="Run folder written by `human3d implicit fit`."),
    reference: Path = typer.Option(..., "--reference", help="Reference watertight mesh (input units)."),
    resolution: int = typer.Option(256, "--resolution", min=2, help="Marching-cubes resolution of the mesh."),
    n: int = typer.Option(100_000, "--n", min=100, help="Surface and volume samples per metric."),
    tau: float = typer.Option(0.01, "--tau", min=1e-6, help="F-score threshold as a fraction of the reference's "
                              "bounding-box diagonal."),
) -> None:
    """Chamfer-L1, normal consistency, F-score and IoU against REFERENCE; prints JSON and writes RUN/metrics.json."""
    from human3d.io_utils import atomic_write_text

    trainer = SurfaceFitTrainer.from_run(run)
    m = trainer.extract(resolution)
    metrics = compare_meshes(m.vertices, m.faces, reference, n=n, tau_fraction=tau, pred_inside=trainer.inside)
    atomic_write_text(Path(run) / "metrics.json", json.dumps(metrics, indent=2))
    typer.echo(json.dumps(metrics))
