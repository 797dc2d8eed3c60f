"""Validate ``keypoints3d_weight`` of ``init="lift"``: PA-MPJPE (mean, median, worst, share above 150 mm) of the
lift alone, of ``"auto"`` (the default) and of fixed weights, at several keypoint-noise levels, on rendered people of
the held-out clips the HMR benchmark (``tools/bench/hmr.py``) does *not* use — the set the ``"auto"`` ramp
(``human3d.fitting.lift.AUTO_WEIGHT_RESIDUALS`` / ``AUTO_WEIGHTS``) is chosen on.

    python tools/bench/lift_weight.py [--n 16] [--noise 0,0.004,0.01,0.02,0.037,0.06] [--weights auto,30,100,300,1000]
    python tools/bench/lift_weight.py --smpl-cache .cache/hmr_smpl     # the SMPL family (hmr.py --smpl's lifter)

The people are rendered once (``hmr.heldout_people``'s protocol, 128 px, whole body in frame, >= 8 keypoints
inside); each noise level adds ``noise x the person's size`` (the longer side of the keypoint box) Gaussian noise per
axis, one fixed draw per level. Each row is SMPLify ``init="lift"``, ``--iters`` stage-2 iterations, no retries, the
shipped lifter (or ``--lift-weights``). Also prints the median of ``lift_residual`` per level (the ramp's input).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# this folder last on the path: the packages win over same-named bench scripts, and hmr.py (heldout_people) imports
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import torch  # noqa: E402

VALIDATION_CLIPS = ("60_15_scaled_30fps", "basketball_5_stride4", "running_5_stride4", "soccer_5_stride4",
                    "walking_5_stride4", "humanoid3d_walk")  # fmt: skip
"""``HOLDOUT`` clips outside the HMR benchmark's three (131_03, jumping_5_stride4, fair1_wave_hello)."""


def _csv(kind: str, allow_auto: bool = False):
    """An argparse type: comma-separated non-negative finite numbers (and ``auto`` where allowed)."""

    def parse(text: str) -> list:
        out = []
        for item in (t.strip() for t in text.split(",")):
            if allow_auto and item == "auto":
                out.append(item)
                continue
            try:
                v = float(item)
            except ValueError:
                v = float("nan")
            if not (v >= 0 and v != float("inf")):
                raise argparse.ArgumentTypeError(f"{kind}: expected comma-separated non-negative numbers"
                                                 f"{' or auto' if allow_auto else ''}, got {item!r}")
            out.append(v)
        return out

    return parse


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=16, help="people per validation clip")
    ap.add_argument("--seed", type=int, default=0, help="render / noise seed")
    ap.add_argument("--size", type=int, default=128, help="rendered image size (px)")
    ap.add_argument("--noise", type=_csv("--noise"), default="0,0.004,0.01,0.02,0.037,0.06",
                    help="comma-separated keypoint noise levels, as fractions of the person's size")
    ap.add_argument("--weights", type=_csv("--weights", allow_auto=True), default="auto,30,100,300,1000", help="comma-separated keypoints3d_weight values")
    ap.add_argument("--iters", type=int, default=40, help="stage-2 iterations")
    ap.add_argument("--lift-weights", default=None, help="keypoint lifter weights (default: the shipped ones)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--smpl-cache", default=None, help="the SMPL family instead: the --cache folder of "
                    "`tools/bench/hmr.py --smpl` (its Anny-derived SMPL file, and its lifter unless --lift-weights)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    from hmr import heldout_people  # tools/bench/hmr.py

    from human3d.body import load_body_model
    from human3d.fitting import smplify
    from human3d.fitting.lift import _box, lift_keypoints, lift_residual, load_lifter
    from human3d.metrics import pa_mpjpe

    if a.smpl_cache:
        from human3d.synth.smpl_files import anny_smpl_model

        model, label = anny_smpl_model(a.smpl_cache), "SMPL (Anny-derived file)"
        a.lift_weights = a.lift_weights or str(Path(a.smpl_cache) / "lift" / "lift.safetensors")
    else:
        model, label = load_body_model("anny"), "Anny"
    from human3d.errors import InvalidInputError, ModelFileError

    try:  # before rendering: a missing or wrong file fails at once
        net = load_lifter(a.lift_weights)
    except (ModelFileError, InvalidInputError) as e:
        print(f"error: --lift-weights: {e}", file=sys.stderr)
        return 2
    parts = [heldout_people(model, a.n, a.size, a.seed, (c,), noise_px=0.0)[:3] for c in VALIDATION_CLIPS]
    kp0, K, gt = (torch.cat([p[i] for p in parts]) for i in range(3))
    on = kp0[..., 2:3]
    size = _box(kp0)[1]  # [B]
    weights, levels = a.weights, a.noise
    g = torch.Generator().manual_seed(a.seed)

    def summary(e: torch.Tensor) -> str:
        return f"{e.mean():5.1f} / {e.median():5.1f} / {e.max():5.1f} / {(e > 150).float().mean() * 100:4.1f}%"

    print(f"{label}, {kp0.shape[0]} rendered validation people ({', '.join(VALIDATION_CLIPS)}; {a.n} each), {a.size} px, "
          f"{a.iters} stage-2 iterations, no retries; PA-MPJPE mm: mean / median / worst / > 150 mm")  # fmt: skip
    best = {}
    for lv in levels:
        noise = lv * size[:, None, None] * torch.randn(kp0[..., :2].shape, generator=g)
        kp = torch.cat([kp0[..., :2] + noise, on], -1)
        with torch.no_grad():
            Y = lift_keypoints(kp, K, net)
            res = lift_residual(Y, kp, K)
            e_lift = pa_mpjpe(Y, gt) * 1000  # Procrustes removes the translation
        print(f"\nnoise {lv * 100:g} % of size: lift_residual median {res.median():.4f}")
        print(f"  {'lift alone':18s} {summary(e_lift)}")
        for w in weights:
            r = smplify(model, kp, K, init="lift", body_iters=a.iters, keypoints3d_weight=w, retry_hypotheses=(),
                        lift_weights=a.lift_weights, prior="simple", image_size=(a.size, a.size))  # fmt: skip
            with torch.no_grad():
                e = pa_mpjpe(model(r.params).keypoints["coco17"], gt) * 1000
            print(f"  {'weight ' + str(w):18s} {summary(e)}", flush=True)
            best.setdefault(lv, {})[str(w)] = float(e.mean())
    print("\nmean PA-MPJPE (mm) per level: auto vs the best fixed weight")
    for lv, row in best.items():
        fixed = {k: v for k, v in row.items() if k != "auto"}
        if "auto" in row and fixed:
            k = min(fixed, key=fixed.get)
            print(f"  {lv * 100:5g} %: auto {row['auto']:5.1f}  best fixed {fixed[k]:5.1f} (weight {k})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
