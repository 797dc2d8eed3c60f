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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # budgeted.py beside this script

from budgeted import main as budgeted_main  # noqa: E402

from human3d.fitting.lgd import DEFAULT_WEIGHTS, weights_dir  # noqa: E402
from human3d.hmr.lgd_trainer import LGDTrainer, preset  # noqa: E402


def main(argv=None) -> int:
    return budgeted_main(__doc__, LGDTrainer, preset, weights_dir() / f"{DEFAULT_WEIGHTS}.safetensors",
                         "tools/build_assets/train_lgd.py", argv, minutes=12.0)


if __name__ == "__main__":
    raise SystemExit(main())
