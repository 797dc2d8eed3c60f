"""The training core: one run folder, one resume rule, one loop and one checkpoint format for every trainer.

See :mod:`human3d.train.core` (``Trainer``, ``RunConfig``, the resume rule) and :mod:`human3d.train.scene`
(``SceneTrainer`` for models that render cameras: evaluation, split renders, orbit videos).
"""

from human3d.train.core import (  # noqa: F401
    CHECKPOINT_FILE,
    LOG_FILE,
    RUN_FILE,
    RunConfig,
    Trainer,
    TrainingInterrupted,
    check_run_folder,
    plot_training_log,
    read_log,
)
