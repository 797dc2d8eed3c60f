"""Train the shipped 2D -> 3D keypoint lifter (``human3d/fitting/weights/anny_lift.*``) on a process-CPU budget.

    python tools/build_assets/train_lift.py --out /tmp/lift_run [--minutes 25] [--threads 1] [--set NAME=VALUE ...]

Runs :class:`human3d.hmr.lift_trainer.LiftTrainer` (preset ``fast``: 3D keypoints of every training-clip frame at
15 fps on two random Anny shapes each, computed once; random heading, tilt, mirror, camera, noise 0-6 % of the
person's size, dropout 0-30 %; the ``HOLDOUT`` clips never read) on the training core (resumable: rerun with the
same ``--out``), then writes the weights and their card into the package unless ``--no-ship``.
SMPL family: ``--set data.model=PATH`` (with ``--no-ship``; use the run's ``lift.safetensors``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # budgeted.py beside this script

from budgeted import main as budgeted_main  # noqa: E402

from human3d.fitting.lift import DEFAULT_WEIGHTS, _weights_dir  # noqa: E402
from human3d.hmr.lift_trainer import LiftTrainer, preset  # noqa: E402


def main(argv=None) -> int:
    return budgeted_main(__doc__, LiftTrainer, preset, _weights_dir() / f"{DEFAULT_WEIGHTS}.safetensors",
                         "tools/build_assets/train_lift.py", argv, minutes=25.0)


if __name__ == "__main__":
    raise SystemExit(main())
