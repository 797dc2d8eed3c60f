"""Benchmark the 2D pose heatmap network: PCK@0.2 per decoder on held-out synthetic people and on the real photos
of the shared data (COCO mini, MPII mini), with throughput.

    .venv/bin/python tools/bench/pose2d.py [--weights FILE] [--flip-test] [--eval-images N] [--threads 1]

Every person is cropped at its ground-truth box (top-down evaluation: no detector in the loop).

* synthetic: the held-out set of the shipped network's data config (:func:`human3d.pose2d.train.synthetic_eval_pool`);
  PCK@0.2 normalised by the person box's ``max(w, h)``; OKS AP with the mask area. ``--eval-images N`` renders
  ``N`` held-out images instead of the card's ``data.eval_images`` (the same seeds: the first chunks are the same
  images), so networks trained with different eval sizes are compared on one set.
* every PCK@0.2 comes with a 95 % bootstrap interval over people (:func:`human3d.pose2d.metrics.pck_interval`: 2000
  resamples of the people, seed 0; the joints of one person are not independent, so it is wider than a binomial
  interval over joints).
* COCO mini (``coco_keypoints_mini/test_coco.json``, 4 photos, 12 people with keypoints): PCK@0.2 by the annotated
  box's ``max(w, h)``; OKS AP with the annotated areas (every person found, score 1).
* MPII mini (``mpii_keypoints_mini/test_mpii.json``, 5 frames): the 12 joints MPII shares with COCO-17 (shoulders,
  elbows, wrists, hips, knees, ankles); crops at ``center`` with side ``1.25 * 200 * scale`` (HRNet's MPII crop);
  PCK@0.2 by ``max(w, h)`` of the tight box of the labelled MPII joints, PCKh@0.5 by ``||upper_neck - head_top||``
  (the mini set has no head boxes).

Throughput: people per second for crop + network + that decoder, one batch of all the set's people.

The mediapipe row (the shipped detector for real photos, ``human3d.pose2d.detect``): BlazePose on a square crop
of side 1.5 x the same box's longer side (COCO: the annotated box; MPII: the tight joint box), one person per call,
so people/s counts one call each. Then, on COCO mini, the whole-image search (erase-and-repeat + windows, no boxes
given): how many labelled people it finds (OKS > 0.5 with some detection) and images/s.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

# COCO-17 index of each MPII-16 joint (None: no COCO counterpart)
MPII_TO_COCO = [16, 14, 12, 11, 13, 15, None, None, None, None, 10, 8, 6, 5, 7, 9]


def mpii_pool(folder: Path):
    """The MPII mini frames as a PersonPool in COCO-17 slots, the tight joint boxes and the head sizes."""
    from human3d.data.keypoints import load_image
    from human3d.pose2d.crops import boxes_from_keypoints
    from human3d.pose2d.data import PersonPool, concat_pools

    entries = json.loads((folder / "test_mpii.json").read_text())
    pools, tight, head = [], [], []
    for e in entries:
        j = np.asarray(e["joints"], dtype=np.float32) + 0.5  # 0-based pixels -> continuous
        v = np.asarray(e["joints_vis"], dtype=np.float32)
        kp = torch.zeros(1, 17, 3)
        for m, c in enumerate(MPII_TO_COCO):
            if c is not None and v[m] > 0:
                kp[0, c] = torch.tensor([j[m, 0], j[m, 1], 2.0])
        side = 200.0 * float(e["scale"])
        cx, cy = (float(x) + 0.5 for x in e["center"])
        box = torch.tensor([[cx - side / 2, cy - side / 2, side, side]])
        img = torch.from_numpy(load_image(folder / e["image"]))[None]
        pools.append(PersonPool(img, torch.zeros(1, dtype=torch.long), kp, box, torch.tensor([side * side])))
        tight.append(boxes_from_keypoints(kp)[0])
        head.append(float(np.linalg.norm(j[8] - j[9])) if v[8] > 0 and v[9] > 0 else float("nan"))
    return concat_pools(pools), torch.stack(tight), torch.tensor(head)


def timed_predictions(net, pool, crop_size, padding, flip_test):
    """``{decoder: uv [M, K, 2] image pixels}`` and ``{decoder: people/s}`` for one batch of all people."""
    from human3d.pose2d.crops import apply_affine
    from human3d.pose2d.data import sample_crops
    from human3d.pose2d.heatmaps import heatmap_to_image
    from human3d.pose2d.networks import STRIDE
    from human3d.pose2d.train import DECODERS, decode, predict

    idx = torch.arange(len(pool))
    t0 = time.perf_counter()
    crops, _, A, _ = sample_crops(pool, idx, crop_size, padding)
    t1 = time.perf_counter()
    predict(net, crops[:1], flip_test)  # warm-up
    t2 = time.perf_counter()
    h = predict(net, crops, flip_test)
    t3 = time.perf_counter()
    preds, rate = {}, {}
    for d in DECODERS:
        t4 = time.perf_counter()
        uv = decode(h, d)
        t5 = time.perf_counter()
        preds[d] = apply_affine(A, heatmap_to_image(uv, STRIDE))
        rate[d] = len(pool) / ((t1 - t0) + (t3 - t2) + (t5 - t4))
    return preds, rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=None, help="safetensors from export_weights (default: shipped)")
    ap.add_argument("--flip-test", action="store_true", help="average with the mirrored crop's heatmaps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-images", type=int, default=None,
                    help="held-out synthetic images (default: the card's data.eval_images)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from human3d.data.paths import shared_data_dir
    from human3d.pose2d.data import load_coco_pool
    from human3d.pose2d.metrics import bbox_size, oks_ap, pck, pck_interval, pck_per_joint
    from human3d.pose2d.networks import count_parameters, load_network
    from human3d.pose2d.train import DECODERS, Pose2DDataConfig, synthetic_eval_pool

    net, meta = load_network(args.weights)
    S, pad = meta["crop_size"], meta["padding"]
    data_cfg = None
    prov = Path(args.weights or "").with_suffix(".json") if args.weights else None
    if prov is None:
        from human3d.pose2d.networks import weights_dir

        prov = weights_dir() / "pose2d_simple_coco17.json"
    if prov.is_file():
        data_cfg = Pose2DDataConfig.from_dict(json.loads(prov.read_text())["config"]["data"])
    data_cfg = data_cfg or Pose2DDataConfig()
    if args.eval_images is not None:
        data_cfg.eval_images = args.eval_images
        data_cfg.validate()
    root = shared_data_dir()
    sets = {"synthetic (held-out)": synthetic_eval_pool(data_cfg)}
    coco = root / "coco_keypoints_mini" / "test_coco.json"
    if coco.is_file():
        sets["COCO mini (real)"] = load_coco_pool(coco)
    mpii = root / "mpii_keypoints_mini"
    mpii_extra = None
    if (mpii / "test_mpii.json").is_file():
        pool, tight, head = mpii_pool(mpii)
        sets["MPII mini (real, 12 joints)"] = pool
        mpii_extra = (tight, head)
    print(f"network: {meta.get('model')}, {count_parameters(net)} parameters, crop {S}, flip test {args.flip_test}, "
          f"{args.threads} thread(s)")  # fmt: skip
    results = {}
    for name, pool in sets.items():
        preds, rate = timed_predictions(net, pool, S, pad, args.flip_test)
        gt, vis = pool.keypoints[..., :2], pool.keypoints[..., 2]
        is_mpii = name.startswith("MPII")
        norm = bbox_size(mpii_extra[0]) if is_mpii else bbox_size(pool.boxes)
        gts = [{"image_id": int(pool.image_index[m]), "keypoints": gt[m].numpy(), "visible": vis[m].numpy(),
                "area": float(pool.areas[m]), "bbox": pool.boxes[m].tolist()} for m in range(len(pool))]  # fmt: skip
        row = {"n_people": len(pool), "n_joints": int((vis > 0).sum())}
        for d in DECODERS:
            p = preds[d]
            r = {"pck@0.2": pck(p, gt, vis, norm, 0.2),
                 "pck@0.2_95ci": pck_interval(*pck_per_joint(p, gt, vis, norm)), "people_per_s": rate[d]}  # fmt: skip
            if is_mpii:
                r["pckh@0.5"] = pck(p, gt, vis, mpii_extra[1], 0.5)
            else:
                dets = [{"image_id": int(pool.image_index[m]), "keypoints": p[m].numpy(), "score": 1.0}
                        for m in range(len(pool))]  # fmt: skip
                r["oks_ap"] = oks_ap(dets, gts)["AP"]
            row[d] = r
        results[name] = row
        print(f"\n{name}: {row['n_people']} people, {row['n_joints']} labelled joints")
        for d in DECODERS:
            lo, hi = row[d]["pck@0.2_95ci"]
            shown = ("pck@0.2", "pck@0.2_95ci", "people_per_s")
            extra = " ".join(f"{k} {v:.3f}" for k, v in row[d].items() if k not in shown)
            print(f"  {d:12s} PCK@0.2 {row[d]['pck@0.2']:.3f} [{lo:.3f}, {hi:.3f}]  {extra}  "
                  f"({row[d]['people_per_s']:.0f} people/s)")  # fmt: skip
    mediapipe_rows(sets, mpii_extra, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def mediapipe_rows(sets, mpii_extra, results) -> None:
    """The shipped detector on the real sets (top-down at the boxes), and its whole-image search on COCO mini."""
    from human3d.pose2d.detect import Detector
    from human3d.pose2d.mediapipe_backend import mediapipe_status
    from human3d.pose2d.metrics import bbox_size, oks, oks_ap, pck

    ok, why = mediapipe_status()
    if not ok:
        print(f"\nmediapipe: skipped ({why})")
        return
    print("\nmediapipe BlazePose (model_complexity=1), crops at 1.5 x the box")
    with Detector("mediapipe", "coco17") as det:
        for name, pool in sets.items():
            if name.startswith("synthetic"):
                continue
            is_mpii = name.startswith("MPII")
            boxes = mpii_extra[0] if is_mpii else pool.boxes
            t0, preds = time.perf_counter(), []
            for m in range(len(pool)):
                rgb = pool.images[int(pool.image_index[m])].numpy()
                people = det.detect(rgb, boxes=[boxes[m].tolist()])
                preds.append(torch.from_numpy(people[0].keypoints[:, :2]) if people else torch.zeros(17, 2))
            rate = len(pool) / (time.perf_counter() - t0)
            p = torch.stack(preds)
            gt, vis = pool.keypoints[..., :2], pool.keypoints[..., 2]
            r = {"pck@0.2": pck(p, gt, vis, bbox_size(boxes), 0.2), "people_per_s": rate}
            if is_mpii:
                r["pckh@0.5"] = pck(p, gt, vis, mpii_extra[1], 0.5)
            else:
                gts = [{"image_id": int(pool.image_index[m]), "keypoints": gt[m].numpy(), "visible": vis[m].numpy(),
                        "area": float(pool.areas[m]), "bbox": pool.boxes[m].tolist()} for m in range(len(pool))]  # fmt: skip
                dets = [{"image_id": int(pool.image_index[m]), "keypoints": p[m].numpy(), "score": 1.0}
                        for m in range(len(pool))]  # fmt: skip
                r["oks_ap"] = oks_ap(dets, gts)["AP"]
            results.setdefault(name, {})["mediapipe"] = r
            extra = " ".join(f"{k} {v:.3f}" for k, v in r.items() if k not in ("pck@0.2", "people_per_s"))
            print(f"  {name:28s} PCK@0.2 {r['pck@0.2']:.3f}  {extra}  ({rate:.1f} people/s)")
        pool = sets.get("COCO mini (real)")
        if pool is None:
            return
        t0, found, total = time.perf_counter(), 0, 0
        n_img = int(pool.image_index.max()) + 1
        for i in range(n_img):
            people = det.detect(pool.images[i].numpy())
            for m in (m for m in range(len(pool)) if int(pool.image_index[m]) == i):
                total += 1
                g = pool.keypoints[m : m + 1]
                best = max((float(oks(torch.from_numpy(q.keypoints[None, :, :2]), g[..., :2], g[..., 2],
                                      pool.areas[m : m + 1]).reshape(-1)[0]) for q in people), default=0.0)  # fmt: skip
                found += best > 0.5
        rate = n_img / (time.perf_counter() - t0)
        results["COCO mini (real)"]["mediapipe_whole_image"] = {"found": found, "labelled": total, "images_per_s": rate}
        print(f"  whole-image search on COCO mini: {found}/{total} labelled people found (OKS > 0.5), {rate:.2f} images/s")


if __name__ == "__main__":
    main()
