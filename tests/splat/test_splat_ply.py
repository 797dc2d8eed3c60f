"""Standard 3DGS .ply export/import: layout, every value back, rejection of bad files."""

import numpy as np
import pytest
import torch

from human3d.errors import ModelFileError
from human3d.splat.gaussians import Gaussians
from human3d.splat.ply import load_ply, ply_attribute_names, save_ply


def _gaussians(n=7, degree=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2 - 1
    return Gaussians(
        torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g),
        torch.randn(n, generator=g), torch.randn(n, 1, 3, generator=g), torch.randn(n, k, 3, generator=g),
    )  # fmt: skip


def _write_raw(path, names, data, fmt="binary_little_endian"):
    header = ["ply", f"format {fmt} 1.0", f"element vertex {data.shape[0]}"]
    header += [f"property float {n}" for n in names] + ["end_header"]
    path.write_bytes(("\n".join(header) + "\n").encode() + data.astype("<f4").tobytes())


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_roundtrip_every_value(tmp_path, degree):
    g = _gaussians(degree=degree, seed=degree)
    p = save_ply(g, tmp_path / "s.ply")
    h = load_ply(p)
    for name, t in g.tensors().items():
        assert torch.equal(getattr(h, name).detach(), t), name
    assert h.max_sh_degree == degree


def test_layout_is_the_reference_one(tmp_path):
    g = _gaussians(n=3, degree=3)
    p = save_ply(g, tmp_path / "s.ply")
    blob = p.read_bytes()
    head, body = blob.split(b"end_header\n", 1)
    lines = head.decode().splitlines()
    assert lines[:3] == ["ply", "format binary_little_endian 1.0", "element vertex 3"]
    names = [ln.split()[2] for ln in lines if ln.startswith("property float")]
    expected = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    expected += [f"f_rest_{i}" for i in range(45)] + ["opacity", "scale_0", "scale_1", "scale_2"]
    expected += ["rot_0", "rot_1", "rot_2", "rot_3"]
    assert names == expected == ply_attribute_names(15)
    rec = np.frombuffer(body, dtype="<f4").reshape(3, len(names))
    col = {n: i for i, n in enumerate(names)}
    t = g.tensors()
    # f_rest is channel-major: f_rest_{c * 15 + k} = sh_rest[:, k, c] (Inria: features_rest.transpose(1, 2))
    assert rec[1, col["f_rest_0"]] == t["sh_rest"][1, 0, 0]
    assert rec[1, col["f_rest_1"]] == t["sh_rest"][1, 1, 0]
    assert rec[1, col["f_rest_15"]] == t["sh_rest"][1, 0, 1]
    assert rec[2, col["f_rest_44"]] == t["sh_rest"][2, 14, 2]
    assert rec[0, col["rot_0"]] == t["quats"][0, 0]  # w first
    assert rec[0, col["opacity"]] == t["opacity_logits"][0] and rec[0, col["scale_2"]] == t["log_scales"][0, 2]
    np.testing.assert_array_equal(rec[:, col["nx"] : col["nz"] + 1], 0)


def test_reads_files_without_normals_and_with_extra_properties(tmp_path):
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3", "extra"]  # fmt: skip
    data = np.arange(2 * len(names), dtype=np.float32).reshape(2, -1) / 10 + 0.1
    _write_raw(tmp_path / "a.ply", names, data)
    g = load_ply(tmp_path / "a.ply")
    assert len(g) == 2 and g.max_sh_degree == 0
    assert float(g.means[1, 2].detach()) == pytest.approx(data[1, 2])
    assert float(g.quats[0, 3].detach()) == pytest.approx(data[0, 13])


def test_missing_fields_are_named(tmp_path):
    names = [n for n in ply_attribute_names(0) if n not in ("opacity", "rot_2")]
    _write_raw(tmp_path / "m.ply", names, np.ones((4, len(names)), np.float32))
    with pytest.raises(ModelFileError, match=r"missing properties \['opacity', 'rot_2'\]"):
        load_ply(tmp_path / "m.ply")


def test_nan_parameters_rejected(tmp_path):
    names = ply_attribute_names(3)
    data = np.ones((5, len(names)), np.float32)
    data[3, names.index("scale_1")] = np.nan
    data[0, names.index("f_rest_7")] = np.inf
    _write_raw(tmp_path / "n.ply", names, data)
    with pytest.raises(ModelFileError, match="NaN/inf.*f_rest_7.*scale_1"):
        load_ply(tmp_path / "n.ply")


def test_bad_files(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_ply(tmp_path / "none.ply")
    (tmp_path / "t.ply").write_bytes(b"hello\n")
    with pytest.raises(ModelFileError, match="not a PLY"):
        load_ply(tmp_path / "t.ply")
    names = ply_attribute_names(0)
    _write_raw(tmp_path / "a.ply", names, np.ones((2, len(names)), np.float32), fmt="binary_middle_endian")
    with pytest.raises(ModelFileError, match="'binary_middle_endian' is not a PLY format"):
        load_ply(tmp_path / "a.ply")
    _write_raw(tmp_path / "tr.ply", names, np.ones((3, len(names)), np.float32))
    (tmp_path / "tr.ply").write_bytes((tmp_path / "tr.ply").read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="truncated"):
        load_ply(tmp_path / "tr.ply")
    bad = names[:9] + [f"f_rest_{i}" for i in range(5)] + names[9:]
    _write_raw(tmp_path / "r.ply", bad, np.ones((2, len(bad)), np.float32))
    with pytest.raises(ModelFileError, match="5 f_rest"):
        load_ply(tmp_path / "r.ply")
    with pytest.raises(ModelFileError, match="should end with"):
        load_ply(tmp_path / "x.txt") if (tmp_path / "x.txt").write_text("x") else None


def test_save_rejects_nan(tmp_path):
    g = _gaussians()
    with torch.no_grad():
        g.means[2, 1] = float("nan")
    with pytest.raises(Exception, match="means"):
        save_ply(g, tmp_path / "s.ply")
    assert not (tmp_path / "s.ply").exists()
