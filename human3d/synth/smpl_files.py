"""Synthetic ground truth for the SMPL family: structurally valid random SMPL / SMPL-H / SMPL-X model files (the
real ones are licensed, never in the repo), for tests, benchmarks and ``tools/gpu_check.py``.

The arrays have the official shapes and kinematic trees; values are random but plausible: vertices are blobs
around a T-posed skeleton, skinning weights and the (sparse) joint regressor rows sum to one, blend-shape bases
are small. smplx reads the pickles (and the SMPL-H/X ``.npz``), so it serves as the oracle on the same file.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from human3d.io_utils import atomic_path

__all__ = ["SMPL_PARENTS", "SMPLH_PARENTS", "SMPLX_PARENTS", "make_model_data", "make_model_from_anny", "write_npz",
           "write_pickle"]  # fmt: skip

# Parents of the official kinematic trees.
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
_BODY22 = SMPL_PARENTS[:22]


def _hand_parents(first: int) -> list[int]:
    out = []
    for side, wrist in ((0, 20), (1, 21)):
        for finger in range(5):
            base = first + side * 15 + finger * 3
            out += [wrist, base, base + 1]
    return out


SMPLH_PARENTS = _BODY22 + _hand_parents(22)
SMPLX_PARENTS = _BODY22 + [15, 15, 15] + _hand_parents(25)

# Approximate T-pose joint positions (metres, y up) of the first 22 joints.
_BODY_JOINTS = np.array([
    [0.0, 0.0, 0.0], [0.06, -0.09, 0.0], [-0.06, -0.09, 0.0], [0.0, 0.11, -0.02], [0.1, -0.47, 0.0],
    [-0.1, -0.47, 0.0], [0.0, 0.25, 0.0], [0.09, -0.87, -0.04], [-0.09, -0.87, -0.04], [0.0, 0.30, 0.02],
    [0.12, -0.93, 0.08], [-0.12, -0.93, 0.08], [0.0, 0.52, -0.01], [0.08, 0.42, -0.01], [-0.08, 0.42, -0.01],
    [0.0, 0.58, 0.05], [0.19, 0.45, -0.01], [-0.19, 0.45, -0.01], [0.45, 0.43, -0.02], [-0.45, 0.43, -0.02],
    [0.71, 0.44, -0.02], [-0.71, 0.44, -0.02],
])  # fmt: skip

SPECS = {
    # family: (vertices, faces, parents)
    "smpl": (6890, 13776, SMPL_PARENTS),
    "smplh": (6890, 13776, SMPLH_PARENTS),
    "smplx": (10475, 20908, SMPLX_PARENTS),
}


def _joint_positions(family: str) -> np.ndarray:
    parents = SPECS[family][2]
    pos = np.zeros((len(parents), 3))
    pos[:22] = _BODY_JOINTS
    for j in range(22, len(parents)):
        p = parents[j]
        if p in (20, 21):  # first finger segment
            side = 1.0 if p == 20 else -1.0
            finger = ((j - 22) % 15) // 3 if family == "smplh" else ((j - 25) % 15) // 3
            pos[j] = pos[p] + [side * 0.08, 0.0, 0.04 - 0.02 * finger]
        elif p == 15:  # jaw / eyes
            pos[j] = pos[15] + [(j - 23) * 0.03 if j > 22 else 0.0, 0.04 if j > 22 else -0.03, 0.08]
        else:
            pos[j] = pos[p] + (pos[p] - pos[parents[p]]) * 0.8
    return pos


def make_model_data(family: str = "smpl", num_shape: int = 10, seed: int = 0, dtype=np.float64) -> dict:
    """Arrays of a random model with the official keys: v_template, f, shapedirs, posedirs, J_regressor (csc),
    weights, kintree_table, J (+ hands_* for SMPL-H/X, lmk_* for SMPL-X)."""
    V, F, parents = SPECS[family]
    J = len(parents)
    rng = np.random.default_rng(seed)
    joints = _joint_positions(family)
    owner = np.sort(rng.integers(0, J, V))
    owner[:J] = np.arange(J)  # every joint owns a vertex
    offsets = rng.normal(size=(V, 3))
    offsets *= (0.02 + 0.04 * rng.random((V, 1))) / np.linalg.norm(offsets, axis=1, keepdims=True)
    v_template = joints[owner] + offsets  # [V, 3]

    weights = np.zeros((V, J))
    weights[np.arange(V), owner] = 1.0 + rng.random(V)
    par = np.array([max(parents[o], 0) for o in owner])
    weights[np.arange(V), par] += 0.5 * rng.random(V)
    for _ in range(2):
        weights[np.arange(V), rng.integers(0, J, V)] += 0.2 * rng.random(V)
    weights /= weights.sum(1, keepdims=True)

    rows, cols, vals = [], [], []
    for j in range(J):
        mine = np.flatnonzero(owner == j)
        pick = rng.choice(mine, size=min(len(mine), 12), replace=False)
        w = rng.random(len(pick)) + 0.1
        rows += [j] * len(pick)
        cols += pick.tolist()
        vals += (w / w.sum()).tolist()
    J_regressor = sp.csc_matrix((vals, (rows, cols)), shape=(J, V))

    a = np.arange(F) % V
    b = (a + 1 + rng.integers(0, V // 2, F)) % V
    c = (a + V // 2 + 1 + rng.integers(0, V // 2 - 2, F)) % V
    faces = np.stack([a, b, c], 1).astype(np.uint32)

    kintree = np.stack([np.array(parents, dtype=np.int64) % (2**32), np.arange(J)]).astype(np.int64)
    data = {
        "v_template": v_template.astype(dtype),
        "f": faces,
        "shapedirs": rng.standard_normal((V, 3, num_shape), dtype=dtype) * dtype(0.01),
        "posedirs": rng.standard_normal((V, 3, 9 * (J - 1)), dtype=dtype) * dtype(0.002),
        "J_regressor": J_regressor,
        "weights": weights.astype(dtype),
        "kintree_table": kintree,
        "J": np.asarray(J_regressor @ v_template),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    if family in ("smplh", "smplx"):
        for side in "lr":
            q, _ = np.linalg.qr(rng.normal(size=(45, 45)))
            data[f"hands_components{side}"] = q.T.astype(dtype)
            data[f"hands_mean{side}"] = (rng.normal(size=45) * 0.15).astype(dtype)
    if family == "smplx":
        data["lmk_faces_idx"] = rng.integers(0, F, 51).astype(np.int64)
        bary = rng.random((51, 3))
        data["lmk_bary_coords"] = (bary / bary.sum(1, keepdims=True)).astype(dtype)
    return data


def write_pickle(path: Path, data: dict, protocol: int = 2) -> Path:
    """Write ``data`` as an official-style SMPL ``.pkl`` (atomically; numpy arrays and scipy sparse matrices only,
    which :mod:`human3d.body.safe_pickle` reads back)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(data, f, protocol=protocol)
    return path


def write_npz(path: Path, data: dict) -> Path:
    """Write ``data`` as an SMPL-H / SMPL-X-style ``.npz`` (atomically; sparse matrices densified)."""
    path = Path(path)
    arrays = {k: (v.toarray() if sp.issparse(v) else np.asarray(v)) for k, v in data.items()}
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
    return path


def make_model_from_anny(num_shape: int = 10, samples: int = 64, seed: int = 0, dtype=np.float32) -> dict:
    """Arrays of an SMPL-format model file derived from Anny: a real body in a T-pose with SMPL's 24 joints
    (:func:`human3d.fitting.synthetic.smpl_data_from_anny` documents what each array holds). Unlike
    :func:`make_model_data` its vertex count is Anny's (13,718), so smplx's SMPL-only vertex counts do not apply."""
    from human3d.fitting.synthetic import smpl_data_from_anny

    return smpl_data_from_anny(num_betas=num_shape, samples=samples, seed=seed, dtype=dtype)


def anny_smpl_model(folder, num_shape: int = 10):
    """The SMPL model of the Anny-derived SMPL-format file (:func:`make_model_from_anny`), written once to
    ``folder/SMPL_NEUTRAL.pkl`` (reused when present) and read by the SMPL loader."""
    from human3d.body.smpl import SMPL

    path = Path(folder) / "SMPL_NEUTRAL.pkl"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_pickle(path, make_model_from_anny(num_shape=num_shape))
    return SMPL(path)
