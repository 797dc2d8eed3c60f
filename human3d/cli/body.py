"""``human3d body ...``: inspect body models, pose them from parameter files, export meshes; and the demo."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Body models: export posed meshes, show model information.", no_args_is_help=True)
console = Console(stderr=True)


class ModelName(str, Enum):
    anny = "anny"
    smpl = "smpl"
    smplh = "smplh"
    smplx = "smplx"


class Gender(str, Enum):
    neutral = "neutral"
    male = "male"
    female = "female"


def _load_model(model: ModelName, model_path: Optional[Path], gender: Gender, num_betas: int):
    from human3d.body import load_body_model

    return load_body_model(model.value, model_path=model_path, gender=gender.value, num_betas=num_betas)


def _run(fn):
    """Run ``fn`` through the one CLI runner (:mod:`human3d.cli.runner`: bad input -> one line, exit 2)."""
    from human3d.cli.runner import command

    return command(fn)()


def render_body_png(path: Path, vertices, faces, width: int = 512, height: int = 512, image=None) -> Path:
    """Render a shaded front view of one body (vertices [V, 3], canonical frame) to a PNG (atomically)."""
    import numpy as np

    from human3d.geometry import frame_points
    from human3d.render.overlay import render_overlay, save_png

    cams = frame_points(vertices.detach(), width, height)
    background = np.full((height, width, 3), 255, np.uint8) if image is None else image
    rgb = render_overlay(background, vertices.detach(), faces, cams, alpha=1.0)
    return save_png(path, rgb)


@app.command("export")
def export(
    out: Path = typer.Option(..., "--out", "-o", help="Output mesh: .obj, .ply or .glb (format from the suffix)."),
    model: ModelName = typer.Option(ModelName.anny, help="Body model family. 'anny' is embedded and needs no file."),
    model_path: Optional[Path] = typer.Option(
        None, help="SMPL/SMPL-H/SMPL-X model file (.pkl/.npz) or folder (smplx layout). Not used for Anny."
    ),
    gender: Gender = typer.Option(Gender.neutral, help="SMPL family gender (Anny's gender is a phenotype)."),
    num_betas: int = typer.Option(10, help="Number of SMPL-family shape coefficients to use."),
    params: Optional[Path] = typer.Option(
        None, help="Parameter file (.npz/.json, smplx names) to pose the body; default: rest pose, mean shape."
    ),
    index: int = typer.Option(0, help="Which body of a batched parameter file to export."),
    render: Optional[Path] = typer.Option(None, help="Also render a shaded front view to this PNG."),
    save_params_to: Optional[Path] = typer.Option(
        None, "--save-params", help="Also write the full parameter set used (.npz or .json)."
    ),
) -> None:
    """Write the body's mesh (posed by --params if given)."""

    def job():
        from human3d.body.io import export_mesh, load_params, save_params

        body = _load_model(model, model_path, gender, num_betas)
        p = {}
        if params is not None:
            loaded = load_params(params, model=body)
            if not 0 <= index < loaded.batch_size:
                from human3d.errors import InvalidInputError

                raise InvalidInputError(f"--index: {params} holds {loaded.batch_size} bodies, got index {index}")
            p = {k: v[index : index + 1] for k, v in loaded.params.items()}
        import torch

        with torch.no_grad():
            output = body(p)
        export_mesh(out, output.vertices[0], output.faces)
        console.print(f"wrote {out} ({output.vertices.shape[1]} vertices, {output.faces.shape[0]} faces)")
        if save_params_to is not None:
            save_params(save_params_to, output.params, body)
            console.print(f"wrote {save_params_to}")
        if render is not None:
            render_body_png(render, output.vertices[0], output.faces)
            console.print(f"wrote {render}")

    _run(job)


@app.command("info")
def info(
    model: ModelName = typer.Option(ModelName.anny, help="Body model family."),
    model_path: Optional[Path] = typer.Option(None, help="SMPL-family model file or folder."),
    gender: Gender = typer.Option(Gender.neutral, help="SMPL family gender."),
    num_betas: int = typer.Option(10, help="Number of SMPL-family shape coefficients."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table."),
) -> None:
    """Show a model's sizes, parameters, joints and keypoint skeletons."""

    def job():
        body = _load_model(model, model_path, gender, num_betas)
        summary = {
            "family": body.family,
            "vertices": body.num_vertices,
            "faces": int(body.faces.shape[0]),
            "joints": body.num_joints,
            "parameters": {k: list(v) for k, v in body.parameter_shapes().items()},
            "skeletons": {s: len(body.keypoint_names(s)) for s in body.skeletons},
            "joint_names": body.joint_names,
        }
        if as_json:
            typer.echo(json.dumps(summary, indent=1))
            return
        table = Table(title=f"{body.family} body model")
        table.add_column("item")
        table.add_column("value")
        for key in ("family", "vertices", "faces", "joints"):
            table.add_row(key, str(summary[key]))
        for k, v in summary["parameters"].items():
            table.add_row(f"param {k}", str(v))
        for k, v in summary["skeletons"].items():
            table.add_row(f"keypoints {k}", str(v))
        names = body.joint_names
        table.add_row("joint names", ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else ""))
        Console().print(table)

    _run(job)


def demo(
    out: Path = typer.Option(Path("outputs/demo"), "--out", "-o", help="Output folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """The main job on the embedded default model (Anny): fit the shipped example photo
    (human3d/assets/examples/000000000785.jpg, CC-BY-2.0) from its COCO keypoints, writing parameters, mesh, overlay
    and summary.json; also write the default body's mesh and a render."""

    def job():
        import torch

        from human3d.body.io import export_mesh, save_params
        from human3d.fitting.pipeline import fit_images

        from human3d.assets import example_photo

        image, keypoints = example_photo()
        out.mkdir(parents=True, exist_ok=True)
        run = fit_images(image, keypoints, out, model="anny", progress=not quiet, log=None if quiet else console.print)
        s = run.summary
        console.print(
            f"fitted {s['persons_fitted']}/{s['persons']} person(s) in {s['fit_time_s']:.1f} s, mean reprojection "
            f"error {s['mean_reprojection_error_px']:.1f} px; overlay and mesh in {out / image.stem}"
        )
        body = _load_model(ModelName.anny, None, Gender.neutral, 10)
        with torch.no_grad():
            output = body()
        export_mesh(out / "default_body.obj", output.vertices[0], output.faces)
        save_params(out / "default_body_params.json", output.params, body)
        render_body_png(out / "default_body.png", output.vertices[0], output.faces)
        console.print(f"wrote {out / 'default_body.obj'} and {out / 'default_body.png'}")

    _run(job)
