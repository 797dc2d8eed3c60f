"""Compatibility name for tests: the synthetic SMPL-family model files live in the package,
:mod:`human3d.body.smpl_synth` (new tests import it from there)."""

from human3d.body.smpl_synth import *  # noqa: F401,F403
from human3d.body.smpl_synth import __all__  # noqa: F401
