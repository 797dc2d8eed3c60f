"""2D keypoint files: OpenPose JSON, COCO keypoint JSON, and folders of images with a JSON beside each.

Conventions
-----------
* Every reader returns keypoints as float32 ``[P, K, 3]`` arrays ``(u, v, confidence)`` in the **continuous pixel
  convention of** :mod:`human3d.geometry.cameras` (the image covers ``[0, W] x [0, H]``; pixel ``(i, j)`` has its
  centre at ``(j + 0.5, i + 0.5)``). OpenPose and COCO store integer-like *pixel indices*, so ``0.5`` is added on
  reading (as detectron2 does for COCO keypoints).
* Confidence is in ``[0, 1]``; 0 means "missing". OpenPose scores are clipped to ``[0, 1]``; COCO visibility flags
  ``v`` map to 0 (``v = 0``, not labelled) or 1 (``v = 1`` labelled but occluded, ``v = 2`` visible).
* Keypoints whose coordinates are NaN/inf are treated as missing (confidence 0, coordinates 0) and counted in
  :attr:`KeypointImage.warnings`; they never reach a loss.
* Skeletons (index orders) are those of :mod:`human3d.body.skeletons`: ``"body25"`` and ``"openpose_coco18"`` for
  OpenPose (chosen from the array length: 75 or 54 values), ``"coco17"`` for COCO.

Supported inputs
----------------
* **OpenPose JSON**: ``{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, ...]}, ...]}``, one file per image.
* **COCO keypoint JSON**: ``{"images": [...], "annotations": [{"image_id", "keypoints": [51 values], ...}]}``;
  annotations are grouped by ``image_id`` and images matched by ``file_name``. Crowd annotations are ignored.
  A COCO *results* list ``[{"image_id", "keypoints", "score"}, ...]`` (detector output) is also accepted; its image
  ids are matched to file names whose stem is the integer id (``000000000785.jpg`` -> 785).
* **A folder of images** with, beside each image ``NAME.jpg``, a ``NAME.json`` or ``NAME_keypoints.json``
  (OpenPose's naming) in either format.

Per-image problems (a JSON that does not parse, an image without keypoints) never abort a folder: they are
recorded in :attr:`KeypointImage.error` and the image is skipped by the fitter. A single explicit file that is
wrong raises :class:`~human3d.errors.DatasetError` naming it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from human3d.errors import DatasetError

__all__ = [
    "IMAGE_SUFFIXES",
    "PersonKeypoints",
    "KeypointImage",
    "parse_openpose",
    "parse_coco",
    "read_keypoint_json",
    "load_keypoint_inputs",
    "load_image",
    "check_image",
    "image_size",
    "exif_focal_px",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_OPENPOSE_SKELETONS = {75: "body25", 54: "openpose_coco18"}


@dataclass
class PersonKeypoints:
    """One person's 2D keypoints."""

    keypoints: np.ndarray  # [K, 3] float32 (u, v, confidence), continuous pixel coordinates
    skeleton: str  # "coco17" | "body25" | "openpose_coco18"
    index: int  # position of the person in the file (0-based)
    source_id: int | str | None = None  # e.g. the COCO annotation id
    bbox: tuple[float, float, float, float] | None = None  # (x, y, w, h) from the file, if any

    @property
    def num_valid(self) -> int:
        return int((self.keypoints[:, 2] > 0).sum())


@dataclass
class KeypointImage:
    """An image and the people annotated in it."""

    name: str  # output stem (the image's file stem)
    image_path: Path | None  # None when only keypoints are known
    people: list[PersonKeypoints] = field(default_factory=list)
    width: int | None = None  # from the keypoint file, when it says
    height: int | None = None
    keypoint_file: Path | None = None
    error: str | None = None  # set when the image cannot be used at all (it is then skipped)
    warnings: list[str] = field(default_factory=list)


# ---- parsing ------------------------------------------------------------------------------------------------------
def _clean(kp: np.ndarray, where: str, warnings: list[str]) -> np.ndarray:
    """[P, K, 3] raw values -> float32 with +0.5 pixel shift, confidences in [0, 1], non-finite -> missing."""
    kp = kp.astype(np.float64, copy=True)
    bad = ~np.isfinite(kp).all(axis=-1)  # [P, K]
    if bad.any():
        warnings.append(f"{where}: {int(bad.sum())} keypoint(s) with NaN/inf values treated as missing")
    kp[bad] = 0.0
    conf = np.clip(kp[..., 2], 0.0, 1.0)
    kp[..., :2] += 0.5
    kp[..., :2][conf <= 0] = 0.0
    kp[..., 2] = conf
    return kp.astype(np.float32)


def _kind(v) -> str:
    """A short description of a JSON value for messages: ``a str ('abc')``, ``a list of 3``, ``null``."""
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return f"a list of {len(v)}"
    if isinstance(v, dict):
        return f"an object with keys {sorted(map(str, v))[:6]}"
    text = repr(v)
    return f"a {type(v).__name__} ({text[:20] + '...' if len(text) > 20 else text})"


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) or v is None


def _flat_keypoints(values, where: str, sizes: tuple[int, ...]) -> np.ndarray:
    if not isinstance(values, (list, tuple)):
        raise DatasetError(f"{where}: expected a flat list of numbers (x, y, c triples), found {_kind(values)}")
    bad = next((i for i, v in enumerate(values) if not _is_number(v)), None)
    if bad is not None:
        raise DatasetError(f"{where}: expected a flat list of numbers (x, y, c triples), found {_kind(values[bad])} "
                           f"at position {bad}")  # fmt: skip
    if len(values) not in sizes:
        raise DatasetError(f"{where}: expected {' or '.join(map(str, sizes))} values (x, y, c triples), got {len(values)}")
    arr = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    return arr.reshape(-1, 3)


def parse_openpose(data, where: str = "OpenPose JSON", warnings: list[str] | None = None) -> list[PersonKeypoints]:
    """People of an OpenPose JSON document (already parsed). Raises DatasetError on a malformed document."""
    warnings = [] if warnings is None else warnings
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise DatasetError(f"{where}: not an OpenPose file (expected an object with a 'people' list)")
    people = []
    for i, person in enumerate(data["people"]):
        if not isinstance(person, dict) or "pose_keypoints_2d" not in person:
            raise DatasetError(f"{where}: people[{i}] has no 'pose_keypoints_2d'")
        raw = _flat_keypoints(person["pose_keypoints_2d"], f"{where}: people[{i}].pose_keypoints_2d", (75, 54))
        kp = _clean(raw[None], f"{where}: people[{i}]", warnings)[0]
        people.append(PersonKeypoints(kp, _OPENPOSE_SKELETONS[raw.size], i, person.get("person_id")))
    return people


def _coco_visibility_to_conf(raw: np.ndarray) -> np.ndarray:
    out = raw.copy()
    v = raw[:, 2]
    out[:, 2] = np.where(np.isfinite(v), (v > 0).astype(np.float64), np.nan)
    return out


def parse_coco(data, where: str = "COCO JSON", warnings: list[str] | None = None) -> dict:
    """Group a COCO keypoint document by image.

    Returns ``{image_id: {"file_name": str | None, "width": int | None, "height": int | None,
    "people": [PersonKeypoints, ...]}}``. Accepts a full COCO document or a results list.
    """
    warnings = [] if warnings is None else warnings
    if isinstance(data, list):
        images, annotations, item = [], data, "results list: item"
    elif isinstance(data, dict) and isinstance(data.get("annotations"), list):
        images, annotations, item = data.get("images") or [], data["annotations"], "annotations"
        if not isinstance(images, list):
            raise DatasetError(f"{where}: 'images' must be a list of objects, found {_kind(images)}")
    else:
        found = _kind(data.get("annotations")) if isinstance(data, dict) and "annotations" in data else _kind(data)
        raise DatasetError(f"{where}: not a COCO keypoint file (expected an object with an 'annotations' list, or a "
                           f"results list [{{'image_id', 'keypoints', 'score'}}, ...]); found {found}")  # fmt: skip
    out: dict = {}
    for n, img in enumerate(images):
        if not isinstance(img, dict) or "id" not in img:
            continue
        img_id = _image_id(img["id"], f"{where}: images[{n}].id")
        name = img.get("file_name")
        if name is not None and not isinstance(name, str):
            raise DatasetError(f"{where}: images[{n}].file_name: expected a string, found {_kind(name)}")
        out[img_id] = {"file_name": name, "width": _size(img.get("width"), f"{where}: images[{n}].width"),
                       "height": _size(img.get("height"), f"{where}: images[{n}].height"), "people": []}  # fmt: skip
    for n, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            raise DatasetError(f"{where}: {item}[{n}]: expected an object with 'image_id' and 'keypoints', found "
                               f"{_kind(ann)}")  # fmt: skip
        if "image_id" not in ann:
            raise DatasetError(f"{where}: {item}[{n}] has no 'image_id' (found keys {sorted(map(str, ann))[:8]})")
        if "keypoints" not in ann or ann.get("iscrowd", 0):
            continue
        img_id = _image_id(ann["image_id"], f"{where}: {item}[{n}].image_id")
        entry = out.setdefault(img_id, {"file_name": None, "width": None, "height": None, "people": []})
        raw = _flat_keypoints(ann["keypoints"], f"{where}: {item}[{n}].keypoints", (51,))
        if isinstance(data, dict):  # visibility flags; results lists carry confidences already
            raw = _coco_visibility_to_conf(raw)
        kp = _clean(raw[None], f"{where}: annotation {ann.get('id', n)}", warnings)[0]
        bbox = ann.get("bbox")
        ok = isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(_is_number(b) and b is not None for b in bbox)
        bbox = tuple(float(b) for b in bbox) if ok else None
        entry["people"].append(PersonKeypoints(kp, "coco17", len(entry["people"]), ann.get("id", n), bbox))
    return out


def _image_id(v, where: str):
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise DatasetError(f"{where}: expected an integer or string id, found {_kind(v)}")
    return v


def _size(v, where: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0 or v != int(v):
        raise DatasetError(f"{where}: expected a positive whole number of pixels, found {_kind(v)}")
    return int(v)


def read_keypoint_json(path) -> tuple[str, object]:
    """Read and parse a keypoint JSON file; return ``(kind, data)`` with kind ``"openpose"`` or ``"coco"``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"keypoints: cannot read '{path}': {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"keypoints: '{path}' is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if isinstance(data, dict) and "people" in data:
        return "openpose", data
    if (isinstance(data, dict) and "annotations" in data) or isinstance(data, list):
        return "coco", data
    raise DatasetError(
        f"keypoints: '{path}' is neither OpenPose JSON (a 'people' list) nor COCO keypoint JSON ('annotations')"
    )


# ---- matching images and keypoint files -----------------------------------------------------------------------------
def _stem_id(name: str):
    try:
        return int(Path(name).stem)
    except ValueError:
        return None


def _from_coco(kind_data, json_path: Path, images: list[Path] | None) -> list[KeypointImage]:
    warnings: list[str] = []
    table = parse_coco(kind_data, str(json_path), warnings)
    by_name = {Path(v["file_name"]).name: k for k, v in table.items() if v.get("file_name")}
    out = []
    if images is None:  # keypoints only: every image of the file, looked up beside the JSON
        for img_id, v in table.items():
            name = v.get("file_name") or str(img_id)
            p = json_path.parent / name if v.get("file_name") else None
            out.append(KeypointImage(Path(name).stem, p, v["people"], v.get("width"), v.get("height"), json_path,
                                     warnings=list(warnings)))  # fmt: skip
        return out
    keys = []
    for img in images:
        key = by_name.get(img.name)
        if key is None:
            sid = _stem_id(img.name)
            key = sid if sid in table else None
        if key is None and len(table) == 1 and len(images) == 1:
            key = next(iter(table))
        keys.append(key)
    held = _held(table)
    unmatched = [img.name for img, k in zip(images, keys) if k is None]
    if len(unmatched) == len(images):
        raise DatasetError(
            f"keypoints: '{json_path}' has no annotations for any of the {len(images)} image(s) given "
            f"({_listing(unmatched)}); it holds {held}. Images are matched by file_name, or by an integer file "
            "stem equal to image_id (000000000785.jpg -> 785)"
        )
    for img, key in zip(images, keys):
        if key is None:
            out.append(KeypointImage(img.stem, img, keypoint_file=json_path,
                                     error=f"no annotations for '{img.name}' in '{json_path}' (it holds {held})"))  # fmt: skip
            continue
        v = table[key]
        out.append(KeypointImage(img.stem, img, v["people"], v.get("width"), v.get("height"), json_path,
                                 warnings=list(warnings)))  # fmt: skip
    return out


def _listing(items, n: int = 8) -> str:
    items = [str(i) for i in items]
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _held(table: dict) -> str:
    """What a COCO table holds, for messages: its image ids and file names."""
    if not table:
        return "no annotated images"
    names = [v["file_name"] for v in table.values() if v.get("file_name")]
    text = f"image_id {_listing(table)}"
    return text + (f" (file names {_listing(names, 4)})" if names else "")


def _from_single(json_path: Path, image: Path | None, strict: bool) -> list[KeypointImage]:
    name = image.stem if image is not None else json_path.stem.removesuffix("_keypoints")
    try:
        kind, data = read_keypoint_json(json_path)
        if kind == "coco":
            return _from_coco(data, json_path, [image] if image is not None else None)
        warnings: list[str] = []
        people = parse_openpose(data, str(json_path), warnings)
        return [KeypointImage(name, image, people, keypoint_file=json_path, warnings=warnings)]
    except DatasetError as e:
        if strict:
            raise
        return [KeypointImage(name, image, keypoint_file=json_path, error=str(e))]


def _beside(image: Path) -> Path | None:
    for cand in (image.with_suffix(".json"), image.with_name(image.stem + "_keypoints.json")):
        if cand.is_file():
            return cand
    return None


def load_keypoint_inputs(images, keypoints=None) -> list[KeypointImage]:
    """Pair images with their keypoints, and check every image file is a whole image.

    Args:
        images: an image file or a folder of images (``IMAGE_SUFFIXES``), or None to take everything from
            ``keypoints`` (images are then looked up beside the JSON by COCO ``file_name``).
        keypoints: a JSON file (OpenPose or COCO), a folder of OpenPose/COCO JSON files (``NAME.json`` or
            ``NAME_keypoints.json`` for image ``NAME.*``), or None to look beside each image.
    Returns:
        one :class:`KeypointImage` per image, in sorted file order; unusable ones carry ``error`` (e.g. the image
        is an empty file or not an image; no annotations for it), a truncated image a ``warnings`` entry.
    Raises:
        DatasetError: a path does not exist, a folder holds no images, a single explicit keypoint file is
            malformed (in folders, per-file problems are recorded instead), or a COCO file annotates none of the
            images given (the message lists the images and the ids the file holds).
    """
    items = _pair(images, keypoints)
    for item in items:
        if item.error is None and item.image_path is not None and item.image_path.exists():
            try:
                item.warnings.extend(check_image(item.image_path))
            except DatasetError as e:
                item.error = str(e)
    return items


def _pair(images, keypoints) -> list[KeypointImage]:
    img_list: list[Path] | None = None
    if images is not None:
        images = Path(images).expanduser()
        if not images.exists():
            raise DatasetError(f"images: '{images}' does not exist")
        if images.is_dir():
            img_list = sorted(p for p in images.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not img_list:
                raise DatasetError(f"images: folder '{images}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
        else:
            img_list = [images]
    if keypoints is not None:
        keypoints = Path(keypoints).expanduser()
        if not keypoints.exists():
            raise DatasetError(f"keypoints: '{keypoints}' does not exist")
    single = img_list is not None and len(img_list) == 1 and not Path(images).is_dir()

    if keypoints is not None and keypoints.is_file():
        kind, data = read_keypoint_json(keypoints)  # one explicit file: malformed -> error
        if kind == "coco":
            return _from_coco(data, keypoints, img_list)
        if img_list is not None and len(img_list) > 1:
            raise DatasetError(
                f"keypoints: '{keypoints}' is an OpenPose file (one image) but {len(img_list)} images were given; "
                "pass a folder of JSON files or a COCO file"
            )
        return _from_single(keypoints, img_list[0] if img_list else None, strict=True)

    if img_list is None:
        if keypoints is None:
            raise DatasetError("keypoints: give an image/folder, a keypoint file, or both")
        files = sorted(p for p in keypoints.iterdir() if p.suffix.lower() == ".json")
        if not files:
            raise DatasetError(f"keypoints: folder '{keypoints}' holds no .json files")
        out = []
        for f in files:
            out.extend(_from_single(f, None, strict=False))
        return out

    out = []
    for img in img_list:
        if keypoints is None:
            jp = _beside(img)
        else:
            jp = next((c for c in (keypoints / f"{img.stem}.json", keypoints / f"{img.stem}_keypoints.json")
                       if c.is_file()), None)  # fmt: skip
        if jp is None:
            where = keypoints if keypoints is not None else img.parent
            msg = f"no keypoint file for '{img.name}' ({img.stem}.json or {img.stem}_keypoints.json in '{where}')"
            if single:
                raise DatasetError(f"keypoints: {msg}")
            out.append(KeypointImage(img.stem, img, error=msg))
            continue
        out.extend(_from_single(jp, img, strict=single))
    return out


# ---- images ---------------------------------------------------------------------------------------------------------
def _unreadable(path: Path, e: Exception | None = None) -> DatasetError:
    """The reason an image file cannot be used: missing, empty, not an image, or undecodable."""
    if not path.exists():
        return DatasetError(f"image '{path}' does not exist")
    if path.is_dir():
        return DatasetError(f"image '{path}' is a folder (expected an image file)")
    size = path.stat().st_size
    if size == 0:
        return DatasetError(f"image '{path}': empty file (0 bytes; expected an image: {', '.join(IMAGE_SUFFIXES)})")
    from PIL import UnidentifiedImageError

    if isinstance(e, UnidentifiedImageError):
        return DatasetError(f"image '{path}': not an image ({size} bytes in no image format Pillow reads; expected "
                            f"{', '.join(IMAGE_SUFFIXES)})")  # fmt: skip
    return DatasetError(f"image '{path}': cannot be decoded ({e})")


def _decode(path: Path, warnings: list[str] | None, draft: bool = False):
    """Open and fully decode ``path`` (PIL image, EXIF orientation applied). A truncated file is decoded as far as
    it goes and ``"image '...': truncated, decoded partially"`` appended to ``warnings``."""
    from PIL import Image, ImageFile, ImageOps

    try:
        with Image.open(path) as im:
            if draft and im.format == "JPEG":
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))  # DCT scaling: reads every byte
            try:
                im.load()
            except OSError as e:
                if "truncated" not in str(e) and "broken data stream" not in str(e):
                    raise
                ImageFile.LOAD_TRUNCATED_IMAGES, before = True, ImageFile.LOAD_TRUNCATED_IMAGES
                try:
                    with Image.open(path) as again:
                        if draft and again.format == "JPEG":
                            again.draft("RGB", (max(1, again.width // 8), max(1, again.height // 8)))
                        again.load()
                        im = again.copy()
                finally:
                    ImageFile.LOAD_TRUNCATED_IMAGES = before
                if warnings is not None:
                    warnings.append(f"image '{path}': truncated, decoded partially ({e})")
            return ImageOps.exif_transpose(im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise _unreadable(path, e) from None


def load_image(path, warnings: list[str] | None = None) -> np.ndarray:
    """Read an image as uint8 RGB ``[H, W, 3]`` (EXIF orientation applied). Raises DatasetError naming the file and
    why (does not exist, empty file, not an image); a truncated file is decoded partially with a warning."""
    path = Path(path)
    return np.asarray(_decode(path, warnings).convert("RGB"), dtype=np.uint8).copy()


def check_image(path) -> list[str]:
    """Decode ``path`` once (JPEGs at 1/8 scale) to check it is a whole image; return its warnings
    (``"truncated, decoded partially"``). Raises DatasetError naming the file and why it is unusable."""
    warnings: list[str] = []
    _decode(Path(path), warnings, draft=True)
    return warnings


def image_size(path) -> tuple[int, int]:
    """``(width, height)`` of an image after EXIF orientation, without decoding pixels."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            orient = im.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError) as e:
        raise _unreadable(path, e) from None
    return (h, w) if orient in (5, 6, 7, 8) else (w, h)


def exif_focal_px(path, width: int, height: int) -> float | None:
    """Focal length in pixels from EXIF, or None.

    Uses ``FocalLengthIn35mmFilm`` (35 mm film is 36 mm wide along the long side:
    ``f_px = f35 / 36 * max(W, H)``), else ``FocalLength`` with ``FocalPlaneXResolution`` (pixels per unit).
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            exif = im.getexif()
            sub = exif.get_ifd(0x8769) if hasattr(exif, "get_ifd") else {}
    except Exception:  # noqa: BLE001 - EXIF is best-effort; the caller falls back to the default focal
        return None
    tags = {**dict(exif), **dict(sub)}
    f35 = tags.get(0xA405)  # FocalLengthIn35mmFilm
    try:
        if f35 and float(f35) > 0:
            return float(f35) / 36.0 * max(width, height)
        f_mm, xres, unit = tags.get(0x920A), tags.get(0xA20E), tags.get(0xA210, 2)  # FocalLength, FPXRes, unit
        if f_mm and xres and float(f_mm) > 0 and float(xres) > 0:
            per_mm = float(xres) / {2: 25.4, 3: 10.0, 4: 1.0, 5: 1e-3}.get(int(unit), 25.4)
            return float(f_mm) * per_mm
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return None
