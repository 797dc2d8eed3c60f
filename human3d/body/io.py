"""Export of body-model parameters (.npz / .json, smplx names) and meshes (.obj / .ply / .glb via trimesh).

Parameter files hold every parameter as a float array ``[B, D]`` (batch first, flattened, smplx names:
``global_orient``, ``body_pose``, ``betas``, ``transl``, ...; Anny: ``phenotypes`` instead of ``betas``) and
metadata describing the model:

==================  ===================================================================================
key                 value
==================  ===================================================================================
format              ``"human3d.body_params"``; ``version``: 1
model               family: ``"anny"``, ``"smpl"``, ``"smplh"`` or ``"smplx"``
gender              SMPL family: ``"neutral"``, ``"male"`` or ``"female"``
num_betas           SMPL family: number of shape coefficients (``betas`` has that many columns)
phenotype_labels    Anny: names of the ``phenotypes`` columns
joint_names         Anny: bone names; ``body_pose`` holds 3 values per bone of ``joint_names[1:]``
==================  ===================================================================================

JSON: ``{"format": ..., "version": 1, "model": ..., ..., "params": {"body_pose": [[...], ...], ...}}``.
NPZ: one array per parameter plus ``__meta__``, the metadata as a JSON string (loaded with
``allow_pickle=False``: no code can run). All files are written atomically.

``layout="smplx"`` (always for ``.pkl``) writes what smplx users load: only the parameter arrays (float32
``[B, D]``, smplx names), in an ``.npz`` or a protocol-2 ``.pkl`` of a dict of numpy arrays, so that
``model = smplx.create(MODEL_DIR, model_type=..., gender=..., num_betas=..., use_pca=False)`` then
``model(**{k: torch.from_numpy(v) for k, v in params.items()})`` gives the same body (SMPL family only; hand
poses are full axis-angle unless the model used PCA, and smplx's ``flat_hand_mean`` must match the model's).
Files of other tools are read by :mod:`human3d.body.param_formats`.

:func:`export_animation` writes a mesh sequence as one animated ``.glb``: the first frame's mesh (written by
trimesh) with one morph target per frame and a STEP animation of the morph weights, as Blender (shape keys),
three.js and other glTF viewers play it.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from human3d.errors import DatasetError, InvalidInputError, check_file, check_tensor
from human3d.io_utils import atomic_path, atomic_write_bytes, atomic_write_text

__all__ = ["BodyParams", "save_params", "load_params", "read_npz", "export_mesh", "export_animation",
           "PARAM_SUFFIXES", "SMPLX_SUFFIXES", "MESH_SUFFIXES"]  # fmt: skip

FORMAT = "human3d.body_params"
VERSION = 1
PARAM_SUFFIXES = (".npz", ".json")
SMPLX_SUFFIXES = (".npz", ".pkl")  # layout="smplx"
MESH_SUFFIXES = (".obj", ".ply", ".glb")
_META_KEY = "__meta__"
_FAMILIES = ("anny", "smpl", "smplh", "smplx")


@dataclass
class BodyParams:
    """A loaded parameter file."""

    params: dict[str, torch.Tensor]  # name -> [B, D] float32
    model: str  # family: "anny", "smpl", "smplh", "smplx"
    meta: dict[str, Any] = field(default_factory=dict)  # every metadata entry (gender, num_betas, ...)

    @property
    def batch_size(self) -> int:
        return next(iter(self.params.values())).shape[0] if self.params else 0


def _model_meta(model) -> dict[str, Any]:
    family = getattr(model, "family", None)
    if family not in _FAMILIES:
        raise InvalidInputError(f"model: expected a human3d body model of family {list(_FAMILIES)}, got {family!r}")
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "model": family}
    if family == "anny":
        meta["phenotype_labels"] = list(model.phenotype_labels)
        meta["joint_names"] = list(model.joint_names)
    else:
        meta["gender"] = str(getattr(model, "gender", "neutral"))
        meta["num_betas"] = int(model.num_betas)
    return meta


def save_params(path, params: dict[str, torch.Tensor], model, layout: str = "human3d") -> Path:
    """Write ``params`` (name -> tensor ``[B, ...]``) for ``model`` to ``path`` (atomically).

    ``layout="human3d"``: .npz or .json with our metadata; ``layout="smplx"`` (implied by .pkl): .npz / .pkl of the
    bare smplx-named arrays (see the module docstring). Parameters are checked against
    ``model.parameter_shapes()`` first (unknown names, sizes, NaN/inf); missing ones are written with their
    default values, so the file fully determines the body.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        layout = "smplx"
    if layout not in ("human3d", "smplx"):
        raise InvalidInputError(f"layout: expected 'human3d' or 'smplx', got {layout!r}")
    allowed = PARAM_SUFFIXES if layout == "human3d" else SMPLX_SUFFIXES
    if suffix not in allowed:
        raise InvalidInputError(f"path: '{path}' should end with one of {list(allowed)} for the {layout} layout")
    if not isinstance(params, dict):
        raise InvalidInputError(f"params: expected a dict name -> tensor, got {type(params).__name__}")
    meta = _model_meta(model)
    if layout == "smplx" and meta["model"] == "anny":
        raise InvalidInputError("layout='smplx': Anny parameters have no smplx model; use the human3d layout")
    full = model.validate_params(params)  # [B, D] each, defaults filled
    arrays = {k: v.detach().reshape(v.shape[0], -1).to("cpu", torch.float32).numpy() for k, v in full.items()}
    if layout == "smplx":
        if suffix == ".pkl":
            import pickle

            atomic_write_bytes(path, pickle.dumps(arrays, protocol=2))
        else:
            with atomic_path(path) as tmp:
                np.savez(tmp, **arrays)
    elif suffix == ".json":
        doc = dict(meta)
        doc["params"] = {k: a.tolist() for k, a in arrays.items()}
        atomic_write_text(path, json.dumps(doc, indent=1))
    else:
        with atomic_path(path) as tmp:
            np.savez(tmp, **arrays, **{_META_KEY: np.array(json.dumps(meta))})
    return path


def load_params(path, model=None) -> BodyParams:
    """Read a parameter file written by :func:`save_params` (or by hand, same layout).

    Errors (:class:`DatasetError`) name the file and what is wrong: missing file, malformed JSON / NPZ, missing
    keys, non-numeric or ragged arrays, NaN/inf, batch sizes that differ, sizes that contradict the metadata.
    With ``model``, the family must match and every parameter must have the size ``model`` expects.
    """
    path = check_file(path, "params file", PARAM_SUFFIXES, error=DatasetError)
    if path.suffix.lower() == ".json":
        meta, raw = _read_json(path)
    else:
        meta, raw = _read_npz(path)
    family = meta.get("model")
    if family not in _FAMILIES:
        raise DatasetError(f"{path}: 'model' must be one of {list(_FAMILIES)}, got {family!r}")
    if not raw:
        raise DatasetError(f"{path}: no parameters in the file")
    params: dict[str, torch.Tensor] = {}
    batch = None
    for name, value in raw.items():
        if isinstance(value, np.ndarray) and np.iscomplexobj(value):  # (JSON holds no complex numbers)
            raise DatasetError(f"{path}: parameter '{name}' holds complex numbers ({np.asarray(value).dtype}); expected "
                               "real numbers")  # fmt: skip
        try:
            arr = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: parameter '{name}' is not a (rectangular) numeric array ({exc})") from None
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise DatasetError(f"{path}: parameter '{name}' should have shape [B, D], got {arr.shape}")
        if not np.isfinite(arr).all():
            raise DatasetError(f"{path}: parameter '{name}' contains NaN/inf")
        if batch is None:
            batch = arr.shape[0]
        elif arr.shape[0] != batch:
            raise DatasetError(f"{path}: parameter '{name}' has batch size {arr.shape[0]}, others have {batch}")
        params[name] = torch.from_numpy(arr)
    _check_meta_sizes(path, family, meta, params)
    if model is not None:
        _check_against_model(path, family, params, model)
    return BodyParams(params=params, model=family, meta=meta)


def _read_json(path: Path) -> tuple[dict, dict]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: malformed JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise DatasetError(f"{path}: expected a JSON object at the top level, got {type(doc).__name__}")
    for key in ("model", "params"):
        if key not in doc:
            raise DatasetError(f"{path}: missing key '{key}' (expected the layout written by save_params)")
    if not isinstance(doc["params"], dict):
        raise DatasetError(f"{path}: 'params' must be an object name -> [[...]], got {type(doc['params']).__name__}")
    meta = {k: v for k, v in doc.items() if k != "params"}
    return meta, doc["params"]


def read_npz(path: Path, what: str = "params file", error: type = DatasetError) -> dict[str, Any]:
    """Every array of an ``.npz`` (never unpickling). Members holding pickled objects are left out and listed
    under the key ``"__unreadable__"``; a file that is not a zip of ``.npy`` members raises ``error`` saying so."""
    expected = "expected a zip archive of .npy arrays, as written by numpy.savez"
    try:
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError):
        raise error(f"{what} '{path}': not a valid .npz file ({expected})") from None
    except ValueError:  # neither zip nor .npy: numpy would try to unpickle it, which we refuse
        raise error(f"{what} '{path}': not a valid .npz file ({expected}; pickled data is refused)") from None
    if not hasattr(npz, "files"):
        raise error(f"{what} '{path}': holds a single .npy array; {expected}")
    out: dict[str, Any] = {}
    unreadable = []
    with npz:
        for key in npz.files:
            try:
                out[key] = npz[key]
            except ValueError:  # an object array: would need pickle
                unreadable.append(key)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise error(f"{what} '{path}': member '{key}' is corrupt ({type(exc).__name__}: {exc})") from None
    if unreadable:
        out["__unreadable__"] = unreadable
    return out


def _read_npz(path: Path) -> tuple[dict, dict]:
    arrays = read_npz(path)
    if "__unreadable__" in arrays:
        raise DatasetError(f"{path}: members {arrays['__unreadable__']} hold pickled Python objects, which are "
                           "refused; expected numeric arrays")  # fmt: skip
    if _META_KEY not in arrays:
        raise DatasetError(
            f"{path}: missing key '{_META_KEY}' (expected the layout written by save_params; files of other tools - "
            "smplx names, SMPLify-X, AMASS, 4D-Humans - are read by human3d.body.param_formats.read_params)"
        )
    try:
        meta = json.loads(str(arrays.pop(_META_KEY)))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: '{_META_KEY}' is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: '{_META_KEY}' must be a JSON object")
    return meta, arrays


def _check_meta_sizes(path: Path, family: str, meta: dict, params: dict[str, torch.Tensor]) -> None:
    def size(name):
        return params[name].shape[1] if name in params else None

    for name in ("global_orient", "transl"):
        if size(name) not in (None, 3):
            raise DatasetError(f"{path}: '{name}' should have 3 values per sample, got {size(name)}")
    if size("body_pose") is not None and size("body_pose") % 3:
        raise DatasetError(f"{path}: 'body_pose' should hold 3 values per joint, got {size('body_pose')}")
    if family == "anny":
        labels = meta.get("phenotype_labels")
        if labels is not None and size("phenotypes") not in (None, len(labels)):
            raise DatasetError(
                f"{path}: 'phenotypes' has {size('phenotypes')} columns but phenotype_labels lists {len(labels)}"
            )
        names = meta.get("joint_names")
        if names is not None and size("body_pose") not in (None, 3 * (len(names) - 1)):
            raise DatasetError(
                f"{path}: 'body_pose' has {size('body_pose')} values but joint_names implies {3 * (len(names) - 1)}"
            )
    else:
        nb = meta.get("num_betas")
        if nb is not None and size("betas") not in (None, int(nb)):
            raise DatasetError(f"{path}: 'betas' has {size('betas')} columns but num_betas is {nb}")


def _check_against_model(path: Path, family: str, params: dict[str, torch.Tensor], model) -> None:
    if getattr(model, "family", None) != family:
        raise DatasetError(f"{path}: parameters are for model '{family}', not '{getattr(model, 'family', None)}'")
    shapes = model.parameter_shapes()
    for name, value in params.items():
        if name not in shapes:
            raise DatasetError(f"{path}: parameter '{name}' is unknown to this {family} model ({sorted(shapes)})")
        want = int(np.prod(shapes[name])) if shapes[name] else 1
        if value.shape[1] != want:
            raise DatasetError(f"{path}: parameter '{name}' has {value.shape[1]} values, this model expects {want}")


def export_mesh(path, vertices: torch.Tensor, faces: torch.Tensor) -> Path:
    """Write one mesh (vertices [V, 3] or [1, V, 3], faces [F, 3]) as .obj, .ply or .glb (by suffix), atomically.

    Vertices are written as given (no merging or re-ordering), so vertex indices stay those of the model.
    """
    import trimesh

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise InvalidInputError(f"path: '{path}' should end with one of {list(MESH_SUFFIXES)}")
    v = torch.as_tensor(vertices)
    if v.dim() == 3 and v.shape[0] == 1:
        v = v[0]
    check_tensor(v, "vertices", (None, 3))
    f = torch.as_tensor(faces)
    check_tensor(f, "faces", (None, 3))
    if f.is_floating_point():
        raise InvalidInputError(f"faces: expected integer indices, got {f.dtype}")
    if f.numel() and (int(f.min()) < 0 or int(f.max()) >= v.shape[0]):
        raise InvalidInputError(
            f"faces: indices must lie in [0, {v.shape[0] - 1}], got [{int(f.min())}, {int(f.max())}]"
        )
    mesh = trimesh.Trimesh(
        vertices=v.detach().cpu().double().numpy(), faces=f.detach().cpu().long().numpy(), process=False
    )
    with atomic_path(path) as tmp:
        mesh.export(tmp, file_type=suffix[1:])
    return path


_GLB_JSON, _GLB_BIN = 0x4E4F534A, 0x004E4942


def _glb_chunks(blob: bytes) -> tuple[dict, bytes]:
    import struct

    magic, _, _ = struct.unpack_from("<III", blob, 0)
    if magic != 0x46546C67:
        raise InvalidInputError("export_animation: trimesh did not write a GLB")
    pos, doc, binary = 12, None, b""
    while pos < len(blob):
        length, kind = struct.unpack_from("<II", blob, pos)
        data = blob[pos + 8 : pos + 8 + length]
        if kind == _GLB_JSON:
            doc = json.loads(data.decode("utf-8"))
        elif kind == _GLB_BIN:
            binary = bytes(data)
        pos += 8 + length
    return doc, binary


def _glb_bytes(doc: dict, binary: bytes) -> bytes:
    import struct

    js = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return (struct.pack("<III", 0x46546C67, 2, total) + struct.pack("<II", len(js), _GLB_JSON) + js
            + struct.pack("<II", len(binary), _GLB_BIN) + binary)  # fmt: skip


def export_animation(path, vertices: torch.Tensor, faces: torch.Tensor, fps: float = 30.0, z_up: bool = False) -> Path:
    """Write a mesh sequence (vertices [T, V, 3], faces [F, 3], one topology) as one animated ``.glb`` (atomically).

    The base mesh is frame 0 (written by trimesh, no normals: viewers shade the morphed surface); frame ``t`` is
    morph target ``t`` (POSITION offsets from frame 0) shown alone from time ``t / fps`` s (STEP interpolation of
    the mesh weights). glTF is Y-up in metres; ``z_up=True`` (AMASS's world) adds a node rotation of -90 degrees
    about X so viewers show the body upright, leaving the vertex data unchanged.
    """
    import trimesh

    path = Path(path)
    if path.suffix.lower() != ".glb":
        raise InvalidInputError(f"path: '{path}' should end with .glb (an animated glTF binary)")
    v = torch.as_tensor(vertices).detach().cpu().float()
    check_tensor(v, "vertices", (None, None, 3))
    f = torch.as_tensor(faces).detach().cpu()
    check_tensor(f, "faces", (None, 3))
    if not (fps > 0 and np.isfinite(fps)):
        raise InvalidInputError(f"fps: expected a positive number, got {fps}")
    T, V = v.shape[0], v.shape[1]
    if T < 1:
        raise InvalidInputError("vertices: expected at least one frame")
    base = v[0].numpy()
    mesh = trimesh.Trimesh(vertices=base.astype(np.float64), faces=f.long().numpy(), process=False)
    doc, binary = _glb_chunks(trimesh.exchange.gltf.export_glb(trimesh.Scene(mesh), include_normals=False))
    buffer = bytearray(binary)
    buffer += b"\0" * (-len(buffer) % 4)

    def add(array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        data = np.ascontiguousarray(array, dtype="<f4")
        view = {"buffer": 0, "byteOffset": len(buffer), "byteLength": data.nbytes}
        if target is not None:
            view["target"] = target
        doc.setdefault("bufferViews", []).append(view)
        buffer.extend(data.tobytes())
        count = data.shape[0] if data.ndim > 1 or kind == "SCALAR" else data.size
        acc = {"bufferView": len(doc["bufferViews"]) - 1, "componentType": 5126, "count": int(count), "type": kind}
        if bounds:
            flat = data.reshape(int(count), -1)
            acc["min"] = flat.min(0).astype(float).tolist()
            acc["max"] = flat.max(0).astype(float).tolist()
        doc.setdefault("accessors", []).append(acc)
        return len(doc["accessors"]) - 1

    deltas = (v - v[:1]).numpy()  # [T, V, 3]
    prim = doc["meshes"][0]["primitives"][0]
    prim["targets"] = [{"POSITION": add(deltas[t], "VEC3", 34962, bounds=True)} for t in range(T)]
    doc["meshes"][0]["weights"] = [1.0] + [0.0] * (T - 1)
    node = next(i for i, n in enumerate(doc["nodes"]) if n.get("mesh") == 0)
    if z_up:
        doc["nodes"][node]["rotation"] = [-float(np.sqrt(0.5)), 0.0, 0.0, float(np.sqrt(0.5))]  # xyzw
    times = add(np.arange(T, dtype=np.float64) / float(fps), "SCALAR", bounds=True)
    weights = add(np.eye(T, dtype=np.float32).reshape(-1), "SCALAR")  # T keyframes x T weights, one-hot
    doc["animations"] = [{"name": "sequence", "samplers": [{"input": times, "output": weights, "interpolation": "STEP"}],
                          "channels": [{"sampler": 0, "target": {"node": node, "path": "weights"}}]}]  # fmt: skip
    doc["buffers"] = [{"byteLength": len(buffer)}]
    atomic_write_bytes(path, _glb_bytes(doc, bytes(buffer)))
    return path
