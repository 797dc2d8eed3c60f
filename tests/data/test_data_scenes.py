"""Scene datasets: Blender (nerf_synthetic) and COLMAP loaders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from human3d.data import colmap
from human3d.data.paths import shared_data_dir
from human3d.data.scenes import detect_scene_format, load_blender_scene, load_colmap_scene, load_scene
from human3d.errors import DatasetError
from human3d.geometry import look_at

LEGO = shared_data_dir() / "nerf_lego_400"


# ------------------------------------------------------------------------------------------------ real data
def test_lego_centre_rays_pass_near_origin():
    """Oracle: the nerf_synthetic cameras all look at the object at the origin."""
    scene = load_blender_scene(LEGO, "train", downscale=8)
    assert len(scene) == 100 and scene.images.shape == (100, 50, 50, 3)
    assert scene.alphas.shape == (100, 50, 50, 1)
    K = scene.cameras.K
    # ray through the principal point, built from the camera-to-world matrix (not from generate_rays)
    c2w = scene.cameras.camera_to_world
    pp = torch.linalg.solve(K, torch.tensor([[K[0, 0, 2], K[0, 1, 2], 1.0]]).T.expand(100, 3, 1))[..., 0]
    d = torch.nn.functional.normalize((c2w[:, :3, :3] @ pp[..., None])[..., 0], dim=-1)
    o = c2w[:, :3, 3]
    dist = torch.linalg.cross(-o, d, dim=-1).norm(dim=-1)  # distance from the origin to each centre ray
    assert dist.max() < 0.5
    # the origin is in front of every camera (OpenCV z forward) and projects near the image centre
    proj = scene.cameras.project(torch.zeros(100, 1, 3))
    assert proj.valid.all() and (proj.depth > 2).all()
    assert ((proj.uv[:, 0] - 25).abs() < 0.5 * 50 / 4).all()
    # focal length from camera_angle_x, scaled with the image
    f_full = 0.5 * 400 / math.tan(0.5 * 0.6911112070083618)
    assert torch.allclose(K[:, 0, 0], torch.full((100,), f_full / 8))
    # background compositing: transparent pixels are white, images within [0, 1]
    bg_pix = scene.alphas[..., 0] == 0
    assert torch.allclose(scene.images[bg_pix], torch.ones(1, 3), atol=1e-5)
    assert scene.images.min() >= 0 and scene.images.max() <= 1


def test_lego_test_split_falls_back_to_val():
    with pytest.warns(UserWarning, match="val"):
        scene = load_scene(LEGO, "test", downscale=20)
    assert scene.split == "val" and len(scene) == 100 and scene.images.shape[1:] == (20, 20, 3)
    assert detect_scene_format(LEGO) == "blender"


# ------------------------------------------------------------------------------------------------ synthetic blender
def _write_blender(root: Path, n=3, size=8, split="train", fov=0.8):
    root.mkdir(parents=True, exist_ok=True)
    (root / split).mkdir(exist_ok=True)
    frames = []
    rng = np.random.default_rng(0)
    for i in range(n):
        ang = 2 * math.pi * i / n
        eye = torch.tensor([[4 * math.cos(ang), 4 * math.sin(ang), 1.0]])
        w2c_cv = look_at(eye, torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 1.0]]))
        c2w_cv = torch.linalg.inv(w2c_cv)[0]
        c2w_gl = c2w_cv @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
        img = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
        cv2.imwrite(str(root / split / f"r_{i}.png"), img[..., [2, 1, 0, 3]])
        frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": c2w_gl.tolist()})
    (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": fov, "frames": frames}))
    return frames


def test_blender_conventions_and_compositing(tmp_path):
    _write_blender(tmp_path, n=3, size=8)
    bg = (0.2, 0.4, 0.6)
    scene = load_blender_scene(tmp_path, "train", background=bg)
    raw = cv2.imread(str(tmp_path / "train" / "r_1.png"), cv2.IMREAD_UNCHANGED)[..., [2, 1, 0, 3]] / 255.0
    a = raw[..., 3:]
    expect = raw[..., :3] * a + (1 - a) * np.array(bg)
    assert np.allclose(scene.images[1].numpy(), expect, atol=1e-6)
    assert np.allclose(scene.alphas[1].numpy(), a, atol=1e-6)
    # re-compositing on another background matches compositing from the file
    black = scene.composite(torch.zeros(3))
    assert np.allclose(black[1].numpy(), raw[..., :3] * a, atol=1e-6)
    # the world origin (look-at target) projects to the principal point; world +z (look_at up) is image-up
    proj = scene.cameras.project(torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.5]]]).expand(3, 2, 3))
    assert torch.allclose(proj.uv[:, 0], torch.tensor([4.0, 4.0]), atol=1e-4)
    assert (proj.uv[:, 1, 1] < proj.uv[:, 0, 1]).all()  # higher point -> smaller v (y down)
    # downscale 2: area average of premultiplied colour
    half = load_blender_scene(tmp_path, "train", downscale=2, background=bg)
    pm = (raw[..., :3] * a).reshape(4, 2, 4, 2, 3).mean((1, 3))
    aa = a.reshape(4, 2, 4, 2, 1).mean((1, 3))
    assert np.allclose(half.images[1].numpy(), pm + (1 - aa) * np.array(bg), atol=1e-5)
    assert torch.allclose(half.cameras.K[:, :2], scene.cameras.K[:, :2] / 2)


def test_blender_bad_inputs(tmp_path):
    _write_blender(tmp_path / "ok", n=2)
    # missing image
    d = tmp_path / "missing"
    _write_blender(d, n=2)
    (d / "train" / "r_1.png").unlink()
    with pytest.raises(DatasetError, match="missing.*r_1"):
        load_blender_scene(d, "train")
    # unparseable transforms
    d = tmp_path / "badjson"
    _write_blender(d, n=2)
    (d / "transforms_train.json").write_text('{"camera_angle_x": 0.8, "frames": [')
    with pytest.raises(DatasetError, match="transforms_train.json.*JSON"):
        load_blender_scene(d, "train")
    # non-finite pose
    d = tmp_path / "nan"
    frames = _write_blender(d, n=2)
    frames[1]["transform_matrix"][0][3] = float("nan")
    (d / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": frames}))
    with pytest.raises(DatasetError, match="frame 1.*non-finite"):
        load_blender_scene(d, "train")
    # empty split
    d = tmp_path / "empty"
    _write_blender(d, n=2)
    (d / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": []}))
    with pytest.raises(DatasetError, match="transforms_train.json.*empty"):
        load_blender_scene(d, "train")
    # missing split / folder, corrupt image
    with pytest.raises(DatasetError, match="transforms_val.json"):
        load_blender_scene(tmp_path / "ok", "val")
    with pytest.raises(DatasetError, match="does not exist"):
        load_blender_scene(tmp_path / "nope", "train")
    (tmp_path / "ok" / "train" / "r_0.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="r_0.png"):
        load_blender_scene(tmp_path / "ok", "train")


# ------------------------------------------------------------------------------------------------ COLMAP


def _assert_models_equal(a: colmap.ColmapModel, b: colmap.ColmapModel):
    assert a.cameras.keys() == b.cameras.keys()
    for k in a.cameras:
        ca, cb = a.cameras[k], b.cameras[k]
        assert (ca.model, ca.width, ca.height) == (cb.model, cb.width, cb.height)
        np.testing.assert_array_equal(ca.params, cb.params)
    assert a.images.keys() == b.images.keys()
    for k in a.images:
        ia, ib = a.images[k], b.images[k]
        assert (ia.name, ia.camera_id) == (ib.name, ib.camera_id)
        np.testing.assert_array_equal(ia.qvec, ib.qvec)
        np.testing.assert_array_equal(ia.tvec, ib.tvec)
        np.testing.assert_array_equal(ia.xys, ib.xys)
        np.testing.assert_array_equal(ia.point3d_ids, ib.point3d_ids)
    np.testing.assert_array_equal(a.point_ids, b.point_ids)
    np.testing.assert_array_equal(a.xyz, b.xyz)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.errors, b.errors)
    assert len(a.tracks) == len(b.tracks)
    for ta, tb in zip(a.tracks, b.tracks):
        np.testing.assert_array_equal(np.asarray(ta).reshape(-1, 2), tb)


def test_colmap_text_binary_round_trip(synthetic_colmap, tmp_path):
    model = synthetic_colmap(tmp_path / "scene")
    colmap.write_model(model, tmp_path / "bin", binary=True)
    colmap.write_model(model, tmp_path / "txt", binary=False)
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["cameras.bin", "images.bin", "points3D.bin"]
    from_bin = colmap.read_model(tmp_path / "bin")
    from_txt = colmap.read_model(tmp_path / "txt")
    _assert_models_equal(model, from_bin)
    _assert_models_equal(model, from_txt)  # repr() of floats round-trips exactly
    # binary layout: cameras.bin size is fixed by the format
    n_params = sum(colmap.CAMERA_MODELS[{v[0]: k for k, v in colmap.CAMERA_MODELS.items()}[c.model]][1] for c in model.cameras.values())
    assert (tmp_path / "bin" / "cameras.bin").stat().st_size == 8 + 3 * 24 + 8 * n_params
    # quaternion conversion round trip
    R = colmap.qvec_to_rotmat(model.images[3].qvec)
    assert np.allclose(colmap.rotmat_to_qvec(R), model.images[3].qvec)


@pytest.mark.parametrize("binary", [True, False])
def test_colmap_scene_cameras_reproject_observations(synthetic_colmap, tmp_path, binary):
    root = tmp_path / "scene"
    model = synthetic_colmap(root)
    colmap.write_model(model, root / "sparse" / "0", binary=binary)
    for downscale in (1, 2):
        tr = load_colmap_scene(root, "train", downscale=downscale)
        te = load_colmap_scene(root, "test", downscale=downscale)
        assert len(tr) + len(te) == 9 and len(te) == 2  # images 0 and 8 are test (every 8th)
        assert tr.images.shape[1:] == (30 // downscale, 40 // downscale, 3)
        assert tr.points3d.shape == (200, 3) and tr.points_rgb.shape == (200, 3)
        assert torch.allclose(tr.points_rgb * 255, torch.tensor(model.rgb, dtype=torch.float32))
        for split in (tr, te):
            for i, path in enumerate(split.image_paths):
                im = next(v for v in model.images.values() if v.name == path.name)
                pts = torch.tensor(model.xyz[im.point3d_ids - 1], dtype=torch.float32)[None]
                proj = split.cameras[i].project(pts)
                assert proj.valid.all()
                assert torch.allclose(proj.uv[0], torch.tensor(im.xys, dtype=torch.float32) / downscale, atol=1e-3)
        # near/far bracket the depths of the points in front of every camera
        z = torch.cat([split.cameras.project(torch.tensor(model.xyz, dtype=torch.float32)[None].expand(len(split), -1, -1)).depth.flatten() for split in (tr, te)])
        assert tr.near <= z.min() and tr.far >= z.max() and tr.near > 0
        assert (tr.scene_bounds[0] >= -1.01).all() and (tr.scene_bounds[1] <= 1.01).all()
    assert detect_scene_format(root) == "colmap"


def test_colmap_distortion_warning_and_undistort(synthetic_colmap, tmp_path):
    root = tmp_path / "scene"
    model = synthetic_colmap(root, distort=True)
    colmap.write_model(model, root / "sparse" / "0", binary=True)
    with pytest.warns(UserWarning, match="distortion ignored"):
        raw = load_colmap_scene(root, "all", undistort=False)
    und = load_colmap_scene(root, "all", undistort=True)
    names = [p.name for p in und.image_paths]
    k = next(i for i, n in enumerate(names) if model.images[i + 1].camera_id == 3)
    assert not torch.allclose(raw.images[k], und.images[k])  # distorted camera's image changed
    j = next(i for i, n in enumerate(names) if model.images[i + 1].camera_id == 1)
    assert torch.equal(raw.images[j], und.images[j])  # pinhole camera's image untouched


def test_colmap_bad_inputs(synthetic_colmap, tmp_path):
    root = tmp_path / "scene"
    model = synthetic_colmap(root)
    colmap.write_model(model, root / "sparse" / "0", binary=True)
    (root / "images" / "img_004.png").unlink()
    with pytest.raises(DatasetError, match="missing.*img_004"):
        load_colmap_scene(root, "train")
    data = (root / "sparse" / "0" / "images.bin").read_bytes()
    (root / "sparse" / "0" / "images.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="images.bin.*truncated"):
        load_colmap_scene(root, "test")
    txt = tmp_path / "txt"
    colmap.write_model(model, txt, binary=False)
    (txt / "cameras.txt").write_text("1 PINHOLE 40 30 50.0 52.0\n")
    with pytest.raises(DatasetError, match="cameras.txt' line 1.*needs 4 params"):
        colmap.read_model(txt)
    with pytest.raises(DatasetError, match="neither Blender"):
        detect_scene_format(tmp_path / "scene" / "images")
    colmap.write_model(model, root / "sparse" / "0", binary=True)
    assert len(load_colmap_scene(root, "test", test_every=100)) == 1
    with pytest.raises(DatasetError, match="split 'train' is empty"):
        load_colmap_scene(root, "train", test_every=1)
