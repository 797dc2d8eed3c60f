"""Body parameters written by other tools, read without human3d's metadata (:func:`read_params`).

=============  ==========================================================================================
layout         what is read
=============  ==========================================================================================
human3d        our own files (:func:`human3d.body.io.save_params`, with ``__meta__`` / ``"format"``)
smplx names    ``.npz`` / ``.json`` / ``.pkl`` holding smplx-named arrays (``global_orient``, ``body_pose``,
               ``betas``, ``transl``, ``left_hand_pose`` ... ``expression``), as smplx users and most fitting
               codes write them: axis-angle ``[B, 3K]`` / ``[3K]``, or rotation matrices ``[B, K, 3, 3]``
SMPLify-X      its result ``.pkl`` (``camera_rotation`` [1, 3, 3], ``camera_translation`` [1, 3], the body
               model's parameters; hand poses as its PCA coefficients, 12 by default); a VPoser latent
               ``body_pose`` (32 values) is refused: it needs VPoser to decode
AMASS          ``.npz`` with ``poses`` [N, 156] (SMPL-H: root 3, body 63, hands 90) or [N, 165] (SMPL-X: root
               3, body 63, jaw 3, eyes 6, hands 90), ``betas`` [16], ``trans`` [N, 3], ``gender``,
               ``mocap_framerate``; AMASS hand poses are full axis-angle *without* the hand mean
4D-Humans      HMR2 / PHALP per-person dicts (``.pkl`` / ``.npz``) of rotation matrices: ``global_orient``
               [1, 3, 3], ``body_pose`` [23, 3, 3], ``betas`` [10]; also under ``pred_smpl_params`` or
               ``smpl``, or a list of such dicts (one body each)
=============  ==========================================================================================

Conventions: axis-angle in radians, metres, smplx's world frame; rotation matrices are converted to axis-angle
(they must be rotations: orthonormal, det +1). The model family is inferred from what the file says (AMASS pose
width or ``surface_model_type``, face / hand parameters, ``body_pose`` width 69 = SMPL); where it cannot be told
(``body_pose`` of 63 values without hands: SMPL-H or SMPL-X) the caller must name it. ``meta`` carries
``num_betas`` (width of ``betas``), ``num_expression_coeffs`` (width of ``expression``), ``gender`` (when the file
has one), ``num_pca_comps`` (hand poses that are not 45 wide), ``flat_hand_mean`` (True for AMASS), ``fps`` (AMASS), ``camera`` (SMPLify-X) and ``format``.
``.pkl`` files go through the restricted unpickler (:mod:`human3d.body.safe_pickle`); ``.npz`` never unpickles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from human3d.body.io import BodyParams, load_params, read_npz
from human3d.errors import DatasetError, ModelFileError, check_file

__all__ = ["read_params", "read_npz", "adapt_params", "FOREIGN_SUFFIXES", "PARAM_NAMES"]

FOREIGN_SUFFIXES = (".npz", ".json", ".pkl")
#: smplx parameter names and their number of joints (3 values each in axis-angle); None: not a rotation
PARAM_NAMES = {
    "global_orient": 1, "body_pose": None, "betas": None, "transl": None, "left_hand_pose": 15,
    "right_hand_pose": 15, "jaw_pose": 1, "leye_pose": 1, "reye_pose": 1, "expression": None,
}  # fmt: skip
_BODY_JOINTS = {"smpl": 23, "smplh": 21, "smplx": 21}
_FAMILY_PARAMS = {
    "smpl": ("global_orient", "body_pose", "betas", "transl"),
    "smplh": ("global_orient", "body_pose", "betas", "transl", "left_hand_pose", "right_hand_pose"),
    "smplx": tuple(PARAM_NAMES),
}
# AMASS ``poses`` columns (start, width) per family, from the AMASS / human_body_prior layout
AMASS_LAYOUT = {
    156: ("smplh", {"global_orient": (0, 3), "body_pose": (3, 63), "left_hand_pose": (66, 45),
                    "right_hand_pose": (111, 45)}),
    165: ("smplx", {"global_orient": (0, 3), "body_pose": (3, 63), "jaw_pose": (66, 3), "leye_pose": (69, 3),
                    "reye_pose": (72, 3), "left_hand_pose": (75, 45), "right_hand_pose": (120, 45)}),
}  # fmt: skip


# ---- raw containers ------------------------------------------------------------------------------------------------
def _read_raw(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_npz(path)
    if suffix == ".json":
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"params file '{path}': malformed JSON ({exc})") from None
    from human3d.body.safe_pickle import UnsafePickleError, load_pickle

    try:
        return load_pickle(path)
    except UnsafePickleError:
        raise
    except ModelFileError as exc:
        raise DatasetError(f"{str(exc).replace('model pickle', 'parameter pickle')}; expected a pickled dict of numpy "
                           "arrays (or use .npz / .json)") from None  # fmt: skip


def _is_ours(raw: Any) -> bool:
    return isinstance(raw, dict) and ("__meta__" in raw or raw.get("format") == "human3d.body_params"
                                      or ("model" in raw and isinstance(raw.get("params"), dict)))  # fmt: skip


def _unwrap(raw: Any, path: Path) -> tuple[list[dict], str]:
    """The per-body dict(s) of a file: a dict, ``pred_smpl_params`` / ``smpl`` / ``smpl_params`` inside it, or a
    list of dicts (4D-Humans per-person results)."""
    what = "a JSON object" if path.suffix.lower() == ".json" else "a dict of parameter arrays"
    if isinstance(raw, (list, tuple)):
        if not raw or not all(isinstance(r, dict) for r in raw):
            raise DatasetError(f"params file '{path}': expected {what} (or a list of them, one per body), got a "
                               f"{type(raw).__name__} of {type(raw[0]).__name__ if raw else 'nothing'}")  # fmt: skip
        items = [_unwrap(r, path)[0][0] for r in raw]
        return items, "list"
    if not isinstance(raw, dict):
        raise DatasetError(f"params file '{path}': expected {what}, got {type(raw).__name__}")
    for key in ("pred_smpl_params", "smpl_params", "smpl"):
        if isinstance(raw.get(key), (dict, list, tuple)) and "body_pose" not in raw:
            return _unwrap(raw[key], path)
    return [raw], "dict"


def _array(value, name: str, path: Path) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"params file '{path}': '{name}' is not a (rectangular) numeric array") from None
    if not np.isfinite(arr).all():
        raise DatasetError(f"params file '{path}': '{name}' contains NaN/inf")
    return arr


def _rotmat_to_axis_angle(R: np.ndarray, name: str, path: Path) -> np.ndarray:
    """[M, 3, 3] rotation matrices -> [M, 3] axis-angle; refuses matrices that are not rotations."""
    from human3d.geometry.rotations import matrix_to_axis_angle

    err = np.abs(R @ np.swapaxes(R, -1, -2) - np.eye(3)).max(initial=0.0)
    det = np.linalg.det(R) if len(R) else np.ones(0)
    if err > 1e-3 or (det < 0).any():
        raise DatasetError(
            f"params file '{path}': '{name}' holds 3x3 matrices that are not rotations (max |R R^T - I| = "
            f"{err:.2g}, min det {det.min():.3g}); expected rotation matrices or axis-angle"
        )
    return matrix_to_axis_angle(torch.from_numpy(R)).numpy()


def _to_rows(arr: np.ndarray, name: str, path: Path) -> np.ndarray:
    """One parameter -> [B, D] axis-angle (rotation matrices converted; a missing batch axis added)."""
    joints = PARAM_NAMES[name]
    if arr.ndim >= 2 and arr.shape[-2:] == (3, 3) and name not in ("betas", "transl", "expression"):
        lead = arr.shape[:-2]
        if joints == 1:  # [3,3], [B,3,3] or [B,1,3,3]
            batch = int(np.prod(lead[:1])) if lead else 1
        else:  # [K,3,3] (one body) or [B,K,3,3]
            batch = lead[0] if len(lead) >= 2 else 1
        aa = _rotmat_to_axis_angle(arr.reshape(-1, 3, 3), name, path)
        return aa.reshape(batch, -1)
    if arr.ndim == 0:
        raise DatasetError(f"params file '{path}': '{name}' is a scalar; expected an array")
    if arr.ndim == 1:
        return arr[None]
    return arr.reshape(arr.shape[0], -1)


def _stack_bodies(bodies: list[dict[str, np.ndarray]], path: Path) -> dict[str, np.ndarray]:
    """Rows of every body -> one batch; single-row parameters (shared ``betas``) are broadcast."""
    names = [n for n in PARAM_NAMES if any(n in b for b in bodies)]
    out = {}
    for n in names:
        rows = [b[n] for b in bodies if n in b]
        if len(rows) != len(bodies):
            raise DatasetError(f"params file '{path}': '{n}' is given for {len(rows)} of {len(bodies)} bodies")
        widths = {r.shape[1] for r in rows}
        if len(widths) > 1:
            raise DatasetError(f"params file '{path}': '{n}' has different widths across bodies ({sorted(widths)})")
        out[n] = np.concatenate(rows, 0)
    batch = max(a.shape[0] for a in out.values())
    for n, a in out.items():
        if a.shape[0] == 1 and batch > 1:
            out[n] = np.repeat(a, batch, 0)
        elif a.shape[0] != batch:
            raise DatasetError(f"params file '{path}': '{n}' has {a.shape[0]} rows, others have {batch}")
    return out


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin1")
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "US" or value.size != 1:
            return None
        value = value.reshape(()).item()
        value = value.decode("latin1") if isinstance(value, bytes) else value
    return value if isinstance(value, str) else None


def _gender(value) -> str | None:
    g = (_text(value) or "").strip().lower()
    return {"m": "male", "f": "female", "n": "neutral"}.get(g, g) if g in ("male", "female", "neutral", "m", "f", "n") else None


# ---- layouts -------------------------------------------------------------------------------------------------------
def _amass(d: dict, path: Path) -> tuple[dict, str, dict]:
    poses = _array(d["poses"], "poses", path)
    if poses.ndim == 1:
        poses = poses[None]
    width = poses.shape[-1]
    smt = (_text(d.get("surface_model_type")) or "").lower().replace("-", "").replace("+", "")
    if width not in AMASS_LAYOUT:
        raise DatasetError(
            f"params file '{path}': AMASS 'poses' has {width} columns; expected 156 (SMPL-H: root 3, body 63, "
            "hands 90) or 165 (SMPL-X: root 3, body 63, jaw 3, eyes 6, hands 90)"
        )
    family, cols = AMASS_LAYOUT[width]
    if smt in _FAMILY_PARAMS and smt != family:
        raise DatasetError(f"params file '{path}': surface_model_type is '{smt}' but 'poses' has {width} columns "
                           f"({family})")  # fmt: skip
    n = poses.shape[0]
    params = {k: poses[:, a : a + w] for k, (a, w) in cols.items()}
    if "trans" in d:
        trans = _array(d["trans"], "trans", path).reshape(-1, 3)
        if trans.shape[0] != n:
            raise DatasetError(f"params file '{path}': 'trans' has {trans.shape[0]} frames, 'poses' has {n}")
        params["transl"] = trans
    if "betas" in d:
        betas = _array(d["betas"], "betas", path)
        betas = betas.reshape(1, -1) if betas.ndim <= 1 else betas
        if "num_betas" in d:  # AMASS SMPL-X files store the betas used
            nb = int(_array(d["num_betas"], "num_betas", path).reshape(-1)[0])
            betas = betas[:, :nb]
        params["betas"] = np.repeat(betas, n, 0) if betas.shape[0] == 1 else betas
    meta: dict[str, Any] = {"format": "amass", "flat_hand_mean": True}
    for key in ("mocap_framerate", "mocap_frame_rate"):
        if key in d:
            meta["fps"] = float(_array(d[key], key, path).reshape(-1)[0])
    g = _gender(d.get("gender"))
    if g:
        meta["gender"] = g
    return params, family, meta


def _named(bodies: list[dict], path: Path, fmt: str) -> tuple[dict, str | None, dict]:
    rows = []
    for b in bodies:
        rows.append({n: _to_rows(_array(b[n], n, path), n, path) for n in PARAM_NAMES if n in b and b[n] is not None})
    if not any(rows):
        found = sorted(str(k) for b in bodies for k in b)[:12]
        raise DatasetError(
            f"params file '{path}': no body parameters found (keys {found}); expected human3d's layout, smplx-named "
            "arrays (global_orient, body_pose, betas, transl, ...), an SMPLify-X result, an AMASS .npz (poses, "
            "trans, betas) or 4D-Humans rotation matrices"
        )
    params = _stack_bodies(rows, path)
    meta: dict[str, Any] = {"format": fmt}
    g = _gender(bodies[0].get("gender"))
    if g:
        meta["gender"] = g
    bp = params.get("body_pose")
    if bp is not None and bp.shape[1] == 32:
        raise DatasetError(
            f"params file '{path}': 'body_pose' has 32 values: a VPoser latent code (SMPLify-X run with "
            "use_vposer), which needs VPoser (human_body_prior) to decode; save the decoded axis-angle body_pose "
            "(63 values, 69 for SMPL) instead"
        )
    if fmt == "smplify-x":
        meta["camera"] = {
            k: _array(bodies[0][f"camera_{k}"], f"camera_{k}", path).reshape(-1).tolist()
            for k in ("rotation", "translation") if f"camera_{k}" in bodies[0]
        }  # fmt: skip
    return params, _infer_family(params), meta


def _infer_family(params: dict[str, np.ndarray]) -> str | None:
    if any(k in params for k in ("jaw_pose", "leye_pose", "reye_pose", "expression")):
        return "smplx"
    bp = params.get("body_pose")
    if bp is not None and bp.shape[1] == 69:
        return "smpl"
    if "left_hand_pose" in params or "right_hand_pose" in params:
        return "smplh"
    return None  # 63-wide body pose alone (SMPL-H or SMPL-X), or no body pose: the caller must say


def read_params(path, model: str | None = None) -> BodyParams:
    """Read body parameters of any layout above -> :class:`~human3d.body.io.BodyParams` (``[B, D]`` float32).

    ``model`` ("smpl", "smplh", "smplx", "anny") overrides the inferred family; parameters are then
    adapted to it (:func:`adapt_params`). Without it, a file whose family cannot be told raises
    :class:`DatasetError` asking for the model. AMASS frames are the batch rows.
    """
    path = check_file(path, "params file", FOREIGN_SUFFIXES, error=DatasetError)
    raw = _read_raw(path)
    if _is_ours(raw):
        loaded = load_params(path)
        if model is not None and str(model).lower() != loaded.model:
            raise DatasetError(f"params file '{path}': parameters are for model '{loaded.model}', not '{model}'")
        return loaded
    bodies, _ = _unwrap(raw, path)
    first = bodies[0]
    if "poses" in first and ("trans" in first or "mocap_framerate" in first or "mocap_frame_rate" in first):
        params, family, meta = _amass(first, path)
    else:
        fmt = "smplify-x" if any(str(k).startswith("camera_") for k in first) else "smplx"
        if any(isinstance(first.get(k), np.ndarray) and first[k].shape[-2:] == (3, 3) and k in PARAM_NAMES
               for k in ("global_orient", "body_pose")):  # fmt: skip
            fmt = "4d-humans" if fmt == "smplx" else fmt
        params, family, meta = _named(bodies, path, fmt)
    if "betas" in params:
        meta["num_betas"] = int(params["betas"].shape[1])
    if "expression" in params:
        meta["num_expression_coeffs"] = int(params["expression"].shape[1])
    hands = [params[k].shape[1] for k in ("left_hand_pose", "right_hand_pose") if k in params]
    if hands and hands[0] != 45:
        if len(set(hands)) > 1:
            raise DatasetError(f"params file '{path}': left and right hand poses differ in width ({hands})")
        meta["num_pca_comps"] = hands[0]
    if model is not None:
        family = adapt_params(params, str(model).lower(), path)
    elif family is None:
        raise DatasetError(
            f"params file '{path}': cannot tell the body model: 'body_pose' has "
            f"{params['body_pose'].shape[1] if 'body_pose' in params else 'no'} values and there are no hand or "
            "face parameters (SMPL-H or SMPL-X); name the model (--model smplh / smplx)"
        )
    meta["model"] = family
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in params.items()}
    return BodyParams(params=tensors, model=family, meta=meta)


def adapt_params(params: dict[str, np.ndarray], family: str, path) -> str:
    """Fit ``params`` (in place) to ``family``: drop parameters the family lacks (SMPL from SMPL-H / SMPL-X: the
    hands and face go), and convert ``body_pose`` between SMPL's 23 joints and SMPL-H / SMPL-X's 21 (SMPL's two
    hand joints are zero / dropped). Returns ``family``; raises :class:`DatasetError` when it does not fit."""
    if family not in _FAMILY_PARAMS:
        raise DatasetError(f"params file '{path}': model '{family}' cannot use SMPL-family parameters "
                           f"(expected one of {sorted(_FAMILY_PARAMS)})")  # fmt: skip
    for k in list(params):
        if k not in _FAMILY_PARAMS[family]:
            params.pop(k)
    bp = params.get("body_pose")
    if bp is not None:
        want = 3 * _BODY_JOINTS[family]
        if bp.shape[1] == 63 and want == 69:
            params["body_pose"] = np.concatenate([bp, np.zeros((bp.shape[0], 6))], 1)
        elif bp.shape[1] == 69 and want == 63:
            params["body_pose"] = bp[:, :63]
        elif bp.shape[1] != want:
            raise DatasetError(f"params file '{path}': 'body_pose' has {bp.shape[1]} values; {family} expects {want}")
    return family
