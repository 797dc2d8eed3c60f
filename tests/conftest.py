"""Shared pytest fixtures.

``anny_model``: the default Anny body model (float32, skinning "auto"), built ONCE per test session and shared by
every test file. Its first build in a fresh cache takes ~2 min and writes ~0.8 GB to ``$ANNY_CACHE_DIR``
(default ``~/.cache/human3d/anny``); later ones load in well under a second.

Do not move or convert the shared instance (``.to(...)``) or write into its buffers: other tests use it. For
another dtype/device/skinning, build your own ``AnnyBody(dtype=torch.float64)`` etc. (instant once built).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def anny_model():
    """AnnyBody() shared by the whole session (float32, CPU, default skinning)."""
    from human3d.body.anny import AnnyBody

    return AnnyBody()
