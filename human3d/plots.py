"""Small line charts drawn with OpenCV (no matplotlib dependency): training curves, fitting energies, benchmarks.

``line_chart(series, path)`` draws each named series ``(xs, ys)`` as a polyline with markers in one axes box, with
grid lines at "nice" tick values, and writes a PNG atomically. ``log_y=True`` plots ``log10(y)`` (for losses and
energies; non-positive values are dropped). Colours are BGR tuples, as OpenCV uses.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from human3d.errors import InvalidInputError
from human3d.io_utils import atomic_path

__all__ = ["line_chart", "stacked_charts", "nice_ticks", "PALETTE"]

PALETTE = [(200, 80, 0), (0, 0, 200), (0, 150, 0), (150, 0, 150), (0, 140, 220), (120, 120, 120)]  # BGR


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """About ``n`` round tick values (1, 2 or 5 x 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InvalidInputError(f"nice_ticks: expected finite bounds, got {lo}, {hi}")
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 5, 10) if s * mag >= raw)
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(int(math.ceil((hi - first) / step)) + 1)]


def _fmt(v: float, log_y: bool) -> str:
    if log_y:
        return f"1e{int(round(v))}" if abs(v - round(v)) < 1e-6 else f"{10 ** v:.2g}"
    return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def line_chart(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    log_y: bool = False,
    size: tuple[int, int] = (720, 460),
    colors: Mapping[str, tuple[int, int, int]] | None = None,
    legend: str = "upper right",
    vlines: Mapping[str, float] | None = None,
    xlim: tuple[float, float] | None = None,
) -> Path:
    """Draw ``series`` ({name: (xs, ys)}) as lines in one chart and write ``path`` (PNG, atomically).

    ``legend``: "upper right" (default, for falling curves) or "lower right" (for rising ones, e.g. PSNR).
    ``vlines``: {label: x} dashed vertical markers (e.g. stage boundaries); ``xlim``: an x range the axis must
    cover (e.g. the same for charts stacked with :func:`stacked_charts`).
    Non-finite points (and non-positive ones with ``log_y``) are skipped; a series left empty is only listed in the
    legend. Returns the path. Raises :class:`InvalidInputError` when no series has a point to draw.
    """
    img = _chart(series, title, xlabel, ylabel, log_y, size, colors, legend, vlines, xlim)
    return _write_png(img, path)


def stacked_charts(panels: Sequence[Mapping], path, width: int = 720, panel_height: int = 300) -> Path:
    """Several charts one above the other in one PNG: each panel a dict of :func:`line_chart`'s keyword
    arguments (``series``, ``title``, ``ylabel``, ``log_y``, ``vlines``, ...). Returns the path."""
    if not panels:
        raise InvalidInputError("stacked_charts: expected at least one panel")
    imgs = [_chart(p["series"], p.get("title", ""), p.get("xlabel", ""), p.get("ylabel", ""), p.get("log_y", False),
                   (width, panel_height), p.get("colors"), p.get("legend", "upper right"), p.get("vlines"),
                   p.get("xlim"))
            for p in panels]  # fmt: skip
    return _write_png(np.concatenate(imgs, 0), path)


def _write_png(img: np.ndarray, path) -> Path:
    import cv2

    path = Path(path)
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", img)
        if not ok:
            raise InvalidInputError(f"line_chart: cannot encode '{path}'")
        Path(tmp).write_bytes(buf.tobytes())
    return path


def _chart(series, title, xlabel, ylabel, log_y, size, colors, legend, vlines, xlim=None) -> np.ndarray:
    """One chart as a BGR image ``[H, W, 3]`` (see :func:`line_chart`)."""
    import cv2

    if legend not in ("upper right", "lower right"):
        raise InvalidInputError(f"legend: expected 'upper right' or 'lower right', got {legend!r}")
    W, H = int(size[0]), int(size[1])
    left, right, top, bottom = 70, 20, 45, 55
    pts: dict[str, np.ndarray] = {}
    for name, (xs, ys) in series.items():
        xs, ys = np.asarray(xs, np.float64).ravel(), np.asarray(ys, np.float64).ravel()
        if xs.shape != ys.shape:
            raise InvalidInputError(f"line_chart: series '{name}' has {xs.size} x values and {ys.size} y values")
        ok = np.isfinite(xs) & np.isfinite(ys) & ((ys > 0) if log_y else True)
        pts[name] = np.stack([xs[ok], np.log10(ys[ok]) if log_y else ys[ok]], -1)
    allp = np.concatenate([p for p in pts.values()] + [np.zeros((0, 2))])
    if allp.shape[0] == 0:
        raise InvalidInputError("line_chart: no finite points to draw")
    xs = allp[:, 0] if xlim is None else np.r_[allp[:, 0], np.asarray(xlim, np.float64)]
    xt = nice_ticks(float(xs.min()), float(xs.max()))
    yt = nice_ticks(float(allp[:, 1].min()), float(allp[:, 1].max()), 5)
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def px(x: float, y: float) -> tuple[int, int]:
        return (int(round(left + (W - left - right) * (x - x0) / (x1 - x0))),
                int(round(H - bottom - (H - top - bottom) * (y - y0) / (y1 - y0))))  # fmt: skip

    img = np.full((H, W, 3), 255, np.uint8)
    font, small = cv2.FONT_HERSHEY_SIMPLEX, 0.42
    for y in yt:
        cv2.line(img, px(x0, y), px(x1, y), (228, 228, 228), 1)
        label = _fmt(y, log_y)
        cv2.putText(img, label, (5, px(x0, y)[1] + 4), font, small, (0, 0, 0), 1, cv2.LINE_AA)
    for x in xt:
        cv2.line(img, px(x, y0), px(x, y1), (240, 240, 240), 1)
        cv2.putText(img, f"{x:g}", (px(x, y0)[0] - 8, H - bottom + 18), font, small, (0, 0, 0), 1, cv2.LINE_AA)
    for k, (label, x) in enumerate((vlines or {}).items()):
        if not (math.isfinite(x) and x0 <= x <= x1):
            continue
        (u, vt), (_, vb) = px(x, y1), px(x, y0)
        for v in range(vt, vb, 8):  # dashed
            cv2.line(img, (u, v), (u, min(v + 4, vb)), (90, 90, 90), 1)
        cv2.putText(img, label, (u + 4, vt + 14 + 14 * k), font, small, (90, 90, 90), 1, cv2.LINE_AA)
    cv2.rectangle(img, px(x0, y1), px(x1, y0), (0, 0, 0), 1)
    cv2.putText(img, title, (left, 28), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, xlabel, (W // 2 - 4 * len(xlabel), H - 12), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, ylabel + (" (log)" if log_y else ""), (left, top - 4), font, small, (80, 80, 80), 1, cv2.LINE_AA)
    for k, (name, p) in enumerate(pts.items()):
        c = tuple(int(v) for v in (colors or {}).get(name, PALETTE[k % len(PALETTE)]))
        pp = [px(float(x), float(y)) for x, y in p]
        if len(pp) > 1:
            cv2.polylines(img, [np.array(pp, np.int32)], False, c, 2, cv2.LINE_AA)
        if len(pp) <= 60:
            for q in pp:
                cv2.circle(img, q, 3, c, -1, cv2.LINE_AA)
        ly = top + 20 + 20 * k if legend == "upper right" else H - bottom - 15 - 20 * (len(pts) - 1 - k)
        cv2.putText(img, name, (W - right - 300, ly), font, 0.5, c, 1, cv2.LINE_AA)
    return img
