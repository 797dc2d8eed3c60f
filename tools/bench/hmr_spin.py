"""Benchmark the SPIN-style training mode: HMR trained with 3D labels on part of the synthetic set and 2D keypoints
only on the rest, without vs with SMPLify fits in the loop, at an equal process-CPU budget.

    python tools/bench/hmr_spin.py --out runs/bench_hmr_spin [--n-images 1000] [--fraction-2d 0.75]
        [--budget-s 480] [--clips 131_03,jumping_5_stride4,fair1_wave_hello] [--n 32] [--seeds 0] [--json FILE]

Both runs are :class:`human3d.hmr.spin.SpinHMRTrainer` on the same training set (rendered once into ``--out``,
training mocap clips only), the same seed, the same 2D-only images (``spin.fraction_2d``), preset ``fast``, one
thread, ``run.budget_clock=process`` and ``run.time_budget_s=--budget-s`` (the learning-rate schedule follows the
budget); they differ only in ``spin.every``:

* ``2d only (no fits)``: ``spin.every=0``: the 2D-only images train on their 2D reprojection alone;
* ``spin (fits)``: ``spin.every=1``: SMPLify fits from the regressor's prediction (``spin.fit.*``) become their
  targets, each kept only while its reprojection energy is the lowest so far.

The two runs train at once in two child processes (each its own process-CPU clock). Evaluation is
``tools/bench/hmr.py``'s held-out protocol (its helpers are imported): rendered people of mocap clips held out of
every training set, 128 px, random yaw over 360 degrees, keypoints = exact projections + 2 px noise; PA-MPJPE of
one forward pass (mean / median / worst / share above 150 mm), and of LGD initialised by each regressor.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

VARIANTS = {"2d only (no fits)": ("base", 0), "spin (fits)": ("spin", 1)}


def bench_hmr():
    """``tools/bench/hmr.py`` as a module (its held-out protocol: clip_sets, recorder, print_rows, cpu_timed)."""
    spec = importlib.util.spec_from_file_location("bench_hmr", Path(__file__).with_name("hmr.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def overrides(a, every: int) -> dict:
    from human3d.config import parse_value

    return {"data.n_images": a.n_images, "data.render_size": 128, "spin.fraction_2d": a.fraction_2d,
            "spin.every": every, "run.time_budget_s": a.budget_s, "run.budget_clock": "process", "run.threads": 1,
            "run.max_steps": 10**6, "run.seed": a.seed, "run.log_every": 10, "run.checkpoint_every": 100,
            **{k: parse_value(v) for k, _, v in (x.partition("=") for x in a.set)}}  # fmt: skip


def train_one(a, variant: str) -> int:
    from human3d.hmr.spin import SpinHMRTrainer, spin_preset

    torch.set_num_threads(1)
    name, every = VARIANTS[variant]
    run = Path(a.out) / name
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "train_set.safetensors").is_file():
        shutil.copy(Path(a.out) / "train_set.safetensors", run / "train_set.safetensors")
    tr = SpinHMRTrainer(run, config=spin_preset("fast"), overrides=overrides(a, every))
    last = tr.train(progress=False)
    print(json.dumps({k: last.get(k) for k in ("step", "elapsed_s", "mpjpe_mm", "spin_energy", "spin_filled")}))
    return 0


def render_set(a) -> None:
    from safetensors.torch import save_file

    from human3d.body import load_body_model
    from human3d.fitting.lgd import training_clips
    from human3d.hmr.trainer import render_training_set
    from human3d.io_utils import atomic_path

    path = Path(a.out) / "train_set.safetensors"
    if path.is_file():
        return
    Path(a.out).mkdir(parents=True, exist_ok=True)
    s = render_training_set(load_body_model("anny"), a.n_images, 128, a.seed, training_clips(), progress=False)
    with atomic_path(path) as tmp:
        save_file(s, str(tmp))


def evaluate(a) -> int:
    import numpy as np

    from human3d.body import load_body_model
    from human3d.fitting import smplify
    from human3d.hmr.predict import load_hmr, predict_people

    bh = bench_hmr()
    torch.set_num_threads(1)
    model = load_body_model("anny")
    nets = {v: load_hmr(Path(a.out) / VARIANTS[v][0] / "hmr.safetensors") for v in VARIANTS}
    rows, secs, add = bh.recorder(model)
    count = 0
    for clip_name, clips in bh.clip_sets(a.clips):
        for seed in [int(s) for s in a.seeds.split(",")]:
            kp, K, gt, imgs = bh.heldout_people(model, a.n, 128, seed, clips)
            n = kp.shape[0]
            count += n
            for v, net in nets.items():
                pred, t = bh.cpu_timed(lambda: predict_people(net, model, imgs, np.arange(n), K, keypoints=kp))
                add(f"hmr, {v}", pred, t, gt)
                r, t2 = bh.cpu_timed(lambda: smplify(model, kp, K, prior="simple", threads=None, image_size=(128, 128),
                                                     optimizer="lgd", init=pred))  # fmt: skip
                add(f"lgd init hmr, {v}", r.params, t + t2, gt)
            print(f"  {clip_name} seed {seed}: done", flush=True)
    steps = {}
    for v in VARIANTS:
        log = [json.loads(x) for x in (Path(a.out) / VARIANTS[v][0] / "log.jsonl").read_text().splitlines() if x]
        steps[v] = {k: log[-1].get(k) for k in ("step", "elapsed_s", "spin_energy", "spin_filled")}
    title = (f"Anny, {count} rendered held-out people ({a.clips}), 128 px; HMR trained {a.budget_s:.0f} process-CPU s "
             f"each on {a.n_images} images, {a.fraction_2d:.0%} of them 2D-only; runs: {json.dumps(steps)}")  # fmt: skip
    out = bh.print_rows(title, rows, secs, count)
    if a.json:
        Path(a.json).write_text(json.dumps({"runs": steps, "rows": out}, indent=1))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder of the training set and the two runs")
    ap.add_argument("--n-images", type=int, default=1000, help="training images (rendered once, shared)")
    ap.add_argument("--fraction-2d", type=float, default=0.75, help="share of 2D-only training images")
    ap.add_argument("--budget-s", type=float, default=480.0, help="process-CPU seconds of training per run")
    ap.add_argument("--seed", type=int, default=0, help="seed of the training set and the runs")
    ap.add_argument("--clips", default="131_03,jumping_5_stride4,fair1_wave_hello", help="held-out clips")
    ap.add_argument("--n", type=int, default=32, help="held-out people per clip and seed")
    ap.add_argument("--seeds", default="0", help="seeds of the held-out sets")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--set", action="append", default=[], help="more config overrides NAME=VALUE (both runs)")
    ap.add_argument("--stage", choices=("all", "train", "eval"), default="all", help="what to run")
    ap.add_argument("--variant", choices=tuple(VARIANTS), help=argparse.SUPPRESS)  # the child processes
    a = ap.parse_args(argv)
    if a.variant:
        return train_one(a, a.variant)
    if a.stage in ("all", "train"):
        t0 = time.time()
        render_set(a)
        print(f"training set: {time.time() - t0:.0f} s", flush=True)
        base = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])]
        procs = [subprocess.Popen([*base, "--variant", v]) for v in VARIANTS]
        codes = [p.wait() for p in procs]
        print(f"training: {time.time() - t0:.0f} s wall, exit codes {codes}", flush=True)
        if any(codes):
            return 1
    if a.stage in ("all", "eval"):
        return evaluate(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
