"""Atomic writes leave the same permissions as a plain ``open()`` (mkstemp's 0600 would hide outputs from others),
and leave nothing behind on failure."""

from __future__ import annotations

import stat

import pytest

from generative.io_utils import atomic_path, atomic_write_text


def test_atomic_file_has_open_mode(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # the oracle: what open() gives under this process's umask
    ours = atomic_write_text(tmp_path / "ours.txt", "x")
    assert stat.S_IMODE(ours.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
