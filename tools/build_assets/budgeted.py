"""The shared body of the ``train_*.py`` scripts whose trainers run on a process-CPU budget and ship one weights
file (LGD, the keypoint lifter): parse ``--out --minutes --steps --threads --set --no-ship``, train (resumable),
export into the package unless ``--no-ship``."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main(doc: str, trainer_class, preset, ship_path: Path, built_by: str, argv=None, minutes: float = 12.0) -> int:
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="run folder (resumed when it exists)")
    ap.add_argument("--minutes", type=float, default=minutes, help="process-CPU time budget")
    ap.add_argument("--steps", type=int, default=100000, help="schedule length the budget is mapped onto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="config field (dotted)")
    ap.add_argument("--no-ship", action="store_true", help=f"do not write {ship_path.name} into the package")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = preset("fast").with_assignments(a.set)
    cfg = cfg.replace(**{"run.time_budget_s": a.minutes * 60, "run.budget_clock": "process",
                         "run.max_steps": a.steps, "run.threads": a.threads})  # fmt: skip
    tr = trainer_class(a.out, config=cfg)
    tr.train()
    card = {"built_by": built_by, "threads": a.threads, "budget_minutes": a.minutes}
    if not a.no_ship:
        path = tr.export_weights(ship_path, card)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) after {tr.step} steps")
    return 0
