"""The point-cloud reader on ASCII and binary PLY written by plyfile (the oracle), with and without normals, and
truncated / NaN files."""

import numpy as np
import plyfile
import pytest

from human3d.errors import DatasetError, InvalidInputError
from human3d.implicit.io import read_points


def _write(path, pts, normals=None, text=True):
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals is not None else [])
    arr = np.zeros(len(pts), dtype=[(n, "f4") for n in names])
    for i, n in enumerate("xyz"):
        arr[n] = pts[:, i]
    if normals is not None:
        for i, n in enumerate(["nx", "ny", "nz"]):
            arr[n] = normals[:, i]
    plyfile.PlyData([plyfile.PlyElement.describe(arr, "vertex")], text=text).write(str(path))
    return path


@pytest.mark.parametrize("text", [True, False])
@pytest.mark.parametrize("with_normals", [True, False])
def test_ascii_and_binary_point_clouds(tmp_path, text, with_normals):
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(50, 3)).astype(np.float32)
    nrm = rng.normal(size=(50, 3)).astype(np.float32) * 3.0  # not unit: the reader normalises
    path = _write(tmp_path / "p.ply", pts, nrm if with_normals else None, text)
    assert path.read_bytes().startswith(b"ply\nformat " + (b"ascii" if text else b"binary"))
    got, got_n = read_points(path)
    np.testing.assert_allclose(got, pts, rtol=1e-6, atol=1e-7)
    if with_normals:
        want = nrm.astype(np.float64) / np.linalg.norm(nrm.astype(np.float64), axis=1, keepdims=True)
        np.testing.assert_allclose(got_n, want, rtol=1e-6, atol=1e-7)
    else:
        assert got_n is None


def test_truncated_and_nan_ascii_ply(tmp_path):
    pts = np.arange(15, dtype=np.float32).reshape(5, 3)
    text = _write(tmp_path / "a.ply", pts).read_text()
    assert text.endswith("\n12 13 14\n")
    (tmp_path / "cut.ply").write_text(text[: -len("12 13 14\n")])  # the last row is missing
    with pytest.raises(DatasetError, match=r"cut.ply' is truncated: element 'vertex' needs 5 rows, 4 remain"):
        read_points(tmp_path / "cut.ply")
    (tmp_path / "half.ply").write_text(text[: -len(" 14\n")])  # the last row is cut
    with pytest.raises(DatasetError, match=r"half.ply' is truncated or malformed: row 4 of element 'vertex' has 2"):
        read_points(tmp_path / "half.ply")
    pts[2, 1] = np.nan
    _write(tmp_path / "nan.ply", pts)
    with pytest.raises(InvalidInputError, match=r"nan.ply.*1 points contain NaN or inf"):
        read_points(tmp_path / "nan.ply")
    blob = _write(tmp_path / "b.ply", pts, text=False).read_bytes()
    (tmp_path / "bcut.ply").write_bytes(blob[:-9])
    with pytest.raises(DatasetError, match=r"bcut.ply"):
        read_points(tmp_path / "bcut.ply")
