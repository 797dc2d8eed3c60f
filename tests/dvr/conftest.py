"""Fixtures of the DVR tests: small multi-view render datasets of a sphere and of spot (human3d.synth.multiview)."""

from __future__ import annotations

import pytest


def _sphere_mesh():
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    return m.vertices, m.faces


@pytest.fixture(scope="session")
def sphere_scene(tmp_path_factory):
    """24 + 4 RGBA views (32 px) of a unit icosphere (the renders' world frame keeps it a unit sphere at 0)."""
    from human3d.synth.multiview import MultiviewConfig, render_multiview

    v, f = _sphere_mesh()
    return render_multiview(v, f, tmp_path_factory.mktemp("sphere"), MultiviewConfig(n_train=24, n_test=4, size=32))


@pytest.fixture(scope="session")
def spot_scene(tmp_path_factory):
    """24 + 4 RGBA views (32 px) of spot, with its ground-truth mesh.obj in the renders' world frame."""
    from human3d.data.paths import shared_data_dir
    from human3d.synth.multiview import MultiviewConfig, load_mesh_file, render_multiview

    path = shared_data_dir() / "meshes_watertight" / "spot_triangulated.obj"
    if not path.is_file():
        pytest.skip(f"shared mesh {path} is not available")
    v, f, _ = load_mesh_file(path)
    return render_multiview(v, f, tmp_path_factory.mktemp("spot"), MultiviewConfig(n_train=24, n_test=4, size=32))
