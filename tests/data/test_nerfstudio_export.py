"""`human3d scene export-cameras` -> nerfstudio transforms.json: read back by hand (json + numpy), compared with the
run's / dataset's cameras; the OpenCV -> OpenGL flip on a camera derived by hand; our Blender loader gives the same
rays from the file."""

import json
import math

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from human3d.cli.photos import app
from human3d.data import colmap
from human3d.data.scenes import load_blender_scene, load_colmap_scene
from human3d.geometry.cameras import invert_rigid, look_at
from human3d.splat.config import SplatConfig
from human3d.splat.trainer import SplatTrainer

W, H, FOV = 48, 36, 0.8


def _blender_scene(root):
    """4 RGBA images (W x H) in the Blender layout; camera 0 sits at (0, 0, 5) looking at the origin with +y up."""
    eyes = torch.tensor([[0.0, 0.0, 5.0], [5.0, 0.0, 1.0], [0.0, 4.0, 3.0], [-3.0, -3.0, 2.0]], dtype=torch.float64)
    up = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    w2c = look_at(eyes, torch.zeros(4, 3, dtype=torch.float64), up)
    c2w_gl = invert_rigid(w2c) @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
    rng = np.random.default_rng(0)
    frames = []
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(root / split / f"r_{i}.png"), rng.integers(0, 256, (H, W, 4), dtype=np.uint8))
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": c2w_gl[i].tolist()})
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": FOV, "frames": frames[-4:]}))
    return root


def _read_by_hand(path):
    """-> K [N, 3, 3], OpenGL c2w [N, 4, 4], sizes [N, 2], file paths; only json + numpy."""
    d = json.loads(path.read_text())
    Ks, Ms, sizes, files = [], [], [], []
    for fr in d["frames"]:
        g = lambda k: fr[k] if k in fr else d[k]  # noqa: E731
        Ks.append([[g("fl_x"), 0, g("cx")], [0, g("fl_y"), g("cy")], [0, 0, 1]])
        Ms.append(fr["transform_matrix"])
        sizes.append((g("w"), g("h")))
        files.append(fr["file_path"])
    return np.array(Ks, float), np.array(Ms, float), np.array(sizes), files, d


def test_export_run_cameras(tmp_path):
    data = _blender_scene(tmp_path / "data")
    run = tmp_path / "run"
    cfg = SplatConfig().replace(**{"run.max_steps": 1, "init.num_points": 50, "data.downscale": 2.0})
    tr = SplatTrainer(run, data, config=cfg)
    tr.train(progress=False)
    cams = SplatTrainer.from_run(run).train_split.cameras  # the run's cameras, 24 x 18 px
    assert (cams.width, cams.height) == (24, 18)

    out = tmp_path / "export" / "transforms_train.json"
    r = CliRunner().invoke(app, ["export-cameras", str(run), "--out", str(out)])
    assert r.exit_code == 0, r.output
    K, M, sizes, files, d = _read_by_hand(out)
    assert d["camera_model"] == "OPENCV" and d["w"] == W and d["h"] == H and len(files) == 4
    # intrinsics are in pixels of the image files (48 x 36): the run's K times 2, and the Blender focal
    f_true = 0.5 * W / math.tan(0.5 * FOV)
    np.testing.assert_allclose(K[:, 0, 0], f_true, rtol=1e-6)
    np.testing.assert_allclose(K, cams.K.double().numpy() * np.array([[2, 2, 2], [2, 2, 2], [1, 1, 1]]), rtol=1e-6)
    np.testing.assert_allclose(d["camera_angle_x"], FOV, rtol=1e-6)
    # camera 0 at (0, 0, 5) looking down -z with +y up is the identity rotation in OpenGL (derived by hand)
    np.testing.assert_allclose(M[0], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 5], [0, 0, 0, 1]], atol=1e-6)
    # every camera: OpenGL c2w = inverse(world-to-camera) with the y and z columns negated
    w2c = cams.world_to_camera.double().numpy()
    for i in range(4):
        R, t = w2c[i, :3, :3], w2c[i, :3, 3]
        np.testing.assert_allclose(M[i, :3, 3], -R.T @ t, atol=1e-5)
        np.testing.assert_allclose(M[i, :3, :3], R.T * np.array([1, -1, -1]), atol=1e-6)
    assert all((out.parent / f).resolve() == (data / "train" / f"r_{i}.png").resolve() for i, f in enumerate(files))
    # our Blender loader reads the file (at the run's downscale) and gives the run's rays
    back = load_blender_scene(out.parent, "train", downscale=2.0)
    o1, d1 = back.rays()
    o2, d2 = cams.rays()
    torch.testing.assert_close(o1, o2, atol=1e-5, rtol=0)
    torch.testing.assert_close(d1, d2, atol=1e-5, rtol=0)


def test_export_colmap_dataset_per_frame_intrinsics(tmp_path, synthetic_colmap):
    root = tmp_path / "colmap"
    colmap.write_model(synthetic_colmap(root), root / "sparse" / "0")
    out = tmp_path / "transforms_train.json"
    r = CliRunner().invoke(app, ["export-cameras", str(root), "--out", str(out), "--split", "all"])
    assert r.exit_code == 0, r.output
    ref = load_colmap_scene(root, "all")
    K, M, sizes, files, d = _read_by_hand(out)
    assert "fl_x" not in d  # three camera models with different intrinsics: per-frame values
    np.testing.assert_allclose(K, ref.cameras.K.double().numpy(), rtol=1e-6)
    gl = np.linalg.inv(ref.cameras.world_to_camera.double().numpy()) @ np.diag([1.0, -1, -1, 1])
    np.testing.assert_allclose(M, gl, atol=1e-5)
    back = load_blender_scene(tmp_path, "train")
    torch.testing.assert_close(back.rays()[1], ref.rays()[1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", ["missing", "not_json", "no_data"])
def test_export_bad_inputs(tmp_path, case):
    out = tmp_path / "t.json"
    src = tmp_path / "src"
    if case == "not_json":
        src.mkdir()
        (src / "run.json").write_text("{oops")
    elif case == "no_data":
        src.mkdir()
        (src / "run.json").write_text(json.dumps({"kind": "splat", "config": {}, "data": None}))
    r = CliRunner().invoke(app, ["export-cameras", str(src), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert str(src) in r.output and "\n" not in r.output.strip()
    assert not out.exists()
