"""Fixtures of the HMR tests: held-out synthetic people (mocap clips held out of every training set)."""

from __future__ import annotations

import pytest

HARD_CLIPS = ("131_03", "jumping_5_stride4", "fair1_wave_hello")
"""Held-out clips (human3d.motion.mocap.HOLDOUT): a hop, jumps with crouches, waving with the arms raised."""


@pytest.fixture(scope="session")
def heldout_people(anny_model):
    """12 one-person 128 px images of the held-out clips, random yaw over 360 degrees (faces away included),
    camera-frame labels (:func:`human3d.hmr.trainer.render_training_set`)."""
    import torch

    from human3d.hmr.trainer import render_training_set

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return render_training_set(anny_model, 12, 128, seed=321, clips=HARD_CLIPS, prior_fraction=0.0,
                                   out_of_frame=0.0, min_keypoints=13, chunk=12, progress=False)  # fmt: skip
    finally:
        torch.set_num_threads(n)
