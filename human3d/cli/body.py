"""``human3d body ...``: inspect body models, pose them from parameter files (ours or other tools': smplx names,
SMPLify-X, AMASS, 4D-Humans; :mod:`human3d.body.param_formats`), export meshes, mesh sequences, animated .glb and
videos; and the demo."""

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


class MeshFormat(str, Enum):
    obj = "obj"
    ply = "ply"
    glb = "glb"


class ParamsLayout(str, Enum):
    human3d = "human3d"
    smplx = "smplx"


def _body_for(loaded, model: Optional[ModelName], model_path, gender: Optional[Gender], num_betas: Optional[int]):
    """The body model a parameter file asks for: the family, gender, number of betas / expressions, hand PCA and
    flat hand mean it names or implies (family, gender and betas overridden by an explicit option)."""
    from human3d.body import load_body_model

    meta = loaded.meta if loaded is not None else {}
    family = model.value if model is not None else (loaded.model if loaded is not None else "anny")
    kw = {}
    if family in ("smplh", "smplx"):
        if meta.get("num_pca_comps"):
            kw["num_pca_comps"] = int(meta["num_pca_comps"])
        if meta.get("flat_hand_mean"):
            kw["flat_hand_mean"] = True
    if family == "smplx" and "num_expression_coeffs" in meta:
        kw["num_expression_coeffs"] = int(meta["num_expression_coeffs"])
    g = gender.value if gender is not None else str(meta.get("gender", "neutral"))
    nb = num_betas if num_betas is not None else int(meta.get("num_betas", 10))
    return load_body_model(family, model_path=model_path, gender=g, num_betas=nb, **kw)


def _sequence_camera(vertices, width: int, height: int, z_up: bool):
    """One fixed camera framing every frame [T, V, 3]: front view (looking along -Z, Y up) or, for Z-up data
    (AMASS), looking along +Y with Z up."""
    from human3d.geometry import frame_points

    T = vertices.shape[0]
    pts = vertices[:: max(1, T // 50), :: 7].reshape(-1, 3)
    if z_up:
        return frame_points(pts, width, height, view_dir=(0.0, 1.0, 0.0), up=(0.0, 0.0, 1.0))
    return frame_points(pts, width, height)


def _write_video(path: Path, vertices, faces, fps: float, z_up: bool, progress: bool, size: int = 384) -> Path:
    import numpy as np
    import torch
    from tqdm import tqdm

    from human3d.render.overlay import render_overlay
    from human3d.train.scene import write_video

    cams = _sequence_camera(vertices, size, size, z_up)
    white = np.full((size, size, 3), 255, np.uint8)

    def frames():
        for v in tqdm(vertices, desc="video", unit="frame", disable=not progress):
            yield torch.from_numpy(render_overlay(white, v, faces, cams, alpha=1.0)).float() / 255.0

    return write_video(frames(), path, max(1, round(fps)))


@app.command("export")
def export(
    out: Path = typer.Option(..., "--out", "-o", help="Output mesh: .obj, .ply or .glb (format from the suffix). "
                             "With --all-frames: a folder (one mesh per frame + animation.mp4), or a .glb (one "
                             "animated file: a morph target per frame, played by Blender / three.js viewers)."),
    model: Optional[ModelName] = typer.Option(None, help="Body model family. Default: the one the --params file "
                                              "names or implies (AMASS pose width, hand / face parameters, "
                                              "body_pose of 69 values = SMPL), else 'anny' (embedded, needs no file)."),
    model_path: Optional[Path] = typer.Option(
        None, help="SMPL/SMPL-H/SMPL-X model file (.pkl/.npz) or folder (smplx layout). Not used for Anny."
    ),
    gender: Optional[Gender] = typer.Option(None, help="SMPL family gender. Default: the params file's (AMASS "
                                            "'gender'), else neutral. (Anny's gender is a phenotype.)"),
    num_betas: Optional[int] = typer.Option(None, min=1, help="Number of SMPL-family shape coefficients. Default: "
                                            "the width of the params file's betas, else 10."),
    params: Optional[Path] = typer.Option(
        None, help="Parameters posing the body (default: rest pose, mean shape): human3d's .npz/.json, or another "
        "tool's file: smplx-named .npz/.json/.pkl, an SMPLify-X result .pkl, an AMASS .npz, a 4D-Humans "
        "(HMR2 / PHALP) .pkl/.npz of rotation matrices. .pkl files go through a restricted unpickler."
    ),
    index: int = typer.Option(0, "--index", "--frame", help="Which body (batched file) or frame (AMASS sequence) "
                              "to export."),
    all_frames: bool = typer.Option(False, "--all-frames", help="Export every body / frame of the file (every "
                                    "--stride-th) instead of one: see --out."),
    stride: int = typer.Option(1, "--stride", min=1, help="With --all-frames: take every N-th frame."),
    fps: Optional[float] = typer.Option(None, "--fps", min=0.01, help="Frames per second of the animation / video. "
                                        "Default: the file's (AMASS mocap_framerate) divided by --stride, else 30."),
    mesh_format: MeshFormat = typer.Option(MeshFormat.obj, "--mesh-format", help="With --all-frames into a "
                                           "folder: format of the per-frame meshes (frame_00000.obj, ...)."),
    video: bool = typer.Option(True, "--video/--no-video", help="With --all-frames into a folder: also render "
                               "animation.mp4 (H.264; a fixed camera framing the whole motion; AMASS's Z-up world "
                               "seen along +Y)."),
    render: Optional[Path] = typer.Option(None, help="Also render a shaded front view to this PNG (one body)."),
    save_params_to: Optional[Path] = typer.Option(
        None, "--save-params", help="Also write the full parameter set used (.npz/.json in human3d's layout; .pkl, "
        "or .npz with --params-layout smplx, as bare smplx-named arrays that smplx loads: model(**params))."
    ),
    params_layout: ParamsLayout = typer.Option(ParamsLayout.human3d, "--params-layout", help="Layout of "
                                               "--save-params: human3d (with metadata) or smplx (arrays only)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars for sequences."),
) -> None:
    """Write the body's mesh (posed by --params if given), or a mesh sequence / animated .glb with --all-frames."""

    def job():
        import torch
        from tqdm import tqdm

        from human3d.body.io import (MESH_SUFFIXES, PARAM_SUFFIXES, SMPLX_SUFFIXES, export_animation, export_mesh,
                                     save_params)  # fmt: skip
        from human3d.body.param_formats import read_params
        from human3d.cli.runner import check_output_dir, check_output_file, say
        from human3d.errors import InvalidInputError

        animated = all_frames and out.suffix.lower() == ".glb"
        if all_frames and not animated:
            check_output_dir(out)
            if render is not None:
                raise InvalidInputError("--render draws one body; with --all-frames the video is animation.mp4")
        else:
            check_output_file(out, "--out", MESH_SUFFIXES)
        if save_params_to is not None:
            layout = "smplx" if save_params_to.suffix.lower() == ".pkl" else params_layout.value
            check_output_file(save_params_to, "--save-params", SMPLX_SUFFIXES if layout == "smplx" else PARAM_SUFFIXES)
        loaded = read_params(params, model=None if model is None else model.value) if params is not None else None
        body = _body_for(loaded, model, model_path, gender, num_betas)
        full = body.validate_params(loaded.params if loaded is not None else {})
        n = next(iter(full.values())).shape[0]
        if all_frames:
            frames = list(range(0, n, stride))
        else:
            if not 0 <= index < n:
                raise InvalidInputError(f"--index/--frame: {params} holds {n} bodies/frames, got index {index}")
            frames = [index]
        z_up = loaded is not None and loaded.meta.get("format") == "amass"
        rate = fps if fps is not None else (loaded.meta["fps"] / stride if loaded and "fps" in loaded.meta else 30.0)
        chosen = {k: v[frames] for k, v in full.items()}
        verts = []
        with torch.no_grad():
            for a in tqdm(range(0, len(frames), 64), desc="posing", unit="batch",
                          disable=not (progress and len(frames) > 64)):  # fmt: skip
                output = body({k: v[a : a + 64] for k, v in chosen.items()})
                verts.append(output.vertices)
        vertices, faces = torch.cat(verts), output.faces
        if not all_frames:
            export_mesh(out, vertices[0], faces)
            say(f"wrote {out} ({vertices.shape[1]} vertices, {faces.shape[0]} faces)")
        elif animated:
            export_animation(out, vertices, faces, fps=rate, z_up=z_up)
            say(f"wrote {out} ({len(frames)} frames at {rate:g} fps, one morph target per frame)")
        else:
            out.mkdir(parents=True, exist_ok=True)
            for j, i in enumerate(tqdm(frames, desc="meshes", unit="frame", disable=not progress)):
                export_mesh(out / f"frame_{i:05d}.{mesh_format.value}", vertices[j], faces)
            say(f"wrote {len(frames)} meshes to {out}")
            if video:
                _write_video(out / "animation.mp4", vertices, faces, rate, z_up, progress)
                say(f"wrote {out / 'animation.mp4'} ({rate:g} fps)")
        if save_params_to is not None:
            save_params(save_params_to, chosen, body, layout=params_layout.value)
            say(f"wrote {save_params_to}")
        if render is not None:
            render_body_png(render, vertices[0], faces)
            say(f"wrote {render}")

    _run(job)


@app.command("info")
def info(
    model: ModelName = typer.Option(ModelName.anny, help="Body model family."),
    model_path: Optional[Path] = typer.Option(None, help="SMPL-family model file or folder."),
    gender: Gender = typer.Option(Gender.neutral, help="SMPL family gender."),
    num_betas: int = typer.Option(10, min=1, help="Number of SMPL-family shape coefficients."),
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
        from human3d.cli.runner import check_output_dir

        check_output_dir(out, "--out")  # before any work
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
