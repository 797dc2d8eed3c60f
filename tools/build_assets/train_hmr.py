"""Train the shipped HMR regressor (``human3d/hmr/weights/anny_hmr.safetensors`` + card, and the adversarial
prior's discriminators ``anny_hmr_disc.safetensors``).

    python tools/build_assets/train_hmr.py --out /tmp/hmr_run [--minutes 40] [--clock wall] [--threads 1]
                                           [--set NAME=VALUE ...] [--no-ship]

Runs :class:`human3d.hmr.trainer.HMRTrainer` (preset ``fast``: a pre-rendered synthetic set of the mocap corpus'
training clips only -- the ``HOLDOUT`` clips of ``tools/bench/hmr.py`` are never read) for a time budget (the
rendering of the set is outside it), then writes the weights and their JSON provenance cards into
``human3d/hmr/weights/`` (``--no-ship``: only into the run folder). Resumes an existing ``--out``.

SMPL family: ``--set data.model=PATH`` (an SMPL / SMPL-H / SMPL-X file; ``data.model_type``, ``data.num_betas``)
with ``--no-ship`` (users' SMPL files are licensed: no SMPL-family weights ship; ``tools/bench/hmr.py --smpl``
trains them on the Anny-derived file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from human3d.hmr.predict import DEFAULT_WEIGHTS, weights_dir  # noqa: E402
from human3d.hmr.trainer import HMRTrainer, preset  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="run folder (resumed when it exists)")
    ap.add_argument("--minutes", type=float, default=40.0, help="training time budget (rendering excluded)")
    ap.add_argument("--clock", choices=("wall", "process"), default="wall", help="clock of the budget")
    ap.add_argument("--steps", type=int, default=8000, help="schedule length the budget is mapped onto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="config field (dotted)")
    ap.add_argument("--no-ship", action="store_true", help="do not write into human3d/hmr/weights/")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = preset("fast").with_assignments(a.set)
    cfg = cfg.replace(**{"run.time_budget_s": a.minutes * 60, "run.budget_clock": a.clock,
                         "run.max_steps": a.steps, "run.threads": a.threads})  # fmt: skip
    tr = HMRTrainer(a.out, config=cfg)
    tr.train()
    card = {"built_by": "tools/build_assets/train_hmr.py", "threads": a.threads, "budget_minutes": a.minutes,
            "budget_clock": a.clock}  # fmt: skip
    if not a.no_ship:
        path = tr.export_weights(weights_dir() / f"{DEFAULT_WEIGHTS}.safetensors", card)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) after {tr.step} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
