"""Atomic file writing, owned by ``generative.io_utils`` and re-exported here (one implementation for both packages).

``atomic_path(path)`` yields a temporary path beside ``path`` and renames it over ``path`` on success.
"""

from generative.io_utils import atomic_path, atomic_write_bytes, atomic_write_text

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "filtered_stderr", "save_weights_with_card",
           "read_weights"]


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


def save_weights_with_card(path, tensors: dict, metadata: dict, card: dict):
    """Write ``tensors`` as a safetensors file with string ``metadata`` and ``card`` beside it as ``.json``, both
    atomically (temporary file + rename). Returns the path."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={k: str(v) for k, v in metadata.items()})  # fmt: skip
    atomic_write_text(path.with_suffix(".json"), json.dumps(card, indent=2) + "\n")
    return path


def read_weights(path, kind: str, what: str, build):
    """Read a safetensors file written by :func:`save_weights_with_card` whose metadata ``kind`` is ``kind`` and
    return ``build(tensors, metadata)``; a missing, unreadable or mismatching file (or one ``build`` fails on) is a
    :class:`~human3d.errors.ModelFileError` naming ``what`` and the path."""
    from pathlib import Path

    from safetensors import safe_open

    from human3d.errors import ModelFileError

    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{what} '{p}' not found (expected a .safetensors file of kind '{kind}')")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("kind") != kind:
            raise ModelFileError(f"{what} '{p}': metadata kind is {meta.get('kind')!r}, expected '{kind}'")
        return build(tensors, meta)
    except ModelFileError:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable file is a bad model file
        raise ModelFileError(f"{what} '{p}': cannot be read ({type(e).__name__}: {e})") from None
