"""``human3d fit photo.jpg`` with no keypoint file: the shipped detector runs first, then params, mesh and overlay."""

from __future__ import annotations

import json
import shutil

import pytest

from human3d.data.paths import shared_data_dir
from human3d.pose2d.mediapipe_backend import mediapipe_status

MP_OK, MP_WHY = mediapipe_status()
SKIER = shared_data_dir() / "coco_keypoints_mini" / "000000000785.jpg"


@pytest.mark.skipif(not MP_OK, reason=f"mediapipe cannot run here: {MP_WHY}")
@pytest.mark.skipif(not SKIER.is_file(), reason="no shared COCO mini")
def test_fit_bare_photo(tmp_path, anny_model):
    from typer.testing import CliRunner

    from human3d.cli.main import app

    photo = tmp_path / "in" / "skier.jpg"
    photo.parent.mkdir()
    shutil.copy(SKIER, photo)  # a bare photo: no JSON beside it
    out = tmp_path / "fit"
    r = CliRunner().invoke(app, ["fit", str(photo), "--out", str(out), "--iters", "20", "--camera-iters", "20",
                                 "--quiet"])  # fmt: skip
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["persons_fitted"] == 1 and s["skeleton"] == "body25"
    (rec,) = s["images"]
    assert any("detected by the mediapipe backend" in w for w in rec["warnings"])
    for f in ("person_00.npz", "person_00.json", "person_00.obj", "person_00_overlay.png", "overlay.png"):
        assert (out / "skier" / f).is_file(), f
    # the skier is ~200 px tall: a fit of the detected keypoints lands within a few percent of that
    assert s["mean_reprojection_error_px"] < 15
