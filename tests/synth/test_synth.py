"""Synthetic humans: labels against independent oracles (the body model re-run from the stored parameters, the
camera projection, a second z-buffer render), the COCO JSON read back by human3d.data.keypoints, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from human3d.errors import InvalidInputError
from human3d.geometry.cameras import project_points, transform_points

S = 96


@pytest.fixture(scope="module")
def gen(anny_model):
    from human3d.synth import SynthConfig, SynthGenerator

    cfg = SynthConfig(size=S, max_people=3, prior_fraction=1.0, occluders=1.0, out_of_frame=0.5)
    return SynthGenerator(anny_model, cfg)


@pytest.fixture(scope="module")
def batch(gen):
    return gen.generate(6, seed=3)


def test_labels_agree_with_body_model_and_camera(batch, anny_model):
    B, P = batch.present.shape
    params = {k: v.reshape(B * P, *v.shape[2:]) for k, v in batch.params.items()}
    with torch.no_grad():
        out = anny_model(params)  # the stored parameters must reproduce the people
    for sk in ("coco17", "body25"):
        X = out.keypoints[sk].view(B, P, -1, 3)
        torch.testing.assert_close(batch.keypoints3d[sk], X, atol=1e-4, rtol=0)
        proj = project_points(X.flatten(1, 2), batch.cameras.K, batch.cameras.world_to_camera)
        uv = proj.uv.view(B, P, -1, 2)
        lab = batch.keypoints2d[sk]
        on = lab[..., 2] > 0
        assert on.any()
        torch.testing.assert_close(lab[..., :2][on], uv[on], atol=1e-3, rtol=0)
        inside = proj.valid.view(B, P, -1) & (uv >= 0).all(-1) & (uv < S).all(-1) & batch.present[..., None]
        assert torch.equal(on, inside)  # flag 0 exactly where the keypoint leaves the image
    torch.testing.assert_close(batch.joints3d, out.joints.view(B, P, -1, 3), atol=1e-4, rtol=0)


def test_visibility_agrees_with_zbuffer(batch):
    from human3d.render.rasterizer import rasterize_mesh

    B, P = batch.present.shape
    cams = batch.cameras
    # an independent render of every person alone: depth of each person's own surface
    from human3d.body import load_body_model

    model = load_body_model("anny")
    params = {k: v.reshape(B * P, *v.shape[2:]) for k, v in batch.params.items()}
    with torch.no_grad():
        verts = model(params).vertices.view(B, P, -1, 3)
    faces = model.faces
    alone = torch.stack([rasterize_mesh(verts[:, p], faces, cams).depth for p in range(P)], 1)  # [B, P, H, W]
    scene = torch.where(alone > 0, alone, torch.full_like(alone, float("inf")))
    scene = torch.where(batch.present[..., None, None], scene, torch.full_like(scene, float("inf")))
    zmin, owner = scene.min(1)  # the composed z-buffer [B, H, W] and who is in front
    assert torch.equal(torch.isfinite(zmin), batch.depth > 0)
    torch.testing.assert_close(batch.depth[batch.depth > 0], zmin[batch.depth > 0], atol=1e-4, rtol=0)

    kp = batch.keypoints2d["coco17"]  # [B, P, K, 3]
    X = batch.keypoints3d["coco17"]
    z = transform_points(cams.world_to_camera, X.flatten(1, 2))[..., 2].view_as(kp[..., 0])
    flag = kp[..., 2]
    on = flag > 0
    j = kp[..., 0].floor().long().clamp(0, S - 1)
    i = kp[..., 1].floor().long().clamp(0, S - 1)
    lin = (i * S + j).flatten(1)
    zpix = zmin.flatten(1).gather(1, lin).view_as(z)
    opix = owner.flatten(1).gather(1, lin).view_as(z)
    me = torch.arange(P)[None, :, None].expand_as(z)
    # occluding boxes hide what they cover
    occ = batch.occluder_mask.flatten(1).gather(1, lin).view_as(z)
    assert not (on & occ & (flag == 2)).any()
    # visible keypoints: their pixel shows their own body (not something well in front of them)
    vis = on & (flag == 2)
    own = (opix == me) & (zpix >= z - 0.15)
    assert vis.sum() > 30 and own[vis].float().mean() > 0.95, own[vis].float().mean()
    # a keypoint with a surface >= 0.3 m in front of it (another person, or its own far side) is hidden
    hidden_by_zbuffer = on & ~occ & (zpix < z - 0.3)
    assert hidden_by_zbuffer.sum() > 5
    assert (flag[hidden_by_zbuffer] == 1).all()
    # masks are the z-buffer's person pixels minus the boxes; boxes bound the masks
    for p in range(P):
        want = (owner == p) & torch.isfinite(zmin) & ~batch.occluder_mask
        assert torch.equal(batch.masks[:, p], want)
    x, y, w, h = batch.boxes.unbind(-1)
    ys, xs = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    inbox = (xs >= x[..., None, None]) & (xs < (x + w)[..., None, None]) & (ys >= y[..., None, None]) & (
        ys < (y + h)[..., None, None])  # fmt: skip
    assert not (batch.masks & ~inbox).any()


def test_coco_json_round_trips(tmp_path, gen, anny_model):
    import cv2

    from human3d.data.keypoints import load_keypoint_inputs
    from human3d.synth.coco import make_dataset, rle_to_mask

    path = make_dataset(tmp_path / "ds", 3, gen.config, batch_size=3, seed=5, model=anny_model)
    ref = gen.generate(3, seed=5)  # make_dataset's first batch uses the seed itself
    doc = json.loads(path.read_text())
    assert doc["categories"][0]["keypoints"][0] == "nose" and len(doc["images"]) == 3
    imgs = load_keypoint_inputs(None, path)
    assert len(imgs) == 3
    for b, ki in enumerate(imgs):
        assert ki.error is None and ki.image_path.is_file()
        assert cv2.imread(str(ki.image_path)).shape == (S, S, 3)
        anns = [a for a in doc["annotations"] if a["image_id"] == doc["images"][b]["id"]]
        assert len(ki.people) == len(anns) >= 1
        for person, ann in zip(ki.people, anns):
            p = ann["person_slot"]
            lab = ref.keypoints2d["coco17"][b, p]
            on = lab[:, 2] > 0
            np.testing.assert_array_equal(person.keypoints[:, 2] > 0, on.numpy())
            np.testing.assert_allclose(person.keypoints[on.numpy(), :2], lab[on, :2].numpy(), atol=2e-3)
            mask = rle_to_mask(ann["segmentation"])
            np.testing.assert_array_equal(mask, ref.masks[b, p].numpy())
            assert mask.sum() == ann["area"]
            np.testing.assert_allclose(person.bbox, ref.boxes[b, p].numpy())
            assert len(ann["body25_keypoints"]) == 75 and len(ann["body_params"]["body_pose"]) == 309
        np.testing.assert_allclose(doc["images"][b]["camera"]["K"], ref.cameras.K[b].numpy(), atol=1e-3)


def test_rle_matches_closed_form():
    from human3d.synth.coco import mask_to_rle, rle_to_mask

    m = np.zeros((3, 4), bool)
    m[0, 0] = m[1, 0] = m[2, 3] = True
    # column-major: col0 = 1,1,0  col1..2 = 0  col3 = 0,0,1 -> runs: 0 zeros, 2 ones, 9 zeros, 1 one
    assert mask_to_rle(m)["counts"] == [0, 2, 9, 1]
    assert np.array_equal(rle_to_mask(mask_to_rle(m)), m)


def test_mocap_poses(anny_model):
    from human3d.synth import SynthConfig, SynthGenerator

    g = SynthGenerator(anny_model, SynthConfig(size=32, max_people=1, prior_fraction=0.0))
    b = g.generate(2, seed=0)
    assert (b.pose_source == 0).all() and b.params["body_pose"].abs().amax() > 0.1


def test_bad_arguments(tmp_path, anny_model):
    from typer.testing import CliRunner

    from human3d.cli.main import app
    from human3d.synth import SynthConfig, SynthGenerator
    from human3d.synth.coco import make_dataset

    with pytest.raises(InvalidInputError, match="size"):
        SynthConfig(size=8).validate()
    with pytest.raises(InvalidInputError, match="prior_fraction"):
        SynthConfig(prior_fraction=1.5).validate()
    with pytest.raises(InvalidInputError, match="n: expected a positive"):
        make_dataset(tmp_path / "x", 0, model=anny_model)
    with pytest.raises(InvalidInputError, match="family"):
        SynthGenerator(torch.nn.Linear(1, 1))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="out"):
        make_dataset(tmp_path / "file", 1, model=anny_model)
    r = CliRunner().invoke(app, ["synth", "make", "--n", "2", "--size", "4", "--out", str(tmp_path / "y")])
    assert r.exit_code == 2 and "size" in r.output
