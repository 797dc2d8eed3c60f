"""``human3d implicit``: reconstruct surfaces as signed distance fields (IGR, hash-grid SDF), extract meshes and
evaluate them (Chamfer-L1, normal consistency, F-score, volumetric IoU); learn a shape space (DeepSDF over Anny
bodies or a mesh folder), complete a shape from one depth view and sample new ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from human3d.cli.runner import check_output_dir, check_output_file, command, say
from human3d.cli.scene import (
    DEVICE, MINUTES, PROGRESS, SEED, SET, STEPS, THREADS, config_epilog, train_overrides,
)  # fmt: skip
from human3d.implicit.shapes import ShapeSpaceConfig, shape_preset
from human3d.implicit.trainer import PRESETS, SurfaceFitConfig, SurfaceFitTrainer, compare_meshes, preset

app = typer.Typer(
    help="Implicit surfaces: fit an SDF to a point cloud or mesh (IGR or the fast hash-grid SDF), extract meshes "
         "(MISE / dense marching cubes), evaluate against a reference mesh; learn a shape space (DeepSDF over Anny "
         "bodies or a mesh folder), complete a body from one depth view, sample new shapes.",
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
    run: Path = typer.Argument(..., help="Run folder written by `human3d implicit fit` or `train-shapes`."),
    out: Path = typer.Option(Path("surface.obj"), "--out", help="Output mesh (.obj, .ply, .off, .stl)."),
    resolution: int = typer.Option(256, "--resolution", min=2, help="Marching-cubes cells per axis (MISE: 32 "
                                   "times a power of two)."),
    dense: bool = typer.Option(False, "--dense", help="Evaluate every grid vertex instead of MISE."),
    shape: Optional[int] = typer.Option(None, "--shape", min=0, help="Shape-space (train-shapes) runs: the training "
                                        "shape to extract (default: the mean code's shape; OccNet runs: the shape "
                                        "completed from the training shape's first view, by default the mean "
                                        "code of those views)."),
) -> None:
    """Extract the zero level set as a mesh in the input's units (normals from the field's gradient)."""
    from human3d.errors import InvalidInputError
    from human3d.implicit.io import write_mesh

    check_output_file(out, suffixes=(".obj", ".ply", ".off", ".stl", ".glb"))
    method = "dense" if dense else "mise"
    kind = _run_kind(run)
    if kind == "OccNet":
        from human3d.implicit.occnet_shapes import open_occnet_run

        m = open_occnet_run(run).shape_mesh(shape, resolution, method)
    elif kind == "DeepSDF":
        t = _open_shape_run(run)
        m = t.extract(t.codes.mean(0), resolution, method) if shape is None else t.shape_mesh(shape, resolution, method)
    elif shape is not None:
        raise InvalidInputError(f"--shape: '{run}' is a single-surface run (implicit fit), not a shape space")
    else:
        m = SurfaceFitTrainer.from_run(run).extract(resolution, method)
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


# ------------------------------------------------------------------------------------ learned shape spaces (DeepSDF)
def _open_shape_run(run: Path):
    from human3d.implicit.shapes import ShapeSpaceTrainer

    return ShapeSpaceTrainer.from_run(run)


def _run_kind(run: Path) -> str | None:
    try:
        return json.loads((Path(run) / "run.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


@app.command("train-shapes", epilog=config_epilog(ShapeSpaceConfig, shape_preset("fast")))
@command
def train_shapes(
    data: Optional[Path] = typer.Argument(None, help="Folder of watertight meshes (DeepSDF over them, each in its "
                                          "own unit sphere); omit for --family anny."),
    family: Optional[str] = typer.Option(None, "--family", help="anny (bodies generated on the fly) or meshes "
                                         "(DATA); default: meshes when DATA is given, else anny."),
    method: Optional[str] = typer.Option(None, "--method", help="deepsdf (auto-decoder + code priors; completion "
                                         "optimises a code) or occnet (a point-cloud encoder + occupancy decoder; "
                                         "completion is one forward pass; --set keys of OccNetShapeConfig: "
                                         "views_per_shape, view_size, n_input, c_dim, encoder_hidden, near_fraction, "
                                         "...); default deepsdf, or the existing run's."),
    n_shapes: Optional[int] = typer.Option(None, "--n-shapes", min=1, help="Anny bodies to generate (n_shapes)."),
    poses: Optional[str] = typer.Option(None, "--poses", help="Anny poses: prior (the shipped mocap-trained pose flow) or rest."),
    preset_name: Optional[str] = typer.Option(None, "--preset", help="Config preset: fast (64 bodies, minutes on a "
                                              "CPU), bodies (256), tiny (tests)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/shapes-<family>); an "
                                       "existing run there is resumed."),
    steps: Optional[int] = STEPS,
    minutes: Optional[float] = MINUTES,
    device: Optional[str] = DEVICE,
    seed: Optional[int] = SEED,
    threads: Optional[int] = THREADS,
    set_: list[str] = SET,
    progress: bool = PROGRESS,
) -> None:
    """Learn a shape space over Anny bodies or a mesh folder: a DeepSDF auto-decoder (one code per shape, N(0,
    sigma^2) code regularisation, clamped L1; at the end the code priors (Gaussian, RealNVP flow) and mean.obj) or,
    with --method occnet, an occupancy network conditioned on one-view point clouds (ResNet-PointNet encoder, BCE;
    at the end example.obj). Ctrl-C saves the checkpoint and exits 130; the same command resumes."""
    from human3d.errors import InvalidInputError
    from human3d.implicit.occnet_shapes import OccNetShapeTrainer, occnet_preset
    from human3d.implicit.shapes import ShapeSpaceTrainer

    if method is not None and method not in ("deepsdf", "occnet"):
        raise InvalidInputError(f"--method: expected deepsdf or occnet, got {method!r}")

    over = train_overrides(set_, steps, minutes, None, device, seed, threads)
    fam = family or ("meshes" if data is not None else "anny")
    if fam == "meshes" and data is None:
        raise InvalidInputError("DATA: --family meshes needs a folder of watertight meshes")
    if fam == "anny" and data is not None:
        raise InvalidInputError(f"DATA: --family anny generates its bodies; got a folder '{data}' (use --family "
                                "meshes, or omit DATA)")  # fmt: skip
    over["family"] = fam
    for k, v in (("n_shapes", n_shapes), ("poses", poses)):
        if v is not None:
            over[k] = v
    default = Path("runs") / (f"shapes-{Path(data).name}" if data is not None else "shapes-anny")
    run = check_output_dir(out if out is not None else default)
    kind = _run_kind(run)
    if method is None:
        method = "occnet" if kind == OccNetShapeTrainer.kind else "deepsdf"
    cls, make = (OccNetShapeTrainer, occnet_preset) if method == "occnet" else (ShapeSpaceTrainer, shape_preset)
    if kind is not None and kind != cls.kind:
        raise InvalidInputError(f"--method: '{run}' is an existing {kind} run, not a {cls.kind} one (use another "
                                "--out, or the run's method)")  # fmt: skip
    config = make(preset_name) if preset_name is not None else None
    trainer = cls(run, data, config=config, overrides=over)
    if trainer.resumed:
        say(f"resuming '{run}' at step {trainer.step}")
    last = trainer.train(progress=progress)
    typer.echo(json.dumps({"run": str(run), **{k: last[k] for k in ("step", "elapsed_s", "loss", "outputs") if k in last}},
                          default=str))


def _read_partial(path: Path):
    from human3d.implicit.completion import check_partial_points
    from human3d.implicit.io import read_points

    pts, _ = read_points(path)
    return check_partial_points(pts, f"PARTIAL '{path}'")


@app.command()
@command
def complete(
    run: Path = typer.Argument(..., help="DeepSDF or OccNet run folder written by `human3d implicit train-shapes`."),
    partial: Path = typer.Argument(..., help="Observed points (.ply/.xyz), e.g. one depth view back-projected: for "
                                   "an Anny run in Anny's frame (metres, root at the origin, Y up, facing +Z); for "
                                   "a mesh-folder run in the unit frame."),
    out: Path = typer.Option(Path("completed.obj"), "--out", help="Output mesh (.obj, .ply, .off, .stl)."),
    prior: str = typer.Option("gaussian", "--prior", help="Code prior: gaussian, flow (the run's RealNVP) or none."),
    camera: Optional[str] = typer.Option(None, "--camera", help="Camera centre 'x,y,z' (same frame as PARTIAL): "
                                         "adds the free-space term along the view rays."),
    steps: int = typer.Option(400, "--steps", min=1, help="Adam steps on the code."),
    prior_weight: Optional[float] = typer.Option(None, "--prior-weight", min=0.0, help="Weight of the prior's "
                                                 "energy (nats); default 1e-4 (gaussian), 1e-5 (flow), chosen on "
                                                 "validation bodies."),
    resolution: int = typer.Option(128, "--resolution", min=2, help="MISE resolution (32 times a power of two)."),
) -> None:
    """Complete a shape from a partial point cloud; writes the watertight mesh in PARTIAL's frame. DeepSDF runs
    optimise the code (surface points f = 0, free space f >= 0 in front of them, plus the prior's energy); OccNet
    runs encode the cloud in one forward pass (--prior, --camera, --steps and --prior-weight do not apply)."""
    import numpy as np
    import torch

    from human3d.errors import InvalidInputError
    from human3d.implicit.completion import DEFAULT_PRIOR_WEIGHTS, CompletionConfig, complete_code
    from human3d.implicit.io import write_mesh

    check_output_file(out, suffixes=(".obj", ".ply", ".off", ".stl", ".glb"))
    if prior not in ("gaussian", "flow", "none"):
        raise InvalidInputError(f"--prior: expected gaussian, flow or none, got {prior!r}")
    origin = None
    if camera is not None:
        try:
            origin = np.array([float(c) for c in camera.split(",")], np.float64)
        except ValueError:
            origin = np.zeros(0)
        if origin.shape != (3,) or not np.isfinite(origin).all():
            raise InvalidInputError(f"--camera: expected three numbers 'x,y,z', got {camera!r}")
    pts = _read_partial(partial)
    if _run_kind(run) == "OccNet":
        from human3d.implicit.occnet_shapes import open_occnet_run

        m = open_occnet_run(run).complete(pts, resolution)
        write_mesh(out, m.vertices, m.faces, m.normals)
        say(f"wrote {out} ({len(m.vertices)} vertices; {len(pts)} observed points, OccNet: one forward pass)")
        return
    trainer = _open_shape_run(run)
    frame = trainer.frame
    pu = pts if frame is None else frame.to_unit(pts)
    ou = None if origin is None else (origin if frame is None else frame.to_unit(origin[None])[0])
    p = None if prior == "none" else trainer.code_prior(prior)
    w = DEFAULT_PRIOR_WEIGHTS.get(prior, 0.0) if prior_weight is None else prior_weight
    z = complete_code(trainer.decoder, torch.as_tensor(pu, dtype=torch.float32), None if ou is None else torch.as_tensor(ou),
                      p, CompletionConfig(steps=steps, prior_weight=w), z0=trainer.codes.mean(0))  # fmt: skip
    m = trainer.extract(z, resolution)
    write_mesh(out, m.vertices, m.faces, m.normals)
    say(f"wrote {out} ({len(m.vertices)} vertices; {len(pts)} observed points, prior {prior})")


@app.command()
@command
def sample(
    run: Path = typer.Argument(..., help="DeepSDF run folder written by `human3d implicit train-shapes`."),
    n: int = typer.Option(4, "--n", min=1, help="Shapes to sample."),
    out: Path = typer.Option(Path("samples"), "--out", help="Output folder: sample_000.obj ... and codes.json."),
    prior: str = typer.Option("flow", "--prior", help="Code prior to sample: flow or gaussian."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the codes."),
    resolution: int = typer.Option(128, "--resolution", min=2, help="MISE resolution (32 times a power of two)."),
    progress: bool = PROGRESS,
) -> None:
    """Generate new shapes: codes drawn from the run's code prior, meshes by MISE + marching cubes (the family's
    units: metres for Anny)."""
    import torch
    from tqdm import tqdm

    from human3d.errors import InvalidInputError
    from human3d.implicit.io import write_mesh
    from human3d.io_utils import atomic_write_text

    if prior not in ("gaussian", "flow"):
        raise InvalidInputError(f"--prior: expected gaussian or flow, got {prior!r}")
    out = check_output_dir(out)
    trainer = _open_shape_run(run)
    codes = trainer.code_prior(prior).sample(n, generator=torch.Generator().manual_seed(seed))  # [n, D]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in tqdm(range(n), desc="sampling shapes", disable=not progress):
        m = trainer.extract(codes[i], resolution)
        written.append(str(write_mesh(out / f"sample_{i:03d}.obj", m.vertices, m.faces, m.normals)))
    atomic_write_text(out / "codes.json", json.dumps({"prior": prior, "seed": seed, "codes": codes.tolist()}))
    typer.echo(json.dumps({"meshes": written}))
