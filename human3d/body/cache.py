"""Cache folders for Anny's one-off model build and warp's compiled kernels, and the notice shown while building.

Anny builds its model data once (~2 min, ~0.8 GB) and NVIDIA warp JIT-compiles its skinning kernel once per
dtype (~5 s). Both are cached in folders human3d controls:

=========================  ==================================  =============================================
what                       environment variable (wins if set)  default
=========================  ==================================  =============================================
Anny model data            ``ANNY_CACHE_DIR``                  ``$XDG_CACHE_HOME/human3d/anny`` (``~/.cache/...``)
warp kernels               ``WARP_CACHE_PATH``                 ``$XDG_CACHE_HOME/human3d/warp``
=========================  ==================================  =============================================

An explicit ``cache_dir`` argument (``AnnyBody(cache_dir=...)``) wins over both. ``anny.paths`` reads
``ANNY_CACHE_DIR`` once at import; :func:`configure_anny_cache` sets the folder through
``anny.paths.set_anny_cache_path`` right before each build, so the folder chosen here is the one used.
Warp reads its folder once, in ``warp.init()``; :func:`configure_warp` sets ``warp.config.kernel_cache_dir``
before that (it cannot move the folder of a warp runtime some other code already initialised).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Iterator

logger = logging.getLogger("human3d.body")

ANNY_CACHE_ENV = "ANNY_CACHE_DIR"
WARP_CACHE_ENV = "WARP_CACHE_PATH"
ANNY_BUILD_BYTES = 0.8e9  # measured size of a full Anny build (three safetensors files)
ANNY_BUILD_SECONDS = 130  # measured on 2 CPU cores


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/human3d`` (``~/.cache/human3d`` when XDG_CACHE_HOME is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "human3d"


def anny_cache_dir(path=None) -> Path:
    """The Anny cache folder: ``path`` if given, else ``$ANNY_CACHE_DIR``, else ``cache_root()/anny``."""
    if path is not None:
        return Path(path).expanduser().resolve()
    env = os.environ.get(ANNY_CACHE_ENV)
    return Path(env).expanduser().resolve() if env else cache_root() / "anny"


def warp_cache_dir(path=None) -> Path:
    """The warp kernel cache folder: ``path``, else ``$WARP_CACHE_PATH``, else ``cache_root()/warp``."""
    if path is not None:
        return Path(path).expanduser().resolve()
    env = os.environ.get(WARP_CACHE_ENV)
    return Path(env).expanduser().resolve() if env else cache_root() / "warp"


def configure_anny_cache(path=None) -> Path:
    """Point ``anny`` at the cache folder (see :func:`anny_cache_dir`); return it."""
    import anny.paths

    folder = anny_cache_dir(path)
    anny.paths.set_anny_cache_path(folder)
    return folder


def configure_warp(path=None) -> Path | None:
    """Initialise warp with its kernel cache in :func:`warp_cache_dir` (quietly); return the folder in use.

    Returns None if warp is not installed. If warp was already initialised elsewhere, its folder is kept.
    """
    try:
        import warp
    except ImportError:
        return None
    from warp._src import context as _wp_context  # runtime is None until warp.init()

    if getattr(_wp_context, "runtime", None) is None:
        folder = warp_cache_dir(path)
        folder.mkdir(parents=True, exist_ok=True)
        warp.config.kernel_cache_dir = str(folder)
        warp.config.log_level = max(warp.config.log_level, warp.LOG_WARNING)  # no greeting / per-module lines
        warp.config.quiet = True  # no initialisation banner
        from human3d.io_utils import filtered_stderr

        # warp's native init fprintf's "Warp CUDA warning: Could not find or load the NVIDIA CUDA driver" on every
        # CPU-only machine; CPU commands do not need CUDA (Anny falls back to CPU skinning), so drop that line
        with filtered_stderr(drop=("Could not find or load the NVIDIA CUDA driver",)):
            warp.init()
    return Path(warp.config.kernel_cache_dir)


def anny_build_file(folder: Path, **anny_kwargs) -> Path | None:
    """The safetensors file ``anny.Anny(**anny_kwargs)`` loads from ``folder`` (None if it cannot be computed).

    Mirrors ``anny.models.model_data.cache_builder`` (private API of anny, hence the guarded fallback).
    """
    try:
        import hashlib
        import json

        from anny.models import build_compact_model_data
        from anny.models.model_data import CURRENT_DATA_VERSION, RigConfig, TopologyConfig, _get_builder_metadata

        rig = anny_kwargs.get("rig", "anny")
        topology = anny_kwargs.get("topology", "anny")
        kwargs = dict(
            rig=RigConfig.from_string(rig) if isinstance(rig, str) else rig,
            topology=TopologyConfig.from_string(topology) if isinstance(topology, str) else topology,
            local_changes=anny_kwargs.get("local_changes", "none"),
            facial_actions=anny_kwargs.get("facial_actions", "none"),
            phenotypes=anny_kwargs.get("phenotypes", "default"),
            rank=None,
        )
        meta = _get_builder_metadata(build_compact_model_data.__wrapped__, **kwargs)
        digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:32]
        return folder / f"v{CURRENT_DATA_VERSION}" / f"build_compact_model_data_{digest}.safetensors"
    except Exception:  # pragma: no cover - depends on anny internals
        return None


def anny_cache_ready(folder: Path, **anny_kwargs) -> bool:
    """Whether building Anny with ``anny_kwargs`` will load from ``folder`` instead of building (slow)."""
    exact = anny_build_file(folder, **anny_kwargs)
    if exact is not None:
        return exact.is_file()
    return any(folder.glob("v*/build_compact_model_data_*.safetensors"))


@contextlib.contextmanager
def build_notice(folder: Path, slow: bool) -> Iterator[None]:
    """Tell the user about a slow one-off build of the Anny model (spinner on a terminal, log line otherwise)."""
    if not slow:
        yield
        return
    msg = (
        f"Building the Anny body model once (~{ANNY_BUILD_SECONDS // 60} min, "
        f"~{ANNY_BUILD_BYTES / 1e9:.1f} GB in {folder}); later runs load it in well under a second."
    )
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < 1.2 * ANNY_BUILD_BYTES:
        logger.warning(
            "Only %.2f GB free in %s; the Anny build needs ~%.1f GB (set %s to another folder).",
            free / 1e9, folder, ANNY_BUILD_BYTES / 1e9, ANNY_CACHE_ENV,
        )  # fmt: skip
    start = time.perf_counter()
    if sys.stderr.isatty():
        from rich.console import Console

        console = Console(stderr=True)
        with console.status(msg):
            yield
        console.print(f"Anny body model built in {time.perf_counter() - start:.0f} s ({folder}).")
    else:
        logger.warning(msg)
        yield
        logger.warning("Anny body model built in %.0f s (%s).", time.perf_counter() - start, folder)
