"""Atomic file writing, owned by ``generative.io_utils`` and re-exported here (one implementation for both packages).

``atomic_path(path)`` yields a temporary path beside ``path`` and renames it over ``path`` on success.
"""

from generative.io_utils import atomic_path, atomic_write_bytes, atomic_write_text

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "filtered_stderr"]


def filtered_stderr(drop: tuple[str, ...] = ()):
    """Context manager: capture what native code writes to file descriptor 2 and pass on only the lines that contain
    none of ``drop`` (all lines are dropped when ``drop`` holds ""); for libraries that ``fprintf(stderr)`` warnings
    Python cannot filter (warp's "CUDA driver" warning, TFLite/absl banners of mediapipe)."""
    import contextlib
    import os
    import sys
    import tempfile

    @contextlib.contextmanager
    def _ctx():
        fd = 2  # native code writes to descriptor 2 whatever sys.stderr is
        try:
            sys.stderr.flush()
            saved = os.dup(fd)
        except (OSError, ValueError):  # no descriptor 2 to filter
            yield
            return
        with tempfile.TemporaryFile(mode="w+b") as tmp:
            os.dup2(tmp.fileno(), fd)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, fd)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", "replace")
                keep = [ln for ln in text.splitlines(keepends=True) if not any(d in ln for d in drop)]
                if keep:
                    os.write(fd, "".join(keep).encode("utf-8", "replace"))

    return _ctx()
