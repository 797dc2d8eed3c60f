"""SMPLify's per-iteration records behind loss.png: the final reprojection error in pixels against an independent
projection, the weight schedules against the config's, and the PNG itself."""

from __future__ import annotations

import json

import cv2
import numpy as np
import torch

from human3d.assets import example_photo
from human3d.fitting import SMPLifyConfig
from human3d.fitting.pipeline import fit_images


def test_loss_trace_and_plot(anny_model, tmp_path, one_thread):
    image, keypoints = example_photo()
    cfg = SMPLifyConfig(body_iters=12, camera_iters=6, retry_hypotheses=())
    run = fit_images(image, keypoints, tmp_path, model=anny_model, overlays=False, progress=False, log=None,
                     config=cfg)  # fmt: skip
    res = run.result
    tr = res.trace
    assert tr["stage1_reprojection_px"].shape == (6, 1) and tr["stage2_reprojection_px"].shape == (13, 1)
    # independent: project the fitted model's COCO keypoints with the image's pinhole camera (principal point at
    # the centre, focal from summary.json) and average the pixel distance to the input over confident keypoints
    rec = json.loads((tmp_path / "summary.json").read_text())["images"][0]
    f, W, H = rec["focal_px"], rec["width"], rec["height"]
    with torch.no_grad():
        X = anny_model(res.params).keypoints["coco17"][0].double().numpy()
    uv = np.stack([f * X[:, 0] / X[:, 2] + W / 2, f * X[:, 1] / X[:, 2] + H / 2], -1)
    kp = res.target[0].double().numpy()
    vis = kp[:, 2] > 0
    px = float(np.linalg.norm(uv[vis] - kp[vis, :2], axis=-1).mean())
    assert abs(float(tr["stage2_reprojection_px"][-1, 0]) - px) < 1e-2, (float(tr["stage2_reprojection_px"][-1, 0]), px)
    assert abs(rec["people"][0]["reprojection_error_px"] - px) < 1e-2
    # schedules: Adam's t = i / (n - 1), then the final row at t = 1; weights interpolated geometrically through
    # the config's values
    t = np.r_[np.arange(12) / 11, 1.0]
    assert np.allclose(tr["stage2_t"].numpy(), t)
    for key, values in (("pose_prior_weight", cfg.prior_weights(res.prior)), ("shape_weight", cfg.shape_weights)):
        want = np.exp(np.interp(t * (len(values) - 1), np.arange(len(values)), np.log(values)))
        assert np.allclose(tr[f"stage2_{key}"].numpy(), want, rtol=1e-6), key
    png = (tmp_path / "loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (900, 720, 3) and img.std() > 10  # three 300-px panels with something drawn
