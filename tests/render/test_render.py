"""Hard rasterizer and soft renderer against independent oracles (ray casting, analytic coverage, FD)."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import trimesh

from human3d.errors import InvalidInputError
from human3d.geometry import Cameras, look_at, make_intrinsics, pixel_centers
from human3d.render import (
    interpolate_vertex_attributes,
    pixel_normals,
    rasterize_mesh,
    render_soft_silhouette,
    shade_lambert,
)


def _identity_camera(W, H, f, cx=None, cy=None, dtype=torch.float32):
    K = make_intrinsics(f, f, W / 2 if cx is None else cx, H / 2 if cy is None else cy, dtype=dtype)
    return Cameras(K, torch.eye(4, dtype=dtype)[None], W, H)


def _sphere(subdiv, dtype=torch.float32):
    m = trimesh.creation.icosphere(subdivisions=subdiv)
    return torch.tensor(m.vertices, dtype=dtype)[None], torch.tensor(m.faces)


def _edge_distance(p, tri):
    """Distance [N] from points p [N, 2] to the boundary of triangle tri [3, 2] (float64 numpy)."""
    d = np.full(len(p), np.inf)
    for k in range(3):
        a, b = tri[k], tri[(k + 1) % 3]
        e = b - a
        t = np.clip(((p - a) @ e) / (e @ e), 0, 1)
        d = np.minimum(d, np.linalg.norm(p - (a + t[:, None] * e), axis=1))
    return d


def _inside(p, tri):
    s = []
    for k in range(3):
        a, b = tri[k], tri[(k + 1) % 3]
        s.append((b[0] - a[0]) * (p[:, 1] - a[1]) - (b[1] - a[1]) * (p[:, 0] - a[0]))
    s = np.stack(s, 1)
    return (s >= 0).all(1) | (s <= 0).all(1)


# ---------------------------------------------------------------------------------------------------------- hard


def test_tilted_plane_depth_matches_ray_plane_intersection():
    # a tilted quad (two triangles) seen by a generic camera; oracle: rays through pixel centres hit the plane
    H, W = 48, 64
    K = make_intrinsics(70.0, 75.0, 30.3, 25.1)
    w2c = look_at(torch.tensor([[0.4, -0.3, -2.5]]), torch.tensor([[0.05, 0.1, 0.0]]))
    cams = Cameras(K, w2c, W, H)
    n = torch.nn.functional.normalize(torch.tensor([0.3, -0.2, 1.0]), dim=0)
    u = torch.nn.functional.normalize(torch.linalg.cross(n, torch.tensor([0.0, 1.0, 0.0])), dim=0)
    w = torch.linalg.cross(n, u)
    c0 = torch.tensor([0.0, 0.0, 0.2])
    corners = torch.stack([c0 + sx * 0.8 * u + sy * 0.6 * w for sx, sy in [(-1, -1), (1, -1), (1, 1), (-1, 1)]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    frags = rasterize_mesh(corners[None], faces, cams)

    o, d = cams.rays(normalize=False)  # [1, H, W, 3]
    t = ((c0 - o) @ n) / (d @ n)
    hit = o + t[..., None] * d  # [1, H, W, 3]
    cam_z = (hit @ w2c[0, :3, :3].T + w2c[0, :3, 3])[..., 2]
    rel = hit - c0
    a, b = rel @ u, rel @ w  # plane coordinates
    inside = (a.abs() < 0.8) & (b.abs() < 0.6)
    margin = torch.minimum(0.8 - a.abs(), 0.6 - b.abs()).abs()
    clear = margin > 2e-3  # not within ~0.1 px of the quad's border
    assert inside.sum() > 500
    assert torch.equal(frags.mask[clear], inside[clear])
    m = frags.mask & inside
    torch.testing.assert_close(frags.depth[m], cam_z[m], rtol=1e-4, atol=0)
    assert (frags.depth[~frags.mask] == 0).all() and (frags.face_ids[~frags.mask] == -1).all()


def test_triangle_coverage_and_barycentrics_are_exact():
    g = torch.Generator().manual_seed(3)
    H, W, f = 40, 56, 60.0
    cams = _identity_camera(W, H, f, cx=27.3, cy=21.7, dtype=torch.float64)
    for trial in range(4):
        # a random non-fronto-parallel triangle in front of the camera
        xy = (torch.rand(3, 2, generator=g, dtype=torch.float64) - 0.5) * 1.6
        zz = 1.5 + torch.rand(3, generator=g, dtype=torch.float64) * 1.5
        verts = torch.cat([xy * zz[:, None], zz[:, None]], dim=1)[None]  # [1, 3, 3]
        frags = rasterize_mesh(verts, torch.tensor([[0, 1, 2]]), cams)
        uv = (verts[0, :, :2] / verts[0, :, 2:]) * f + torch.tensor([27.3, 21.7], dtype=torch.float64)
        p = pixel_centers(H, W, dtype=torch.float64).reshape(-1, 2).numpy()
        tri = uv.numpy()
        want = _inside(p, tri).reshape(H, W)
        clear = (_edge_distance(p, tri) > 1e-6).reshape(H, W)
        got = frags.mask[0].numpy()
        assert np.array_equal(got[clear], want[clear]), f"trial {trial}"
        # perspective-correct barycentrics: the interpolated 3D point projects to the pixel centre at its depth
        cov = frags.mask[0]
        X = (frags.barycentrics[0][cov][:, :, None] * verts[0][None]).sum(1)  # [P, 3]
        proj = X[:, :2] / X[:, 2:] * f + torch.tensor([27.3, 21.7], dtype=torch.float64)
        torch.testing.assert_close(proj, torch.from_numpy(p.reshape(H, W, 2))[cov], atol=1e-9, rtol=0)
        torch.testing.assert_close(X[:, 2], frags.depth[0][cov], atol=1e-9, rtol=0)
        torch.testing.assert_close(frags.barycentrics[0][cov].sum(-1), torch.ones(int(cov.sum()), dtype=torch.float64))


def test_unit_cube_head_on_is_the_right_square():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    verts = torch.tensor(box.vertices, dtype=torch.float32)[None]
    faces = torch.tensor(box.faces)
    # far camera with a long focal length: front face at distance 99.5 spans 2 * f * 0.5 / 99.5 = 40 px
    f = 20.0 * 99.5 / 0.5
    K = make_intrinsics(f, f, 32.0, 32.0)
    cams = Cameras(K, look_at(torch.tensor([[0.0, 0.0, -100.0]]), torch.zeros(1, 3)), 64, 64)
    frags = rasterize_mesh(verts, faces, cams)
    m = frags.mask[0]
    assert int(m.sum()) == 40 * 40
    rows, cols = m.nonzero(as_tuple=True)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (12, 51, 12, 51)
    torch.testing.assert_close(frags.depth[0][m], torch.full((1600,), 99.5), rtol=1e-6, atol=0)
    # closed mesh: back-face culling gives the same image
    culled = rasterize_mesh(verts, faces, cams, cull_backfaces=True)
    assert torch.equal(culled.mask, frags.mask) and torch.equal(culled.face_ids, frags.face_ids)


@pytest.mark.parametrize("near_first", [True, False])
def test_occlusion_nearer_triangle_wins(near_first):
    cams = _identity_camera(32, 32, 30.0)
    near_tri = torch.tensor([[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.0, 0.5, 2.0]])
    far_tri = torch.tensor([[-1.5, -1.0, 3.0], [1.5, -1.0, 3.0], [0.0, 1.5, 3.0]])
    tris = [near_tri, far_tri] if near_first else [far_tri, near_tri]
    near_id = 0 if near_first else 1
    verts = torch.cat(tris)[None]
    frags = rasterize_mesh(verts, torch.tensor([[0, 1, 2], [3, 4, 5]]), cams)
    alone = rasterize_mesh(near_tri[None], torch.tensor([[0, 1, 2]]), cams).mask
    assert alone.sum() > 30
    assert (frags.face_ids[alone] == near_id).all()
    torch.testing.assert_close(frags.depth[alone], torch.full((int(alone.sum()),), 2.0))
    assert (frags.face_ids[frags.mask & ~alone] == 1 - near_id).all()


def test_closed_mesh_has_no_holes_and_matches_ray_casting():
    # oracle: analytic ray-sphere intersection; the icosphere is inscribed in the unit sphere
    verts, faces = _sphere(3)
    H = W = 48
    cams = Cameras(make_intrinsics(50.0, 50.0, 24.0, 24.0), look_at(torch.tensor([[0.3, 0.4, 3.0]]),
                   torch.zeros(1, 3)), W, H)
    frags = rasterize_mesh(verts, faces, cams)
    o, d = cams.rays(normalize=True)
    b = (o * d).sum(-1)
    disc = b**2 - ((o * o).sum(-1) - 1.0)
    hit_sphere = disc > 0
    # every pixel whose ray passes well inside the inscribed polyhedron must be covered (no cracks)
    inner = disc > 0.05
    assert frags.mask[inner].all()
    assert not frags.mask[~hit_sphere].any()
    t = -b - disc.clamp(min=0).sqrt()
    z_sphere = (t * (d @ cams.world_to_camera[0, :3, :3].T)[..., 2])  # camera z of the sphere hit
    m = frags.mask & inner
    gap = frags.depth[m] - z_sphere[m]
    assert (gap >= -1e-5).all()  # the polyhedron lies inside the sphere ...
    # ... by at most its sagitta (1 - cos(face circumradius) < 0.005) divided by the ray's incidence cosine
    assert (gap <= 0.005 / disc[m].sqrt()).all()


def test_interpolation_normals_and_shading_on_a_plane():
    cams = _identity_camera(24, 20, 25.0)
    verts = torch.tensor([[[-2.0, -2.0, 2.0], [2.0, -2.0, 3.0], [2.0, 2.0, 3.0], [-2.0, 2.0, 2.0]]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    frags = rasterize_mesh(verts, faces, cams)
    assert frags.mask.all()
    # interpolated positions equal the unprojected pixel centres at the rasterized depth
    X = interpolate_vertex_attributes(frags, faces, verts)  # [1, H, W, 3]
    uv = pixel_centers(20, 24).reshape(1, -1, 2)
    Xr = cams.unproject(uv, frags.depth.reshape(1, -1)).reshape(1, 20, 24, 3)
    torch.testing.assert_close(X, Xr, atol=1e-4, rtol=1e-5)
    n_true = torch.nn.functional.normalize(torch.tensor([-1.0, 0.0, 4.0]), dim=0)  # plane z = 2.5 + x / 4
    for smooth in (True, False):
        n = pixel_normals(frags, verts, faces, smooth=smooth)
        torch.testing.assert_close(n.abs(), n_true.abs().expand_as(n), atol=1e-5, rtol=0)
    rgba = shade_lambert(frags, n, light_dir=(0.0, 0.0, -1.0), color=(1.0, 0.5, 0.25), ambient=0.2)
    inten = 0.2 + 0.8 * abs(float(n_true[2]))
    torch.testing.assert_close(rgba[..., :3], torch.tensor([1.0, 0.5, 0.25]) * inten * torch.ones(1, 20, 24, 1))
    assert (rgba[..., 3] == 1).all()


def test_batch_near_plane_and_gradients():
    verts, faces = _sphere(2)
    K = make_intrinsics(40.0, 40.0, 16.0, 16.0, batch_size=2)
    w2c = look_at(torch.tensor([[0.0, 0.0, 3.0], [2.5, 1.0, 1.0]]), torch.zeros(2, 3))
    cams = Cameras(K, w2c, 32, 32)
    both = rasterize_mesh(verts, faces, cams)  # one mesh, two cameras
    for i in range(2):
        one = rasterize_mesh(verts, faces, cams[i])
        assert torch.equal(one.face_ids[0], both.face_ids[i])
        torch.testing.assert_close(one.depth[0], both.depth[i])
    # a triangle crossing the near plane is dropped entirely
    tri = torch.tensor([[[-0.5, -0.5, 1.0], [0.5, -0.5, 1.0], [0.0, 0.5, -0.2]]])
    assert not rasterize_mesh(tri, torch.tensor([[0, 1, 2]]), _identity_camera(16, 16, 10.0)).mask.any()
    # depth is differentiable w.r.t. vertices (visibility fixed). Scaling the scene about the camera centre by s
    # leaves the image unchanged and scales every depth by s: sum_i grad_i . (v_i - c) = sum(depth)
    v = verts.clone().requires_grad_(True)
    fr = rasterize_mesh(v, faces, cams[0])
    fr.depth.sum().backward()
    c = cams[0].centers[:, None, :]
    torch.testing.assert_close((v.grad * (verts - c)).sum(), fr.depth.sum().detach(), rtol=1e-4, atol=0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(vertices=torch.full((1, 3, 3), float("nan"))), "vertices"),
        (dict(vertices=torch.zeros(3, 3)), "vertices"),
        (dict(faces=torch.tensor([[0, 1, 3]])), "faces"),
        (dict(faces=torch.tensor([[0, 1, -1]])), "faces"),
        (dict(faces=torch.tensor([[0.0, 1.0, 2.0]])), "faces"),
        (dict(faces=torch.tensor([0, 1, 2])), "faces"),
        (dict(cameras="camera"), "cameras"),
    ],
)
def test_bad_inputs_raise_named_errors(kwargs, name):
    args = dict(
        vertices=torch.tensor([[[0.0, 0.0, 2.0], [1.0, 0.0, 2.0], [0.0, 1.0, 2.0]]]),
        faces=torch.tensor([[0, 1, 2]]),
        cameras=_identity_camera(8, 8, 8.0),
    )
    args.update(kwargs)
    for fn in (rasterize_mesh, render_soft_silhouette):
        with pytest.raises(InvalidInputError, match=name):
            fn(args["vertices"], args["faces"], args["cameras"])
    with pytest.raises(InvalidInputError, match="sigma"):
        render_soft_silhouette(args["vertices"] if name != "vertices" else torch.zeros(1, 3, 3),
                               torch.tensor([[0, 1, 2]]), _identity_camera(8, 8, 8.0), sigma=-1.0)


# ---------------------------------------------------------------------------------------------------------- soft


def test_soft_gradients_match_finite_differences():
    torch.manual_seed(0)
    verts, faces = _sphere(0, torch.float64)
    verts = verts * torch.tensor([1.0, 0.8, 0.9], dtype=torch.float64)
    S = 14
    K = make_intrinsics(11.0, 11.0, 7.0, 7.0, dtype=torch.float64)
    cams = Cameras(K, look_at(torch.tensor([[0.3, 0.5, 3.0]], dtype=torch.float64),
                              torch.zeros(1, 3, dtype=torch.float64)), S, S)
    w_sil, w_dep = torch.rand(2, 1, S, S, dtype=torch.float64)

    def loss(v):
        out = render_soft_silhouette(v, faces, cams, sigma=1.0, gamma=0.1, eps=1e-8, znear=1.0, zfar=5.0)
        return (out.silhouette * w_sil).sum() + (out.depth * w_dep).sum()

    v = verts.clone().requires_grad_(True)
    loss(v).backward()
    # central differences along random dense directions (an error in any coordinate shows in every direction)
    # and along single coordinates of two vertices
    dirs = list(torch.randn(8, *verts.shape, dtype=torch.float64))
    for i in (0, 5):
        for k in range(3):
            e = torch.zeros_like(verts)
            e[0, i, k] = 1.0
            dirs.append(e)
    h = 1e-6
    num = torch.stack([(loss(verts + h * d) - loss(verts - h * d)) / (2 * h) for d in dirs])
    ana = torch.stack([(v.grad * d).sum() for d in dirs])
    assert num.abs().max() > 1.0
    torch.testing.assert_close(ana, num, atol=1e-6, rtol=1e-6)


def test_soft_silhouette_and_depth_converge_to_hard():
    verts, faces = _sphere(2)
    verts = verts * torch.tensor([1.0, 0.7, 0.8])
    S = 48
    cams = Cameras(make_intrinsics(45.0, 45.0, 24.0, 24.0), look_at(torch.tensor([[0.5, 0.8, 3.0]]),
                   torch.zeros(1, 3)), S, S)
    hard = rasterize_mesh(verts, faces, cams)
    ious = []
    for sigma in (2.0, 0.2, 1e-3):
        soft = render_soft_silhouette(verts, faces, cams, sigma=sigma, gamma=1e-4)
        pred = soft.silhouette > 0.5
        ious.append(float((pred & hard.mask[0]).sum() / (pred | hard.mask[0]).sum()))
    assert ious[-1] > 0.98 and ious[-1] >= ious[0]
    inner = hard.mask & (soft.silhouette > 0.999)
    assert inner.sum() > 0.8 * hard.mask.sum()
    rel = ((soft.depth - hard.depth).abs() / hard.depth.clamp(min=1e-6))[inner]
    assert rel.median() < 1e-4 and rel.max() < 1e-2
    # culling back faces only removes factors from the product: coverage can only drop, and only near the contour
    a = render_soft_silhouette(verts, faces, cams, sigma=0.5).silhouette
    b = render_soft_silhouette(verts, faces, cams, sigma=0.5, cull_backfaces=True).silhouette
    assert (b <= a + 1e-6).all()
    assert (b[hard.mask] >= 0.5 - 1e-6).all()  # a covered pixel is inside its (front) face: D_f >= 1/2
