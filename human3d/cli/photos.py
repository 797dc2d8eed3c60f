"""``human3d scene``: posed scenes from photos or a video (structure from motion through pycolmap, no COLMAP binary)
and the nerfstudio ``transforms.json`` of a run's or a dataset's cameras."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from human3d.cli.runner import check_output_dir, check_output_file, command, console, say
from human3d.errors import InvalidInputError

app = typer.Typer(
    help="Posed scenes for NeRF / splatting: `from-photos` runs structure from motion on photos or a video "
    "(pycolmap, the sfm extra: pip install pycolmap); `export-cameras` writes a run's or dataset's cameras as nerfstudio "
    "transforms.json.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

_STAGES = {"frames": "reading images", "features": "SIFT features", "matching": "matching",
           "mapping": "registering images", "undistort": "undistorting", "write": "writing the scene"}  # fmt: skip


class Matcher(str, Enum):
    auto = "auto"
    exhaustive = "exhaustive"
    sequential = "sequential"


class Background(str, Enum):
    white = "white"
    black = "black"


def _rich_progress(enabled: bool):
    """A (progress callback, context manager) pair: one rich task per stage, with a count where one is known."""
    import contextlib

    if not enabled:
        return (lambda stage, done, total: None), contextlib.nullcontext()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console, transient=False)  # fmt: skip
    tasks: dict = {}

    def update(stage: str, done: int, total):
        if stage not in tasks:
            for t in tasks.values():  # the previous stage is over
                bar.update(t, completed=bar.tasks[t].total)
            tasks[stage] = bar.add_task(_STAGES.get(stage, stage), total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return update, bar


@app.command("from-photos")
@command
def from_photos(
    source: Path = typer.Argument(..., help="A folder of photos (.jpg/.png/..., sorted by name; one camera, one "
                                  "size) or a video file (.mp4/.mov/...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Scene folder to write (new or empty): images/, sparse/0/, "
                             "transforms.json, summary.json, topview.png. Train on it with `human3d splat train "
                             "SCENE` or `human3d nerf train SCENE`."),
    matcher: Matcher = typer.Option(Matcher.auto, "--matcher", help="exhaustive: match every pair (photo sets, up to "
                                    "a few hundred images); sequential: match each image with its next "
                                    "--overlap ones (video frames); auto: sequential for a video, else exhaustive."),
    max_images: Optional[int] = typer.Option(None, "--max-images", min=3, help="Use at most N images, evenly spaced "
                                             "(a video: N frames evenly spaced over its length, default 100)."),
    downscale: float = typer.Option(1.0, "--downscale", min=1.0, help="Divide the image size by this first (area "
                                    "resampling); the scene keeps the smaller images."),
    background: Background = typer.Option(Background.white, "--background", help="RGBA images (e.g. renders) are "
                                          "composited on this colour before SfM."),
    camera_model: str = typer.Option("SIMPLE_RADIAL", "--camera-model", help="COLMAP camera model shared by all "
                                     "images (SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV); the scene "
                                     "is undistorted to PINHOLE."),
    min_registered: float = typer.Option(0.5, "--min-registered", min=0.0, max=1.0, help="Fail when fewer than "
                                         "this fraction of the images registers."),
    overlap: int = typer.Option(10, "--overlap", min=1, help="Sequential matcher: neighbours matched per image."),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads of pycolmap."),
    seed: int = typer.Option(0, "--seed", help="Random seed of COLMAP's mapper (repeatable runs)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out (only once the new scene "
                                   "is complete)."),
    verbose: bool = typer.Option(False, "--verbose", help="Show COLMAP's own log lines."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar per stage."),
) -> None:
    """Structure from motion on photos or a video -> a scene folder that `human3d nerf|splat train` reads.

    Stages: frames, SIFT features, matching, incremental mapping (the model with most images is kept), undistortion.
    The summary (registered images, mean reprojection error, points, times) goes to SCENE/summary.json and, as one
    JSON line, to stdout. A failed run writes nothing."""
    from human3d.data.sfm import SfmOptions, scene_from_photos

    check_output_dir(out)
    opt = SfmOptions(matcher=matcher.value, max_images=max_images, downscale=downscale, background=background.value,
                     camera_model=camera_model, min_registered=min_registered, num_threads=threads, seed=seed,
                     sequential_overlap=overlap, overwrite=overwrite, verbose=verbose)  # fmt: skip
    update, bar = _rich_progress(progress)
    with bar:
        s = scene_from_photos(source, out, opt, progress=update)
    if s["rgba_composited"]:
        say(f"{s['rgba_composited']} RGBA image(s) composited on {s['background']} before SfM")
    if s["unregistered"]:
        say(f"not registered ({len(s['unregistered'])}): {', '.join(s['unregistered'][:8])}"
            + (" ..." if len(s["unregistered"]) > 8 else ""))  # fmt: skip
    c = s["camera"]
    say(f"{s['registered']} of {s['images_used']} images registered, {s['points']} points, mean reprojection error "
        f"{s['mean_reprojection_error_px']:.3f} px, camera {c['w']}x{c['h']} f={c['fl_x']:.1f} px, "
        f"{s['times_s']['total']:.1f} s -> {out} (top view: {Path(out) / 'topview.png'})")  # fmt: skip
    keep = ("registered", "images_used", "points", "mean_reprojection_error_px", "matcher")
    typer.echo(json.dumps({"scene": str(out), **{k: s[k] for k in keep}}))


@app.command("export-cameras")
@command
def export_cameras(
    source: Path = typer.Argument(..., help="A run folder (of `human3d nerf|splat train`: its dataset at its "
                                  "resolution) or a dataset folder (Blender or COLMAP)."),
    out: Path = typer.Option(..., "--out", "-o", help="transforms.json to write (nerfstudio layout: OpenGL "
                             "camera-to-world; file_path relative to its folder)."),
    split: str = typer.Option("train", "--split", help="Cameras of this split: train, val, test (COLMAP: also "
                              "all)."),
) -> None:
    """Write the cameras of a run or a dataset as nerfstudio's transforms.json (camera_model, fl_x, fl_y, cx, cy,
    w, h, frames[].file_path, frames[].transform_matrix), intrinsics in pixels of the image files."""
    import numpy as np

    from human3d.data.nerfstudio import relative_file_paths, write_transforms
    from PIL import Image

    from human3d.data.scenes import load_scene

    check_output_file(out, "--out", (".json",))
    src = Path(source).expanduser()
    run_file = src / "run.json"
    downscale, kw = 1.0, {}
    if run_file.is_file():
        try:
            saved = json.loads(run_file.read_text())
            data = saved["data"]
            dcfg = saved.get("config", {}).get("data", {})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise InvalidInputError(f"'{run_file}' is not a human3d run file ({type(e).__name__}: {e})") from None
        if not data:
            raise InvalidInputError(f"run '{src}' has no dataset (run.json 'data' is empty): nothing to export")
        downscale = float(dcfg.get("downscale", 1.0))
        if "background" in dcfg:
            kw["background"] = tuple(dcfg["background"])
        src = Path(data)
    elif not src.is_dir():
        raise InvalidInputError(f"'{src}' is neither a run folder (no run.json) nor a dataset folder")
    sc = load_scene(src, split, downscale, **kw)
    cams = sc.cameras
    # intrinsics of the loaded resolution -> pixels of each image file
    sizes = []
    for p in sc.image_paths:
        with Image.open(p) as im:
            sizes.append(im.size)
    sizes = np.array(sizes, np.int64)  # [N, 2] (w, h)
    K = cams.K.double().numpy().copy()
    K[:, 0, :] *= (sizes[:, 0] / cams.width)[:, None]
    K[:, 1, :] *= (sizes[:, 1] / cams.height)[:, None]
    c2w = cams.camera_to_world.double().numpy()
    files = relative_file_paths(sc.image_paths, Path(out).expanduser().resolve().parent)
    path = write_transforms(out, K, c2w, sizes[:, 0], sizes[:, 1], files,
                            extra={"generator": f"human3d scene export-cameras ({sc.format} split '{sc.split}')"})  # fmt: skip
    say(f"wrote {len(files)} cameras ({sc.format} split '{sc.split}') to {path}")
