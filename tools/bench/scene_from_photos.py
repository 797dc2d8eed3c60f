"""Benchmark of ``human3d scene from-photos`` (pycolmap SfM) on the lego train images, whose true poses are known.

    python tools/bench/scene_from_photos.py sfm --size 100 [--n 100] [--matcher exhaustive] [--keep DIR]
    python tools/bench/scene_from_photos.py splat --scene DIR [--res 100] [--steps 1500] [--val-views 25]
    python tools/bench/scene_from_photos.py report     # tools/bench/results/scene_from_photos.txt from the JSONs

``sfm``: the first N lego train images (RGBA, composited on white) at SIZE x SIZE px through
:func:`human3d.data.sfm.scene_from_photos`; prints the registration rate, the time of each stage and the pose error
of the registered cameras against the truth (Blender OpenGL camera-to-world, converted to OpenCV) after a
similarity (Umeyama) alignment of the camera centres: centre error in % of the scene radius (the largest distance of
a true centre from their mean; all 100 lego train views: 4.73), rotation error in degrees; mean / median / worst. Writes
``results/scene_from_photos_sfm{SIZE}.json``.

``splat``: the splat ``fast`` preset trained for the same steps on (a) the SfM scene (recovered poses and focal,
undistorted images) and (b) the same training images with the true poses (a Blender layout of the images the COLMAP
loader puts in its train split), both on white, no random background; PSNR on evenly spaced val views at RES px. The
val cameras of (a) are the true ones mapped into the SfM frame with the inverse of the train alignment, with the
SfM focal. Writes ``results/scene_from_photos_splat{SIZE}.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from human3d.data.nerfstudio import read_transforms  # noqa: E402
from human3d.data.paths import shared_data_dir  # noqa: E402
from human3d.data.sfm import SfmOptions, scene_from_photos  # noqa: E402
from human3d.geometry.align import pose_errors  # noqa: E402

LEGO = shared_data_dir() / "nerf_lego_400"
RESULTS = ROOT / "tools" / "bench" / "results"
GL = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenGL <-> OpenCV camera axes (right-multiplied on camera-to-world)


def true_c2w(split: str = "train") -> dict[str, np.ndarray]:
    """{'r_12': OpenCV camera-to-world [4, 4]} of a lego split."""
    meta = json.loads((LEGO / f"transforms_{split}.json").read_text())
    return {Path(f["file_path"]).name: np.asarray(f["transform_matrix"], np.float64) @ GL for f in meta["frames"]}


def _stats(x, higher_is_better: bool = False) -> dict:
    """mean / median / worst (the largest error, or the lowest score when ``higher_is_better``)."""
    x = np.asarray(x, np.float64)
    return {"mean": float(x.mean()), "median": float(np.median(x)),
            "worst": float(x.min() if higher_is_better else x.max())}  # fmt: skip


def evaluate_scene(scene: Path) -> dict:
    """Pose errors of a from-photos scene of lego images named r_<i>.png against the train truth."""
    tc = read_transforms(scene / "transforms.json")
    truth = true_c2w("train")
    names = [Path(f).stem for f in tc.file_paths]
    e = pose_errors(tc.c2w, np.stack([truth[n] for n in names]))
    r = e["scene_radius"]
    return {"names": names, "scene_radius": r, "scale": e["scale"], "R": e["R"].tolist(), "t": e["t"].tolist(),
            "center_error_pct": _stats(e["center_error"] / r * 100), "rotation_error_deg": _stats(e["rotation_error_deg"]),
            "fl_x_400": float(tc.K[0, 0, 0] * 400 / tc.sizes[0, 0]), "true_fl_x_400": 0.5 * 400 / np.tan(0.5 * 0.6911112070083618)}  # fmt: skip


def cmd_sfm(a) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench_sfm_"))
    src = tmp / "photos"
    src.mkdir()
    names = sorted(true_c2w("train"), key=lambda s: int(s.split("_")[1]))[: a.n]
    for n in names:
        os.symlink(LEGO / "train" / f"{n}.png", src / f"{n}.png")
    scene = Path(a.keep) if a.keep else tmp / "scene"
    t0 = time.perf_counter()
    s = scene_from_photos(src, scene, SfmOptions(matcher=a.matcher, downscale=400 / a.size, num_threads=a.threads,
                                                 overwrite=True, min_registered=0.0))  # fmt: skip
    wall = time.perf_counter() - t0
    ev = evaluate_scene(scene)
    row = {"size": a.size, "n_images": len(names), "matcher": a.matcher, "threads": a.threads,
           "registered": s["registered"], "registration_rate": s["registration_rate"], "models": s["models"],
           "points": s["points"], "mean_reprojection_error_px": s["mean_reprojection_error_px"],
           "times_s": s["times_s"], "wall_s": wall, "scene": str(scene), **{k: v for k, v in ev.items() if k != "names"}}  # fmt: skip
    print(json.dumps(row, indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"scene_from_photos_sfm{a.size}.json").write_text(json.dumps(row, indent=1) + "\n")
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)


def cmd_splat(a) -> None:
    from human3d.data.scenes import load_blender_scene, load_colmap_scene
    from human3d.geometry.cameras import Cameras, invert_rigid
    from human3d.metrics import psnr
    from human3d.splat.config import preset
    from human3d.splat.trainer import SplatTrainer

    torch.set_num_threads(a.threads)
    scene = Path(a.scene)
    summary = json.loads((scene / "summary.json").read_text())
    size = summary["input_size"][0]
    ev = evaluate_scene(scene)
    s, R, t = ev["scale"], np.asarray(ev["R"]), np.asarray(ev["t"])
    train = load_colmap_scene(scene, "train")
    train_names = [p.stem for p in train.image_paths]
    truth = true_c2w("train")
    work = Path(tempfile.mkdtemp(prefix="bench_splat_"))
    # (b) the same training images with the true poses, Blender layout (absolute paths)
    tf = {"camera_angle_x": 0.6911112070083618,
          "frames": [{"file_path": str(LEGO / "train" / n), "transform_matrix": (truth[n] @ GL).tolist()} for n in train_names]}
    (work / "true").mkdir()
    (work / "true" / "transforms_train.json").write_text(json.dumps(tf))
    val_meta = json.loads((LEGO / "transforms_val.json").read_text())
    for f in val_meta["frames"]:
        f["file_path"] = str(LEGO / f["file_path"])
    (work / "true" / "transforms_val.json").write_text(json.dumps(val_meta))
    val = load_blender_scene(LEGO, "val", downscale=400 / a.res, background=(1.0, 1.0, 1.0))
    views = np.linspace(0, len(val) - 1, a.val_views).round().astype(int).tolist()

    # val cameras in the SfM frame: x_true = s R x_sfm + t  ->  c2w_sfm = [R^T Rc | R^T (c - t) / s]
    c2w_true = val.cameras.camera_to_world.double().numpy()
    c2w_sfm = np.tile(np.eye(4), (len(val), 1, 1))
    c2w_sfm[:, :3, :3] = R.T @ c2w_true[:, :3, :3]
    c2w_sfm[:, :3, 3] = ((c2w_true[:, :3, 3] - t) @ R) / s
    K_sfm = train.cameras.K[:1].double().clone()
    K_sfm[:, :2] *= a.res / train.width
    K_sfm = K_sfm.expand(len(val), 3, 3).float()
    val_sfm = Cameras(K_sfm, invert_rigid(torch.tensor(c2w_sfm, dtype=torch.float32)), val.width, val.height)

    rows = {}
    for name, data, ds, cams in (("sfm_poses", scene, size / a.res, val_sfm), ("true_poses", work / "true", 400 / a.res, val.cameras)):
        cfg = preset("fast").replace(**{"run.max_steps": a.steps, "data.downscale": ds, "data.random_background": False,
                                        "run.threads": a.threads, "run.log_every": 100})  # fmt: skip
        t0 = time.perf_counter()
        tr = SplatTrainer(work / f"run_{name}", data, config=cfg)
        tr.train(progress=False)
        train_s = time.perf_counter() - t0
        vals = [float(psnr(tr.render(cams[[v]])[0].cpu(), val.images[v])) for v in views]
        rows[name] = {"psnr": _stats(vals, higher_is_better=True), "psnr_per_view": vals, "train_s": train_s, "n_train": len(tr.train_split),
                      "gaussians": len(tr.gaussians), "train_res": tr.train_split.width}  # fmt: skip
        print(name, json.dumps(rows[name]))
    out = {"scene_size": size, "res": a.res, "steps": a.steps, "val_views": len(views), **rows}
    (RESULTS / f"scene_from_photos_splat{size}.json").write_text(json.dumps(out, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)


def cmd_report(a) -> None:
    lines = ["human3d scene from-photos on the lego train images (tools/bench/scene_from_photos.py)", ""]
    for f in sorted(RESULTS.glob("scene_from_photos_sfm*.json"), key=lambda p: int(p.stem.split("sfm")[1])):
        r = json.loads(f.read_text())
        c, o = r["center_error_pct"], r["rotation_error_deg"]
        tm = ", ".join(f"{k} {v:.1f}" for k, v in r["times_s"].items())
        lines += [f"{r['size']} px, {r['n_images']} images, {r['matcher']} matcher, {r['threads']} thread(s):",
                  f"  registered {r['registered']}/{r['n_images']} ({100 * r['registration_rate']:.0f} %), models {r['models']}, "
                  f"{r['points']} points, mean reprojection error {r['mean_reprojection_error_px']:.3f} px",
                  f"  centre error (% of the registered true centres' radius {r['scene_radius']:.2f}): mean {c['mean']:.3f}, median {c['median']:.3f}, worst {c['worst']:.3f}",
                  f"  rotation error (deg): mean {o['mean']:.3f}, median {o['median']:.3f}, worst {o['worst']:.3f}",
                  f"  focal at 400 px: {r['fl_x_400']:.1f} (true {r['true_fl_x_400']:.1f})",
                  f"  stage times (s, contended 2-core machine): {tm}", ""]  # fmt: skip
    for f in sorted(RESULTS.glob("scene_from_photos_splat*.json")):
        r = json.loads(f.read_text())
        lines.append(f"splat fast preset, {r['steps']} steps at {r['res']} px, PSNR on {r['val_views']} val views "
                     f"(SfM scene of {r['scene_size']} px images):")  # fmt: skip
        for k in ("sfm_poses", "true_poses"):
            p = r[k]["psnr"]
            lines.append(f"  {k:10s}: mean {p['mean']:.2f} dB, median {p['median']:.2f}, worst {p['worst']:.2f} "
                         f"({r[k]['n_train']} train images, {r[k]['gaussians']} Gaussians, {r[k]['train_s']:.0f} s)")  # fmt: skip
        lines.append("")
    text = "\n".join(lines)
    (RESULTS / "scene_from_photos.txt").write_text(text)
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("sfm")
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--matcher", default="exhaustive")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--keep", default=None, help="Keep the scene in this folder (for `splat`).")
    p = sub.add_parser("splat")
    p.add_argument("--scene", required=True)
    p.add_argument("--res", type=int, default=100)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--val-views", type=int, default=25)
    p.add_argument("--threads", type=int, default=1)
    sub.add_parser("report")
    a = ap.parse_args()
    {"sfm": cmd_sfm, "splat": cmd_splat, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
