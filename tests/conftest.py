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


@pytest.fixture()
def one_thread():
    """One torch intra-op thread for the test (restored after): tiny networks and small-op loops run faster than
    with two threads on a shared 2-core machine, and runs are bit-reproducible."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
