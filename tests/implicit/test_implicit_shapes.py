"""The learned shape space: Anny ground truth, one-view depth observations, completion against the mean shape,
and the code priors against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from implicit_oracle import point_triangle_distance

from human3d.errors import InvalidInputError
from human3d.implicit.completion import (
    CompletionConfig, chamfer_to_mesh, check_partial_points, complete_code, depth_view, free_space_points,
)  # fmt: skip
from human3d.implicit.sampling import SignedDistance, is_watertight
from human3d.implicit.shapes import ANNY_FRAME, anny_bodies, anny_skin_faces


def test_anny_skin_is_one_closed_surface(anny_model):
    f = anny_skin_faces(anny_model)
    used = np.unique(f)
    E = len(f) * 3 // 2  # closed: every edge in two faces
    assert is_watertight(f) and len(used) - E + len(f) == 2  # Euler characteristic of a sphere
    assert len(f) < len(anny_model.faces)  # the eyeballs and the mouth are dropped
    _, v, f = anny_bodies(1, seed=3, poses="rest", model=anny_model)
    sd = SignedDistance(v[0], f)
    # inside the pelvis (the root joint) and 3 m in front of the body
    assert sd(np.array([[0.0, 0.0, 0.0]]))[0] < 0 < sd(np.array([[0.0, 0.0, 3.0]]))[0]


def test_depth_view_points_lie_on_the_mesh(anny_model):
    _, v, f = anny_bodies(1, seed=5, poses="rest", model=anny_model)
    view = depth_view(v[0], f, size=48, yaw=40.0, max_points=100)
    d = point_triangle_distance(view.points, v[0][f])  # brute-force oracle
    assert len(view.points) == 100 and d.max() < 1e-4
    # the camera sees the points from in front: the ray from the origin first meets the body at the point
    assert np.linalg.norm(view.points - view.origin, axis=1).min() > 2.0


def test_free_space_points_are_on_the_view_rays():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(500, 3, dtype=torch.float64)
    o = torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64)
    q = free_space_points(p, o, 0.05, 0.3, g)
    t = (p - q).norm(dim=1)
    cos = torch.nn.functional.cosine_similarity(o - q, q - p, dim=1)  # q lies between o and p
    assert bool(((t >= 0.05 - 1e-12) & (t <= 0.3 + 1e-12)).all()) and bool((cos > 1 - 1e-9).all())


def test_partial_points_checks():
    with pytest.raises(InvalidInputError, match="NaN"):
        check_partial_points(np.array([[0.0, 0, 0]] * 10 + [[np.nan, 0, 0]]))
    with pytest.raises(InvalidInputError, match="at least 10"):
        check_partial_points(np.zeros((3, 3)))


def test_completion_beats_the_mean_shape(tiny_shape_run, anny_model, one_thread):
    tr = tiny_shape_run
    _, hv, hf = anny_bodies(1, seed=777, poses="rest", model=anny_model)  # not a training body (seed 0)
    view = depth_view(hv[0], hf, size=64, yaw=30.0)
    pu = torch.tensor(ANNY_FRAME.to_unit(view.points), dtype=torch.float32)
    ou = torch.tensor(ANNY_FRAME.to_unit(view.origin[None])[0], dtype=torch.float32)
    mean = tr.codes.mean(0)
    z = complete_code(tr.decoder, pu, ou, tr.code_prior("gaussian"), CompletionConfig(steps=150), z0=mean)
    done, base = tr.extract(z, 64), tr.extract(mean, 64)
    cd = chamfer_to_mesh(done.vertices, done.faces, hv[0], hf, 10_000)
    cd_mean = chamfer_to_mesh(base.vertices, base.faces, hv[0], hf, 10_000)
    assert cd < 0.8 * cd_mean, (cd, cd_mean)


def test_code_priors_against_closed_forms(tiny_shape_run):
    from scipy.stats import multivariate_normal

    codes = tiny_shape_run.codes.double()
    g, flow = tiny_shape_run.code_prior("gaussian"), tiny_shape_run.code_prior("flow")
    x = codes.numpy()
    mu, cov = x.mean(0), np.cov(x.T, bias=True)
    cov += 1e-3 * cov.diagonal().mean() * np.eye(len(mu))  # the fit's ridge
    ref = multivariate_normal(mu, cov).logpdf(x)
    assert np.allclose(g.log_prob(codes.float()).double().numpy(), ref, rtol=1e-4, atol=1e-3)
    # energy = negative log-likelihood for both; the flow fits its training codes better than the Gaussian
    assert torch.allclose(g.energy(codes.float()), -g.log_prob(codes.float()))
    assert flow.log_prob(codes.float()).mean() > g.log_prob(codes.float()).mean()
    s = flow.sample(64, generator=torch.Generator().manual_seed(0))
    assert s.shape == codes.shape[:0] + (64, codes.shape[1]) and torch.isfinite(s).all()


def test_mesh_folder_shape_set(tmp_path):
    import trimesh

    from human3d.errors import DatasetError
    from human3d.implicit.shapes import mesh_dir_shape_set

    trimesh.creation.icosphere(subdivisions=4, radius=2.0).export(tmp_path / "a_sphere.obj")
    trimesh.creation.box(extents=(1.0, 2.0, 3.0)).export(tmp_path / "b_box.ply")
    s = mesh_dir_shape_set(tmp_path, 2000, seed=0)
    assert s.names == ["a_sphere.obj", "b_box.ply"] and s.points.shape == (2, 2000, 3)
    # each shape in its own unit sphere: the sphere's SDF there is |x| - 1 (up to the tessellation's 0.3 %)
    x = s.points[0].double()
    assert torch.allclose(s.sdf[0].double(), x.norm(dim=1) - 1.0, atol=4e-3)
    assert abs(s.normalizations[1].scale - 0.5 * np.sqrt(14.0)) < 1e-9  # half the box's diagonal
    open_mesh = trimesh.creation.box()
    open_mesh.faces = open_mesh.faces[:-1]
    open_mesh.export(tmp_path / "c_open.obj")
    with pytest.raises(DatasetError, match="c_open.obj.*not watertight"):
        mesh_dir_shape_set(tmp_path, 100)
