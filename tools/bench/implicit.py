"""Implicit-surface benchmark: surface reconstruction from points sampled on the shared watertight meshes.

For each mesh (spot, bunny, armadillo in /work/shared/data/meshes_watertight) and each method (hashsdf, igr) it
samples ``--points`` points with normals, fits for ``--minutes`` of this process's CPU time (one thread, so CPU
minutes are honest on a shared machine), extracts the mesh by MISE at 256^3 and prints Chamfer-L1 (absolute and
relative to the bounding-box diagonal), normal consistency and F-score at 1 % of the diagonal (100k samples each),
IoU from 100k uniform samples, and the sign-distance backends and MISE vs dense timings.

    .venv/bin/python tools/bench/implicit.py [--minutes 3] [--meshes spot bunny armadillo] [--methods hashsdf igr]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from human3d.data.paths import shared_data_dir  # noqa: E402
from human3d.implicit.extract import dense_grid, marching_cubes, mise_grid  # noqa: E402
from human3d.implicit.trainer import SurfaceFitTrainer, compare_meshes, preset  # noqa: E402

MESHES = {"spot": "spot_triangulated.obj", "bunny": "bunny.obj", "armadillo": "armadillo.obj"}


def fit_one(path: Path, method: str, minutes: float, points: int, out: Path) -> dict:
    cfg = preset("igr" if method == "igr" else "fast", n_points=points, mesh_resolution=256,
                 **{"run.time_budget_s": minutes * 60, "run.budget_clock": "process", "run.threads": 1,
                    "run.max_steps": 10**6, "run.checkpoint_every": 10**6, "run.log_every": 50})  # fmt: skip
    t = SurfaceFitTrainer(out, data=path, config=cfg)
    info = t.train(progress=False)
    m = t.extract(256)
    metrics = compare_meshes(m.vertices, m.faces, path, n=100_000, pred_inside=t.inside)
    return {"steps": info["step"], "cpu_s": info["elapsed_s"], **metrics}


def extraction_timings(trainer_run: Path) -> list[tuple[int, float, float, int, int]]:
    t = SurfaceFitTrainer.from_run(trainer_run)
    fn = t.field()
    rows = []
    for res in (128, 256):
        t0 = time.perf_counter()
        g, n_eval = mise_grid(fn, res)
        marching_cubes(g)
        t_mise = time.perf_counter() - t0
        t0 = time.perf_counter()
        marching_cubes(dense_grid(fn, res))
        t_dense = time.perf_counter() - t0
        rows.append((res, t_mise, t_dense, n_eval, (res + 1) ** 3))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=3.0, help="CPU minutes per fit (one thread)")
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--meshes", nargs="+", default=list(MESHES), choices=list(MESHES))
    ap.add_argument("--methods", nargs="+", default=["hashsdf", "igr"], choices=["hashsdf", "igr"])
    ap.add_argument("--no-timings", action="store_true", help="skip the MISE vs dense timings")
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = shared_data_dir() / "meshes_watertight"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        last_run = None
        for name in args.meshes:
            for method in args.methods:
                out = Path(tmp) / f"{name}-{method}"
                r = fit_one(root / MESHES[name], method, args.minutes, args.points, out)
                last_run = out
                rows.append((name, method, r))
                print(f"{name:10s} {method:8s} steps {r['steps']:5d}  cpu {r['cpu_s'] / 60:5.2f} min  "
                      f"Chamfer-L1 {r['chamfer_l1']:.4g} ({100 * r['chamfer_l1_rel']:.3f} % diag)  "
                      f"NC {r['normal_consistency']:.4f}  F@1% {r['fscore']:.4f}  IoU {r['iou']:.4f}", flush=True)
        if rows:
            rel = np.array([r["chamfer_l1_rel"] for *_, r in rows])
            nc = np.array([r["normal_consistency"] for *_, r in rows])
            print(f"Chamfer-L1 / diag: mean {100 * rel.mean():.3f} %, median {100 * np.median(rel):.3f} %, "
                  f"worst {100 * rel.max():.3f} %;  NC mean {nc.mean():.4f}, worst {nc.min():.4f}")
            goal = [(n, m) for n, m, r in rows if r["chamfer_l1_rel"] <= 0.005 and r["normal_consistency"] >= 0.95]
            print(f"goal (Chamfer-L1 <= 0.5 % diag and NC >= 0.95 in {args.minutes:g} CPU min): "
                  f"{len(goal)}/{len(rows)} {goal}")
        if not args.no_timings and last_run is not None:
            torch.set_num_threads(2)
            for res, tm, td, ne, nd in extraction_timings(last_run):
                print(f"extraction {res}^3 (2 threads): MISE {tm:.2f} s ({ne} evaluations), dense {td:.2f} s "
                      f"({nd} evaluations)")


if __name__ == "__main__":
    main()
