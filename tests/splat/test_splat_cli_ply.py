"""`human3d splat render|eval MODEL.ply --data DATA`: the Gaussians of a .ply written by another tool (plyfile,
ASCII) seen by a dataset's cameras; the dataset's images are renders of the same Gaussians (the oracle)."""

from __future__ import annotations

import json
import math

import cv2
import imageio.v2 as imageio
import numpy as np
import plyfile
import torch
from typer.testing import CliRunner

from human3d.cli.splat import app
from human3d.geometry import intrinsics_from_fov, invert_rigid, look_at
from human3d.splat.rasterize import rasterize

SIZE, N_VIEWS = 20, 4


def _gaussians(n=25, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"means": (torch.rand(n, 3, generator=g) - 0.5) * 1.2, "log_scales": torch.full((n, 3), math.log(0.15)),
            "quats": torch.randn(n, 4, generator=g), "logits": torch.full((n,), 1.5),
            "sh": torch.randn(n, 4, 3, generator=g) * 0.6}  # degree 1  # fmt: skip


@torch.no_grad()
def _scene(root, g):
    """A Blender-layout dataset whose RGB images are renders of ``g`` on white (OpenGL camera-to-world)."""
    ang = torch.arange(N_VIEWS) * 2 * math.pi / N_VIEWS + 0.3
    eyes = torch.stack([3 * torch.cos(ang), 3 * torch.sin(ang), torch.full((N_VIEWS,), 1.0)], -1)
    w2c = look_at(eyes, torch.zeros(N_VIEWS, 3), torch.tensor([[0.0, 0.0, 1.0]]).expand(N_VIEWS, 3))
    K = intrinsics_from_fov(0.8, SIZE, SIZE, batch_size=N_VIEWS)
    rgb, _, _ = rasterize(g["means"], g["quats"], g["log_scales"].exp(), torch.sigmoid(g["logits"]), g["sh"], w2c, K,
                          SIZE, SIZE, sh_degree=1, background=torch.ones(3))  # fmt: skip
    c2w_gl = invert_rigid(w2c) @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
    for split in ("train", "val"):
        (root / split).mkdir(parents=True, exist_ok=True)
        frames = []
        for i in range(N_VIEWS):
            img = (rgb[i].clamp(0, 1).numpy()[..., ::-1] * 255 + 0.5).astype(np.uint8)
            cv2.imwrite(str(root / split / f"r_{i}.png"), img)
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": c2w_gl[i].tolist()})
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": frames}))
    return root


def _ascii_ply(path, g):
    n = len(g["means"])
    cols = {"x": g["means"][:, 0], "y": g["means"][:, 1], "z": g["means"][:, 2], "opacity": g["logits"]}
    cols.update({f"f_dc_{c}": g["sh"][:, 0, c] for c in range(3)})
    rest = g["sh"][:, 1:].transpose(1, 2).reshape(n, 9)  # channel-major
    cols.update({f"f_rest_{i}": rest[:, i] for i in range(9)})
    cols.update({f"scale_{i}": g["log_scales"][:, i] for i in range(3)})
    cols.update({f"rot_{i}": g["quats"][:, i] for i in range(4)})
    arr = np.zeros(n, dtype=[(k, "f4") for k in cols])
    for k, v in cols.items():
        arr[k] = v.numpy()
    plyfile.PlyData([plyfile.PlyElement.describe(arr, "vertex")], text=True).write(str(path))
    return path


def test_render_and_eval_a_ply_with_a_dataset(tmp_path):
    g = _gaussians()
    data = _scene(tmp_path / "scene", g)
    ply = _ascii_ply(tmp_path / "model.ply", g)
    cli = CliRunner()
    r = cli.invoke(app, ["eval", str(ply), "--data", str(data), "--split", "val"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert m["n_views"] == N_VIEWS and m["psnr"] > 40  # only 8-bit quantisation separates render and images
    saved = json.loads((tmp_path / "model" / "eval" / "val" / "metrics.json").read_text())
    assert saved["n_gaussians"] == 25 and saved["source"] == str(ply)

    r = cli.invoke(app, ["render", str(ply), "--data", str(data), "--split", "val", "--out", str(tmp_path / "png")])
    assert r.exit_code == 0, r.output
    for i in range(N_VIEWS):
        got = cv2.imread(str(tmp_path / "png" / f"{i:03d}.png")).astype(int)
        want = cv2.imread(str(data / "val" / f"r_{i}.png")).astype(int)
        assert np.abs(got - want).max() <= 1, i
    r = cli.invoke(app, ["render", str(ply), "--data", str(data), "--orbit", "3"])
    assert r.exit_code == 0, r.output
    with imageio.get_reader(str(tmp_path / "model" / "orbit.mp4"), format="FFMPEG") as reader:
        assert len([f for f in reader]) == 3


def test_ply_without_data_or_broken_is_one_clear_line(tmp_path):
    g = _gaussians(n=3)
    ply = _ascii_ply(tmp_path / "m.ply", g)
    cli = CliRunner()
    r = cli.invoke(app, ["render", str(ply)])
    assert r.exit_code == 2 and "--data" in r.output and "m.ply" in r.output
    text = ply.read_text().splitlines()
    (tmp_path / "cut.ply").write_text("\n".join(text[:-1]) + "\n")
    r = cli.invoke(app, ["eval", str(tmp_path / "cut.ply"), "--data", str(tmp_path)])
    assert r.exit_code == 2 and "truncated" in r.output, r.output
    assert "Traceback" not in r.output
