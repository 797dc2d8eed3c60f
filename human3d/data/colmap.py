"""COLMAP sparse-model readers and writers (text and binary ``cameras``, ``images``, ``points3D``).

Formats follow https://colmap.github.io/format.html (all binary values little-endian):

* ``cameras.bin``: ``uint64 n``; per camera ``int32 camera_id, int32 model_id, uint64 width, uint64 height,
  double params[num_params(model)]``.
* ``images.bin``: ``uint64 n``; per image ``int32 image_id, double qw qx qy qz, double tx ty tz, int32 camera_id,
  char name[] (NUL-terminated), uint64 n2d, (double x, double y, int64 point3D_id) * n2d``.
* ``points3D.bin``: ``uint64 n``; per point ``uint64 point3D_id, double x y z, uint8 r g b, double error,
  uint64 track_length, (int32 image_id, int32 point2D_idx) * track_length``.

Convention: COLMAP poses are **world-to-camera** in the OpenCV camera frame (x right, y down, z forward):
``x_cam = R(q) @ x_world + t`` with the Hamilton quaternion ``q = (qw, qx, qy, qz)``; pixel centres are at
``(j + 0.5, i + 0.5)`` -- the same conventions as :mod:`human3d.geometry`, so no axis conversion is needed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from human3d.errors import DatasetError
from human3d.io_utils import atomic_path, atomic_write_text

__all__ = [
    "CAMERA_MODELS",
    "ColmapCamera",
    "ColmapImage",
    "ColmapModel",
    "read_model",
    "write_model",
    "read_cameras_text",
    "read_cameras_binary",
    "read_images_text",
    "read_images_binary",
    "read_points3d_text",
    "read_points3d_binary",
    "qvec_to_rotmat",
    "rotmat_to_qvec",
]

# model_id -> (name, number of params)
CAMERA_MODELS: dict[int, tuple[str, int]] = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
}
_MODEL_IDS = {name: (mid, n) for mid, (name, n) in CAMERA_MODELS.items()}


@dataclass
class ColmapCamera:
    """One COLMAP camera: ``model`` name (e.g. ``"PINHOLE"``), image size in pixels and raw ``params``."""

    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # [num_params] float64


@dataclass
class ColmapImage:
    """One registered image: world-to-camera rotation ``qvec`` (w, x, y, z) and translation ``tvec``."""

    id: int
    qvec: np.ndarray  # [4] float64
    tvec: np.ndarray  # [3] float64
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [K, 2] 2D keypoints (pixels)
    point3d_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))  # [K], -1 = none


@dataclass
class ColmapModel:
    """A sparse model. Points are stored as arrays (``point_ids`` [P], ``xyz`` [P, 3], ``rgb`` [P, 3] uint8,
    ``errors`` [P]) plus tracks as a list of ``[L, 2]`` int arrays of (image_id, point2D_idx)."""

    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    point_ids: np.ndarray
    xyz: np.ndarray
    rgb: np.ndarray
    errors: np.ndarray
    tracks: list[np.ndarray]


# ----------------------------------------------------------------------------------------------- quaternions
def qvec_to_rotmat(q: np.ndarray) -> np.ndarray:
    """Unit quaternions [..., 4] (w, x, y, z) -> rotation matrices [..., 3, 3] (normalises the input)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    R = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )  # fmt: skip
    return R.reshape(q.shape[:-1] + (3, 3))


def rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    """Rotation matrix [3, 3] -> quaternion [4] (w, x, y, z) with w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    K = np.array(
        [
            [R[0, 0] - R[1, 1] - R[2, 2], 0, 0, 0],
            [R[1, 0] + R[0, 1], R[1, 1] - R[0, 0] - R[2, 2], 0, 0],
            [R[2, 0] + R[0, 2], R[2, 1] + R[1, 2], R[2, 2] - R[0, 0] - R[1, 1], 0],
            [R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1], R[0, 0] + R[1, 1] + R[2, 2]],
        ]
    ) / 3.0
    vals, vecs = np.linalg.eigh(K)
    q = vecs[[3, 0, 1, 2], np.argmax(vals)]
    return -q if q[0] < 0 else q


# ----------------------------------------------------------------------------------------------- text
def _text_lines(path: Path):
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"COLMAP file '{path}': cannot read ({e})") from e
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s and not s.startswith("#"):
            yield lineno, s


def _bad(path: Path, lineno: int | None, what: str) -> DatasetError:
    where = f"'{path}'" + (f" line {lineno}" if lineno is not None else "")
    return DatasetError(f"COLMAP file {where}: {what}")


def _check_camera(path, lineno, cam_id, model, params):
    if model not in _MODEL_IDS:
        raise _bad(path, lineno, f"camera {cam_id}: unknown camera model '{model}'")
    want = _MODEL_IDS[model][1]
    if len(params) != want:
        raise _bad(path, lineno, f"camera {cam_id}: model {model} needs {want} params, got {len(params)}")


def read_cameras_text(path) -> dict[int, ColmapCamera]:
    path = Path(path)
    cams = {}
    for lineno, s in _text_lines(path):
        tok = s.split()
        try:
            cam_id, model, w, h = int(tok[0]), tok[1], int(tok[2]), int(tok[3])
            params = np.array([float(v) for v in tok[4:]], dtype=np.float64)
        except (ValueError, IndexError) as e:
            raise _bad(path, lineno, f"expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...' ({e})") from e
        _check_camera(path, lineno, cam_id, model, params)
        cams[cam_id] = ColmapCamera(cam_id, model, w, h, params)
    return cams


def read_images_text(path) -> dict[int, ColmapImage]:
    path = Path(path)
    images = {}
    lines = list(_text_lines_keep_empty(path))
    # images.txt: two lines per image; the points line may be empty, so we cannot skip blank lines blindly.
    i = 0
    while i < len(lines):
        lineno, s = lines[i]
        if not s:
            i += 1
            continue
        tok = s.split()
        try:
            img_id = int(tok[0])
            q = np.array([float(v) for v in tok[1:5]])
            t = np.array([float(v) for v in tok[5:8]])
            cam_id = int(tok[8])
            name = " ".join(tok[9:])
            if len(q) != 4 or len(t) != 3 or not name:
                raise ValueError("too few values")
        except (ValueError, IndexError) as e:
            raise _bad(path, lineno, f"expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME' ({e})") from e
        pts_line = lines[i + 1][1] if i + 1 < len(lines) else ""
        try:
            vals = pts_line.split()
            if len(vals) % 3:
                raise ValueError("POINTS2D must come in (X, Y, POINT3D_ID) triples")
            arr = np.array(vals, dtype=np.float64).reshape(-1, 3)
        except ValueError as e:
            raise _bad(path, lineno + 1, f"bad POINTS2D line ({e})") from e
        images[img_id] = ColmapImage(img_id, q, t, cam_id, name, arr[:, :2], arr[:, 2].astype(np.int64))
        i += 2
    return images


def _text_lines_keep_empty(path: Path):
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"COLMAP file '{path}': cannot read ({e})") from e
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            continue
        yield lineno, line.strip()


def read_points3d_text(path):
    """-> (point_ids [P], xyz [P, 3], rgb [P, 3] uint8, errors [P], tracks list of [L, 2])."""
    path = Path(path)
    ids, xyz, rgb, err, tracks = [], [], [], [], []
    for lineno, s in _text_lines(path):
        tok = s.split()
        try:
            ids.append(int(tok[0]))
            xyz.append([float(v) for v in tok[1:4]])
            rgb.append([int(v) for v in tok[4:7]])
            err.append(float(tok[7]))
            tr = np.array(tok[8:], dtype=np.int64)
            if len(tr) % 2 or len(xyz[-1]) != 3 or len(rgb[-1]) != 3:
                raise ValueError("malformed values")
            tracks.append(tr.reshape(-1, 2))
        except (ValueError, IndexError) as e:
            raise _bad(path, lineno, f"expected 'POINT3D_ID X Y Z R G B ERROR TRACK...' ({e})") from e
    return (
        np.array(ids, np.int64),
        np.array(xyz, np.float64).reshape(-1, 3),
        np.array(rgb, np.uint8).reshape(-1, 3),
        np.array(err, np.float64),
        tracks,
    )


# ----------------------------------------------------------------------------------------------- binary
class _Reader:
    def __init__(self, path: Path):
        self.path = path
        try:
            self.buf = path.read_bytes()
        except OSError as e:
            raise DatasetError(f"COLMAP file '{path}': cannot read ({e})") from e
        self.pos = 0

    def read(self, fmt: str):
        fmt = "<" + fmt
        n = struct.calcsize(fmt)
        if self.pos + n > len(self.buf):
            raise DatasetError(f"COLMAP file '{self.path}': truncated at byte {self.pos} (corrupt binary model?)")
        out = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return out

    def array(self, dtype, count: int, cols: int | None = None):
        dt = np.dtype(dtype).newbyteorder("<")
        n = dt.itemsize * count
        if count < 0 or self.pos + n > len(self.buf):
            raise DatasetError(f"COLMAP file '{self.path}': truncated at byte {self.pos} (corrupt binary model?)")
        out = np.frombuffer(self.buf, dtype=dt, count=count, offset=self.pos)
        self.pos += n
        return out

    def count(self, record_bytes: int, what: str) -> int:
        """The record count at the start of a file, checked against the bytes that follow (``record_bytes``: the
        smallest record), so a corrupt count is named instead of allocating for it."""
        (n,) = self.read("Q")
        left = len(self.buf) - self.pos
        if n * record_bytes > left:
            raise DatasetError(f"COLMAP file '{self.path}': says {n} {what} but only {left} bytes follow (at least "
                               f"{record_bytes} each; truncated or corrupt binary model?)")  # fmt: skip
        return n

    def cstring(self) -> str:
        end = self.buf.find(b"\x00", self.pos)
        if end < 0:
            raise DatasetError(f"COLMAP file '{self.path}': unterminated image name at byte {self.pos}")
        s = self.buf[self.pos:end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return s


def read_cameras_binary(path) -> dict[int, ColmapCamera]:
    r = _Reader(Path(path))
    n = r.count(struct.calcsize("<iiQQ"), "cameras")
    cams = {}
    for _ in range(n):
        cam_id, model_id, w, h = r.read("iiQQ")
        if model_id not in CAMERA_MODELS:
            raise _bad(r.path, None, f"camera {cam_id}: unknown camera model id {model_id}")
        name, n_params = CAMERA_MODELS[model_id]
        params = r.array(np.float64, n_params).astype(np.float64)
        cams[cam_id] = ColmapCamera(cam_id, name, int(w), int(h), params)
    return cams


def read_images_binary(path) -> dict[int, ColmapImage]:
    r = _Reader(Path(path))
    n = r.count(struct.calcsize("<idddddddi") + 1 + 8, "images")
    images = {}
    for _ in range(n):
        vals = r.read("idddddddi")
        img_id, q, t, cam_id = vals[0], np.array(vals[1:5]), np.array(vals[5:8]), vals[8]
        name = r.cstring()
        (n2d,) = r.read("Q")
        rec = r.array(np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")]), n2d)
        xys = np.stack([rec["x"], rec["y"]], -1) if n2d else np.zeros((0, 2))
        images[img_id] = ColmapImage(img_id, q, t, cam_id, name, xys, rec["id"].astype(np.int64))
    return images


def read_points3d_binary(path):
    """-> (point_ids [P], xyz [P, 3], rgb [P, 3] uint8, errors [P], tracks list of [L, 2])."""
    r = _Reader(Path(path))
    n = r.count(struct.calcsize("<QdddBBBd") + 8, "points")
    ids = np.empty(n, np.int64)
    xyz = np.empty((n, 3), np.float64)
    rgb = np.empty((n, 3), np.uint8)
    err = np.empty(n, np.float64)
    tracks = []
    for i in range(n):
        vals = r.read("QdddBBBd")
        ids[i], xyz[i], rgb[i], err[i] = vals[0], vals[1:4], vals[4:7], vals[7]
        (tl,) = r.read("Q")
        tracks.append(r.array(np.int32, 2 * tl).astype(np.int64).reshape(-1, 2))
    return ids, xyz, rgb, err, tracks


# ----------------------------------------------------------------------------------------------- model
def _find(folder: Path, stem: str) -> Path | None:
    for ext in (".bin", ".txt"):
        p = folder / (stem + ext)
        if p.is_file():
            return p
    return None


def read_model(folder) -> ColmapModel:
    """Read a COLMAP sparse model from ``folder`` (``*.bin`` preferred over ``*.txt`` when both exist).

    ``points3D`` is optional (an empty point set is returned when it is missing).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"COLMAP model folder '{folder}' does not exist")
    cam_p, img_p, pts_p = _find(folder, "cameras"), _find(folder, "images"), _find(folder, "points3D")
    if cam_p is None or img_p is None:
        raise DatasetError(
            f"COLMAP model folder '{folder}': expected cameras.bin/.txt and images.bin/.txt, found "
            f"{sorted(p.name for p in folder.iterdir())}"
        )
    cams = read_cameras_binary(cam_p) if cam_p.suffix == ".bin" else read_cameras_text(cam_p)
    imgs = read_images_binary(img_p) if img_p.suffix == ".bin" else read_images_text(img_p)
    if pts_p is None:
        pts = (np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros(0), [])
    else:
        pts = read_points3d_binary(pts_p) if pts_p.suffix == ".bin" else read_points3d_text(pts_p)
    for im in imgs.values():
        if im.camera_id not in cams:
            raise DatasetError(f"COLMAP file '{img_p}': image '{im.name}' refers to missing camera {im.camera_id}")
        if not (np.isfinite(im.qvec).all() and np.isfinite(im.tvec).all()) or np.linalg.norm(im.qvec) < 1e-8:
            raise DatasetError(f"COLMAP file '{img_p}': image '{im.name}' has a non-finite or zero pose")
    return ColmapModel(cams, imgs, *pts)


def write_model(model: ColmapModel, folder, binary: bool = True) -> None:
    """Write ``model`` to ``folder`` as ``.bin`` (``binary=True``) or ``.txt`` files, atomically per file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if binary:
        out = [struct.pack("<Q", len(model.cameras))]
        for c in model.cameras.values():
            mid, n = _MODEL_IDS[c.model]
            out.append(struct.pack("<iiQQ", c.id, mid, c.width, c.height) + np.asarray(c.params, "<f8").tobytes())
        with atomic_path(folder / "cameras.bin") as tmp:
            tmp.write_bytes(b"".join(out))
        out = [struct.pack("<Q", len(model.images))]
        for im in model.images.values():
            out.append(struct.pack("<idddddddi", im.id, *im.qvec, *im.tvec, im.camera_id))
            out.append(im.name.encode() + b"\x00" + struct.pack("<Q", len(im.xys)))
            rec = np.zeros(len(im.xys), np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")]))
            if len(im.xys):
                rec["x"], rec["y"], rec["id"] = im.xys[:, 0], im.xys[:, 1], im.point3d_ids
            out.append(rec.tobytes())
        with atomic_path(folder / "images.bin") as tmp:
            tmp.write_bytes(b"".join(out))
        out = [struct.pack("<Q", len(model.point_ids))]
        for i in range(len(model.point_ids)):
            out.append(
                struct.pack("<QdddBBBd", model.point_ids[i], *model.xyz[i], *model.rgb[i], model.errors[i])
                + struct.pack("<Q", len(model.tracks[i]))
                + np.asarray(model.tracks[i], "<i4").tobytes()
            )
        with atomic_path(folder / "points3D.bin") as tmp:
            tmp.write_bytes(b"".join(out))
    else:
        lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
        for c in model.cameras.values():
            lines.append(" ".join([str(c.id), c.model, str(c.width), str(c.height)] + [repr(float(p)) for p in c.params]))
        atomic_write_text(folder / "cameras.txt", "\n".join(lines) + "\n")
        lines = ["# IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME", "#   POINTS2D[] as (X, Y, POINT3D_ID)"]
        for im in model.images.values():
            lines.append(" ".join([str(im.id)] + [repr(float(v)) for v in (*im.qvec, *im.tvec)] + [str(im.camera_id), im.name]))
            lines.append(" ".join(f"{x!r} {y!r} {int(p)}" for (x, y), p in zip(im.xys.tolist(), im.point3d_ids)))
        atomic_write_text(folder / "images.txt", "\n".join(lines) + "\n")
        lines = ["# POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)"]
        for i in range(len(model.point_ids)):
            tr = " ".join(str(int(v)) for v in np.asarray(model.tracks[i]).reshape(-1))
            vals = [str(int(model.point_ids[i]))] + [repr(float(v)) for v in model.xyz[i]]
            vals += [str(int(v)) for v in model.rgb[i]] + [repr(float(model.errors[i]))]
            lines.append(" ".join(vals) + (" " + tr if tr else ""))
        atomic_write_text(folder / "points3D.txt", "\n".join(lines) + "\n")
