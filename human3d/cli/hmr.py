"""``human3d hmr ...``: the HMR image regressor (human3d.hmr): predict bodies from photos in one forward pass,
train it on synthetic humans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from human3d.cli.runner import check_output_dir, command, say
from human3d.cli.scene import DEVICE, MINUTES, PROGRESS, SEED, SET, STEPS, THREADS, config_epilog, train_overrides

app = typer.Typer(help="HMR: regress Anny bodies from person crops in one forward pass (residual encoder + IEF), "
                  "trained on synthetic humans.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_show_locals=False)  # fmt: skip


def _epilog() -> str:
    from human3d.hmr.spin import SpinHMRConfig, spin_preset

    return config_epilog(SpinHMRConfig, spin_preset("fast")) + "\n\n(spin.* fields apply with --spin only.)"


@app.command()
@command
def predict(
    images: Path = typer.Argument(..., help="An image, or a folder of images (.jpg/.png/...)."),
    keypoints: Optional[Path] = typer.Option(None, "--keypoints", "-k", help="Keypoint file (OpenPose or COCO "
                                             "JSON) or folder, as `human3d fit` reads them; each person's crop is "
                                             "the box of its keypoints. Default: a JSON beside each image, else "
                                             "the shipped detector (--detect), else the whole image as one person."),
    out: Path = typer.Option(Path("outputs/hmr"), "--out", "-o", help="Output folder: summary.json and one "
                             "sub-folder per image with parameters (.npz/.json), meshes (.obj) and overlays."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="HMR weights (.safetensors written by `human3d "
                                           "hmr train`, RUN/hmr.safetensors). Default: the shipped ones (Anny)."),
    model: str = typer.Option("anny", "--model", "-m", help="Body model the weights were trained for: anny, or "
                              "smpl/smplh/smplx with --model-path (weights from `human3d hmr train --set "
                              "data.model=PATH`)."),
    model_path: Optional[Path] = typer.Option(None, "--model-path", help="SMPL-family model file or folder."),
    focal: Optional[float] = typer.Option(None, "--focal", min=1e-3, help="Focal length in pixels. Default: from "
                                          "EXIF, else the image diagonal (as `human3d fit`)."),
    detect: bool = typer.Option(True, "--detect/--no-detect", help="Without --keypoints: run the shipped detector "
                                "on photos with no JSON beside them (--no-detect: the whole image is one person)."),
    overlays: bool = typer.Option(True, "--overlays/--no-overlays", help="Write overlay PNGs."),
    progress: bool = PROGRESS,
) -> None:
    """Predict the body (Anny, or the SMPL-family model the weights were trained for) of every person in IMAGES
    with the HMR regressor (one batched forward pass, no optimisation); writes the same files as `human3d fit`."""
    from human3d.body import load_body_model
    from human3d.hmr.predict import predict_files

    body = load_body_model(model, model_path=model_path)

    check_output_dir(out)
    detector = None
    if keypoints is None and detect:
        from human3d.pose2d.detect import keypoints_or_detect

        detector = lambda ims: keypoints_or_detect(ims, progress=progress)  # noqa: E731
    s = predict_files(images, keypoints, out, weights=weights, focal=focal, overlays=overlays, progress=progress,
                      detector=detector, log=say if progress else None, body_model=body)  # fmt: skip
    errors = [f"{rec['name']}: {rec['error']}" for rec in s["images"] if rec["error"]]
    if s["persons"] == 0:
        from human3d.errors import DatasetError

        raise DatasetError("no person predicted" + (f" ({'; '.join(errors)})" if errors else ""))
    for e in errors:
        say(f"skipped image {e}")
    say(f"{s['persons']} person(s) -> {Path(out) / 'summary.json'}")


@app.command(epilog=_epilog())
@command
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder. An existing run there is resumed (only run.* "
                             "settings may change)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Config preset: fast (CPU, 96 px crops; default "
                                         "for a new run) or tiny (seconds; for tests)."),
    steps: Optional[int] = STEPS,
    minutes: Optional[float] = MINUTES,
    device: Optional[str] = DEVICE,
    seed: Optional[int] = SEED,
    threads: Optional[int] = THREADS,
    set_: list[str] = SET,
    spin: bool = typer.Option(False, "--spin", help="SPIN-style mode (human3d.hmr.spin): a fraction of the images "
                              "(spin.fraction_2d) is 2D-only, their 3D labels never read; SMPLify fits from the "
                              "regressor's prediction become their targets, each kept only while its reprojection "
                              "energy is the lowest so far. Settings: --set spin.<field>=VALUE."),
    progress: bool = PROGRESS,
) -> None:
    """Train the HMR regressor on a synthetic set rendered once into the run folder (training mocap clips only);
    writes run.json, the checkpoint, log.jsonl, training.png and RUN/hmr.safetensors (+ card and the adversarial
    prior's discriminators). Ctrl-C saves the checkpoint and exits 130; the same command resumes."""
    from human3d.hmr.spin import SpinHMRTrainer, spin_preset
    from human3d.hmr.trainer import HMRTrainer
    from human3d.hmr.trainer import preset as make_preset

    over = train_overrides(set_, steps, minutes, None, device, seed, threads)
    cls, make = (SpinHMRTrainer, spin_preset) if spin else (HMRTrainer, make_preset)
    config = make(preset) if preset is not None else None
    trainer = cls(out, config=config, overrides=over)
    if trainer.resumed:
        say(f"resuming '{out}' at step {trainer.step}")
    last = trainer.train(progress=progress)
    summary = {"run": str(out), **{k: last[k] for k in ("step", "elapsed_s", "loss", "mpjpe_mm") if k in last},
               "weights": str(Path(out) / "hmr.safetensors")}  # fmt: skip
    typer.echo(json.dumps(summary))
