"""``human3d detect``: 2D keypoints of the people in a photo or a folder of photos (BlazePose by default), written as
OpenPose BODY_25 or COCO-17 JSON that ``human3d fit --keypoints`` reads, plus overlay PNGs of the detections."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path

import typer

from human3d.cli.runner import check_output_dir, check_output_file, command, say


class Backend(str, Enum):
    auto = "auto"
    mediapipe = "mediapipe"
    heatmap = "heatmap"


class Format(str, Enum):
    openpose = "openpose"
    coco = "coco"


@command
def detect(
    images: Path = typer.Argument(..., help="An image, or a folder of images (.jpg/.png/...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Keypoint JSON to write (OpenPose: one image per file; "
                             "COCO: any number, matched by file_name)."),
    fmt: Format = typer.Option(Format.openpose, "--format", "-f", help="openpose (BODY_25, one image) or coco "
                               "(COCO-17 keypoint document)."),
    backend: Backend = typer.Option(Backend.auto, "--backend", help="auto (mediapipe where installed, else "
                                    "heatmap), mediapipe (BlazePose, the shipped default for real photos) or "
                                    "heatmap (our SimpleBaseline on the whole image: one person, weak on photos)."),
    max_people: int = typer.Option(6, "--max-people", min=1, help="At most this many people per image."),
    overlay: bool = typer.Option(True, "--overlay/--no-overlay", help="Write the detections over the photo: "
                                 "OUT.png for one image, OUT_overlays/NAME.png for a folder."),
) -> None:
    """Detect people's 2D keypoints in IMAGES; write them to --out as OpenPose BODY_25 or COCO-17 JSON."""
    from human3d.data.keypoints import load_image
    from human3d.errors import InvalidInputError
    from human3d.pose2d.detect import detect_keypoints, image_list, resolve_backend, write_keypoints

    check_output_file(out, "--out", (".json",))
    paths = image_list(images)
    if fmt == Format.openpose and len(paths) != 1:
        raise InvalidInputError(f"--format openpose: one file holds one image, '{images}' has {len(paths)}; "
                                "use --format coco")  # fmt: skip
    single = len(paths) == 1 and not Path(images).is_dir()
    ov_dir = out.with_name(out.stem + "_overlays")
    if overlay:
        check_output_file(out.with_suffix(".png"), "--out") if single else check_output_dir(ov_dir, "--out")
    _check_readable(paths)
    t0 = time.perf_counter()
    skeleton = "body25" if fmt == Format.openpose else "coco17"
    used = resolve_backend(backend.value)
    items = detect_keypoints(paths, used, skeleton, max_people, progress=True)
    dt = time.perf_counter() - t0
    write_keypoints(items, out, fmt.value)
    if overlay:
        from human3d.render.overlay import draw_keypoints, save_png

        for it in items:
            if it.error:
                continue
            img = load_image(it.image_path)
            for pk in it.people:
                img = draw_keypoints(img, pk.keypoints, min_confidence=0.3)
            save_png(out.with_suffix(".png") if single else ov_dir / f"{it.name}.png", img)
    for it in items:
        if it.error:
            say(f"skipped image {it.name}: {it.error}")
    n = sum(len(it.people) for it in items)
    say(f"{n} person(s) in {len(items)} image(s) ({used}, {dt / max(1, len(items)):.2f} s per image) -> {out}")


def _check_readable(paths) -> None:
    """Refuse, before any work, a run where no image can be read (each named with the reason)."""
    if not paths:
        return
    from human3d.data.keypoints import check_image
    from human3d.errors import DatasetError

    errors = []
    for p in paths:
        try:
            check_image(p)
            return
        except DatasetError as e:
            errors.append(str(e))
    raise DatasetError(errors[0] if len(errors) == 1 else f"images: none of the {len(errors)} images can be read: "
                       + "; ".join(errors[:5]) + ("; ..." if len(errors) > 5 else ""))
