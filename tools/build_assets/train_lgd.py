"""Train the shipped learned-gradient-descent network (``human3d/fitting/weights/anny_lgd.safetensors`` + card).

    python tools/build_assets/train_lgd.py --out /tmp/lgd_run [--minutes 12] [--threads 1] [--set NAME=VALUE ...]

Runs :class:`human3d.hmr.lgd_trainer.LGDTrainer` (preset ``fast``: mocap poses of the training clips only, random
Anny shapes and cameras, no images) for a process-CPU time budget, then writes the network and a JSON provenance
card into ``human3d/fitting/weights/`` (``--no-ship``: only into the run folder). Resumes an existing ``--out``.

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

from human3d.fitting.lgd import DEFAULT_WEIGHTS, weights_dir  # noqa: E402
from human3d.hmr.lgd_trainer import LGDTrainer, preset  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="run folder (resumed when it exists)")
    ap.add_argument("--minutes", type=float, default=12.0, help="process-CPU time budget")
    ap.add_argument("--steps", type=int, default=100000, help="schedule length the budget is mapped onto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="config field (dotted)")
    ap.add_argument("--no-ship", action="store_true", help="do not write into human3d/fitting/weights/")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = preset("fast").with_assignments(a.set)
    cfg = cfg.replace(**{"run.time_budget_s": a.minutes * 60, "run.budget_clock": "process",
                         "run.max_steps": a.steps, "run.threads": a.threads})  # fmt: skip
    tr = LGDTrainer(a.out, config=cfg)
    tr.train()
    card = {"built_by": "tools/build_assets/train_lgd.py", "threads": a.threads, "budget_minutes": a.minutes}
    if not a.no_ship:
        path = tr.export_weights(weights_dir() / f"{DEFAULT_WEIGHTS}.safetensors", card)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) after {tr.step} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
