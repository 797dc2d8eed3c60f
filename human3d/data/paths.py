"""Where the real data for tests and benchmarks lives (never copied into the repo, never downloaded).

``shared_data_dir()`` is ``$HUMAN3D_DATA`` when set, else the first existing of ``<checkout>/../shared/data``,
``<cwd>/../shared/data`` and ``/work/shared/data``; each dataset folder there has a ``SOURCE.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shared_data_dir"]


def shared_data_dir() -> Path:
    """The shared data folder (see the module docstring); the checkout-relative path when none exists."""
    env = os.environ.get("HUMAN3D_DATA")
    if env:
        return Path(env).expanduser()
    candidates = [
        Path(__file__).resolve().parents[2].parent / "shared" / "data",
        Path.cwd().parent / "shared" / "data",
        Path("/work/shared/data"),
    ]
    return next((c for c in candidates if c.is_dir()), candidates[0])
