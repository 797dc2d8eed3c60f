"""2D keypoints of the people in real photos: what ``human3d detect`` and ``human3d fit`` on bare photos run.

Backends:

* ``mediapipe`` (the shipped default; :mod:`human3d.pose2d.mediapipe_backend`): BlazePose, one person per call.
  **Several people** are found by *erase and repeat*: detect the most prominent person on the whole image, grey out
  its box (its landmarks' box padded by 10 %), detect again, up to ``max_people`` times; then each person is
  re-detected on a square crop of the **original** image around its box (side ``1.5 x`` the box's longer side,
  the padding that measured best on COCO mini: PCK@0.2 0.99 at 1.5 vs 0.84 at 1.25 and 0.75 at 2.0). The crop pass
  also fixes the first pass's occasional mix-up of two close people. Limitation: people heavily overlapping
  one another (one's box covers the other) are often found as one, and small people (under about a tenth of the
  image height) are missed; ``tools/bench/pose2d.py`` measures the recall on COCO mini.
* ``heatmap``: our SimpleBaseline (:func:`human3d.pose2d.networks.load_network`), top-down on person boxes; with
  no boxes it takes the whole image as one person. It is weak on real photos (trained on synthetic people only).
* ``auto``: mediapipe where it is installed, else heatmap.

Everything returns keypoints in the continuous pixel convention of :mod:`human3d.geometry.cameras`, as
:class:`human3d.data.keypoints.PersonKeypoints` (``skeleton`` "coco17" or "body25").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from human3d.data.keypoints import IMAGE_SUFFIXES, KeypointImage, PersonKeypoints, load_image, load_keypoint_inputs
from human3d.errors import DatasetError, InvalidInputError
from human3d.io_utils import atomic_write_text

__all__ = ["BACKENDS", "FORMATS", "resolve_backend", "Detector", "image_list", "detect_keypoints", "keypoints_or_detect",
           "write_keypoints"]  # fmt: skip

BACKENDS = ("auto", "mediapipe", "heatmap")
FORMATS = ("openpose", "coco")
CROP_PADDING = 1.5  # crop side / person box's longer side, for the per-person BlazePose pass
ERASE_PADDING = 0.1  # the found person's box grows by this share on each side before it is greyed out
MIN_CONFIDENCE = 0.3  # landmarks below this visibility do not shape a person's box


def resolve_backend(backend: str = "auto") -> str:
    """``auto`` -> ``mediapipe`` where it runs, else ``heatmap``; other names are checked."""
    if backend not in BACKENDS:
        raise InvalidInputError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != "auto":
        return backend
    from human3d.pose2d.mediapipe_backend import mediapipe_status

    return "mediapipe" if mediapipe_status()[0] else "heatmap"


def _box(kp: np.ndarray, min_conf: float = MIN_CONFIDENCE) -> tuple[float, float, float, float] | None:
    on = kp[:, 2] >= min_conf
    if on.sum() < 2:
        return None
    lo, hi = kp[on, :2].min(0), kp[on, :2].max(0)
    return float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])


def _iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0.0, min(ax1, bx1) - max(a[0], b[0])), max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _square_crop(box, W: int, H: int, padding: float) -> tuple[int, int, int, int]:
    x, y, w, h = box
    cx, cy, s = x + w / 2, y + h / 2, max(w, h) * padding
    x0, y0 = int(max(0, np.floor(cx - s / 2))), int(max(0, np.floor(cy - s / 2)))
    x1, y1 = int(min(W, np.ceil(cx + s / 2))), int(min(H, np.ceil(cy + s / 2)))
    return x0, y0, x1, y1


def _windows(W: int, H: int) -> list[tuple[int, int, int, int]]:
    """Overlapping square windows (side 0.6 x the shorter side, half-overlapping) covering the image."""
    s = max(8, int(0.6 * min(W, H)))
    xs = np.unique(np.linspace(0, W - s, max(1, int(np.ceil(2 * W / s)) - 1)).astype(int))
    ys = np.unique(np.linspace(0, H - s, max(1, int(np.ceil(2 * H / s)) - 1)).astype(int))
    return [(int(x), int(y), int(x) + s, int(y) + s) for y in ys for x in xs]


class Detector:
    """A keypoint detector for RGB photos (``uint8 [H, W, 3]``); reuse one for many images, then ``close()``.

    Args:
        backend: "auto", "mediapipe" or "heatmap" (see the module docstring).
        skeleton: "coco17" or "body25" (BODY_25: what OpenPose JSON holds; its small toes have confidence 0).
        max_people: at most this many people per image (mediapipe's erase-and-repeat passes).
    """

    def __init__(self, backend: str = "auto", skeleton: str = "coco17", max_people: int = 6):
        if skeleton not in ("coco17", "body25"):
            raise InvalidInputError(f"skeleton: expected 'coco17' or 'body25', got {skeleton!r}")
        if not (isinstance(max_people, int) and max_people >= 1):
            raise InvalidInputError(f"max_people: expected a positive integer, got {max_people!r}")
        self.backend, self.skeleton, self.max_people = resolve_backend(backend), skeleton, max_people
        self._bp = self._net = None
        if self.backend == "mediapipe":
            from human3d.pose2d.mediapipe_backend import BlazePose

            self._bp = BlazePose()
        else:
            from human3d.pose2d.networks import load_network

            self._net, self._meta = load_network()

    # ---- one image ---------------------------------------------------------------------------------------------
    def detect(self, rgb: np.ndarray, boxes=None) -> list[PersonKeypoints]:
        """People in ``rgb``, most prominent first. ``boxes``: optional person boxes ``[(x, y, w, h), ...]``
        (then one person per box, no search)."""
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InvalidInputError(f"image: expected a uint8 RGB array [H, W, 3], got {getattr(rgb, 'shape', rgb)}")
        H, W = rgb.shape[:2]
        if boxes is None and self.backend == "heatmap":
            boxes = [(0.0, 0.0, float(W), float(H))]
        if self.backend == "heatmap":
            kps = self._heatmap(rgb, boxes)
        else:
            kps = self._blazepose(rgb, boxes)
        out = []
        for kp in kps:
            if self.skeleton == "body25":
                from human3d.body.skeletons import convert_keypoints

                kp = kp if kp.shape[0] == 25 else convert_keypoints(torch.from_numpy(kp), "coco17", "body25").numpy()
            out.append(PersonKeypoints(kp.astype(np.float32), self.skeleton, len(out), None, _box(kp)))
        return out

    def _blazepose(self, rgb: np.ndarray, boxes) -> list[np.ndarray]:
        from human3d.pose2d.mediapipe_backend import blazepose_to

        H, W = rgb.shape[:2]
        if boxes is None:  # erase and repeat on the whole image
            boxes, work = [], rgb.copy()
            grey = np.array([124, 116, 104], dtype=np.uint8)  # ImageNet mean: a neutral fill
            for _ in range(self.max_people):
                lm = self._bp.detect(work)
                b = _box(lm) if lm is not None else None
                if b is None or b[2] * b[3] < 16 or any(_iou(b, o) > 0.5 for o in boxes):
                    break
                boxes.append(b)
                px, py = ERASE_PADDING * b[2], ERASE_PADDING * b[3]
                x0, y0 = int(max(0, b[0] - px)), int(max(0, b[1] - py))
                x1, y1 = int(min(W, b[0] + b[2] + px + 1)), int(min(H, b[1] + b[3] + py + 1))
                work[y0:y1, x0:x1] = grey
            if len(boxes) < self.max_people:  # then windows of the erased image: people too small for one pass
                for wx0, wy0, wx1, wy1 in _windows(W, H):
                    lm = self._bp.detect(work[wy0:wy1, wx0:wx1])
                    b = _box(lm) if lm is not None else None
                    if b is None or b[2] * b[3] < 16:
                        continue
                    b = (b[0] + wx0, b[1] + wy0, b[2], b[3])
                    if not any(_iou(b, o) > 0.3 for o in boxes):
                        boxes.append(b)
                    if len(boxes) >= self.max_people:
                        break
        people = []
        for b in boxes:  # per-person pass on a crop of the original image
            x0, y0, x1, y1 = _square_crop(b, W, H, CROP_PADDING)
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            lm = self._bp.detect(rgb[y0:y1, x0:x1])
            if lm is None:
                continue
            lm[:, 0] += x0
            lm[:, 1] += y0
            kp = blazepose_to(lm, self.skeleton)
            nb = _box(kp)
            if nb is None or any(_iou(nb, _box(p)) > 0.6 for p in people):  # the same person found twice
                continue
            people.append(kp)
        return people

    def _heatmap(self, rgb: np.ndarray, boxes) -> list[np.ndarray]:
        from human3d.pose2d.crops import apply_affine, box_to_centre_side, crop_matrices, warp_images
        from human3d.pose2d.heatmaps import decode_dark, heatmap_to_image
        from human3d.pose2d.networks import STRIDE
        from human3d.pose2d.train import predict

        if not boxes:
            return []
        S, pad = self._meta["crop_size"], self._meta["padding"]
        box = torch.tensor([list(map(float, b)) for b in boxes], dtype=torch.float32)
        centre, side = box_to_centre_side(box, pad)
        A = crop_matrices(centre, side, S)
        img = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255.0).expand(len(boxes), -1, -1, -1)
        h = predict(self._net, warp_images(img, A, S))
        uv, conf = decode_dark(h)
        uv = apply_affine(A, heatmap_to_image(uv, STRIDE))
        kp = torch.cat([uv, conf.clamp(0, 1)[..., None]], -1).numpy()
        return [k for k in kp]

    def close(self) -> None:
        if self._bp is not None:
            self._bp.close()
            self._bp = None

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- images and folders ---------------------------------------------------------------------------------------------
def image_list(images) -> list[Path]:
    if isinstance(images, (list, tuple)):
        return [Path(p) for p in images]
    p = Path(images).expanduser()
    if not p.exists():
        raise DatasetError(f"images: '{p}' does not exist")
    if p.is_dir():
        out = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        if not out:
            raise DatasetError(f"images: folder '{p}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return out
    return [p]


def detect_keypoints(images, backend: str = "auto", skeleton: str = "body25", max_people: int = 6,
                     progress: bool = False) -> list[KeypointImage]:  # fmt: skip
    """Detect the people of an image, a folder of images or a list of image paths -> one
    :class:`~human3d.data.keypoints.KeypointImage` per image (``keypoint_file`` None; an unreadable image carries
    ``error``; a warning names the backend), ready for :func:`human3d.fitting.pipeline.fit_images`."""
    paths = image_list(images)
    out = []
    with Detector(backend, skeleton, max_people) as det:
        it = paths
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(paths, desc=f"detecting ({det.backend})", unit="image", leave=False)
        for p in it:
            try:
                rgb = load_image(p)
            except DatasetError as e:
                out.append(KeypointImage(p.stem, p, error=str(e)))
                continue
            people = det.detect(rgb)
            H, W = rgb.shape[:2]
            out.append(KeypointImage(p.stem, p, people, W, H,
                                     warnings=[f"keypoints detected by the {det.backend} backend"]))  # fmt: skip
    return out


def keypoints_or_detect(images, backend: str = "auto", progress: bool = False) -> list[KeypointImage]:
    """What ``human3d fit IMAGES`` without ``--keypoints`` fits: each image's JSON beside it where there is one
    (``NAME.json`` / ``NAME_keypoints.json``), the detector's keypoints (BODY_25) for the bare photos."""
    paths = image_list(images)
    bare = [p for p in paths if not (p.with_suffix(".json").is_file() or p.with_name(p.stem + "_keypoints.json").is_file())]
    found = {k.image_path: k for k in detect_keypoints(bare, backend, "body25", progress=progress)} if bare else {}
    out = []
    for p in paths:
        if p in found:
            out.append(found[p])
        else:
            out.extend(load_keypoint_inputs(p, None))
    return out


def write_keypoints(items: list[KeypointImage], path, fmt: str = "openpose") -> Path:
    """Write detections as one JSON file: ``openpose`` (one image: ``{"people": [{"pose_keypoints_2d"}]}``; several:
    ``{"images": {name: {"people": ...}}}`` is not OpenPose, so several images need ``coco``) or ``coco`` (a COCO
    keypoint document, ``file_name`` = the image's name, ``v`` = 2 where confidence >= 0.3, else 1 if > 0, else 0).
    Pixel indices are written (the continuous coordinates minus 0.5), the convention both formats use."""
    from human3d.body.skeletons import convert_keypoints

    path = Path(path)
    if fmt not in FORMATS:
        raise InvalidInputError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "openpose":
        if len(items) != 1:
            raise InvalidInputError(f"--format openpose: one file holds one image, got {len(items)} images; "
                                    "use --format coco for a folder")  # fmt: skip
        people = []
        for pk in items[0].people:
            kp = pk.keypoints if pk.skeleton == "body25" else convert_keypoints(
                torch.from_numpy(pk.keypoints), pk.skeleton, "body25").numpy()  # fmt: skip
            people.append({"person_id": [-1], "pose_keypoints_2d": _flat(kp)})
        doc = {"version": 1.3, "people": people}
    else:
        images, anns = [], []
        for i, it in enumerate(items):
            images.append({"id": i + 1, "file_name": it.image_path.name if it.image_path else it.name,
                           "width": it.width, "height": it.height})  # fmt: skip
            for pk in it.people:
                kp = pk.keypoints if pk.skeleton == "coco17" else convert_keypoints(
                    torch.from_numpy(pk.keypoints), pk.skeleton, "coco17").numpy()  # fmt: skip
                flat = []
                for u, v, c in kp:
                    on = c > 0
                    flat += [round(float(u) - 0.5, 2) if on else 0.0, round(float(v) - 0.5, 2) if on else 0.0,
                             2 if c >= MIN_CONFIDENCE else (1 if on else 0)]  # fmt: skip
                b = _box(kp, 0.0) or (0.0, 0.0, 0.0, 0.0)
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                             "keypoints": flat, "num_keypoints": int((kp[:, 2] > 0).sum()),
                             "bbox": [round(x, 2) for x in b], "area": round(b[2] * b[3], 2),
                             "score": float(kp[:, 2].mean())})  # fmt: skip
        doc = {"images": images, "annotations": anns,
               "categories": [{"id": 1, "name": "person", "keypoints": _coco_names()}]}  # fmt: skip
    atomic_write_text(path, json.dumps(doc))
    return path


def _flat(kp: np.ndarray) -> list[float]:
    out = []
    for u, v, c in kp:
        on = c > 0
        out += [round(float(u) - 0.5, 2) if on else 0.0, round(float(v) - 0.5, 2) if on else 0.0, round(float(c), 4)]
    return out


def _coco_names() -> list[str]:
    from human3d.body.skeletons import COCO17

    return list(COCO17)
