"""The surface-fit trainer on the training core: run folder, resume, mesh back in input units; point-cloud files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from human3d.data.paths import shared_data_dir
from human3d.errors import DatasetError, InvalidInputError
from human3d.implicit.io import read_points
from human3d.implicit.trainer import SurfaceFitTrainer, compare_meshes, preset

SPOT = shared_data_dir() / "meshes_watertight" / "spot_triangulated.obj"


def test_read_points_formats(tmp_path):
    rng = np.random.default_rng(0)
    p, n = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    np.savetxt(tmp_path / "a.xyz", np.hstack([p, n]))
    q, m = read_points(tmp_path / "a.xyz")
    np.testing.assert_allclose(q, p)
    np.testing.assert_allclose(m, n / np.linalg.norm(n, axis=1, keepdims=True))
    trimesh.PointCloud(p).export(tmp_path / "b.ply")
    q, m = read_points(tmp_path / "b.ply")
    np.testing.assert_allclose(q, p, atol=1e-6)
    assert m is None
    (tmp_path / "empty.xyz").write_text("")
    with pytest.raises((InvalidInputError, DatasetError)):
        read_points(tmp_path / "empty.xyz")
    np.savetxt(tmp_path / "nan.xyz", np.array([[0, 0, np.nan], [1, 2, 3]]))
    with pytest.raises(InvalidInputError, match="NaN"):
        read_points(tmp_path / "nan.xyz")


@pytest.mark.skipif(not SPOT.exists(), reason="shared mesh data not available")
def test_fit_run_resume_and_mesh_in_input_units(tmp_path, one_thread):
    cfg = preset("fast", n_points=4000, batch_size=512, hash_levels=4, hash_max_resolution=32, mesh_resolution=32,
                 **{"run.max_steps": 20, "run.log_every": 10, "run.checkpoint_every": 10})
    out = tmp_path / "run"
    info = SurfaceFitTrainer(out, data=SPOT, config=cfg).train(progress=False)
    assert info["step"] == 20 and (out / "checkpoint.safetensors").is_file() and (out / "mesh.obj").is_file()
    assert (out / "turntable.png").is_file() and len((out / "log.jsonl").read_text().splitlines()) == 2
    # resume extends the run; another model configuration is refused
    t = SurfaceFitTrainer(out, overrides={"run.max_steps": 30})
    assert t.step == 20 and t.train(progress=False)["step"] == 30
    with pytest.raises(InvalidInputError, match="another configuration"):
        SurfaceFitTrainer(out, overrides={"method": "igr"})
    mesh = trimesh.load(out / "mesh.obj", force="mesh")
    ref = trimesh.load(SPOT, force="mesh")
    np.testing.assert_allclose(mesh.bounds, ref.bounds, atol=0.15 * np.linalg.norm(ref.extents))  # input units
    m = compare_meshes(mesh.vertices, mesh.faces, SPOT, n=5000, pred_inside=t.inside)
    assert 0 < m["chamfer_l1_rel"] < 0.05 and 0.5 < m["iou"] <= 1 and 0 < m["normal_consistency"] <= 1
    assert json.loads((out / "run.json").read_text())["kind"] == "implicit-fit"
