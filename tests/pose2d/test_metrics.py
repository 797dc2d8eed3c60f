"""PCK / PCKh / OKS against hand-computed cases, and our OKS AP against pycocotools' COCOeval on random scenes."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import torch

from human3d.errors import InvalidInputError
from human3d.pose2d.metrics import (
    COCO_SIGMAS,
    bbox_size,
    head_size,
    oks,
    oks_ap,
    pck,
    pck_interval,
    pck_per_joint,
    pckh,
    torso_size,
)


def test_pck_hand_cases():
    gt = torch.zeros(2, 4, 2)
    # instance 0: norm 10, offsets 1, 1.9, 2.1, 5 along x -> within 0.2 * 10 = 2: the first two
    pred = torch.zeros(2, 4, 2)
    pred[0, :, 0] = torch.tensor([1.0, 1.9, 2.1, 5.0])
    # instance 1: norm 100, offsets 30 (wrong at 0.2), 3 (right), one unlabelled joint far away (ignored)
    pred[1, :, 1] = torch.tensor([30.0, 3.0, 1e6, 0.0])
    vis = torch.tensor([[2, 2, 1, 2], [2, 1, 0, 2]])
    norm = torch.tensor([10.0, 100.0])
    assert pck(pred, gt, vis, norm, 0.2) == pytest.approx(4 / 7)  # 2 of 4 + 2 of 3 (1e6 unlabelled)
    assert pck(pred, gt, vis, norm, 0.45) == pytest.approx(6 / 7)  # 5 > 4.5 misses
    assert pck(pred, gt, vis, norm, 0.5) == 1.0  # on the threshold counts as correct
    assert pck(pred, gt, vis, torch.tensor([10.0, float("nan")]), 0.2) == pytest.approx(2 / 4)  # no norm: left out
    assert math.isnan(pck(pred, gt, torch.zeros(2, 4), norm))
    with pytest.raises(InvalidInputError, match="pred"):
        pck(torch.zeros(2, 3, 2), gt, vis, norm)
    with pytest.raises(InvalidInputError, match="alpha"):
        pck(pred, gt, vis, norm, 0.0)


def test_normalisers_hand_cases():
    assert bbox_size(torch.tensor([[0.0, 0.0, 30.0, 80.0], [5.0, 5.0, 40.0, 10.0]])).tolist() == [80.0, 40.0]
    gt = torch.zeros(2, 17, 2)
    gt[:, 5] = torch.tensor([0.0, 0.0])  # left shoulder
    gt[:, 12] = torch.tensor([30.0, 40.0])  # right hip: torso 50
    vis = torch.ones(2, 17)
    vis[1, 12] = 0
    t = torso_size(gt, vis)
    assert t[0] == pytest.approx(50.0) and math.isnan(t[1])
    # PCKh: head box 30 x 40 -> diagonal 50, times 0.6 = 30; PCKh@0.5 threshold 15 px
    h = head_size(head_boxes=torch.tensor([[10.0, 10.0, 40.0, 50.0]]))
    assert h.item() == pytest.approx(30.0)
    g = torch.zeros(1, 16, 2)
    p = torch.zeros(1, 16, 2)
    p[0, :8, 0] = 14.9
    p[0, 8:, 0] = 15.1
    assert pckh(p, g, torch.ones(1, 16), h, 0.5) == pytest.approx(0.5)
    g[0, 9] = torch.tensor([0.0, 12.0])  # neck (8) at 0, head top (9) 12 px above
    assert head_size(gt=g).item() == pytest.approx(12.0)


def test_oks_closed_form():
    gt = torch.zeros(1, 17, 2)
    vis = torch.zeros(1, 17)
    vis[0, [0, 5]] = 2
    area = torch.tensor([400.0])  # s^2
    pred = torch.zeros(1, 17, 2)
    pred[0, 0] = torch.tensor([3.0, 4.0])  # d = 5 on the nose
    pred[0, 5] = torch.tensor([1.0, 0.0])  # d = 1 on the left shoulder
    pred[0, 1] = torch.tensor([99.0, 99.0])  # unlabelled joint: does not count
    k0, k5 = 2 * COCO_SIGMAS[0], 2 * COCO_SIGMAS[5]
    want = 0.5 * (math.exp(-25 / (2 * 400 * k0**2)) + math.exp(-1 / (2 * 400 * k5**2)))
    assert oks(pred, gt, vis, area).item() == pytest.approx(want, rel=1e-9)
    assert oks(gt, gt, vis, area).item() == pytest.approx(1.0)


def _ann(img, kp, vis, area, bbox):
    return {"image_id": img, "keypoints": kp, "visible": vis, "area": area, "bbox": bbox}


def test_oks_ap_closed_form():
    # one person, one detection with OKS = 0.72 -> matched at t = 0.50 .. 0.70 (5 of 10 thresholds): AP = 0.5
    gt = np.zeros((17, 2))
    vis = np.full(17, 2)
    area = 1000.0
    # a uniform offset d on every joint gives OKS = mean_i exp(-d^2 / (2 area k_i^2)); solve for d by bisection
    k2 = (2 * np.asarray(COCO_SIGMAS)) ** 2
    lo, hi = 0.0, 50.0
    for _ in range(100):
        d = 0.5 * (lo + hi)
        lo, hi = (d, hi) if np.mean(np.exp(-(d**2) / (2 * area * k2))) > 0.72 else (lo, d)
    det = gt + np.array([d, 0.0])
    g = [_ann(1, gt, vis, area, [0, 0, 10, 10])]
    r = oks_ap([{"image_id": 1, "keypoints": det, "score": 0.9}], g)
    assert (r["AP"], r["AP50"], r["AP75"]) == pytest.approx((0.5, 1.0, 0.0))  # precision tp / (tp + fp + eps)
    # a perfect detection ranked above a spurious one: precision 1 up to recall 1 -> AP 1
    spurious = {"image_id": 1, "keypoints": gt + 500, "score": 0.1}
    assert oks_ap([{"image_id": 1, "keypoints": gt, "score": 0.9}, spurious], g)["AP"] == pytest.approx(1.0)
    # ranked below it: precision 1/2 at recall 1, made monotone -> 0.5 at every recall point
    spurious["score"] = 0.95
    assert oks_ap([{"image_id": 1, "keypoints": gt, "score": 0.9}, spurious], g)["AP"] == pytest.approx(0.5)
    # a ground truth with no labelled joint is ignored: nothing to find
    assert oks_ap([], [_ann(1, gt, np.zeros(17), area, [0, 0, 10, 10])])["AP"] == -1.0


def _random_scene(rng, n_images=6):
    gts, dets = [], []
    for img in range(1, n_images + 1):
        for _ in range(rng.integers(1, 4)):
            centre = rng.uniform(50, 400, 2)
            kp = centre + rng.normal(0, 40, (17, 2))
            vis = np.where(rng.random(17) < 0.8, 2, 0)
            if rng.random() < 0.15:
                vis[:] = 0  # an ignored ground truth
            lo, hi = kp.min(0), kp.max(0)
            bbox = [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]
            gts.append(_ann(img, kp, vis, float(rng.uniform(0.3, 1.0) * bbox[2] * bbox[3]), bbox))
            if rng.random() < 0.85:  # a detection of this person, at some noise level
                dets.append({"image_id": img, "keypoints": kp + rng.normal(0, rng.uniform(1, 15), (17, 2)),
                             "score": float(rng.random())})  # fmt: skip
        for _ in range(rng.integers(0, 3)):  # false positives
            dets.append({"image_id": img, "keypoints": rng.uniform(0, 450, (17, 2)), "score": float(rng.random())})
    return gts, dets


def _pycocotools_ap(gts, dets):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = sorted({g["image_id"] for g in gts} | {d["image_id"] for d in dets})
    anns = []
    for i, g in enumerate(gts):
        flat = np.concatenate([g["keypoints"], g["visible"][:, None]], 1).reshape(-1).tolist()
        anns.append({"id": i + 1, "image_id": g["image_id"], "category_id": 1, "iscrowd": 0, "keypoints": flat,
                     "num_keypoints": int((g["visible"] > 0).sum()), "area": g["area"], "bbox": g["bbox"]})  # fmt: skip
    doc = {"images": [{"id": i} for i in images], "annotations": anns,
           "categories": [{"id": 1, "name": "person"}]}  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = doc
        coco.createIndex()
        res = coco.loadRes([{"image_id": d["image_id"], "category_id": 1, "score": d["score"],
                             "keypoints": np.concatenate([d["keypoints"], np.ones((17, 1))], 1).reshape(-1).tolist()}
                            for d in dets])  # fmt: skip
        ev = COCOeval(coco, res, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[:3]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_oks_ap_matches_pycocotools(seed):
    gts, dets = _random_scene(np.random.default_rng(seed))
    ours = oks_ap(dets, gts)
    ref = _pycocotools_ap(gts, dets)
    assert 0.05 < ref[0] < 0.95  # a scene that is neither trivial nor hopeless
    np.testing.assert_allclose([ours["AP"], ours["AP50"], ours["AP75"]], ref, atol=1e-9)


def test_pck_interval_against_the_binomial_and_people():
    # one joint per person: the bootstrap interval of a mean of 400 Bernoulli(0.9) draws is the normal
    # approximation p +- 1.96 sqrt(p (1 - p) / N) = 0.9 +- 0.0294
    correct = torch.zeros(400, 1, dtype=torch.bool)
    correct[:360] = True
    lo, hi = pck_interval(correct, torch.ones(400, 1, dtype=torch.bool))
    half = 1.96 * math.sqrt(0.9 * 0.1 / 400)
    assert lo == pytest.approx(0.9 - half, abs=0.004) and hi == pytest.approx(0.9 + half, abs=0.004)
    # the same 360 / 400 joints, but 10 joints per person, people all right or all wrong: 40 independent units,
    # so the interval is sqrt(10) times wider
    by_person = correct.view(40, 10).all(-1, keepdim=True).expand(40, 10)
    lo10, hi10 = pck_interval(by_person, torch.ones(40, 10, dtype=torch.bool))
    assert (hi10 - lo10) == pytest.approx(math.sqrt(10) * 2 * half, rel=0.12)
    # every person equally right: no spread; the table of pck_per_joint plugs in directly
    gt = torch.zeros(5, 4, 2)
    pred = gt.clone()
    pred[:, 0, 0] = 100.0  # joint 0 of everyone is wrong
    assert pck_interval(*pck_per_joint(pred, gt, torch.ones(5, 4), torch.full((5,), 10.0))) == (0.75, 0.75)
    none = torch.zeros(3, 2, dtype=torch.bool)
    assert all(math.isnan(x) for x in pck_interval(none, none))
    with pytest.raises(InvalidInputError, match="level"):
        pck_interval(correct, correct, level=1.0)
