"""Atomic file writing, owned by ``generative.io_utils`` and re-exported here (one implementation for both packages).

``atomic_path(path)`` yields a temporary path beside ``path`` and renames it over ``path`` on success.
"""

from generative.io_utils import atomic_path, atomic_write_bytes, atomic_write_text

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]
