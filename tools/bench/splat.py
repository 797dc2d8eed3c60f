"""Benchmark of the CPU Gaussian-splatting rasterizer and of training on lego (prints its figures).

    python tools/bench/splat.py raster [--sizes 10000 100000] [--res 400]
    python tools/bench/splat.py train --minutes 15 [--res 400] [--clock process] [--plot psnr.png]

``raster``: forward and forward+backward milliseconds of ``human3d.splat.rasterize`` for N Gaussians at RES x RES,
SH degree 3, seen from 4 m, in two scenes: ``surface`` (flat Gaussians on a unit sphere, opacity 0.8: like a
trained object) and ``volume`` (Gaussians filling a 2.6 m box with the ``fast`` preset's random initialisation:
half the nearest-neighbour scale, opacity 0.1: the first training steps). gsplat has no CPU compositing (its kernels need CUDA), so there is no
reference implementation to run beside it on a CPU.

``train``: trains the ``fast`` preset on lego at RES x RES for a time budget and prints the validation PSNR at
every ``--eval-every`` minutes of training (evaluation time is not counted). ``--clock process`` measures the
CPU time of this process (a fair figure on a machine shared with other jobs); ``--clock wall`` the wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from human3d.data.paths import shared_data_dir  # noqa: E402
from human3d.geometry.cameras import intrinsics_from_fov, look_at  # noqa: E402
from human3d.splat import Gaussians, rasterize  # noqa: E402

LEGO = shared_data_dir() / "nerf_lego_400"


def _timeit(fn, repeats: int, clock) -> float:
    fn()  # warm-up
    best = math.inf
    for _ in range(repeats):
        t = clock()
        fn()
        best = min(best, clock() - t)
    return best * 1000


def _scene(kind: str, n: int) -> Gaussians:
    gen = torch.Generator().manual_seed(0)
    if kind == "volume":  # the 'fast' preset's random initialisation (opacity 0.1, half the kNN scale)
        g = Gaussians.random_in_box(n, (-1.3,) * 3, (1.3,) * 3, sh_degree=3, opacity=0.1, generator=gen)
        with torch.no_grad():
            g.log_scales += math.log(0.5)
    else:  # flat Gaussians tangent to a unit sphere
        pts = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
        g = Gaussians.from_points(pts, torch.rand(n, 3, generator=gen), sh_degree=3, opacity=0.8)
        z = torch.tensor([0.0, 0.0, 1.0]).expand(n, 3)
        axis = torch.linalg.cross(z, pts)  # rotate local z onto the normal: the thin axis
        s = axis.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        half = 0.5 * torch.atan2(s, pts[:, 2:3])
        with torch.no_grad():
            g.quats.copy_(torch.cat([torch.cos(half), torch.sin(half) * axis / s], -1))
            g.log_scales[:, 2] += math.log(0.1)
    with torch.no_grad():
        g.sh_rest.normal_(0.0, 0.05, generator=gen)
    return g


def bench_raster(sizes, res: int, repeats: int, clock, scenes=("surface", "volume")) -> list[dict]:
    rows = []
    eye = torch.tensor([[0.0, -4.0, 1.5]])
    viewmats = look_at(eye, torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 1.0]]))
    Ks = intrinsics_from_fov(0.6911, res, res)
    for kind in scenes:
        for n in sizes:
            g = _scene(kind, n)
            weight = torch.rand(1, res, res, 3)

            def fwd():
                with torch.no_grad():
                    return rasterize(g.means, g.quats, g.scales, g.opacities, g.sh, viewmats, Ks, res, res,
                                     sh_degree=3, background=torch.ones(3))  # fmt: skip

            def fwd_bwd():
                g.zero_grad(set_to_none=True)
                rc, _, _ = rasterize(g.means, g.quats, g.scales, g.opacities, g.sh, viewmats, Ks, res, res,
                                     sh_degree=3, background=torch.ones(3))  # fmt: skip
                (rc * weight).sum().backward()

            meta = fwd()[2]
            row = {"scene": kind, "gaussians": n, "resolution": res, "fragments": meta["n_fragments"],
                   "tile_pairs": meta["n_tile_pairs"], "forward_ms": _timeit(fwd, repeats, clock),
                   "forward_backward_ms": _timeit(fwd_bwd, repeats, clock)}  # fmt: skip
            rows.append(row)
            print(f"  {kind:>7s}  N={n:>7d}  {res}x{res}  fragments {row['fragments']:>9d}  forward "
                  f"{row['forward_ms']:8.1f} ms  forward+backward {row['forward_backward_ms']:8.1f} ms", flush=True)
    return rows


def bench_train(args) -> list[dict]:
    from human3d.splat.config import preset
    from human3d.splat.trainer import SplatTrainer

    data = Path(args.data)
    downscale = 400 / args.res
    budget = args.minutes * 60.0
    overrides = json.loads(args.set) if args.set else {}
    cfg = preset("fast", **{"data.downscale": downscale, "run.time_budget_s": budget, "run.budget_clock": args.clock,
                            **overrides})  # fmt: skip
    out = Path(args.out)
    if out.exists() and not args.resume:
        import shutil

        shutil.rmtree(out)
    tr = SplatTrainer(out, data, config=cfg)
    points = []
    marks = [m * 60.0 for m in np.arange(args.eval_every, args.minutes + 1e-9, args.eval_every)]

    def evaluate():
        m = tr.evaluate("val", max_views=args.eval_views, write_images=False)
        rec = {"minutes": round(tr.elapsed / 60.0, 3), "step": tr.step, "psnr": round(m["psnr"], 3),
               "ssim": round(m["ssim"], 4), "gaussians": len(tr.gaussians)}  # fmt: skip
        points.append(rec)
        print(f"  {rec['minutes']:6.2f} min  step {rec['step']:>6d}  val PSNR {rec['psnr']:6.2f} dB  SSIM "
              f"{rec['ssim']:.4f}  {rec['gaussians']} Gaussians", flush=True)  # fmt: skip

    def callback(t, info):
        while marks and t.elapsed >= marks[0] - 1e-6:
            marks.pop(0)
            evaluate()

    tr.train(callback=callback, progress=False)
    if not points or points[-1]["step"] != tr.step:
        evaluate()
    if args.full_eval:
        m = tr.evaluate("val", max_views=0, write_images=False)
        print(f"  final: all {m['n_views']} val views: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}")
        points[-1]["psnr_all_views"] = round(m["psnr"], 3)
    return points


def plot_png(points: list[dict], path: Path, title: str) -> None:
    """PSNR-vs-minutes chart (:mod:`human3d.plots`)."""
    from human3d.plots import line_chart

    line_chart({"val PSNR": ([p["minutes"] for p in points], [p["psnr"] for p in points])}, path, title=title,
               xlabel="minutes of training", ylabel="PSNR (dB)", legend="lower right")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="all", choices=["raster", "train", "all"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="Gaussian counts (raster)")
    ap.add_argument("--res", type=int, default=400, help="image size (square)")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats (best of)")
    ap.add_argument("--scenes", nargs="+", default=["surface", "volume"], choices=["surface", "volume"])
    ap.add_argument("--minutes", type=float, default=15.0, help="training budget (train)")
    ap.add_argument("--eval-every", type=float, default=1.0, help="evaluate every this many minutes (train)")
    ap.add_argument("--eval-views", type=int, default=20, help="val views per evaluation (0 = all 100)")
    ap.add_argument("--full-eval", action="store_true", help="also evaluate on all val views at the end")
    ap.add_argument("--clock", choices=["process", "wall"], default="wall", help="clock of timings and budget")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the per-fragment kernels")
    ap.add_argument("--data", default=str(LEGO), help="Blender dataset folder (lego)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench-splat"), help="run folder (train)")
    ap.add_argument("--resume", action="store_true", help="continue the run in --out instead of restarting it")
    ap.add_argument("--set", default="", help="JSON dict of SplatConfig overrides with dotted names, e.g. '{\"densify.max_gaussians\": 50000}' (train)")
    ap.add_argument("--plot", default="", help="write a PSNR-vs-minutes PNG here (train)")
    ap.add_argument("--json", default="", help="write all figures as JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compile:
        import importlib

        importlib.import_module("human3d.splat.rasterize").set_compile(True)
    clock = time.process_time if args.clock == "process" else time.perf_counter
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), clock: {args.clock}")
    results = {}
    if args.what in ("raster", "all"):
        print("rasterizer (torch, CPU):")
        results["raster"] = bench_raster(args.sizes, args.res, args.repeats, clock, args.scenes)
    if args.what in ("train", "all"):
        print(f"training: lego {args.res}x{args.res}, preset 'fast', {args.minutes:g} min budget ({args.clock} clock):")
        results["train"] = bench_train(args)
        if args.plot:
            plot_png(results["train"], Path(args.plot), f"3DGS on CPU: lego {args.res}px, val PSNR vs training time")
            print(f"wrote {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
