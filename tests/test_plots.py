"""human3d.plots: tick values (closed form), the chart puts a series where its axes say (pixel read back), and the
training-log chart of the NeRF / splat run folders."""

import json

import cv2
import numpy as np
import pytest

from human3d.errors import InvalidInputError
from human3d.plots import PALETTE, line_chart, nice_ticks
from human3d.train import plot_training_log


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    t = nice_ticks(0.013, 0.87, 5)
    assert t[0] <= 0.013 and t[-1] >= 0.87 and np.allclose(np.diff(t), 0.2)
    with pytest.raises(InvalidInputError):
        nice_ticks(0, float("nan"))


def _near(img, x, y, bgr, r=2):
    patch = img[y - r : y + r + 1, x - r : x + r + 1].reshape(-1, 3).astype(int)
    return bool((np.abs(patch - np.array(bgr)).max(-1) <= 40).any())


def test_line_is_drawn_where_the_axes_put_it(tmp_path):
    # axes 0..10 on both sides (nice ticks), plot box from (70, 45) to (700, 405) in a 720x460 image
    path = line_chart({"y = x": ([0, 10], [0, 10])}, tmp_path / "c.png", title="t", xlabel="x", ylabel="y")
    img = cv2.imread(str(path))
    assert img.shape == (460, 720, 3)
    blue = PALETTE[0]
    for x, y in ((0, 0), (5, 5), (10, 10)):
        u, v = 70 + 630 * x / 10, 405 - 360 * y / 10
        assert _near(img, int(round(u)), int(round(v)), blue), (x, y)
    assert not _near(img, 385, int(405 - 360 * 0.9), blue)  # (5, 9) is off the line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png"]  # written atomically, no temp file left


def test_log_scale_and_bad_input(tmp_path):
    # log10 of 1..1000 spans 0..3: the point y = 10 sits at a third of the height
    path = line_chart({"loss": ([0, 1, 2, 3], [1, 10, 100, 1000])}, tmp_path / "l.png", log_y=True)
    img = cv2.imread(str(path))
    ticks = nice_ticks(0, 3, 5)
    v = 405 - 360 * (1 - ticks[0]) / (ticks[-1] - ticks[0])
    u = 70 + 630 * (1 - 0) / 3
    assert _near(img, int(round(u)), int(round(v)), PALETTE[0])
    with pytest.raises(InvalidInputError, match="no finite points"):
        line_chart({"a": ([0, 1], [-1.0, 0.0])}, tmp_path / "x.png", log_y=True)
    with pytest.raises(InvalidInputError, match="2 x values and 3 y values"):
        line_chart({"a": ([0, 1], [1, 2, 3])}, tmp_path / "x.png")
    with pytest.raises(InvalidInputError, match="legend"):
        line_chart({"a": ([0, 1], [1, 2])}, tmp_path / "x.png", legend="left")


def test_training_log_chart(tmp_path):
    assert plot_training_log(tmp_path, "run") is None  # no log yet
    rows = [{"step": s, "loss": 1.0 / s, "psnr": 10 + s} for s in range(1, 11)]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{\"step\": 11, \"ps")  # cut line
    path = plot_training_log(tmp_path, "run")
    assert path == tmp_path / "training.png" and cv2.imread(str(path)).shape == (460, 720, 3)


def test_training_log_chart_of_a_diverged_run_is_skipped(tmp_path):
    rows = [{"step": s, "loss": float("nan"), "psnr": float("nan")} for s in range(1, 5)]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert plot_training_log(tmp_path, "run") is None and not (tmp_path / "training.png").exists()


def test_stacked_panels_share_the_x_range_and_mark_vertical_lines(tmp_path):
    from human3d.plots import stacked_charts

    # panel 1 spans x 0..10, panel 2 only 5..10 but xlim (0, 10): both axes 0..10, the dashed line at x = 5
    panels = [{"series": {"a": ([0, 10], [0, 10])}, "vlines": {"mark": 5.0}, "xlim": (0, 10)},
              {"series": {"b": ([5, 10], [1, 2])}, "vlines": {"mark": 5.0}, "xlim": (0, 10)}]  # fmt: skip
    img = cv2.imread(str(stacked_charts(panels, tmp_path / "s.png", width=720, panel_height=460)))
    assert img.shape == (920, 720, 3)
    u = 70 + 630 * 5 / 10  # x = 5 in the 70..700 plot box
    for top in (0, 460):
        col = img[top + 60 : top + 400, int(u)].astype(int)
        assert ((np.abs(col - 90).max(-1) <= 30).mean()) > 0.3  # dashed grey line (about half its pixels)
    # panel 2's first point (x = 5, y = 1: its lowest tick) sits at u in the lower panel, not at the box's left
    assert _near(img, int(u), 460 + 405, PALETTE[0]) and not _near(img, 70, 460 + 405, PALETTE[0])
