"""Benchmark of the shipped Anny pose priors: held-out scores, timings, training time and fitting accuracy.

    .venv/bin/python tools/bench/priors.py [--max-fps 10] [--fit-n 16] [--fit-seeds 0] [--no-fit]

Data (retargeted to Anny at <= ``--max-fps``):
  * held-out: the whole CMU / MIT clips of ``human3d.motion.mocap.HOLDOUT`` (never trained on);
  * Bandai Namco Research Motion Dataset (CC BY-NC-ND 4.0, 50 clips: walks, runs, gestures, kicks, dance; other
    actors, another studio and rig): evaluation only.

Per prior: mean energy, exact NLL per dimension (Gaussian, flow), energy AUC (P[E(real) < E(other)]) against
real poses + N(0, 0.3^2) noise, uniformly random poses in [-1.5, 1.5] rad and real poses with reversed knees,
and timings (energy, energy + gradient, sampling) plus the training time recorded when the prior was built. The
fitting's built-in diagonal Gaussian ("simple") is the baseline, printed in the same table.

Unless ``--no-fit``: the synthetic SMPLify benchmark (``tools/bench/fit.py``: held-out CMU clip 131_03 on random
Anny shapes, 2 px noise, 20 % keypoints dropped) is run with every prior and with none, and a summary table gives
each prior's PA-MPJPE next to the no-prior fit. ``fit.py`` runs in a subprocess, exactly as from the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("ANNY_CACHE_DIR", "/work/anny_cache")
os.environ.setdefault("WARP_CACHE_PATH", "/work/warp_cache")

import torch  # noqa: E402

from generative.priors.pose import ANNY_PRIOR_GROUPS, POSE_PRIOR_KINDS, load_pose_prior  # noqa: E402
from human3d.motion.mocap import build_pose_dataset, list_clips  # noqa: E402


def _auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    d = neg[None, :] - pos[:, None]
    return float(((d > 0).float() + 0.5 * (d == 0).float()).mean())


def _reverse_knees(x: torch.Tensor) -> torch.Tensor:
    names = [n for n, _ in ANNY_PRIOR_GROUPS]
    out = x.clone().view(x.shape[0], -1, 3)
    for s in "LR":
        out[:, names.index(f"lowerleg01.{s}")] = torch.tensor([-1.0, 0.0, 0.0])
    return out.view(x.shape[0], -1)


def _simple_prior():
    """The fitting's built-in "simple" diagonal Gaussian over the same groups (baseline)."""
    from human3d.body.anny import AnnyBody
    from human3d.fitting.priors import pose_space, simple_pose_prior

    return simple_pose_prior(pose_space(AnnyBody(skinning="lbs")))


def _timeit(fn, repeat: int = 3) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def _row(name, p, x, g) -> dict:
    n = min(2000, x.shape[0])
    x = x[torch.randperm(x.shape[0], generator=g)[:n]]
    with torch.no_grad():
        e = p.energy(x)
        r = {
            "E_mean": float(e.mean()),
            "E_median": float(e.median()),
            "AUC_noise": _auc(e, p.energy(x + 0.3 * torch.randn(x.shape, generator=g))),
            "AUC_random": _auc(e, p.energy((torch.rand(x.shape, generator=g) * 2 - 1) * 1.5)),
            "AUC_knees": _auc(e, p.energy(_reverse_knees(x))),
        }
        if getattr(p, "exact_log_prob", False):
            r["NLL/dim"] = float(-p.log_prob(x).mean() / x.shape[1])
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-fps", type=float, default=10.0, help="subsampling of the evaluation clips")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--fit-n", type=int, default=16, help="persons per synthetic fitting set")
    ap.add_argument("--fit-seeds", default="0", help="comma-separated seeds of the synthetic fitting sets")
    ap.add_argument("--no-fit", action="store_true", help="skip the fitting benchmark")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t = time.time()
    clips = [c for c in list_clips() if c.split in ("val", "eval")]
    ds = build_pose_dataset(clips, max_fps=args.max_fps)
    sets = {"held-out CMU/MIT": ds.subset("val"), "Bandai Namco (eval)": ds.subset("eval")}
    sizes = ", ".join(f"{k}: {v.shape[0]} poses" for k, v in sets.items())
    print(f"data: {sizes} (retargeted in {time.time() - t:.0f} s)")
    priors = {"simple (baseline)": _simple_prior()}
    priors.update({k: load_pose_prior(k) for k in POSE_PRIOR_KINDS})
    cols = ["E_mean", "E_median", "NLL/dim", "AUC_noise", "AUC_random", "AUC_knees"]
    held_out = {}
    for set_name, x in sets.items():
        print(f"\n== {set_name} ({x.shape[0]} poses)")
        print(f"{'prior':<18}" + "".join(f"{c:>12}" for c in cols))
        for name, p in priors.items():
            r = _row(name, p, x, torch.Generator().manual_seed(0))
            held_out.setdefault(name, r)
            print(f"{name:<18}" + "".join(f"{r[c]:>12.3f}" if c in r else f"{'-':>12}" for c in cols))
    print("\n== timings (CPU, batch 256)")
    print(f"{'prior':<18}{'energy ms':>12}{'E+grad ms':>12}{'sample ms':>12}{'train s':>10}")
    xb = sets["held-out CMU/MIT"][:256].clone()
    for name, p in priors.items():
        te = _timeit(lambda: p.energy(xb)) * 1e3

        def eg():
            x = xb.clone().requires_grad_(True)
            p.energy(x).sum().backward()

        tg = _timeit(eg) * 1e3
        ts = _timeit(lambda: p.sample(256), repeat=1) * 1e3
        tr = getattr(p, "provenance", {}).get("training_seconds", float("nan"))
        print(f"{name:<18}{te:>12.1f}{tg:>12.1f}{ts:>12.1f}{tr:>10.0f}")
    if not args.no_fit:
        _fit_summary(priors, held_out, args)


def _fit_summary(priors: dict, held_out: dict, args) -> None:
    """Run tools/bench/fit.py with every prior and none; print PA-MPJPE beside the held-out AUC and training time."""
    kinds = ["none", "simple", *POSE_PRIOR_KINDS]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fit.json"
        cmd = [sys.executable, str(Path(__file__).with_name("fit.py")), "--priors", ",".join(kinds),
               "--n", str(args.fit_n), "--seeds", args.fit_seeds, "--threads", str(args.threads), "--json", str(out)]
        print(f"\n== fitting ({' '.join(cmd[1:])})", flush=True)
        subprocess.run(cmd, check=True)
        fit = json.loads(out.read_text())["priors"]
    none = fit.get("none", {}).get("pa_mpjpe_mean_mm", float("nan"))
    print(f"\n== summary (held-out CMU/MIT; fitting: {fit_persons(args)} synthetic persons)")
    print(f"{'prior':<18}{'train s':>10}{'AUC noise':>11}{'NLL/dim':>10}{'PA-MPJPE mm':>13}{'vs none mm':>12}")
    for kind in kinds[1:]:
        name = "simple (baseline)" if kind == "simple" else kind
        p, r, f = priors.get(name), held_out.get(name, {}), fit.get(kind, {})
        tr = getattr(p, "provenance", {}).get("training_seconds", float("nan")) if p is not None else float("nan")
        pa = f.get("pa_mpjpe_mean_mm", float("nan"))
        nll = f"{r['NLL/dim']:>10.3f}" if "NLL/dim" in r else f"{'-':>10}"
        print(f"{name:<18}{tr:>10.0f}{r.get('AUC_noise', float('nan')):>11.3f}{nll}{pa:>13.1f}{pa - none:>+12.1f}")
    print(f"{'none':<18}{'-':>10}{'-':>11}{'-':>10}{none:>13.1f}{0.0:>+12.1f}")


def fit_persons(args) -> int:
    return args.fit_n * len([s for s in args.fit_seeds.split(",") if s.strip()])


if __name__ == "__main__":
    main()
