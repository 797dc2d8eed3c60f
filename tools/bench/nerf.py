"""Benchmark: NeRF on lego at full 400x400 -- val PSNR against wall-clock training minutes, steps/s, rays/s.

Runs human3d's hash-grid + occupancy-grid NeRF (preset ``fast``, one CPU thread) and, in the same script, the classic
positional-encoding NeRF (preset ``nerf``: 8x256 MLPs, 64 coarse + 128 fine samples per ray, 256 rays per step) for
the ratio (it runs with the same thread setting). Training time counts only optimisation steps; evaluation pauses
the clock. The ``load`` column is the machine's 1-minute load average: on a shared machine, figures scale with it.

The curve is measured on a fixed random subset of val pixels (``--eval-pixels`` from ``--eval-views`` views, the
same pixels for both methods; PSNR of the pooled MSE), which makes evaluating the slow baseline affordable. At the
end the hash-grid model is also scored on the full ``--final-views`` val images (mean per-image PSNR and SSIM).

    python tools/bench/nerf.py --minutes 15 [--baseline-minutes 15] [--threads 2] [--plot nerf_curve.png]

Reference figures from the issue (2 cores, lego 400x400, white background): TensoRF 18.0 / 22.2 / 23.5 dB after
5 / 10 / 15 min; PE-NeRF ~4.7 s per step at 256 rays.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from human3d.data.paths import shared_data_dir  # noqa: E402
from human3d.nerf import NerfTrainer, preset  # noqa: E402

DEFAULT_DATA = shared_data_dir() / "nerf_lego_400"


def _eval_pixels(trainer: NerfTrainer, rays) -> float:
    o, d, target = rays
    trainer.model.eval()
    bg = torch.tensor(trainer.config.data.background)
    with torch.no_grad():
        out = torch.cat([trainer.model.render_rays(o[i : i + 8192], d[i : i + 8192], bg).rgb.clamp(0, 1)
                         for i in range(0, o.shape[0], 8192)])  # fmt: skip
    mse = float(((out - target) ** 2).mean())
    return -10 * math.log10(max(mse, 1e-10))


def _pixel_subset(data: Path, views: int, n_pixels: int, seed: int = 0):
    from human3d.data.scenes import load_blender_scene

    val = load_blender_scene(data, "val")
    idx = np.linspace(0, len(val) - 1, views).round().astype(int)
    o, d = val.cameras[torch.as_tensor(idx)].rays()
    o, d, img = o.reshape(-1, 3), d.reshape(-1, 3), val.images[idx].reshape(-1, 3)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(o.shape[0], generator=g)[:n_pixels]
    return o[pick], d[pick], img[pick]


def run_method(name, cfg, data, out, minutes, marks, pixels, final_views=0):
    cfg = cfg.replace(**{"run.time_budget_s": minutes * 60.0, "run.max_steps": 10**9, "run.checkpoint_every": 10**9,
                         "run.log_every": 10**9})  # fmt: skip
    trainer = NerfTrainer(out, data, config=cfg)  # out is a fresh temporary folder
    trainer.before_train()
    rows, n_rays, n_samples = [], 0, 0
    marks = sorted({m for m in marks if m <= minutes + 1e-9})
    print(f"\n== {name}: {minutes:g} min of training, {torch.get_num_threads()} thread(s) ==", flush=True)
    print(f"{'min':>6} {'step':>7} {'steps/s':>8} {'rays/s':>9} {'samples/s':>10} {'val PSNR':>9} {'load':>5}",
          flush=True)  # fmt: skip
    for mark in marks:
        while trainer.elapsed < mark * 60.0:
            t0 = time.perf_counter()
            info = trainer.train_step()
            trainer.step += 1  # the core's loop advances the counters; this bench steps by hand between evaluations
            trainer.elapsed += time.perf_counter() - t0
            n_rays += info["rays"]
            n_samples += info["samples"]
        p = _eval_pixels(trainer, pixels)
        el = trainer.elapsed
        load = os.getloadavg()[0]  # other processes on the machine slow training down: report it
        row = dict(minutes=el / 60, step=trainer.step, steps_per_s=trainer.step / el, rays_per_s=n_rays / el,
                   samples_per_s=n_samples / el, val_psnr=p, load=load)  # fmt: skip
        rows.append(row)
        print(f"{row['minutes']:6.2f} {row['step']:7d} {row['steps_per_s']:8.3f} {row['rays_per_s']:9.0f} "
              f"{row['samples_per_s']:10.0f} {p:9.2f} {load:5.1f}", flush=True)  # fmt: skip
    final = None
    if final_views:
        t0 = time.perf_counter()
        final = trainer.evaluate("val", max_views=final_views, write_images=True)
        final = {k: final[k] for k in ("psnr", "ssim", "n_views", "render_s_per_view")}
        print(f"{name}: full val images ({final['n_views']} views): PSNR {final['psnr']:.2f} dB, SSIM "
              f"{final['ssim']:.4f}, {final['render_s_per_view']:.1f} s/view to render "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    return {"name": name, "rows": rows, "final": final}


def plot(results, path: Path, ref=((5, 18.0), (10, 22.2), (15, 23.5))) -> None:
    """PSNR-vs-minutes chart of each run, with the issue's TensoRF reference in grey (:mod:`human3d.plots`)."""
    from human3d.plots import line_chart

    series = {res["name"]: ([r["minutes"] for r in res["rows"]], [r["val_psnr"] for r in res["rows"]])
              for res in results}  # fmt: skip
    series["TensoRF (issue reference)"] = ([x for x, _ in ref], [y for _, y in ref])
    line_chart(series, Path(path), title="val PSNR (dB), lego 400x400", xlabel="training minutes (CPU)",
               ylabel="PSNR (dB)", colors={"TensoRF (issue reference)": (120, 120, 120)}, legend="lower right")  # fmt: skip


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="nerf_synthetic-style lego folder (400x400)")
    ap.add_argument("--minutes", type=float, default=15.0, help="training minutes of the hash-grid NeRF")
    ap.add_argument("--baseline-minutes", type=float, default=None, help="minutes of the PE-NeRF (default: same)")
    ap.add_argument("--marks", type=str, default="1,2,5,10,15", help="minutes at which val PSNR is measured")
    ap.add_argument("--eval-views", type=int, default=4, help="val views the PSNR pixels are drawn from")
    ap.add_argument("--eval-pixels", type=int, default=20000, help="val pixels for the PSNR curve")
    ap.add_argument("--final-views", type=int, default=4, help="full val images scored at the end (hash grid)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--preset", default="fast", help="preset of the hash-grid run")
    ap.add_argument("--set", action="append", default=[], help="config override NAME=VALUE with a dotted name, e.g. field.n_levels=8 (python literal)")
    ap.add_argument("--plot", type=Path, default=None, help="write the PSNR curve as a PNG")
    ap.add_argument("--json", type=Path, default=None, help="write all figures as JSON")
    ap.add_argument("--skip-baseline", action="store_true", help="run the hash-grid NeRF only")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        import ast

        overrides[k] = ast.literal_eval(v)
    marks = [float(x) for x in args.marks.split(",") if x]
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, device "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}, data {args.data}", flush=True)  # fmt: skip
    pixels = _pixel_subset(args.data, args.eval_views, args.eval_pixels)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = preset(args.preset, **overrides)
        results.append(run_method(f"hash grid + occupancy ({args.preset})", cfg, args.data, Path(tmp) / "ngp",
                                  args.minutes, marks + [args.minutes], pixels, args.final_views))  # fmt: skip
        if not args.skip_baseline:
            bm = args.baseline_minutes if args.baseline_minutes is not None else args.minutes
            cfg = preset("nerf", **{"optim.num_rays": 256})
            results.append(run_method("PE-NeRF (64+128 samples, 256 rays)", cfg, args.data, Path(tmp) / "pe", bm,
                                      marks + [bm], pixels))  # fmt: skip
    print("\n== summary ==")
    for res in results:
        last = res["rows"][-1]
        print(f"{res['name']}: {last['val_psnr']:.2f} dB after {last['minutes']:.1f} min, {last['steps_per_s']:.3f} "
              f"steps/s, {last['rays_per_s']:.0f} rays/s, {last['samples_per_s']:.0f} samples/s")  # fmt: skip
    if len(results) == 2:
        a, b = results[0]["rows"], results[1]["rows"]
        for ra in a:
            rb = min(b, key=lambda r: abs(r["minutes"] - ra["minutes"]))
            if abs(rb["minutes"] - ra["minutes"]) < 0.1:
                print(f"  at {ra['minutes']:.1f} min: {ra['val_psnr']:.2f} vs {rb['val_psnr']:.2f} dB "
                      f"(+{ra['val_psnr'] - rb['val_psnr']:.2f}); rays/s ratio "
                      f"{ra['rays_per_s'] / max(rb['rays_per_s'], 1e-9):.1f}x")  # fmt: skip
    if args.plot:
        plot(results, args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
