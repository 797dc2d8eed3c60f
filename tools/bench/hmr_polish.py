"""Does SMPLify's Adam stage, started from the learned estimate, improve it? On ``tools/bench/hmr.py``'s rendered
held-out people (its helpers are imported): HMR alone, LGD initialised by HMR, then SMPLify stage 2 (Adam) from
LGD's result alone (``default_hypothesis=False``) at 20 and 40 iterations, with and without the flip / mirror
retries, and SMPLify's full default (60 iterations, default start beside it).

    python tools/bench/hmr_polish.py [--size 128] [--noise 2] [--prior simple] [--n 32] [--seed 0]

PA-MPJPE (mm) mean / median / worst / share above 150 mm, process-CPU seconds per person at batch ``--n`` (one
thread), each row's time including the rows it starts from.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402


def bench_hmr():
    """``tools/bench/hmr.py`` as a module (its held-out clips, recorder, table printer, CPU timer)."""
    spec = importlib.util.spec_from_file_location("bench_hmr", Path(__file__).with_name("hmr.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=128, help="rendered image side (px)")
    ap.add_argument("--noise", type=float, default=2.0, help="keypoint noise (px, per axis)")
    ap.add_argument("--prior", default="simple", help="pose prior of every SMPLify / LGD row")
    ap.add_argument("--n", type=int, default=32, help="people per held-out clip (the batch)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clips", default="131_03,jumping_5_stride4,fair1_wave_hello")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    from human3d.body import load_body_model
    from human3d.fitting import smplify
    from human3d.hmr.predict import load_hmr, predict_people

    b = bench_hmr()
    model, net = load_body_model("anny"), load_hmr(None)
    rows, secs, add = b.recorder(model)
    count = 0
    for name, clips in b.clip_sets(a.clips):
        kp, K, gt, imgs = b.heldout_people(model, a.n, a.size, a.seed, clips, a.noise)
        n = kp.shape[0]
        count += n
        pred, t_hmr = b.cpu_timed(lambda: predict_people(net, model, imgs, np.arange(n), K, keypoints=kp))
        add("hmr (alone)", pred, t_hmr, gt)
        fit = lambda **kw: smplify(model, kp, K, prior=a.prior, threads=None, image_size=(a.size, a.size), **kw)  # noqa: E731
        r, t_lgd = b.cpu_timed(lambda: fit(optimizer="lgd", init=pred))
        add("lgd (init hmr)", r.params, t_hmr + t_lgd, gt)
        lgd = r.params
        for iters in (20, 40):
            r, t = b.cpu_timed(lambda: fit(init=lgd, default_hypothesis=False, body_iters=iters, retry_hypotheses=()))
            add(f"-> adam {iters} (init only)", r.params, t_hmr + t_lgd + t, gt)
        r, t = b.cpu_timed(lambda: fit(init=lgd, default_hypothesis=False, body_iters=40))
        add("-> adam 40 + retries", r.params, t_hmr + t_lgd + t, gt)
        r, t = b.cpu_timed(lambda: fit(init=lgd))
        add("-> smplify default + it", r.params, t_hmr + t_lgd + t, gt)
        print(f"  {name}: done", flush=True)
    b.print_rows(f"Anny, {count} rendered held-out people ({a.clips}), {a.size} px, {a.noise} px noise, prior "
                 f"{a.prior}, batch {a.n}, 1 thread", rows, secs, count)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
