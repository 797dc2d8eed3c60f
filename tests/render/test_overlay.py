"""Overlay drawing and PNG output: RGB order, blended pixels only where the mesh is, named input errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import trimesh

from human3d.body.skeletons import EDGES
from human3d.errors import InvalidInputError
from human3d.geometry import Cameras, look_at, make_intrinsics
from human3d.render import draw_keypoints, rasterize_mesh, render_overlay, save_png

H, W = 40, 56


def _scene():
    m = trimesh.creation.icosphere(subdivisions=2)
    verts = torch.tensor(m.vertices, dtype=torch.float32) * 0.6
    faces = torch.tensor(m.faces)
    cams = Cameras(make_intrinsics(40.0, 40.0, 28.0, 20.0), look_at(torch.tensor([[0.0, 0.0, 3.0]]),
                   torch.zeros(1, 3)), W, H)
    return verts, faces, cams


def _read_rgb(path):
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None
    return bgr[..., ::-1]


def test_overlay_png_changes_mesh_pixels_only(tmp_path):
    verts, faces, cams = _scene()
    photo = np.random.default_rng(0).integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    out = render_overlay(photo, verts, faces, cams, alpha=0.6)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    path = save_png(tmp_path / "sub" / "overlay.png", out)
    back = _read_rgb(path)
    assert np.array_equal(back, out)  # lossless and RGB round trip
    assert not list((tmp_path / "sub").glob(".*"))  # no temporary file left behind
    mask = rasterize_mesh(verts[None], faces, cams).mask[0].numpy()
    assert 200 < mask.sum() < H * W - 200
    assert np.array_equal(back[~mask], photo[~mask])
    changed = (back[mask] != photo[mask]).any(axis=1)
    assert changed.mean() > 0.97
    # blending: out = (1 - a) photo + a shade with a = 0.6 -> |out - photo| <= 0.6 * 255 (+ rounding)
    diff = np.abs(back[mask].astype(int) - photo[mask].astype(int))
    assert diff.max() <= 0.6 * 255 + 1
    # alpha = 0 leaves the photo untouched
    assert np.array_equal(render_overlay(photo, verts, faces, cams, alpha=0.0), photo)


def test_keypoints_are_drawn_in_rgb_order(tmp_path):
    img = np.zeros((H, W, 3), dtype=np.uint8)
    kp = np.array([[10.5, 10.5, 1.0], [40.5, 30.5, 1.0], [50.5, 5.5, 0.0]])  # last: zero confidence
    out = draw_keypoints(img, kp, edges=[(0, 1), (1, 2)], color=(255, 0, 0), radius=2, thickness=1)
    assert tuple(out[10, 10]) == (255, 0, 0)  # pixel (row 10, col 10) has centre (10.5, 10.5)
    assert tuple(out[30, 40]) == (255, 0, 0)
    assert out[20, 25, 0] > 0  # midpoint of the drawn edge (25.5, 20.5)
    assert not out[5, 50].any() and not out[15, 47].any()  # low-confidence point and its edge are skipped
    assert not out[35, 5].any()
    assert not img.any()  # the input is not modified
    back = _read_rgb(save_png(tmp_path / "kp.png", out))
    assert tuple(back[10, 10]) == (255, 0, 0)
    raw = cv2.imread(str(tmp_path / "kp.png"))  # OpenCV's own order is BGR
    assert tuple(raw[10, 10]) == (0, 0, 255)


def test_overlay_draws_input_and_projected_model_keypoints():
    verts, faces, cams = _scene()
    photo = np.full((H, W, 3), 30, dtype=np.uint8)
    kp = np.zeros((17, 3))
    kp[:, :2] = [5.5, 5.5]
    kp[0] = [5.5, 34.5, 1.0]  # only the nose is confident
    model_kp = torch.zeros(1, 17, 3)
    model_kp[0, :, 2] = 0.6  # sphere front point, projects to the principal point (28, 20)
    out = render_overlay(photo, verts, faces, cams, keypoints=kp, model_keypoints=model_kp,
                         keypoint_color=(0, 255, 0), model_keypoint_color=(255, 0, 255))
    assert tuple(out[34, 5]) == (0, 255, 0)
    assert tuple(out[19, 27]) == (255, 0, 255)
    assert tuple(out[5, 5]) == (30, 30, 30)  # zero-confidence keypoints are not drawn
    # already-projected model keypoints [K, 2] are drawn where given
    out2 = render_overlay(photo, verts, faces, cams, model_keypoints=torch.tensor([[45.5, 8.5]]),
                          model_keypoint_color=(255, 0, 255))
    assert tuple(out2[8, 45]) == (255, 0, 255)
    assert len(EDGES["coco17"]) > 10


@pytest.mark.parametrize(
    "change, name",
    [
        (dict(image=np.zeros((H, W), np.uint8)), "image"),
        (dict(image=np.zeros((H, W, 3), np.float32)), "image"),
        (dict(image=np.zeros((H + 1, W, 3), np.uint8)), "image"),
        (dict(vertices=torch.full((10, 3), float("nan"))), "vertices"),
        (dict(vertices=torch.zeros(10, 2)), "vertices"),
        (dict(faces=torch.tensor([[0, 1, 10_000]])), "faces"),
        (dict(keypoints=np.zeros((17, 4))), "keypoints"),
        (dict(keypoints=np.full((17, 2), np.nan)), "keypoints"),
        (dict(model_keypoints=torch.zeros(17, 4)), "model_keypoints"),
        (dict(model_keypoints=torch.full((17, 3), float("inf"))), "model_keypoints"),
        (dict(alpha=1.5), "alpha"),
        (dict(cameras=None), "cameras"),
    ],
)
def test_overlay_bad_inputs_raise_named_errors(change, name):
    verts, faces, cams = _scene()
    args = dict(image=np.zeros((H, W, 3), np.uint8), vertices=verts, faces=faces, cameras=cams)
    args.update(change)
    with pytest.raises(InvalidInputError, match=name):
        render_overlay(**args)


def test_save_png_rejects_bad_input(tmp_path):
    with pytest.raises(InvalidInputError, match="path"):
        save_png(tmp_path / "x.jpg", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="rgb"):
        save_png(tmp_path / "x.png", np.zeros((4, 4, 3), np.float32))
    assert not list(tmp_path.iterdir())
