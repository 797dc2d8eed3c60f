"""Fixtures of the implicit tests: one tiny DeepSDF shape space over Anny bodies, trained once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_shape_run(tmp_path_factory, anny_model):
    """A DeepSDF run over 12 rest-pose Anny bodies (tiny decoder, 400 steps; about 15 s on one core), finalised
    (code priors + mean mesh)."""
    import torch

    from human3d.implicit.shapes import ShapeSpaceTrainer, shape_preset

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = shape_preset("tiny", n_shapes=12, poses="rest", **{"run.max_steps": 400})
        trainer = ShapeSpaceTrainer(tmp_path_factory.mktemp("shapes") / "run", config=cfg)
        trainer.train(progress=False)
    finally:
        torch.set_num_threads(n)
    return trainer
