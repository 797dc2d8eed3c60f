"""The standard 3D Gaussian splatting ``.ply`` format (Inria 3DGS; read by common splat viewers).

Written as binary little-endian (what the reference code and viewers read), one ``vertex`` element with float32
properties, in this order::

    x y z nx ny nz f_dc_0..2 f_rest_0..(3(K-1)-1) opacity scale_0..2 rot_0..3

Values are stored *before* activation, as the reference implementation: ``opacity`` is a logit, ``scale_*``
are log standard deviations, ``rot_*`` an unnormalised WXYZ quaternion, ``f_dc``/``f_rest`` SH coefficients.
``f_rest`` is channel-major: property ``f_rest_{c * (K - 1) + k}`` holds channel c of the (k+1)-th SH basis
(the reference's ``features_rest.transpose(1, 2).flatten(1)``). Normals are written as zeros and ignored.

:func:`load_ply` also reads ``ascii`` and ``binary_big_endian`` files (many tools write ASCII PLY), any numeric
property types, property orders and extra properties; only the names above matter.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from human3d.errors import ModelFileError, check_file
from human3d.io_utils import atomic_path
from human3d.splat.gaussians import Gaussians

__all__ = ["save_ply", "load_ply", "ply_attribute_names"]

_FORMATS = ("binary_little_endian", "binary_big_endian", "ascii")

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def ply_attribute_names(num_sh_rest: int) -> list[str]:
    """Property names in file order for ``num_sh_rest`` higher-order SH bases (0, 3, 8 or 15)."""
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(3 * num_sh_rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return names


def save_ply(gaussians: Gaussians, path) -> Path:
    """Write ``gaussians`` to ``path`` (atomically) in the standard 3DGS ``.ply`` layout."""
    gaussians.check_finite("save_ply")
    n = len(gaussians)
    t = {k: v.detach().float().cpu() for k, v in gaussians.tensors().items()}
    k_rest = t["sh_rest"].shape[1]
    cols = [
        t["means"],
        torch.zeros(n, 3),
        t["sh_dc"].transpose(1, 2).reshape(n, 3),
        t["sh_rest"].transpose(1, 2).reshape(n, 3 * k_rest),
        t["opacity_logits"].reshape(n, 1),
        t["log_scales"],
        t["quats"],
    ]
    data = torch.cat(cols, dim=1).numpy().astype("<f4")  # [N, F]
    names = ply_attribute_names(k_rest)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property float {name}" for name in names]
    header += ["end_header"]
    blob = ("\n".join(header) + "\n").encode("ascii") + np.ascontiguousarray(data).tobytes()
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)
    return path


def _read_header(f, path: Path):
    first = f.readline()
    if first.strip() != b"ply":
        raise ModelFileError(f"splat file '{path}': not a PLY file (first line {first[:20]!r})")
    fmt, elements = None, []
    while True:
        line = f.readline()
        if not line:
            raise ModelFileError(f"splat file '{path}': truncated header (no 'end_header')")
        parts = line.decode("ascii", errors="replace").split()
        if not parts or parts[0] in ("comment", "obj_info"):
            continue
        if parts[0] == "end_header":
            break
        if parts[0] == "format":
            fmt = parts[1] if len(parts) > 1 else None
        elif parts[0] == "element":
            if len(parts) != 3 or not parts[2].isdigit():
                raise ModelFileError(f"splat file '{path}': malformed element line {line.strip()!r}")
            elements.append((parts[1], int(parts[2]), []))
        elif parts[0] == "property":
            if not elements:
                raise ModelFileError(f"splat file '{path}': property before any element")
            if len(parts) >= 2 and parts[1] == "list":
                raise ModelFileError(f"splat file '{path}': list properties are not supported in a splat file")
            if len(parts) != 3 or parts[1] not in _PLY_TYPES:
                raise ModelFileError(f"splat file '{path}': unsupported property line {line.strip()!r}")
            elements[-1][2].append((parts[2], _PLY_TYPES[parts[1]]))
    if fmt not in _FORMATS:
        raise ModelFileError(f"splat file '{path}': format '{fmt}' is not a PLY format (expected one of {_FORMATS})")
    return fmt, elements


def _read_vertex_binary(path: Path, offset: int, elements, byteorder: str) -> np.ndarray | None:
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=offset) if path.stat().st_size > offset else np.zeros(0, np.uint8)
    pos = 0
    for name, count, props in elements:
        dtype = np.dtype([(p, byteorder + t) for p, t in props])
        nbytes = dtype.itemsize * count
        if pos + nbytes > raw.size:
            raise ModelFileError(
                f"splat file '{path}': truncated ({raw.size} data bytes, element '{name}' needs {pos + nbytes})"
            )
        if name == "vertex":
            return np.frombuffer(raw[pos : pos + nbytes].tobytes(), dtype=dtype, count=count).astype(dtype.newbyteorder("="))
        pos += nbytes
    return None


def _read_vertex_ascii(path: Path, offset: int, elements) -> np.ndarray | None:
    with open(path, "rb") as f:
        f.seek(offset)
        text = f.read().decode("ascii", errors="replace")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # older numpy warns where it stops at a non-number
            values = np.fromstring(text, dtype=np.float64, sep=" ")  # numpy's C parser, ~3x np.array(tokens)
    except ValueError:  # newer numpy: a token that is not a number
        values = None
    if values is None or values.size < sum(c * len(p) for _, c, p in elements):
        bad = next((t for t in text.split() if not _is_number(t)), None)
        if bad is not None:
            raise ModelFileError(f"splat file '{path}': non-numeric value {bad[:20]!r} in the data")
        if values is None:
            raise ModelFileError(f"splat file '{path}': the ASCII data is not whitespace-separated numbers")
    pos = 0
    for name, count, props in elements:
        n = count * len(props)
        if pos + n > values.size:
            raise ModelFileError(
                f"splat file '{path}': truncated ({values.size - pos} values left, element '{name}' needs "
                f"{count} rows x {len(props)} properties = {n})"
            )
        if name == "vertex":
            table = values[pos : pos + n].reshape(count, len(props))
            out = np.empty(count, dtype=[(p, t) for p, t in props])
            for i, (p, _) in enumerate(props):
                out[p] = table[:, i]
            return out
        pos += n
    return None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def load_ply(path, device=None) -> Gaussians:
    """Read a standard 3DGS ``.ply`` (binary little/big-endian or ASCII) into :class:`Gaussians`.

    Raises :class:`~human3d.errors.ModelFileError` for a missing or unreadable file, a truncated file, missing
    properties (all are named), an f_rest count that is not 0, 9, 24 or 45, or NaN/inf values.
    """
    path = check_file(path, "splat file", (".ply",), error=ModelFileError)
    with open(path, "rb") as f:
        fmt, elements = _read_header(f, path)
        offset = f.tell()
    if fmt == "ascii":
        vertex = _read_vertex_ascii(path, offset, elements)
    else:
        vertex = _read_vertex_binary(path, offset, elements, "<" if fmt == "binary_little_endian" else ">")
    if vertex is None:
        raise ModelFileError(f"splat file '{path}': no 'vertex' element")
    fields = set(vertex.dtype.names or ())
    rest = sorted((p for p in fields if p.startswith("f_rest_")), key=lambda p: int(p.split("_")[-1]))
    n_rest = len(rest)
    if n_rest not in (0, 9, 24, 45):
        raise ModelFileError(
            f"splat file '{path}': {n_rest} f_rest_* properties; expected 0, 9, 24 or 45 (SH degree 0..3)"
        )
    required = [nm for nm in ply_attribute_names(n_rest // 3) if nm not in ("nx", "ny", "nz")]
    missing = [nm for nm in required if nm not in fields]
    if missing:
        raise ModelFileError(f"splat file '{path}': missing properties {missing}")
    n = vertex.shape[0]
    if n == 0:
        raise ModelFileError(f"splat file '{path}': contains no Gaussians")

    def cols(names):
        return torch.from_numpy(np.stack([vertex[nm].astype(np.float32) for nm in names], axis=1))

    bad = [nm for nm in required if not np.isfinite(vertex[nm]).all()]
    if bad:
        raise ModelFileError(f"splat file '{path}': NaN/inf values in properties {bad[:8]}{' ...' if len(bad) > 8 else ''}")
    k_rest = n_rest // 3
    means = cols(["x", "y", "z"])
    sh_dc = cols(["f_dc_0", "f_dc_1", "f_dc_2"]).reshape(n, 3, 1).transpose(1, 2)
    sh_rest = (cols(rest).reshape(n, 3, k_rest).transpose(1, 2) if k_rest else torch.zeros(n, 0, 3))
    opacity = cols(["opacity"])[:, 0]
    log_scales = cols(["scale_0", "scale_1", "scale_2"])
    quats = cols(["rot_0", "rot_1", "rot_2", "rot_3"])
    if bool((quats.norm(dim=-1) == 0).any()):
        raise ModelFileError(f"splat file '{path}': {int((quats.norm(dim=-1) == 0).sum())} zero rotation quaternion(s)")
    g = Gaussians(means, log_scales, quats, opacity, sh_dc.contiguous(), sh_rest.contiguous())
    return g.to(device) if device is not None else g
