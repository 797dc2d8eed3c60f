"""2D keypoint metrics: PCK (bbox- and torso-normalised), PCKh and COCO's OKS average precision.

Conventions: keypoints are ``[N, K, 2]`` pixel coordinates (any consistent convention: only differences matter),
``visible`` ``[N, K]`` marks the labelled joints (> 0) that count; all functions are vectorised over ``N``.

* **PCK@alpha**: a joint is correct when ``||pred - gt|| <= alpha * norm`` with a per-instance ``norm`` [N];
  PCK is the fraction of correct labelled joints, pooled over all instances (instances with ``norm <= 0`` or
  non-finite are left out). Normalisers: :func:`bbox_size` (``max(w, h)`` of the person box, mmpose's
  ``norm_item='bbox'``), :func:`torso_size` (``||left_shoulder - right_hip||``, COCO-17 joints 5 and 12; left out
  where either is unlabelled), :func:`head_size` for **PCKh** (MPII: 0.6 x the head box diagonal; where no head
  box is known, ``||upper_neck - head_top||``, the usual stand-in). PCKh@0.5 is MPII's headline number.
* **OKS** (COCO): ``OKS = sum_i exp(-d_i^2 / (2 s^2 k_i^2)) [v_i > 0] / sum_i [v_i > 0]`` with ``s^2`` the object's
  area and ``k_i = 2 sigma_i`` (:data:`COCO_SIGMAS`). A ground truth without labelled joints is compared through
  the distance to its box enlarged by 2x (as pycocotools does; such ground truths are ignored anyway).
* **OKS AP** (:func:`oks_ap`): COCO's keypoint evaluation for area range "all", at most ``max_dets`` (20)
  detections per image: per image, detections in decreasing score greedily take the best still-free ground
  truth with OKS >= t; ground truths with no labelled joint (or ``iscrowd``) are *ignored* (a detection matched
  to one is neither a true nor a false positive); precision is made monotone and read at the 101 recall points
  0:0.01:1; AP averages the thresholds t = 0.50:0.05:0.95. Checked against pycocotools in the tests.
* **PCK interval** (:func:`pck_interval`): a 95 % percentile-bootstrap interval of PCK that resamples *people*
  (the joints of one person are not independent), from :func:`pck_per_joint`'s per-joint table.
"""

from __future__ import annotations

import numpy as np
import torch

from human3d.errors import InvalidInputError, check_tensor

__all__ = ["COCO_SIGMAS", "pck", "pck_per_joint", "pck_interval",
           "bbox_size", "torso_size", "head_size", "pckh", "oks", "oks_ap"]  # fmt: skip

#: COCO-17 per-keypoint OKS constants sigma_i (pycocotools' ``kpt_oks_sigmas``)
COCO_SIGMAS = (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087,
               0.087, 0.089, 0.089)  # fmt: skip


def _as_tensor(x, name: str, shape) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).double()
    check_tensor(x, name, shape, finite=False)
    return x


def pck(pred, gt, visible, norm, alpha: float = 0.2) -> float:
    """PCK@``alpha``: fraction of labelled joints within ``alpha * norm`` of the ground truth (module docstring).

    Args: ``pred``, ``gt`` [N, K, 2]; ``visible`` [N, K]; ``norm`` [N]. Returns NaN when no joint counts.
    """
    correct, counted = pck_per_joint(pred, gt, visible, norm, alpha)
    n = counted.sum()
    return float(correct.sum() / n) if n > 0 else float("nan")


def pck_per_joint(pred, gt, visible, norm, alpha: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """``(correct [N, K] bool, counted [N, K] bool)`` behind :func:`pck` (for per-joint tables)."""
    if not (isinstance(alpha, (int, float)) and alpha > 0):
        raise InvalidInputError(f"alpha: expected a positive threshold factor, got {alpha!r}")
    gt = _as_tensor(gt, "gt", (None, None, 2))
    N, K = gt.shape[:2]
    pred = _as_tensor(pred, "pred", (N, K, 2))
    vis = _as_tensor(visible, "visible", (N, K)) > 0
    norm = _as_tensor(norm, "norm", (N,))
    ok_norm = torch.isfinite(norm) & (norm > 0)
    counted = vis & ok_norm[:, None] & torch.isfinite(gt).all(-1)
    d = (pred - gt).norm(dim=-1)  # [N, K]; NaN predictions are wrong
    correct = counted & (d <= alpha * norm[:, None])
    return correct, counted


def pck_interval(correct, counted, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of PCK over people: ``correct``, ``counted`` [N, K] bool (from
    :func:`pck_per_joint`) -> ``(low, high)`` at ``level``; ``n_boot`` resamples of the N people with replacement
    (a fixed ``seed``: the same table gives the same interval). NaN when no joint counts."""
    if not 0.0 < level < 1.0:
        raise InvalidInputError(f"level: expected a probability in (0, 1), got {level!r}")
    c = torch.as_tensor(correct).sum(-1).double()  # [N] correct joints per person
    n = torch.as_tensor(counted).sum(-1).double()  # [N] counted joints per person
    if c.shape != n.shape or c.ndim != 1 or float(n.sum()) == 0:
        return float("nan"), float("nan")
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randint(0, len(c), (int(n_boot), len(c)), generator=g)
    boot = c[idx].sum(-1) / n[idx].sum(-1).clamp(min=1)
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo, hi = torch.quantile(boot, q).tolist()
    return lo, hi


def bbox_size(boxes) -> torch.Tensor:
    """``max(w, h)`` of ``[N, 4]`` (x, y, w, h) boxes -> [N]."""
    b = _as_tensor(boxes, "boxes", (None, 4))
    return b[:, 2:].amax(-1)


def torso_size(gt, visible, left_shoulder: int = 5, right_hip: int = 12) -> torch.Tensor:
    """``||gt[left_shoulder] - gt[right_hip]||`` [N] (COCO-17 indices by default); NaN where either is unlabelled."""
    gt = _as_tensor(gt, "gt", (None, None, 2))
    vis = _as_tensor(visible, "visible", gt.shape[:2]) > 0
    d = (gt[:, left_shoulder] - gt[:, right_hip]).norm(dim=-1)
    return torch.where(vis[:, left_shoulder] & vis[:, right_hip], d, torch.full_like(d, float("nan")))


def head_size(head_boxes=None, gt=None, visible=None, neck: int = 8, head_top: int = 9) -> torch.Tensor:
    """PCKh's normaliser [N]: ``0.6 * diagonal`` of ``head_boxes`` [N, 4] (x1, y1, x2, y2; MPII's SC_BIAS), or, given
    ``gt`` [N, K, 2] instead, ``||gt[neck] - gt[head_top]||`` (MPII-16 indices 8, 9; NaN where unlabelled)."""
    if head_boxes is not None:
        hb = _as_tensor(head_boxes, "head_boxes", (None, 4))
        return 0.6 * (hb[:, 2:] - hb[:, :2]).norm(dim=-1)
    if gt is None:
        raise InvalidInputError("head_size: expected head_boxes [N, 4] or gt [N, K, 2] keypoints")
    gt = _as_tensor(gt, "gt", (None, None, 2))
    d = (gt[:, neck] - gt[:, head_top]).norm(dim=-1)
    if visible is not None:
        vis = _as_tensor(visible, "visible", gt.shape[:2]) > 0
        d = torch.where(vis[:, neck] & vis[:, head_top], d, torch.full_like(d, float("nan")))
    return d


def pckh(pred, gt, visible, head, alpha: float = 0.5) -> float:
    """PCKh@``alpha``: :func:`pck` normalised by the head size ``head`` [N] (:func:`head_size`)."""
    return pck(pred, gt, visible, head, alpha)


def oks(pred, gt, visible, area, sigmas=COCO_SIGMAS, gt_boxes=None) -> torch.Tensor:
    """Object keypoint similarity of every prediction with every ground truth -> [D, G].

    Args:
        pred: ``[D, K, 2]`` detections; gt: ``[G, K, 2]``; visible: ``[G, K]`` (> 0 labelled); area: ``[G]``.
        sigmas: ``K`` per-keypoint constants (:data:`COCO_SIGMAS`).
        gt_boxes: ``[G, 4]`` (x, y, w, h), used for ground truths with no labelled joint (distance to the box
            enlarged 2x, pycocotools' rule); None: their OKS is 0.
    """
    gt = _as_tensor(gt, "gt", (None, None, 2))
    G, K = gt.shape[:2]
    pred = _as_tensor(pred, "pred", (None, K, 2))
    vis = _as_tensor(visible, "visible", (G, K)) > 0
    area = _as_tensor(area, "area", (G,))
    sig = _as_tensor(sigmas, "sigmas", (K,))
    var = (2 * sig) ** 2  # [K]
    d2 = ((pred[:, None] - gt[None]) ** 2).sum(-1)  # [D, G, K]
    n_vis = vis.sum(-1)  # [G]
    if gt_boxes is not None:
        bb = _as_tensor(gt_boxes, "gt_boxes", (G, 4))
        x0, y0 = bb[:, 0] - bb[:, 2], bb[:, 1] - bb[:, 3]
        x1, y1 = bb[:, 0] + 2 * bb[:, 2], bb[:, 1] + 2 * bb[:, 3]
        dx = torch.clamp(x0[None, :, None] - pred[:, None, :, 0], min=0) + torch.clamp(pred[:, None, :, 0] - x1[None, :, None], min=0)
        dy = torch.clamp(y0[None, :, None] - pred[:, None, :, 1], min=0) + torch.clamp(pred[:, None, :, 1] - y1[None, :, None], min=0)
        d2 = torch.where((n_vis > 0)[None, :, None], d2, dx**2 + dy**2)
    e = d2 / var / (area[None, :, None] + np.spacing(1)) / 2  # [D, G, K]
    w = torch.where((n_vis > 0)[:, None], vis, torch.ones_like(vis)).to(e.dtype)  # all joints for box-only gts
    out = (torch.exp(-e) * w).sum(-1) / w.sum(-1).clamp(min=1)
    if gt_boxes is None:
        out = torch.where((n_vis > 0)[None], out, torch.zeros_like(out))
    return out


def oks_ap(detections: list[dict], ground_truths: list[dict], sigmas=COCO_SIGMAS, max_dets: int = 20,
           thresholds=None) -> dict:  # fmt: skip
    """COCO keypoint AP (area "all"; see the module docstring).

    Args:
        detections: ``{"image_id", "keypoints" [K, 2], "score"}`` per detection.
        ground_truths: ``{"image_id", "keypoints" [K, 2], "visible" [K], "area", "bbox" (x, y, w, h),
            "iscrowd" (optional, default 0)}`` per person.
    Returns ``{"AP": mean over thresholds, "AP50", "AP75", "per_threshold": [T]}`` (-1 when there is no
    non-ignored ground truth, as in pycocotools).
    """
    thr = np.linspace(0.5, 0.95, 10) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    rec_thrs = np.linspace(0.0, 1.0, 101)
    ids = {d["image_id"] for d in detections} | {g["image_id"] for g in ground_truths}
    try:
        images = sorted(ids)  # pycocotools' order (it matters for equal scores only)
    except TypeError:
        images = sorted(ids, key=str)
    scores, matched, ignored = [], [], []
    n_pos = 0
    for img in images:
        gts = [g for g in ground_truths if g["image_id"] == img]
        dts = sorted([d for d in detections if d["image_id"] == img], key=lambda d: -float(d["score"]))[:max_dets]
        g_ign = np.array([bool(g.get("iscrowd", 0)) or int((np.asarray(g["visible"]) > 0).sum()) == 0 for g in gts],
                         dtype=bool)  # fmt: skip
        crowd = np.array([bool(g.get("iscrowd", 0)) for g in gts], dtype=bool)
        order = np.argsort(g_ign, kind="mergesort")  # non-ignored ground truths first
        gts = [gts[i] for i in order]
        g_ign, crowd = g_ign[order], crowd[order]
        n_pos += int((~g_ign).sum())
        if not dts:
            continue
        if gts:
            ious = oks(np.stack([np.asarray(d["keypoints"], dtype=np.float64) for d in dts]),
                       np.stack([np.asarray(g["keypoints"], dtype=np.float64) for g in gts]),
                       np.stack([np.asarray(g["visible"], dtype=np.float64) for g in gts]),
                       np.array([float(g["area"]) for g in gts]), sigmas,
                       np.stack([np.asarray(g["bbox"], dtype=np.float64) for g in gts])).numpy()  # fmt: skip
        dtm = np.zeros((len(thr), len(dts)), dtype=bool)
        dt_ig = np.zeros((len(thr), len(dts)), dtype=bool)
        for t_i, t in enumerate(thr):
            gtm = np.zeros(len(gts), dtype=bool)
            for d_i in range(len(dts)):
                best, m = min(t, 1 - 1e-10), -1
                for g_i in range(len(gts)):
                    if gtm[g_i] and not crowd[g_i]:
                        continue
                    if m > -1 and not g_ign[m] and g_ign[g_i]:
                        break  # the remaining ground truths are ignored ones: keep the real match
                    if ious[d_i, g_i] < best:
                        continue
                    best, m = ious[d_i, g_i], g_i
                if m == -1:
                    continue
                dt_ig[t_i, d_i] = g_ign[m]
                dtm[t_i, d_i] = True
                gtm[m] = True
        scores.append(np.array([float(d["score"]) for d in dts]))
        matched.append(dtm)
        ignored.append(dt_ig)
    if n_pos == 0:
        return {"AP": -1.0, "AP50": -1.0, "AP75": -1.0, "per_threshold": [-1.0] * len(thr)}
    if scores:
        s = np.concatenate(scores)
        order = np.argsort(-s, kind="mergesort")
        dtm = np.concatenate(matched, 1)[:, order]
        dt_ig = np.concatenate(ignored, 1)[:, order]
    else:
        dtm = dt_ig = np.zeros((len(thr), 0), dtype=bool)
    tps = np.cumsum(dtm & ~dt_ig, 1).astype(np.float64)
    fps = np.cumsum(~dtm & ~dt_ig, 1).astype(np.float64)
    ap = []
    for tp, fp in zip(tps, fps):
        rc = tp / n_pos
        pr = tp / (fp + tp + np.spacing(1))
        pr = np.maximum.accumulate(pr[::-1])[::-1] if pr.size else pr  # monotone from the right
        idx = np.searchsorted(rc, rec_thrs, side="left")
        q = np.zeros(rec_thrs.size)
        valid = idx < pr.size
        q[valid] = pr[idx[valid]]
        ap.append(float(np.mean(q)))
    ap = np.array(ap)

    def at(x):
        hit = np.flatnonzero(np.isclose(thr, x))
        return float(ap[hit[0]]) if hit.size else float("nan")

    return {"AP": float(ap.mean()), "AP50": at(0.5), "AP75": at(0.75), "per_threshold": ap.tolist()}
