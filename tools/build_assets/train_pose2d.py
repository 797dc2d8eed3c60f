"""Train the shipped 2D pose heatmap network on synthetic humans and write it with its provenance.

    .venv/bin/python tools/build_assets/train_pose2d.py --minutes 30 [--preset fast] [--run runs/pose2d-ship]
        [--set NAME=VALUE ...] [--threads 2] [--out FOLDER]

The shipped network (see its card for the exact settings):

    .venv/bin/python tools/build_assets/train_pose2d.py --minutes 40 --threads 1 --run runs/pose2d-ship \
        --set run.budget_clock=process --set data.n_images=1024 --set data.refresh_every=100 \
        --set data.eval_images=256

``--minutes`` is the training time budget and the length of the cosine learning-rate schedule: the schedule ends
where the budget does. With the default ``run.budget_clock=wall`` a loaded machine gives fewer steps for the same
schedule; ``--set run.budget_clock=process`` counts this process's CPU time instead. Write to a scratch ``--out``
first and compare its card with the shipped one before copying.

Writes ``human3d/pose2d/weights/pose2d_<arch>_coco17.safetensors`` (network weights; the model config, crop size
and padding in the metadata; read by :func:`human3d.pose2d.networks.load_network`) and ``.json`` beside it (how it
was trained: config, steps, seconds, machine, git commit, held-out synthetic PCK per decoder). The run folder keeps
the checkpoint: the same command with a larger ``--minutes`` trains further (the training core's resume rule).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="training time budget (run.budget_clock: wall by default)")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "pose2d-ship")
    ap.add_argument("--set", dest="set_", action="append", default=[], help="NAME=VALUE config override")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "human3d" / "pose2d" / "weights")
    args = ap.parse_args()

    from human3d.cli.scene import train_overrides
    from human3d.io_utils import atomic_write_text
    from human3d.pose2d.train import Pose2DTrainer, preset

    over = train_overrides(args.set_, None, args.minutes, None, None, None, args.threads)
    over.setdefault("run.max_steps", 10**7)
    first = not (args.run / "run.json").is_file()
    tr = Pose2DTrainer(args.run, config=preset(args.preset) if first else None, overrides=over)
    t0 = time.perf_counter()
    last = tr.train(progress=sys.stderr.isatty())
    wall = time.perf_counter() - t0
    m = tr.evaluate(flip_test=False)
    mf = tr.evaluate(flip_test=True, write=False)
    name = f"pose2d_{tr.config.model.arch}_coco17"
    args.out.mkdir(parents=True, exist_ok=True)
    tr.export_weights(args.out / f"{name}.safetensors")
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = None
    prov = {
        "what": "2D pose heatmap network (COCO-17, stride 4) trained only on human3d.synth synthetic humans",
        "trained_with": "tools/build_assets/train_pose2d.py", "git_commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "device": str(tr.device),
                    "threads": tr.run.threads},
        "steps": tr.step, "train_seconds": round(tr.elapsed, 1), "this_session_seconds": round(wall, 1),
        "n_parameters": tr.n_parameters, "final_loss": last.get("loss"),
        "config": tr.config.to_dict(),
        "heldout_synthetic": {k: v for k, v in m.items() if k not in ("flip_test",)},
        "heldout_synthetic_flip_test": {d: mf[d] for d in ("argmax", "dark", "soft_argmax")},
        "licence": "weights: Apache-2.0 (trained from scratch on generated data; backgrounds from scikit-image's "
                   "bundled images and procedural textures)",
    }  # fmt: skip
    atomic_write_text(args.out / f"{name}.json", json.dumps(prov, indent=2))
    print(json.dumps({"weights": str(args.out / f"{name}.safetensors"), "steps": tr.step,
                      "pck@0.2": {d: m[d]["pck@0.2"] for d in ("argmax", "dark", "soft_argmax")}}))  # fmt: skip


if __name__ == "__main__":
    main()
