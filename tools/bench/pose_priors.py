"""Benchmark of the shipped Anny pose priors on held-out mocap and on the Bandai Namco evaluation set.

    .venv/bin/python tools/bench/pose_priors.py [--max-fps 10]

Data (retargeted to Anny at <= ``--max-fps``):
  * held-out: the whole CMU / MIT clips of ``human3d.data.mocap.HOLDOUT`` (never trained on);
  * Bandai Namco Research Motion Dataset (CC BY-NC-ND 4.0, 50 clips: walks, runs, gestures, kicks, dance; other
    actors, another studio and rig): evaluation only.

Per prior: mean energy, exact NLL per dimension (Gaussian, flow), energy AUC (P[E(real) < E(other)]) against
real poses + N(0, 0.3^2) noise, uniformly random poses in [-1.5, 1.5] rad and real poses with reversed knees,
and timings (energy, energy + gradient, sampling). The fitting's hand-set diagonal Gaussian ("simple") is the
baseline, printed in the same table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("ANNY_CACHE_DIR", "/work/anny_cache")
os.environ.setdefault("WARP_CACHE_PATH", "/work/warp_cache")

import torch  # noqa: E402

from generative.priors.pose import ANNY_PRIOR_GROUPS, POSE_PRIOR_KINDS, load_pose_prior  # noqa: E402
from human3d.data.mocap import build_pose_dataset, list_clips  # noqa: E402


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
    for set_name, x in sets.items():
        print(f"\n== {set_name} ({x.shape[0]} poses)")
        print(f"{'prior':<18}" + "".join(f"{c:>12}" for c in cols))
        for name, p in priors.items():
            r = _row(name, p, x, torch.Generator().manual_seed(0))
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


if __name__ == "__main__":
    main()
