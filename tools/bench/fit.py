"""Benchmark SMPLify fitting (Anny, or an SMPL-format file): seconds per person at batch 1 and 32, and 3D accuracy
on synthetic mocap ground truth (CMU clip 131_03, held out of every shipped pose prior, retargeted on random
shapes, 2 px noise, 20% dropped keypoints) per pose prior, averaged over ``--seeds`` (one synthetic set of ``--n``
persons each).

    python tools/bench/fit.py [--n 32] [--seeds 0,1] [--threads 1] [--priors none,simple,gaussian,vae,flow,...]
    python tools/bench/fit.py --model smpl [--json tools/bench/results/fit_priors_smpl.json]

``--model smpl`` fits an SMPL-format model file derived from Anny (the licensed SMPL files are absent:
:func:`human3d.fitting.synthetic.smpl_data_from_anny`, written to a temporary folder and read by the SMPL loader),
posed with the same mocap mapped onto SMPL's joints, and uses the SMPL-family priors (``smpl_pose_<kind>``).

The row "simple (previous defaults)" reruns the earlier stage-2 settings (Adam lr 0.05, eps 1e-8, prior weights
0.03 -> 0.0012) for comparison; "vae" scores the VAE's ELBO on the pose groups (the default), "vae (latent)"
optimises its latent code instead (VPoser-style, ``SMPLifyConfig.latent_pose``).

Prints wall and process-CPU seconds (the CPU column is the one to trust on a shared machine) and, per prior,
PA-MPJPE / MPJPE (root = hip midpoint) in mm over the COCO-17 3D keypoints, the mean reprojection error and the
process-CPU seconds per person of each prior's fits (batch ``--n``).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
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
    ap.add_argument("--priors", default="none,simple,gaussian,vae,flow,diffusion,gan",
                    help="comma-separated pose priors (kinds of human3d.fitting.priors.PRIOR_KINDS; 'auto' = flow)")
    ap.add_argument("--seeds", default="0,1", help="comma-separated seeds of the synthetic sets (results averaged)")
    ap.add_argument("--model", default="anny", choices=("anny", "smpl"),
                    help="anny, or smpl: an SMPL-format file derived from Anny (built in a temporary folder)")
    ap.add_argument("--json", default=None, help="also write the per-prior figures to this JSON file")
    args = ap.parse_args()

    if args.model == "anny":
        model = load_body_model("anny")
    else:
        from human3d.body.smpl import SMPL
        from human3d.fitting.synthetic import smpl_data_from_anny

        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "SMPL_NEUTRAL.pkl"
        with open(path, "wb") as f:  # our own arrays; the SMPL loader reads it with its restricted unpickler
            pickle.dump(smpl_data_from_anny(dtype=__import__("numpy").float32), f, protocol=2)
        model = SMPL(path)
    seeds = [int(v) for v in args.seeds.split(",")]
    sets = [make_synthetic_set(model, args.n, seed=sd) for sd in seeds]
    ds = sets[0]
    cfg = SMPLifyConfig(num_threads=args.threads)
    print(f"SMPLify on {args.model}: camera_iters={cfg.camera_iters}, body_iters={cfg.body_iters}, threads={args.threads}, "
          f"{args.n} synthetic persons ({ds.width}x{ds.height}, f=1200 px, 2 px noise, 20% dropped)")  # fmt: skip
    smplify(model, ds.keypoints2d[:2], ds.K[:2], config=cfg.replace(body_iters=2, camera_iters=2))  # warm-up

    print("\n| batch | wall s | CPU s | wall s / person | CPU s / person |")
    print("|---|---|---|---|---|")
    timing = {}
    for B in (1, args.n):
        _, w, c = timed(lambda: smplify(model, ds.keypoints2d[:B], ds.K[:B], config=cfg,
                                        image_size=(ds.width, ds.height)))  # fmt: skip
        print(f"| {B} | {w:.2f} | {c:.2f} | {w / B:.3f} | {c / B:.3f} |", flush=True)
        timing[str(B)] = {"wall_s": round(w, 3), "cpu_s": round(c, 3)}

    print(f"\n| prior | PA-MPJPE mm | median mm | MPJPE mm | reprojection px | wall s | CPU s / person |  "
          f"({len(seeds)} x {args.n} persons, batch {args.n})")
    print("|---|---|---|---|---|---|---|")
    root = lambda X: X - X[:, 11:13].mean(1, keepdim=True)  # noqa: E731 - hip midpoint
    old = cfg.replace(lr_body=0.05, adam_eps=1e-8, pose_prior_weights=(0.03, 0.006, 0.0012))
    rows = []
    for prior in args.priors.split(","):
        if prior == "simple" and args.model == "anny":
            rows.append(("simple (previous defaults)", "simple", old))
        rows.append((prior, prior, cfg))
        if prior == "vae":
            rows.append(("vae (latent)", "vae", cfg.replace(latent_pose=True)))
    results = {}
    for label, prior, c in rows:
        pas, mps, rps, wall, cpu = [], [], [], 0.0, 0.0
        try:
            for d in sets:
                res, w, cp = timed(lambda: smplify(model, d.keypoints2d, d.K, prior=prior, config=c,
                                                  image_size=(d.width, d.height)))  # fmt: skip
                wall, cpu = wall + w, cpu + cp
                with torch.no_grad():
                    X = model(res.params).keypoints["coco17"]
                pas.append(pa_mpjpe(X, d.keypoints3d) * 1000)
                mps.append(mpjpe(root(X), root(d.keypoints3d)) * 1000)
                rps.append(res.reprojection_error_px)
        except Exception as e:  # noqa: BLE001 - a prior that is not shipped yet is reported, not fatal
            print(f"| {label} | n/a ({type(e).__name__}: {str(e)[:60]}) | | | | | |")
            results[label] = {"error": f"{type(e).__name__}: {e}"}
            continue
        pa, mp, rp = torch.cat(pas), torch.cat(mps), torch.cat(rps)
        print(f"| {label} | {float(pa.mean()):.1f} | {float(pa.median()):.1f} | {float(mp.mean()):.1f} | "
              f"{float(rp.mean()):.2f} | {wall:.1f} | {cpu / pa.numel():.3f} |", flush=True)  # fmt: skip
        results[label] = {
            "pa_mpjpe_mean_mm": round(float(pa.mean()), 1), "pa_mpjpe_median_mm": round(float(pa.median()), 1),
            "mpjpe_mean_mm": round(float(mp.mean()), 1), "reprojection_px": round(float(rp.mean()), 2),
            "wall_s": round(wall, 1), "cpu_s_per_person": round(cpu / pa.numel(), 3),
        }  # fmt: skip
    if args.json:
        from human3d.io_utils import atomic_write_text

        out = {
            "bench": f"tools/bench/fit.py --model {args.model} --priors {args.priors} --seeds {args.seeds} "
                     f"--n {args.n} --threads {args.threads}",
            "model": args.model, "persons": len(seeds) * args.n, "timing_by_batch": timing, "priors": results,
        }  # fmt: skip
        atomic_write_text(Path(args.json), json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
