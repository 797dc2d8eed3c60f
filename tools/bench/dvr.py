"""DVR benchmark: DVR against our NeRF on the same data: test PSNR / SSIM, mask IoU, mesh Chamfer-L1 to the
ground-truth mesh, watertightness, CPU minutes and rays per second.

Scenes: multi-view renders of spot and of the default Anny body made with ``human3d.synth.multiview`` (RGBA, exact
alpha masks, ground-truth ``mesh.obj``; Chamfer-L1 in the renders' world units, where the object fills the unit
ball, and relative to the ground truth's bounding-box diagonal), and lego (nerf_synthetic at 400 px, alpha masks;
no ground-truth mesh, so no Chamfer). Each method trains for ``--minutes`` of this process's CPU time on one thread
(``run.budget_clock = "process"``: honest CPU minutes on a shared machine), then is evaluated on the test split
(``--eval-views`` evenly spaced views) and meshed (DVR: MISE + marching cubes of the occupancy level set, 128^3;
NeRF: ``nerf mesh``'s marching cubes of the density at 10, 128^3).

    .venv/bin/python tools/bench/dvr.py [--scenes spot anny lego] [--methods dvr nerf] [--minutes 3]
        [--lego-minutes 15] [--size 96] [--views 40] [--work /tmp/dvr_bench] [--reuse]

``--reuse`` reads a finished run folder under ``--work`` instead of training again (its figures are the run's).
Results: ``tools/bench/results/dvr.json`` and a table in ``tools/bench/results/dvr.txt``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from human3d.data.paths import shared_data_dir  # noqa: E402
from human3d.dvr.config import preset as dvr_preset  # noqa: E402
from human3d.dvr.trainer import DVRTrainer  # noqa: E402
from human3d.implicit.sampling import is_watertight, load_mesh, sample_surface  # noqa: E402
from human3d.io_utils import atomic_write_text  # noqa: E402
from human3d.metrics import chamfer_l1  # noqa: E402
from human3d.nerf.config import preset as nerf_preset  # noqa: E402
from human3d.nerf.trainer import NerfTrainer  # noqa: E402
from human3d.synth.multiview import MultiviewConfig, anny_mesh, load_mesh_file, render_multiview  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def make_data(name: str, work: Path, size: int, views: int) -> Path:
    out = work / "data" / name
    if (out / "transforms_test.json").is_file():
        return out
    if name == "spot":
        v, f, _ = load_mesh_file(shared_data_dir() / "meshes_watertight" / "spot_triangulated.obj")
    else:
        v, f = anny_mesh()
    render_multiview(v, f, out, MultiviewConfig(n_train=views, n_test=8, size=size), source=name)
    return out


def chamfer(pred_path: Path, gt_path: Path, n: int = 50_000) -> dict:
    pv, pf = load_mesh(pred_path)
    gv, gf = load_mesh(gt_path)
    p, _ = sample_surface(pv, pf, n, seed=0)
    q, _ = sample_surface(gv, gf, n, seed=1)
    cd = float(chamfer_l1(p, q))
    diag = float(np.linalg.norm(gv.max(0) - gv.min(0)))
    return {"chamfer_l1": cd, "chamfer_l1_rel": cd / diag, "watertight": bool(is_watertight(pf)),
            "mesh_vertices": len(pv)}  # fmt: skip


def run_one(method: str, data: Path, out: Path, minutes: float, eval_views: int, reuse: bool,
            gt_mesh: Path | None) -> dict:  # fmt: skip
    budget = {"run.time_budget_s": minutes * 60.0, "run.budget_clock": "process", "run.threads": 1,
              "run.max_steps": 10**6, "run.checkpoint_every": 500}  # fmt: skip
    torch.set_num_threads(1)
    if method == "dvr":
        cls, cfg = DVRTrainer, dvr_preset("fast", **budget)
    else:  # the NeRF fast preset at the same training resolution as DVR's fast preset (100 px)
        cls, cfg = NerfTrainer, nerf_preset("fast", **budget)
        if "lego" in str(data):
            cfg = cfg.replace(**{"data.downscale": 4.0})
    if reuse and (out / "checkpoint.safetensors").is_file():
        tr = cls.from_run(out)
        info = {"step": tr.step, "elapsed_s": tr.elapsed}
    else:
        tr = cls(out, data, config=cfg)
        info = tr.train(progress=False)
    c0 = time.process_time()
    m = tr.evaluate("test", max_views=eval_views)
    eval_cpu = time.process_time() - c0
    row = {"method": method, "steps": int(info["step"]), "cpu_min": float(info["elapsed_s"]) / 60.0,
           "psnr": m["psnr"], "ssim": m["ssim"], "mask_iou": m.get("mask_iou"), "eval_views": m["n_views"],
           "resolution": m["resolution"], "eval_cpu_s_per_view": eval_cpu / max(1, m["n_views"])}  # fmt: skip
    W, H = m["resolution"]
    if method == "dvr":
        rays = W * H * tr.config.supersample**2
        row["render_rays_per_s"] = rays / row["eval_cpu_s_per_view"]
        row["train_rays_per_s"] = tr.config.optim.num_rays * row["steps"] / max(float(info["elapsed_s"]), 1e-9)
        c0 = time.process_time()
        mesh = tr.extract_mesh(out / "bench_mesh.obj", 128)
        row["mesh_cpu_s"] = time.process_time() - c0
    else:
        row["render_rays_per_s"] = W * H / row["eval_cpu_s_per_view"]
        c0 = time.process_time()
        mesh = tr.extract_mesh(out / "bench_mesh.obj", resolution=128, threshold=10.0)
        row["mesh_cpu_s"] = time.process_time() - c0
    if gt_mesh is not None:
        row.update(chamfer(Path(mesh["path"]), gt_mesh))
    else:
        row["watertight"] = bool(is_watertight(load_mesh(mesh["path"])[1]))
    return row


def table(rows: list[dict]) -> str:
    head = (f"{'scene':6s} {'method':6s} {'CPU min':>7s} {'steps':>6s} {'PSNR':>6s} {'SSIM':>6s} {'maskIoU':>7s} "
            f"{'Chamfer-L1':>10s} {'(% diag)':>8s} {'watertight':>10s} {'render rays/s':>13s}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in rows:
        iou = "-" if r.get("mask_iou") is None else f"{r['mask_iou']:.4f}"
        cd = "-" if "chamfer_l1" not in r else f"{r['chamfer_l1']:.4f}"
        rel = "-" if "chamfer_l1_rel" not in r else f"{100 * r['chamfer_l1_rel']:.2f}"
        lines.append(f"{r['scene']:6s} {r['method']:6s} {r['cpu_min']:7.2f} {r['steps']:6d} {r['psnr']:6.2f} "
                     f"{r['ssim']:6.3f} {iou:>7s} {cd:>10s} {rel:>8s} {str(r.get('watertight', '-')):>10s} "
                     f"{r['render_rays_per_s']:13.0f}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", nargs="+", default=["spot", "anny", "lego"])
    ap.add_argument("--methods", nargs="+", default=["dvr", "nerf"])
    ap.add_argument("--minutes", type=float, default=3.0, help="CPU minutes per run on spot / anny")
    ap.add_argument("--lego-minutes", type=float, default=15.0, help="CPU minutes per run on lego")
    ap.add_argument("--size", type=int, default=96, help="render size of spot / anny")
    ap.add_argument("--views", type=int, default=40, help="training views of spot / anny")
    ap.add_argument("--eval-views", type=int, default=8)
    ap.add_argument("--lego-eval-views", type=int, default=25)
    ap.add_argument("--work", type=Path, default=Path("/tmp/dvr_bench"))
    ap.add_argument("--reuse", action="store_true", help="evaluate finished runs under --work instead of training")
    ap.add_argument("--out", type=Path, default=RESULTS / "dvr.json")
    a = ap.parse_args()
    rows = []
    prev = json.loads(a.out.read_text()) if a.out.is_file() else {"rows": []}
    for scene in a.scenes:
        lego = scene == "lego"
        data = shared_data_dir() / "nerf_lego_400" if lego else make_data(scene, a.work, a.size, a.views)
        for method in a.methods:
            out = a.work / (scene if method == "dvr" else f"{scene}_{method}")
            row = run_one(method, data, out, a.lego_minutes if lego else a.minutes,
                          a.lego_eval_views if lego else a.eval_views, a.reuse,
                          None if lego else data / "mesh.obj")  # fmt: skip
            row["scene"] = scene
            rows.append(row)
            print(json.dumps(row), flush=True)
            keep = [r for r in prev["rows"] if (r["scene"], r["method"]) != (scene, method)]
            prev = {"rows": keep + [row], "note": "CPU minutes: this process's CPU time, one thread"}
            a.out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(a.out, json.dumps(prev, indent=2))
    txt = table(sorted(prev["rows"], key=lambda r: (r["scene"], r["method"])))
    print(txt)
    atomic_write_text(a.out.with_suffix(".txt"), txt + "\n")


if __name__ == "__main__":
    main()
