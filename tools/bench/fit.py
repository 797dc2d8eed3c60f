"""Benchmark SMPLify fitting (Anny): seconds per person at batch 1 and 32, and 3D accuracy on synthetic mocap
ground truth (retargeted CMU subject 131 on random shapes, 2 px noise, 20% dropped keypoints) per pose prior.

    python tools/bench/fit.py [--n 32] [--threads 1] [--priors none,simple,gaussian,vae,flow,diffusion,gan]

Prints wall and process-CPU seconds (the CPU column is the one to trust on a shared machine) and, per prior,
PA-MPJPE / MPJPE (root = hip midpoint) in mm over the COCO-17 3D keypoints, and the mean reprojection error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Running as a script puts tools/bench first on sys.path, where tools/bench/generative.py would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from human3d.body import load_body_model  # noqa: E402
from human3d.fitting import SMPLifyConfig, smplify  # noqa: E402
from human3d.fitting.synthetic import make_synthetic_set  # noqa: E402
from human3d.metrics import mpjpe, pa_mpjpe  # noqa: E402


def timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=32, help="persons in the synthetic set (and the large batch)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads during the fit (SMPLifyConfig.num_threads)")
    ap.add_argument("--priors", default="none,simple,gaussian,vae,flow,diffusion,gan")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    model = load_body_model("anny")
    ds = make_synthetic_set(model, args.n, seed=args.seed)
    cfg = SMPLifyConfig(num_threads=args.threads)
    print(f"SMPLify on Anny: camera_iters={cfg.camera_iters}, body_iters={cfg.body_iters}, threads={args.threads}, "
          f"{args.n} synthetic persons ({ds.width}x{ds.height}, f=1200 px, 2 px noise, 20% dropped)")  # fmt: skip
    smplify(model, ds.keypoints2d[:2], ds.K[:2], config=cfg.replace(body_iters=2, camera_iters=2))  # warm-up

    print("\n| batch | wall s | CPU s | wall s / person | CPU s / person |")
    print("|---|---|---|---|---|")
    for B in (1, args.n):
        _, w, c = timed(lambda: smplify(model, ds.keypoints2d[:B], ds.K[:B], config=cfg,
                                        image_size=(ds.width, ds.height)))  # fmt: skip
        print(f"| {B} | {w:.2f} | {c:.2f} | {w / B:.3f} | {c / B:.3f} |", flush=True)

    print("\n| prior | PA-MPJPE mm | MPJPE mm | reprojection px | wall s |")
    print("|---|---|---|---|---|")
    root = lambda X: X - X[:, 11:13].mean(1, keepdim=True)  # noqa: E731 - hip midpoint
    for prior in args.priors.split(","):
        try:
            res, w, _ = timed(lambda: smplify(model, ds.keypoints2d, ds.K, prior=prior, config=cfg,
                                              image_size=(ds.width, ds.height)))  # fmt: skip
        except Exception as e:  # noqa: BLE001 - a prior that is not shipped yet is reported, not fatal
            print(f"| {prior} | n/a ({type(e).__name__}: {str(e)[:60]}) | | | |")
            continue
        with torch.no_grad():
            X = model(res.params).keypoints["coco17"]
        pa = float((pa_mpjpe(X, ds.keypoints3d) * 1000).mean())
        mp = float((mpjpe(root(X), root(ds.keypoints3d)) * 1000).mean())
        print(f"| {prior} | {pa:.1f} | {mp:.1f} | {float(res.reprojection_error_px.mean()):.2f} | {w:.1f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
