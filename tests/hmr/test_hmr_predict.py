"""``human3d hmr predict`` and the fitting initializer: files as `fit` writes them, reprojection of the predicted
bodies, clear errors on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from human3d.errors import InvalidInputError


@pytest.fixture(scope="module")
def photo(tmp_path_factory, heldout_people):
    """Held-out image 0 as a PNG with its COCO keypoint JSON."""
    from human3d.render.overlay import save_png

    d = tmp_path_factory.mktemp("hmr_photo")
    img = heldout_people["images"][0].numpy()
    save_png(d / "person.png", img)
    kp = heldout_people["kp2d"][0].clone()
    kp[:, 2] = (kp[:, 2] > 0).float() * 2  # COCO visibility
    coco = {"images": [{"id": 1, "file_name": "person.png", "width": 128, "height": 128}],
            "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "keypoints": kp.flatten().tolist(),
                             "num_keypoints": int((kp[:, 2] > 0).sum())}],
            "categories": [{"id": 1, "name": "person"}]}  # fmt: skip
    (d / "kp.json").write_text(json.dumps(coco))
    return d


def test_hmr_predict_writes_fit_outputs(photo, tmp_path, heldout_people, anny_model, one_thread):
    import trimesh
    from PIL import Image

    from human3d.cli.main import app

    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["hmr", "predict", str(photo / "person.png"), "--keypoints", str(photo / "kp.json"),
                                 "--out", str(out), "--focal", str(float(heldout_people["K"][0, 0, 0])),
                                 "--no-progress"])  # fmt: skip
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["persons"] == 1 and s["images"][0]["error"] is None
    files = s["images"][0]["people"][0]["files"]
    assert set(files) == {"params_npz", "params_json", "mesh", "overlay"}
    params = json.loads((out / files["params_json"]).read_text())
    mesh = trimesh.load(out / files["mesh"], process=False)
    assert mesh.vertices.shape == (anny_model.num_vertices, 3)
    assert Image.open(out / files["overlay"]).size == (128, 128)
    assert (out / s["images"][0]["overlay"]).is_file()
    # the written parameters rebuild the written mesh, and its keypoints project near the given ones
    from human3d.body.io import load_params

    p = load_params(out / files["params_npz"], anny_model).params
    with torch.no_grad():
        o = anny_model(p)
    assert np.allclose(o.vertices[0].numpy(), mesh.vertices, atol=1e-4)
    from human3d.geometry.cameras import project_points

    uv = project_points(o.keypoints["coco17"], heldout_people["K"][:1]).uv[0]
    kp = heldout_people["kp2d"][0]
    err = (uv - kp[:, :2]).norm(dim=-1)[kp[:, 2] > 0]
    box = float((kp[kp[:, 2] > 0, :2].amax(0) - kp[kp[:, 2] > 0, :2].amin(0)).max())
    assert float(err.median()) < 0.15 * box, (float(err.median()), box)
    assert params  # smplx-named JSON


def test_hmr_predict_bad_inputs(tmp_path):
    from human3d.cli.main import app

    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    r = CliRunner().invoke(app, ["hmr", "predict", str(bad), "--no-detect", "--out", str(tmp_path / "o"),
                                 "--no-progress"])  # fmt: skip
    assert r.exit_code == 2 and "broken.png" in r.output, r.output
    r = CliRunner().invoke(app, ["hmr", "predict", str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "does not exist" in r.output, r.output
    r = CliRunner().invoke(app, ["hmr", "predict", str(bad), "--weights", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "broken.png" in r.output, r.output


def test_initializer_contract(heldout_people, anny_model, one_thread):
    from human3d.hmr.predict import hmr_initializer

    init = hmr_initializer(anny_model)
    s = heldout_people
    img = s["images"][0].numpy()
    kp = s["kp2d"][:2].clone()  # two persons (the second's box from another image: still a valid call)
    got = init(img, kp, s["K"][0])
    shapes = anny_model.parameter_shapes()
    assert set(got) == {"global_orient", "body_pose", "phenotypes", "transl"}
    for k, v in got.items():
        assert v.shape == (2, *shapes[k]) and torch.isfinite(v).all()
    assert bool((got["transl"][:, 2] > 0).all())  # in front of the camera (OpenCV)
    body25 = torch.zeros(1, 25, 3)
    body25[0, :, :2], body25[0, :, 2] = 64.0 + 20 * torch.randn(25, 2), 1.0
    assert init(img, body25, s["K"][0])["transl"].shape == (1, 3)
    assert init(img, torch.zeros(1, 17, 3), s["K"][0])["transl"].shape == (1, 3)  # no keypoints: whole image
    with pytest.raises(InvalidInputError, match="uint8"):
        init(img.astype(np.float32), kp, s["K"][0])
    with pytest.raises(InvalidInputError, match="keypoints"):
        init(img, kp[0], s["K"][0])
    with pytest.raises(InvalidInputError, match="keypoints"):
        init(img, torch.zeros(1, 18, 3), s["K"][0])
    with pytest.raises(InvalidInputError, match="K"):
        init(img, kp, torch.eye(4))
    with pytest.raises(InvalidInputError, match="K"):
        init(img, kp, torch.zeros(3, 3))
