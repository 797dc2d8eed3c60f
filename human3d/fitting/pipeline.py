"""Fit every person of a set of images in batched SMPLify runs and write the results (what ``human3d fit`` does).

The persons of ``chunk`` images at a time (default: all) are fitted in one batch; each batch's outputs and an
updated ``summary.json`` are written before the next starts. SIGINT / SIGTERM is held while a batch's files are
written, so an interrupted run leaves the finished images complete, listed in ``summary.json``
(``completed_images``, ``state: "interrupted"``, each image's ``status``), and raises :class:`FitInterrupted`;
``resume=True`` skips the images a previous run completed.

Output layout (all files written atomically)::

    OUT/summary.json                      run settings, per-image and per-person diagnostics (each person's
                                          winning hypothesis and every hypothesis's energy, the plausibility checks)
    OUT/loss.png                          per iteration of both stages: reprojection error (px), prior energy,
                                          the prior / shape weights' schedules
    OUT/<image stem>/overlay.png          all fitted people over the photo (mesh + input/model keypoints)
    OUT/<image stem>/person_<i>.npz|.json parameters (smplx names; Anny: phenotypes), see human3d.body.io
    OUT/<image stem>/person_<i>.pkl       SMPL family: the bare smplx-named arrays smplx loads directly
    OUT/<image stem>/person_<i>.obj       mesh in the camera frame (OpenCV axes: x right, y down, z forward)
    OUT/<image stem>/person_<i>_overlay.png  that person alone over the photo

``<i>`` is the person's index in the keypoint file. Cameras: OpenCV, world = camera frame, principal point at
the image centre, focal length from ``focal``, else EXIF, else :func:`~human3d.fitting.camera_init.default_focal`.

Skips (recorded in ``summary.json`` with a reason, never aborting the others): an image whose keypoint file does
not parse or is missing, an image that cannot be read, and persons with too few usable keypoints (all-zero
confidence, a single keypoint, NaN coordinates, keypoints outside the image; see
:func:`~human3d.fitting.smplify.smplify`).
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from human3d.body.model import BodyOutput
from human3d.body.skeletons import convert_keypoints
from human3d.data.keypoints import KeypointImage, exif_focal_px, image_size, load_image, load_keypoint_inputs
from human3d.errors import DatasetError, Human3DError, InvalidInputError
from human3d.fitting.camera_init import choose_focal
from human3d.fitting.config import SMPLifyConfig, resolve_prior
from human3d.fitting.smplify import SMPLifyResult, smplify
from human3d.geometry.cameras import Cameras, make_intrinsics
from human3d.io_utils import atomic_write_text

__all__ = ["fit_images", "FitRun", "FitInterrupted"]


@dataclass
class FitRun:
    """What :func:`fit_images` returns: the summary (also written to ``summary.json``) and the raw results
    (``result``: the only batch's, or the last one's with several ``chunk`` batches; ``results``: all)."""

    summary: dict
    result: SMPLifyResult | None
    out_dir: Path
    images: list[KeypointImage] = field(default_factory=list)
    results: list[SMPLifyResult] = field(default_factory=list)  # one per batch (see ``chunk``)

    @property
    def num_fitted(self) -> int:
        return int(self.summary.get("persons_fitted", 0))


def _load_mask(path: Path, width: int, height: int) -> torch.Tensor:
    from PIL import Image

    try:
        with Image.open(path) as im:
            m = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except Exception as e:  # noqa: BLE001 - any decoder error is a bad mask file
        raise DatasetError(f"mask: cannot read '{path}': {e}") from None
    if m.shape != (height, width):
        raise DatasetError(f"mask: '{path}' is {m.shape[1]}x{m.shape[0]}, the image is {width}x{height}")
    return torch.from_numpy((m > 0.5).astype(np.float32))


def _merge_meshes(vertices: list[torch.Tensor], faces: torch.Tensor):
    V = vertices[0].shape[0]
    verts = torch.cat(vertices, 0)
    f = torch.cat([faces + i * V for i in range(len(vertices))], 0)
    return verts, f


def fit_images(
    images,
    keypoints=None,
    out_dir="outputs/fit",
    model="anny",
    model_path=None,
    focal: float | None = None,
    prior: str = "auto",
    config: SMPLifyConfig | None = None,
    mask=None,
    overlays: bool = True,
    progress: bool = True,
    gender: str = "neutral",
    log=print,
    device: str = "cpu",
    detector=None,
    initializer=None,
    chunk: int | None = None,
    resume: bool = False,
) -> FitRun:
    """Fit all persons of ``images`` (file or folder) with ``keypoints`` (see :mod:`human3d.data.keypoints`).

    Args:
        model: a family name ("anny", "smpl", "smplh", "smplx") or a BodyModel instance.
        model_path: SMPL-family model file or folder.
        focal: focal length in pixels (all images); default EXIF, else the image diagonal.
        prior: pose prior kind (see :func:`~human3d.fitting.priors.make_pose_term`).
        config: :class:`SMPLifyConfig`.
        mask: a person-mask PNG (single image) or a folder of ``<image stem>.png`` masks (white = person).
        overlays: write overlay PNGs.
        log: a ``print``-like function for short status lines (None: silent).
        device: where to fit when ``model`` is a family name: "cpu" (default), "cuda" or "auto" (CUDA when
            available). Outputs are the same on either (checked on an H200 for the SMPL family).
        detector: with ``keypoints`` None, a callable ``images -> list[KeypointImage]`` that supplies keypoints
            (``human3d fit`` passes :func:`human3d.pose2d.detect.keypoints_or_detect`: the JSON beside an image where
            there is one, the shipped detector's for bare photos); None: JSON files beside the images only.
        initializer: a callable ``(image, keypoints, K) -> dict`` giving starting parameters per image: ``image``
            ``[H, W, 3]`` uint8, ``keypoints`` ``[P, K, 3]`` (u, v, confidence) pixels of the image's persons in the
            fit's skeleton (K = 17: COCO-17, 25: BODY_25), ``K`` the ``[3, 3]`` OpenCV intrinsics; it returns
            torch tensors ``[P, ...]`` named as the model's parameters (``global_orient`` axis-angle, ``body_pose``,
            the shape parameter, ``transl`` in the camera frame), e.g. an HMR regressor's
            (``human3d fit --init hmr``). Each becomes one more hypothesis of :func:`smplify` (the default one
            stays; each person keeps the lower energy). An image it fails on (a ``Human3DError``) is fitted
            without it, with a warning. ``"lift"``: ``smplify(init="lift")`` (the keypoint lifter; no image read).
        chunk: images per smplify batch (None: all in one). Each batch's outputs and ``summary.json`` are
            written before the next starts, so SIGINT / SIGTERM (:class:`FitInterrupted`, a ``KeyboardInterrupt``)
            leaves the finished images complete and listed (``completed_images``, ``state: "interrupted"``).
        resume: skip the images a previous run in ``out_dir`` completed (its ``summary.json`` lists them with
            every output present); their records are carried over.
    Returns:
        :class:`FitRun`. Raises :class:`~human3d.errors.DatasetError` for unusable top-level inputs (missing paths,
        a malformed single keypoint file); per-image/per-person problems are recorded in the summary instead.
    """
    from human3d.body import load_body_model

    t0 = time.perf_counter()
    log = log or (lambda *a, **k: None)
    out_dir = Path(out_dir)
    cfg = config or SMPLifyConfig()
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise InvalidInputError(f"chunk: expected a positive number of images, got {chunk!r}")
    previous = _previous_summary(out_dir) if resume else None
    items = detector(images) if keypoints is None and detector is not None else load_keypoint_inputs(images, keypoints)
    if isinstance(model, str):
        from generative.training import select_device as resolve_device

        body = load_body_model(model, model_path=model_path, gender=gender, device=resolve_device(device))
    else:
        body = model
    settings = fit_settings(body, model_path, gender, prior, cfg, focal, initializer, mask)
    if previous is not None:
        check_resume_settings(previous, settings, out_dir / "summary.json")
    mask_path = Path(mask) if mask is not None else None
    if mask_path is not None and not mask_path.exists():
        raise DatasetError(f"mask: '{mask_path}' does not exist")

    # ---- per image: size, focal, persons -------------------------------------------------------------------------
    records: list[dict] = []
    jobs: list[tuple[int, list]] = []  # (record index, [(person, keypoints, skeleton, (f, W, H), mask)])
    skeletons = set()
    done_before = {r["name"]: r for r in (previous or {}).get("images", []) if _complete(r, out_dir)}
    for item in items:
        rec = {"image": str(item.image_path) if item.image_path else None, "name": item.name,
               "keypoints_file": str(item.keypoint_file) if item.keypoint_file else None,
               "error": item.error, "warnings": list(item.warnings), "people": [], "status": "pending"}  # fmt: skip
        if item.name in done_before and not item.error:
            rec = {**done_before[item.name], "status": "done", "resumed": True}
            records.append(rec)
            log(f"resume: {item.name} was fitted by the previous run (outputs in {out_dir / item.name}), skipped")
            continue
        records.append(rec)
        if item.error:
            rec["status"] = "skipped"
            continue
        W, H = item.width, item.height
        exif = None
        if item.image_path is not None:
            try:
                W, H = image_size(item.image_path)
                exif = exif_focal_px(item.image_path, W, H)
            except DatasetError as e:
                rec["error"], rec["status"] = str(e), "skipped"
                continue
        if not W or not H:
            rec["error"] = "image size unknown (no image file and no width/height in the keypoint file)"
            rec["status"] = "skipped"
            continue
        f, src = choose_focal(W, H, focal, exif)
        rec.update(width=int(W), height=int(H), focal_px=f, focal_source=src)
        if not item.people:
            rec["warnings"].append("no people in the keypoint file")
            rec["status"] = "skipped"
            continue
        m = None
        if mask_path is not None:
            mp = mask_path if mask_path.is_file() else mask_path / f"{item.name}.png"
            if mp.is_file():
                try:
                    m = _load_mask(mp, int(W), int(H))
                except DatasetError as e:
                    rec["warnings"].append(str(e))
        for person in item.people:
            skeletons.add(person.skeleton)
        jobs.append((len(records) - 1, [(p, p.keypoints, p.skeleton, (f, W, H), m) for p in item.people]))

    skeleton = "coco17" if skeletons == {"coco17"} else "body25"
    n_people = sum(len(ps) for _, ps in jobs)
    fits: list[SMPLifyResult] = []
    fit_time = [0.0]

    def summary(state: str) -> dict:
        s = _summary(records, fits, body, prior, cfg, time.perf_counter() - t0, skeleton if jobs else None, fit_time[0])
        s["settings"] = settings
        s["state"] = state
        s["completed_images"] = [r["name"] for r in records if r["status"] == "done"]
        return s

    if jobs:
        log(f"fitting {n_people} person(s) in {len(jobs)} image(s) (model {body.family}, prior "
            f"{_prior_label(prior, body.family)}, {cfg.optimizer}" + (f", {chunk} image(s) per batch)" if chunk and
                                                                     chunk < len(jobs) else ")"))  # fmt: skip
    size = chunk or max(1, len(jobs))
    with _Interrupts() as guard:
        try:
            for c0 in range(0, len(jobs), size):
                part = jobs[c0 : c0 + size]
                res, owners = _fit_batch(part, records, body, prior, cfg, skeleton, initializer, progress)
                fits.append(res)
                fit_time[0] += res.time_s
                with guard.critical():  # an interrupt waits until this batch's outputs and summary are written
                    _write_outputs(records, owners, res, body, out_dir, overlays, progress, log)
                    for ri, _ in part:
                        rec = records[ri]
                        ok = any(p["fitted"] for p in rec["people"])
                        rec["status"] = "done" if ok else "skipped"
                    out_dir.mkdir(parents=True, exist_ok=True)
                    atomic_write_text(out_dir / "summary.json", json.dumps(summary("running"), indent=2))
        except (KeyboardInterrupt, Exception) as e:
            # a signal inside native code (a file read, a library call) can surface as another exception
            if not isinstance(e, KeyboardInterrupt) and not guard.fired:
                raise
            for r in records:
                if r["status"] == "pending":
                    r["status"] = "interrupted"
            s = summary("interrupted")
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out_dir / "summary.json", json.dumps(s, indent=2))
            n_done = len(s["completed_images"])
            raise FitInterrupted(f"{n_done} of {len(records)} image(s) done, their outputs complete and listed in "
                                 f"'{out_dir / 'summary.json'}'; rerun with --resume to fit the rest") from None  # fmt: skip
    if fits:
        _loss_plot(fits, body, out_dir / "loss.png")
    s = summary("done")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "summary.json", json.dumps(s, indent=2))
    return FitRun(s, fits[0] if len(fits) == 1 else (fits[-1] if fits else None), out_dir, items, fits)


class FitInterrupted(KeyboardInterrupt):
    """SIGINT / SIGTERM during :func:`fit_images`: the finished images' outputs and ``summary.json`` are written."""


class _Interrupts:
    """Context: SIGINT and SIGTERM raise KeyboardInterrupt (main thread only), except inside ``critical()``, where
    they are held until the block ends (so an image's outputs are never half written)."""

    def __init__(self):
        self.pending, self.depth, self.saved, self.fired = None, 0, {}, False

    def _handler(self, signum, frame):
        if self.depth:
            self.pending = signum
        else:
            self.fired = True
            raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, h in self.saved.items():
            signal.signal(sig, h)
        return False

    @contextlib.contextmanager
    def critical(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if self.pending is not None and not self.depth:
            self.pending, self.fired = None, True
            raise KeyboardInterrupt


def fit_settings(body, model_path, gender, prior, cfg: SMPLifyConfig, focal, initializer, mask) -> dict:
    """What decides a fit's result besides its inputs, as recorded in ``summary.json["settings"]``: a resumed run
    must match them (:func:`check_resume_settings`), so one folder never mixes fits made in different ways."""
    return {
        "model": body.family,
        "model_file": str(Path(model_path).resolve()) if model_path is not None else None,
        "gender": gender if body.family != "anny" else None,
        "prior": str(resolve_prior(prior, body.family)) if isinstance(prior, str) or prior is None else "custom",
        "optimizer": cfg.optimizer,
        "camera_iters": cfg.camera_iters,
        "body_iters": cfg.body_iters,
        "focal_px": float(focal) if focal is not None else None,
        "initializer": None if initializer is None else initializer if isinstance(initializer, str) else
        str(getattr(initializer, "name", "custom")),
        "keypoints3d_weight": cfg.keypoints3d_weight if initializer == "lift" else None,
        "mask": str(Path(mask).resolve()) if mask is not None else None,
    }


def check_resume_settings(previous: dict, settings: dict, path: Path) -> None:
    """``--resume``: refuse (naming every differing setting, previous -> now) when ``path``'s run was made with
    other settings than this one. Summaries from before settings were recorded are checked on the model only."""
    before = previous.get("settings")
    if not isinstance(before, dict):
        before = {"model": previous.get("model")} if previous.get("model") is not None else {}
    diff = [f"{k} {before[k]!r} -> {v!r}" for k, v in settings.items() if k in before and before[k] != v]
    if diff:
        raise InvalidInputError(f"--resume: '{path}' was fitted with other settings ({'; '.join(diff)}); resume with "
                                f"the same settings, or use another --out")  # fmt: skip


def _previous_summary(out_dir: Path) -> dict | None:
    """``--resume``: the previous run's summary.json in ``out_dir`` (None when there is none)."""
    p = out_dir / "summary.json"
    if not p.is_file():
        return None
    try:
        s = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise DatasetError(f"--resume: cannot read '{p}': {e}") from None
    if not isinstance(s, dict) or s.get("format") != "human3d.fit_summary":
        raise DatasetError(f"--resume: '{p}' is not a human3d fit summary")
    return s


def _complete(rec: dict, out_dir: Path) -> bool:
    """An image record of a previous run whose outputs are all there (fitted, every listed file present)."""
    if rec.get("status") != "done":
        return False
    files = [f for p in rec.get("people", []) for f in (p.get("files") or {}).values()]
    files += [rec["overlay"]] if rec.get("overlay") else []
    return bool(files) and all((out_dir / f).is_file() for f in files)


def _fit_batch(part, records, body, prior, cfg, skeleton, initializer, progress):
    """One smplify run over the persons of the images ``part`` -> (result, owners [(record index, person)])."""
    kp = torch.stack([convert_keypoints(torch.from_numpy(k), s, skeleton) if s != skeleton else torch.from_numpy(k)
                      for _, ps in part for _, k, s, _, _ in ps])  # fmt: skip
    cams = [c for _, ps in part for _, _, _, c, _ in ps]
    K = torch.cat([make_intrinsics(f, f, W / 2.0, H / 2.0) for f, W, H in cams])
    sizes = torch.tensor([(W, H) for _, W, H in cams], dtype=torch.float32)
    batch_mask = [m for _, ps in part for _, _, _, _, m in ps]
    masks = batch_mask if any(m is not None for m in batch_mask) else None
    owners = [(ri, p) for ri, ps in part for p, _, _, _, _ in ps]
    if initializer == "lift":  # the keypoint lifter (smplify's init="lift"), no image needed
        init = "lift"
    else:
        init = _initial_params(initializer, records, owners, kp, K, body) if initializer is not None else None
    res = smplify(body, kp, K.to(body.dtype), prior=prior, skeleton=skeleton, config=cfg, image_size=sizes,
                  masks=masks, progress=progress, init=init)  # fmt: skip
    return res, owners


def _write_outputs(records, owners, res, body, out_dir, overlays, progress, log):
    """Parameters, meshes and overlays of one batch's persons (their entries go into the image records)."""
    from human3d.body.io import export_mesh, save_params

    with torch.no_grad():
        out = body(res.params)
    # outputs are written from CPU copies (the fit may have run on a GPU)
    out = BodyOutput(out.vertices.cpu(), out.joints.cpu(), out.faces.cpu(),
                     {k: v.cpu() for k, v in out.keypoints.items()})  # fmt: skip
    params_cpu = {k: v.cpu() for k, v in res.params.items()}
    faces = out.faces
    per_image: dict[int, list[int]] = {}
    smplx_layout = getattr(body, "family", "anny") != "anny"
    for b, (ri, person) in enumerate(owners):
        rec = records[ri]
        diag = res.person(b)
        entry = {"index": person.index, "source_id": person.source_id, **diag}
        rec["people"].append(entry)
        if not diag["fitted"]:
            continue
        per_image.setdefault(ri, []).append(b)
        folder = out_dir / rec["name"]
        stem = f"person_{person.index:02d}"
        try:
            one = {k: v[b : b + 1] for k, v in params_cpu.items()}
            files = {"params_npz": save_params(folder / f"{stem}.npz", one, body),
                     "params_json": save_params(folder / f"{stem}.json", one, body),
                     "mesh": export_mesh(folder / f"{stem}.obj", out.vertices[b], faces)}  # fmt: skip
            if smplx_layout:  # SMPL family: also the bare arrays smplx loads (pickle.load -> model(**params))
                files["params_smplx"] = save_params(folder / f"{stem}.pkl", one, body, layout="smplx")
            entry["files"] = {k: str(v.relative_to(out_dir)) for k, v in files.items()}
        except (Human3DError, OSError, ValueError) as e:
            entry["output_error"] = f"{type(e).__name__}: {e}"
    if overlays:
        _write_overlays(records, per_image, owners, res, out, faces, out_dir, progress, log)


def _loss_plot(fits: list[SMPLifyResult], body, path: Path) -> None:
    """``loss.png``: per iteration of both stages, the reprojection error (pixels, mean over the fitted persons
    of the mean over their confident keypoints), the pose-prior energy, and the weights' schedules."""
    from human3d.plots import stacked_charts

    tr = [r.trace for r in fits if r.trace]
    keys = ("stage1_reprojection_px", "stage2_reprojection_px", "stage2_prior")
    if not tr or any(k not in t for t in tr for k in keys):
        return
    try:
        cat = {k: torch.cat([t[k] for t in tr], 1).float().mean(1).tolist() for k in keys}
    except RuntimeError:  # batches of different lengths (no common x axis): the first batch's
        cat = {k: tr[0][k].float().mean(1).tolist() for k in keys}
    t0 = tr[0]
    n1, n2 = len(cat[keys[0]]), len(cat[keys[1]])
    x1 = list(range(1, n1 + 1))
    x2 = list(range(n1 + 1, n1 + n2 + 1))  # the last point: the final parameters
    mark = {"stage 2": n1 + 0.5}
    xlim = (1, n1 + n2)
    px_all = cat[keys[0]] + cat[keys[1]]
    panels = [
        {"series": {"stage 1 (torso, rigid)": (x1, cat[keys[0]]), "stage 2 (full body)": (x2, cat[keys[1]])},
         "title": f"SMPLify ({body.family}, prior {fits[0].prior}): reprojection error, mean over keypoints",
         "ylabel": "pixels", "log_y": min(px_all) > 0, "vlines": mark, "xlim": xlim},
        {"series": {"pose prior energy (mean)": (x2, cat[keys[2]])}, "title": "pose prior energy (stage 2)",
         "ylabel": "energy", "vlines": mark, "xlim": xlim},
        {"series": {"pose prior weight": (x2, t0["stage2_pose_prior_weight"].tolist()),
                    "shape weight": (x2, t0["stage2_shape_weight"].tolist())},
         "title": "weights (annealed through stage 2)", "ylabel": "weight", "log_y": True, "vlines": mark, "xlim": xlim,
         "xlabel": "iteration (stage 1, then stage 2; last point: final parameters)"},
    ]  # fmt: skip
    try:
        stacked_charts(panels, path)
    except (Human3DError, OSError, ValueError) as e:  # a plot never stands in the way of summary.json
        import warnings

        warnings.warn(f"loss.png not written: {e}", stacklevel=2)


def _initial_params(initializer, records, owners, kp, K, body) -> dict[str, torch.Tensor] | None:
    """Call ``initializer`` once per image with people -> parameters ``[B, ...]`` of every person (NaN rows where
    the initializer gave none: no image file, or it failed; recorded in the image's warnings)."""
    B = kp.shape[0]
    by_image: dict[int, list[int]] = {}
    for b, (ri, _) in enumerate(owners):
        by_image.setdefault(ri, []).append(b)
    shapes = body.parameter_shapes()
    out: dict[str, torch.Tensor] = {}
    for ri, bs in by_image.items():
        rec = records[ri]
        if not rec["image"]:
            rec["warnings"].append("init: no image file, fitted without the initializer")
            continue
        try:
            got = initializer(load_image(rec["image"]), kp[bs].clone(), K[bs[0]].clone())
            if not isinstance(got, dict) or not got:
                raise InvalidInputError(f"expected a dict of parameter tensors, got {type(got).__name__}")
            for name, v in got.items():
                if name not in shapes:
                    raise InvalidInputError(f"unknown parameter {name!r} (the model takes {sorted(shapes)})")
                v = torch.as_tensor(v).detach().to(torch.float32).reshape(len(bs), -1)
                if v.shape[1] != int(np.prod(shapes[name])):
                    raise InvalidInputError(f"{name}: expected [{len(bs)}, {int(np.prod(shapes[name]))}], got {tuple(v.shape)}")
                if name not in out:
                    out[name] = torch.full((B, v.shape[1]), float("nan"))
                out[name][bs] = v
        except Human3DError as e:
            rec["warnings"].append(f"init: initializer failed, fitted without it: {e}")
    return out or None


def _write_overlays(records, per_image, owners, res, out, faces, out_dir, progress, log):
    from human3d.render.overlay import MODEL_KEYPOINT_COLOR, draw_keypoints, render_overlay, save_png

    jobs = [(ri, bs) for ri, bs in per_image.items()]
    it = jobs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(jobs, desc="overlays", unit="image", leave=False)
    for ri, bs in it:
        rec = records[ri]
        try:
            img = load_image(rec["image"]) if rec["image"] else None
        except DatasetError as e:
            rec["warnings"].append(f"overlay skipped: {e}")
            continue
        if img is None:
            continue
        H, W = img.shape[:2]
        folder = out_dir / rec["name"]
        f = rec["focal_px"]
        K = make_intrinsics(f, f, W / 2.0, H / 2.0)
        ov = None
        for b in bs:
            cam = Cameras(K, torch.eye(4)[None], W, H)
            entry = next(e for e in rec["people"] if e["index"] == owners[b][1].index)
            try:
                ov = None
                ov = render_overlay(img, out.vertices[b].float(), faces, cam, keypoints=res.target[b].cpu(),
                                    model_keypoints=out.keypoints[res.skeleton][b].float())  # fmt: skip
                p = save_png(folder / f"person_{owners[b][1].index:02d}_overlay.png", ov)
                entry.setdefault("files", {})["overlay"] = str(p.relative_to(out_dir))
            except (Human3DError, OSError, ValueError, RuntimeError) as e:
                entry["output_error"] = f"overlay: {type(e).__name__}: {e}"
        try:
            if len(bs) == 1 and ov is not None:  # one person: the same picture, no second render
                p = save_png(folder / "overlay.png", ov)
                rec["overlay"] = str(p.relative_to(out_dir))
                continue
            verts, fc = _merge_meshes([out.vertices[b].float() for b in bs], faces)
            cam = Cameras(K, torch.eye(4)[None], W, H)
            ov = render_overlay(img, verts, fc, cam)
            for b in bs:
                proj = cam.project(out.keypoints[res.skeleton][b : b + 1].float())
                mk = torch.cat([proj.uv[0], proj.valid[0, :, None].float()], -1)
                ov = draw_keypoints(ov, mk, color=MODEL_KEYPOINT_COLOR, min_confidence=0.5)
                ov = draw_keypoints(ov, res.target[b].cpu())
            p = save_png(folder / "overlay.png", ov)
            rec["overlay"] = str(p.relative_to(out_dir))
        except (Human3DError, OSError, ValueError, RuntimeError) as e:
            rec["warnings"].append(f"overlay: {type(e).__name__}: {e}")


def _summary(records, fits, body, prior, cfg, seconds, skeleton, fit_seconds=0.0) -> dict:
    people = [p for r in records for p in r["people"]]
    fitted = [p for p in people if p["fitted"]]
    errs = [p["reprojection_error_px"] for p in fitted]
    return {
        "format": "human3d.fit_summary",
        "version": 1,
        "model": body.family,
        "prior": fits[0].prior if fits else resolve_prior(prior, body.family),
        "optimizer": cfg.optimizer,
        "iterations": {"camera": cfg.camera_iters, "body": cfg.body_iters},
        "skeleton": skeleton,
        "camera_convention": "OpenCV (x right, y down, z forward); world = camera frame; pixels: centres at +0.5",
        "time_s": seconds,
        "fit_time_s": fit_seconds,
        "persons": len(people),
        "persons_fitted": len(fitted),
        "persons_skipped": len(people) - len(fitted),
        "images_skipped": sum(1 for r in records if r["error"]),
        "mean_reprojection_error_px": float(np.mean(errs)) if errs else None,
        "images": records,
    }


def _prior_label(prior, family: str) -> str:
    """What a prior argument means, for logs ("auto" resolved per model family)."""
    resolved = resolve_prior(prior, family)
    return f"auto -> {resolved}" if resolved is not prior else str(prior)
