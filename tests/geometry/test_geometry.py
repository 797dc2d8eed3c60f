"""Rotations and cameras against closed forms, scipy and the shipped lego cameras."""

import json
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from human3d.data.paths import shared_data_dir
from human3d.errors import InvalidInputError
from human3d.geometry import (
    Cameras,
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    euler_to_matrix,
    frame_points,
    generate_rays,
    intrinsics_from_fov,
    invert_rigid,
    look_at,
    make_intrinsics,
    make_rigid,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    opengl_to_opencv,
    project_points,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
)

LEGO = shared_data_dir() / "nerf_lego_400"


def _random_rotvecs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = torch.rand(n, 1, generator=g, dtype=torch.float64) * (math.pi - 1e-3)
    return axis * angle


def test_rotations_match_scipy():
    rv = _random_rotvecs(64)
    R = axis_angle_to_matrix(rv)
    ref = Rotation.from_rotvec(rv.numpy())
    np.testing.assert_allclose(R.numpy(), ref.as_matrix(), atol=1e-10)
    q = axis_angle_to_quaternion(rv)  # WXYZ
    q_ref = ref.as_quat()  # scipy: XYZW
    q_ref = np.concatenate([q_ref[:, 3:], q_ref[:, :3]], 1)
    q_ref *= np.sign(q_ref[:, :1])
    np.testing.assert_allclose((q * torch.sign(q[:, :1])).numpy(), q_ref, atol=1e-10)
    np.testing.assert_allclose(quaternion_to_matrix(q).numpy(), ref.as_matrix(), atol=1e-10)
    np.testing.assert_allclose(matrix_to_quaternion(R).numpy(), q_ref, atol=1e-8)
    np.testing.assert_allclose(matrix_to_axis_angle(R).numpy(), rv.numpy(), atol=1e-7)
    np.testing.assert_allclose(quaternion_to_axis_angle(q).numpy(), rv.numpy(), atol=1e-7)


def test_6d_round_trip_and_gram_schmidt():
    R = axis_angle_to_matrix(_random_rotvecs(32, seed=1))
    np.testing.assert_allclose(rotation_6d_to_matrix(matrix_to_rotation_6d(R)).numpy(), R.numpy(), atol=1e-10)
    raw = torch.randn(10, 6, dtype=torch.float64)
    M = rotation_6d_to_matrix(raw)
    np.testing.assert_allclose((M.transpose(-1, -2) @ M).numpy(), np.broadcast_to(np.eye(3), (10, 3, 3)), atol=1e-10)
    np.testing.assert_allclose(torch.linalg.det(M).numpy(), np.ones(10), atol=1e-10)


@pytest.mark.parametrize("order", ["ZYX", "ZXY", "XYZ", "YXZ"])
def test_euler_intrinsic_matches_scipy(order):
    ang = torch.rand(16, 3, dtype=torch.float64) * 120 - 60
    R = euler_to_matrix(ang, order, degrees=True)
    ref = Rotation.from_euler(order.upper(), ang.numpy(), degrees=True).as_matrix()  # upper case = intrinsic
    np.testing.assert_allclose(R.numpy(), ref, atol=1e-10)


def _random_cameras(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    eye = torch.randn(b, 3, generator=g) * 0.5 + torch.tensor([0.0, 0.0, -4.0])
    target = torch.randn(b, 3, generator=g) * 0.1
    w2c = look_at(eye, target)
    K = make_intrinsics(torch.full((b,), 500.0), torch.full((b,), 480.0), 160.0, 120.0)
    return Cameras(K, w2c, 320, 240)


def test_project_unproject_round_trip():
    cams = _random_cameras()
    pts = torch.randn(4, 100, 3) * 0.7
    proj = cams.project(pts)
    assert bool(proj.valid.all())
    back = cams.unproject(proj.uv, proj.depth)
    torch.testing.assert_close(back, pts, atol=1e-4, rtol=1e-4)


def test_projection_closed_form_and_behind_camera_rejected():
    K = make_intrinsics(100.0, 100.0, 50.0, 40.0)
    pts = torch.tensor([[[0.2, -0.1, 2.0], [0.0, 0.0, -1.0], [0.3, 0.3, 0.0]]])
    proj = project_points(pts, K)
    torch.testing.assert_close(proj.uv[0, 0], torch.tensor([50 + 100 * 0.1, 40 - 100 * 0.05]))
    assert proj.valid.tolist() == [[True, False, False]]
    assert bool(torch.isfinite(proj.uv).all())


def test_look_at_convention():
    # camera at +z looking at the origin with y up: world +x is image right, world +y is image up (smaller v)
    w2c = look_at(torch.tensor([[0.0, 0.0, 5.0]]), torch.zeros(1, 3))
    cams = Cameras(make_intrinsics(100.0, 100.0, 50.0, 50.0), w2c, 100, 100)
    proj = cams.project(torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]))
    uv = proj.uv[0]
    torch.testing.assert_close(uv[0], torch.tensor([50.0, 50.0]))
    assert uv[1, 0] > 50 and abs(uv[1, 1] - 50) < 1e-4
    assert uv[2, 1] < 50 and abs(uv[2, 0] - 50) < 1e-4
    torch.testing.assert_close(proj.depth[0, 0], torch.tensor(5.0))
    with pytest.raises(InvalidInputError):
        look_at(torch.tensor([[0.0, 5.0, 0.0]]), torch.zeros(1, 3))


def test_rays_hit_projected_points():
    cams = _random_cameras(2, seed=3)
    o, d = cams.rays()
    assert o.shape == (2, 240, 320, 3)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(2, 240, 320))
    # the point at depth 3 along the ray through pixel (i, j) projects back to that pixel centre
    i, j = 17, 201
    _, d_z = cams.rays(normalize=False)
    p = o[:, i, j] + 3.0 * d_z[:, i, j]
    proj = cams.project(p[:, None])
    torch.testing.assert_close(proj.uv[:, 0], torch.tensor([[j + 0.5, i + 0.5]] * 2), atol=1e-3, rtol=0)
    torch.testing.assert_close(proj.depth[:, 0], torch.full((2,), 3.0), atol=1e-4, rtol=0)


def test_rigid_inverse_and_opengl_involution():
    R = axis_angle_to_matrix(_random_rotvecs(5))
    T = make_rigid(R, torch.randn(5, 3, dtype=torch.float64))
    torch.testing.assert_close(invert_rigid(T) @ T, torch.eye(4, dtype=torch.float64).expand(5, 4, 4))
    torch.testing.assert_close(opengl_to_opencv(opengl_to_opencv(T)), T)


def test_lego_cameras_origin_projects_near_centre():
    meta = json.loads((LEGO / "transforms_train.json").read_text())
    c2w_gl = torch.tensor([f["transform_matrix"] for f in meta["frames"]], dtype=torch.float32)
    K = intrinsics_from_fov(meta["camera_angle_x"], 400, 400, batch_size=len(c2w_gl))
    cams = Cameras.from_opengl_camera_to_world(K, c2w_gl, 400, 400)
    proj = cams.project(torch.zeros(len(c2w_gl), 1, 3))
    assert bool(proj.valid.all())
    dist = (proj.uv[:, 0] - 200.0).norm(dim=-1)
    assert float(dist.max()) < 10.0, dist.max()
    # and the centre ray of every camera passes close to the origin
    o, d = generate_rays(cams.K, cams.camera_to_world, 400, 400)
    oc, dc = o[:, 200, 200], d[:, 200, 200]
    closest = oc - (oc * dc).sum(-1, keepdim=True) * dc
    assert float(closest.norm(dim=-1).max()) < 0.5


def test_camera_bad_input_is_named():
    with pytest.raises(InvalidInputError, match="K"):
        Cameras(torch.eye(3), torch.eye(4)[None], 10, 10)
    with pytest.raises(InvalidInputError, match="world_to_camera"):
        Cameras(torch.eye(3)[None], torch.full((1, 4, 4), float("nan")), 10, 10)
    with pytest.raises(InvalidInputError, match="width"):
        Cameras(torch.eye(3)[None], torch.eye(4)[None], 0, 10)


def test_frame_points_keeps_points_in_view():
    pts = torch.randn(500, 3) * torch.tensor([0.3, 0.9, 0.2]) + torch.tensor([1.0, 2.0, -3.0])
    cams = frame_points(pts, 200, 300)
    proj = cams.project(pts[None])
    assert bool(proj.valid.all())
    uv = proj.uv[0]
    assert float(uv[:, 0].min()) > 0 and float(uv[:, 0].max()) < 200
    assert float(uv[:, 1].min()) > 0 and float(uv[:, 1].max()) < 300
    # looks along -Z: the camera sits at larger z than the points
    assert float(cams.centers[0, 2]) > float(pts[:, 2].max())
