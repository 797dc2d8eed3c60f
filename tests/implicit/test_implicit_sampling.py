"""Ground-truth sampling against brute-force oracles on spot (exact point-to-triangle distance, winding number)."""

from __future__ import annotations

import numpy as np
import pytest

from human3d.data.paths import shared_data_dir
from human3d.errors import InvalidInputError
from human3d.implicit.sampling import (
    SignedDistance,
    check_mesh,
    load_mesh,
    sample_sdf,
    sample_surface,
    unit_sphere_normalization,
)
from implicit_oracle import point_triangle_distance, winding_number

SPOT = shared_data_dir() / "meshes_watertight" / "spot_triangulated.obj"
needs_spot = pytest.mark.skipif(not SPOT.exists(), reason="shared mesh data not available")


@pytest.fixture(scope="module")
def spot():
    return load_mesh(SPOT)


@needs_spot
def test_sdf_samples_match_brute_force(spot):
    v, f = spot
    s = sample_sdf(v, f, n=600, seed=3)
    assert s.points.shape == (600, 3) and s.n_near == 564  # 94 % near the surface
    vu = s.normalization.to_unit(v)
    assert np.linalg.norm(vu, axis=1).max() == pytest.approx(1.0)
    dist = point_triangle_distance(s.points, vu[f])
    wn = winding_number(s.points, vu[f])
    assert np.abs(np.abs(s.sdf) - dist).max() < 1e-5
    assert ((s.sdf < 0) == (wn > 0.5)).all()  # negative inside
    assert (np.abs(wn - np.round(wn)) < 1e-6).all() and 0 < (wn > 0.5).mean() < 1
    # the uniform tail covers the cube, the near samples hug the surface
    assert np.abs(s.points[s.n_near :]).max() <= 1.0
    assert np.median(np.abs(s.sdf[: s.n_near])) < 0.06 < np.median(np.abs(s.sdf[s.n_near :]))


@needs_spot
def test_normalisation_round_trip_and_surface_samples(spot):
    v, f = spot
    norm = unit_sphere_normalization(v)
    np.testing.assert_allclose(norm.from_unit(norm.to_unit(v)), v, atol=1e-12)
    p, n = sample_surface(v, f, 500, seed=0)
    assert point_triangle_distance(p, v[f]).max() < 1e-9
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-9)
    # outward normals: stepping along them leaves the solid
    sd = SignedDistance(v, f)
    assert (sd(p + 1e-3 * n) > 0).mean() > 0.97 and (sd(p - 1e-3 * n) < 0).mean() > 0.97


def test_bad_input_errors():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0]])
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2]])  # tetrahedron missing a face
    with pytest.raises(InvalidInputError, match="not watertight.*point cloud"):
        check_mesh(v, f)
    check_mesh(v, np.vstack([f, [[1, 2, 3]]]))
    with pytest.raises(InvalidInputError, match="empty"):
        unit_sphere_normalization(np.zeros((0, 3)))
    with pytest.raises(InvalidInputError, match="NaN"):
        unit_sphere_normalization(np.array([[0, 0, np.nan]]))
    with pytest.raises(InvalidInputError, match="degenerate"):
        unit_sphere_normalization(np.ones((5, 3)))
