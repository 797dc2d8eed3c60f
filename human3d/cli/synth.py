"""``human3d synth ...``: synthetic humans with exact labels (a COCO keypoint dataset)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from human3d.cli.runner import check_output_dir, command, say

app = typer.Typer(help="Synthetic humans: render Anny bodies with exact 2D/3D labels as a COCO keypoint dataset.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False)  # fmt: skip


@app.command()
@command
def make(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (images/ + annotations.json)."),
    n: int = typer.Option(..., "--n", help="Number of images."),
    size: int = typer.Option(256, "--size", help="Image side in pixels (square)."),
    max_people: int = typer.Option(3, "--max-people", help="People per image: 1 to this many."),
    batch: int = typer.Option(8, "--batch", help="Images rendered together."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same dataset)."),
    prior_fraction: float = typer.Option(0.3, "--prior-fraction", help="Share of poses from the shipped pose "
                                         "prior (the rest from mocap)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Render N synthetic images with COCO-17 / BODY_25 keypoints, masks, boxes, 3D joints, body parameters and
    cameras into OUT/annotations.json (COCO keypoint format) and OUT/images/."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from human3d.synth.coco import make_dataset
    from human3d.synth.generator import SynthConfig

    cfg = SynthConfig(size=size, max_people=max_people, prior_fraction=prior_fraction).validate()
    check_output_dir(out)
    t0 = time.perf_counter()
    with Progress(TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=quiet) as bar:  # fmt: skip
        task = bar.add_task("synth", total=n if isinstance(n, int) and n > 0 else None)
        path = make_dataset(out, n, cfg, batch_size=batch, seed=seed, progress=lambda k: bar.advance(task, k))
    dt = time.perf_counter() - t0
    say(f"wrote {n} images in {dt:.1f} s ({n / dt:.1f} images/s) -> {path}")
