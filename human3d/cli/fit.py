"""``human3d fit``: SMPLify body-model fitting to 2D keypoints of one photo or a folder (one batched run)."""

from __future__ import annotations

import math

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from human3d.body import MODEL_NAMES
from human3d.errors import Human3DError
from human3d.fitting.priors import PRIOR_KINDS

app = typer.Typer(help="Fit a 3D body model to the 2D keypoints of photos (SMPLify, batched).",
                  add_completion=False, pretty_exceptions_show_locals=False)  # fmt: skip


# The choices come from their owners: body-model names (human3d.body.MODEL_NAMES) and prior names
# (human3d.fitting.priors.PRIOR_KINDS).
ModelName = Enum("ModelName", {n: n for n in MODEL_NAMES}, type=str)
PriorName = Enum("PriorName", {n: n for n in PRIOR_KINDS}, type=str)


class InitName(str, Enum):
    default = "default"
    hmr = "hmr"
    lift = "lift"


class RetryName(str, Enum):
    flagged = "flagged"
    all = "all"
    none = "none"


class OptimizerName(str, Enum):
    adam = "adam"
    lbfgs = "lbfgs"
    lgd = "lgd"


@app.command()
def fit(
    images: Path = typer.Argument(..., help="An image, or a folder of images (.jpg/.png/...). Each image's "
                                  "keypoints come from --keypoints, or from NAME.json / NAME_keypoints.json beside it."),
    keypoints: Optional[Path] = typer.Option(None, "--keypoints", "-k", help="Keypoint file: OpenPose JSON "
                                             "(BODY_25 or COCO-18) or COCO keypoint JSON (matched by file_name), "
                                             "or a folder of them. Default: a JSON beside each image, else "
                                             "the shipped detector (see human3d detect) on the bare photo."),
    model: ModelName = typer.Option("anny", "--model", "-m", help="Body model: anny (embedded) or "
                                    "smpl/smplh/smplx (needs --model-path)."),
    model_path: Optional[Path] = typer.Option(None, "--model-path", help="SMPL-family model file or folder "
                                              "(SMPL_NEUTRAL.pkl, SMPLX_NEUTRAL.npz, or a folder holding them)."),
    gender: str = typer.Option("neutral", "--gender", help="SMPL-family model gender: neutral, male or female."),
    focal: Optional[float] = typer.Option(None, "--focal", help="Focal length in pixels. Default: from EXIF, "
                                          "else the image diagonal sqrt(W^2 + H^2) (a 53 degree diagonal FOV)."),
    prior: PriorName = typer.Option("auto", "--prior", help="Pose prior: auto (default: the learned "
                                    "flow, for Anny and for SMPL-family models), simple (built-in diagonal "
                                    "Gaussian of mocap statistics), gaussian/vae/flow/diffusion/gan (shipped "
                                    "learned priors, for Anny and for SMPL/SMPL-H/SMPL-X body_pose) or none."),
    optimizer: OptimizerName = typer.Option(OptimizerName.adam, "--optimizer", help="adam (default), lbfgs or "
                                            "lgd (learned gradient descent, human3d.fitting.lgd: Anny, COCO-17)."),
    iters: Optional[int] = typer.Option(None, "--iters", min=0, help="Full-body (stage 2) iterations "
                                        "(default from SMPLifyConfig)."),
    camera_iters: Optional[int] = typer.Option(None, "--camera-iters", min=0, help="Camera/orientation "
                                               "(stage 1) iterations (default from SMPLifyConfig)."),
    out: Path = typer.Option(Path("outputs/fit"), "--out", "-o", help="Output folder (summary.json and one "
                             "sub-folder per image with parameters, meshes and overlays)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Person mask PNG (white = person) for a soft-"
                                        "silhouette term, or a folder of NAME.png masks."),
    overlays: bool = typer.Option(True, "--overlays/--no-overlays", help="Write overlay PNGs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    init: InitName = typer.Option(InitName.default, "--init", help="Starting hypotheses: default (camera init "
                                  "on the torso, both facings, restarts) or hmr (also the HMR regressor's "
                                  "prediction per person, human3d.hmr; each person keeps the lower energy) or lift "
                                  "(the keypoint lifter's 3D keypoints, human3d.fitting.lift: they give the start "
                                  "in place of the default and a 3D term in stage 2; COCO-17 keypoints; the most "
                                  "accurate and fastest start on the benchmark, see the README)."),
    hmr_weights: Optional[Path] = typer.Option(None, "--hmr-weights", help="--init hmr: HMR weights "
                                               "(RUN/hmr.safetensors of `human3d hmr train`; SMPL-family models "
                                               "need weights trained for them). Default: the shipped Anny ones."),
    lift_weight: Optional[str] = typer.Option(None, "--lift-weight", help="--init lift: weight of the lifted 3D "
                                              "keypoints against the 2D ones (SMPLifyConfig.keypoints3d_weight): "
                                              "'auto' (default: per person, 30 where the 2D keypoints agree with "
                                              "the lift, up to 1000 where they do not, as on small, noisy people) "
                                              "or one number for everyone."),
    retries: RetryName = typer.Option(RetryName.flagged, "--retries", help="Refit from the flipped facing and the "
                                      "mirrored pose: flagged (default: persons whose fit fails a plausibility "
                                      "check - joint limits, limbs through each other, depth order against the "
                                      "keypoints' visibility), all, or none. Each person keeps the lowest energy."),
    device: str = typer.Option("cpu", "--device", help="Where to fit: cpu (default), cuda, or auto (CUDA when "
                               "available). On a GPU the whole batch fits in about the time of a few people "
                               "(1,024 people in 1.5 s on an H200, SMPL family)."),
    chunk: int = typer.Option(16, "--chunk", min=1, help="Images per batch. Each batch's outputs and summary.json "
                              "are written before the next starts, so an interrupt (Ctrl-C, SIGTERM) keeps the "
                              "finished images; larger batches fit faster per person."),
    resume: bool = typer.Option(False, "--resume", help="Skip the images a previous run into --out completed "
                                "(listed in its summary.json with all outputs present). The run must use the same settings "
                                "(model and file, prior, optimizer, iterations, --focal, --init, mask); else it is "
                                "refused naming the ones that differ."),
) -> None:
    """Fit a body model to every person in IMAGES; write parameters (.npz/.json), meshes (.obj), overlays,
    loss.png and summary.json to --out. The people of --chunk images at a time are optimised together in one
    batch. Exit codes: 0 done; 2 bad input, or no person could be fitted (one line per skipped image says why);
    130 interrupted (finished images kept, rerun with --resume)."""

    import signal
    import threading

    def _term(signum, frame):  # SIGTERM like Ctrl-C (exit 130) from the start, not only while fit_images runs
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _term) if main else None
    try:
        _fit(images, keypoints, model, model_path, gender, focal, prior, optimizer, iters, camera_iters, out, mask,
             overlays, quiet, init, retries, device, chunk, resume, hmr_weights, lift_weight)  # fmt: skip
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _lift_weight(text: str) -> float | str | None:
    """``--lift-weight``: ``"auto"`` or a finite non-negative number (None: neither)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _fit(images, keypoints, model, model_path, gender, focal, prior, optimizer, iters, camera_iters, out, mask,
         overlays, quiet, init, retries, device, chunk, resume, hmr_weights=None, lift_weight=None) -> None:  # fmt: skip
    from human3d.cli.runner import EXIT_BAD_INPUT, EXIT_INTERRUPTED, check_output_dir, say
    from human3d.fitting.config import SMPLifyConfig
    from human3d.fitting.pipeline import FitInterrupted, fit_images

    try:
        check_output_dir(out, "--out")  # before any work: an existing file, a file on the way, no permission
    except Human3DError as e:
        say(f"error: {e}")
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    if focal is not None and not (math.isfinite(focal) and focal > 0):
        say(f"error: --focal: expected a positive focal length in pixels, got {focal}")
        raise typer.Exit(code=EXIT_BAD_INPUT)
    changes = {"optimizer": optimizer.value}
    if iters is not None:
        changes["body_iters"] = iters
    if camera_iters is not None:
        changes["camera_iters"] = camera_iters
    if retries is RetryName.none:
        changes["retry_hypotheses"] = ()
    if lift_weight is not None:
        value = _lift_weight(lift_weight)
        if init is not InitName.lift or value is None:
            say(f"error: --lift-weight: expected 'auto' or a non-negative number with --init lift, got "
                f"{lift_weight!r} with --init {init.value}")
            raise typer.Exit(code=EXIT_BAD_INPUT)
        changes["keypoints3d_weight"] = value
    changes["retry_all"] = retries is RetryName.all
    prior_kind = prior.value  # "auto" is resolved by fitting (summary.json names the prior actually used)
    try:
        cfg = SMPLifyConfig().replace(**changes)
        body, initializer = model.value, None
        if init is InitName.hmr:
            body, initializer = _hmr(model.value, model_path, gender, device, hmr_weights)
        elif init is InitName.lift:
            initializer = "lift"
        run = fit_images(images, keypoints, out, model=body, model_path=model_path, focal=focal,
                         prior=prior_kind, config=cfg, mask=mask, overlays=overlays, progress=not quiet,
                         gender=gender, log=None if quiet else say, device=device,
                         detector=_detector(quiet) if keypoints is None else None,
                         initializer=initializer, chunk=chunk, resume=resume)  # fmt: skip
    except FitInterrupted as e:
        say(f"interrupted: {e}")
        raise typer.Exit(code=EXIT_INTERRUPTED) from None
    except Human3DError as e:  # (also when the command is used without the runner, as fit's own typer app)
        say(f"error: {' '.join(str(e).split())}")
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    s = run.summary
    for rec in s["images"]:
        if rec.get("resumed") and quiet:  # (not quiet: fit_images logged it)
            say(f"resume: {rec['name']} was fitted by the previous run (outputs in {run.out_dir / rec['name']}), skipped")
        if rec.get("status") == "skipped" or rec["error"]:
            say(f"skipped image {rec['name']}: {_why(rec)}")
        for p in rec["people"]:
            if not p["fitted"] and rec.get("status") != "skipped":
                say(f"skipped person {rec['name']} #{p['index']}: {p['skip_reason']}")
    err = s["mean_reprojection_error_px"]
    msg = f"fitted {s['persons_fitted']}/{s['persons']} person(s) in {s['fit_time_s']:.1f} s"
    if err is not None:
        msg += f", mean reprojection error {err:.1f} px"
    say(msg + f" -> {run.out_dir / 'summary.json'}")
    if s["persons_fitted"] == 0:
        say(f"error: no person could be fitted in {len(s['images'])} image(s) (see the lines above)")
        raise typer.Exit(code=EXIT_BAD_INPUT)


def _why(rec: dict) -> str:
    """Why an image was skipped: its error (from human3d.data.keypoints), else its warnings / persons' reasons."""
    if rec["error"]:
        return rec["error"]
    reasons = [f"person #{p['index']}: {p['skip_reason']}" for p in rec["people"] if not p["fitted"]]
    return "; ".join(reasons + list(rec.get("warnings") or [])) or "nothing to fit"


def _hmr(model: str, model_path, gender: str, device: str, weights=None):
    """``--init hmr``: the body model and the HMR regressor's initializer for it (human3d.hmr.predict)."""
    from generative.training import select_device

    from human3d.body import load_body_model
    from human3d.errors import InvalidInputError

    try:
        from human3d.hmr.predict import hmr_initializer
    except ImportError as e:
        raise InvalidInputError(f"--init hmr: the HMR regressor is not available in this install "
                                f"(human3d.hmr.predict: {e}); use --init default") from None  # fmt: skip
    body = load_body_model(model, model_path=model_path, gender=gender, device=select_device(device))
    init = hmr_initializer(body, weights)
    init.name = "hmr"  # recorded in summary.json's settings (--resume checks it)
    return body, init


def _detector(quiet: bool):
    """Keypoints for bare photos: the JSON beside an image where there is one, else the shipped detector's."""
    from human3d.pose2d.detect import keypoints_or_detect

    return lambda images: keypoints_or_detect(images, progress=not quiet)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
