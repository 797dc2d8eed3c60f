"""SMPL, SMPL-H and SMPL-X body models read from the user's official files.

The model files are licensed by the Max Planck Institute and are never shipped or downloaded: pass the path of
the file you obtained (``.pkl``, read with the restricted loader of :mod:`human3d.body.safe_pickle`, or ``.npz``,
read with ``allow_pickle=False``) or of a folder laid out as for smplx::

    DIR/smpl/SMPL_NEUTRAL.pkl   DIR/smplh/SMPLH_FEMALE.pkl   DIR/smplx/SMPLX_NEUTRAL.npz
    DIR/SMPL_NEUTRAL.pkl        (also SMPLX_*_2020.npz, basicmodel_*_lbs_10_207_0_v1.*.pkl, AMASS DIR/male/model.npz)

Parameters use smplx's names and layouts (axis-angle, radians; metres), all optional, default zero:

=================  =========================  ======  =====  =====
name               shape                      SMPL    SMPL-H SMPL-X
=================  =========================  ======  =====  =====
global_orient      [B, 3]                     yes     yes    yes
body_pose          [B, 23*3] / [B, 21*3]      69      63     63
betas              [B, num_betas]             yes     yes    yes
transl             [B, 3]                     yes     yes    yes
left/right_hand_   [B, 45] (or [B, n] PCA)    -       yes    yes
pose
jaw_pose, leye_    [B, 3]                     -       -      yes
pose, reye_pose
expression         [B, num_expression_coeffs] -       -      yes
=================  =========================  ======  =====  =====

Hand poses are full axis-angle (15 joints x 3) by default; ``num_pca_comps=n`` switches to ``n`` PCA
coefficients of the file's hand components. As in smplx (``flat_hand_mean=False``), the file's mean hand pose is
added to the hand pose unless ``flat_hand_mean=True``. Outputs agree with smplx on the same file (see
``tests/body/test_smpl.py``).

Keypoints (``BodyOutput.keypoints``: ``"coco17"``, ``"body25"``) are model joints plus surface vertices, exactly
smplx's ``vertex_ids`` picks for nose, eyes, ears, big/small toes and heels. Shoulders, elbows, wrists, hips,
knees and ankles are SMPL joints: COCO/OpenPose hips sit lower and more lateral than SMPL's hip joints, and
SMPL's shoulders are a little inside the annotated ones - the usual approximation (SMPLify does the same).
OpenPose's ``neck`` and ``mid_hip`` are derived as in :data:`human3d.body.skeletons.MIDPOINTS` (midpoint of the
shoulders / of the hips), not taken from SMPL's ``neck`` / ``pelvis`` joints, so keypoints converted from COCO
(:func:`~human3d.body.skeletons.convert_keypoints`) and model keypoints mean the same thing. (SMPLify-X maps
them to joints 12 and 0 instead; SMPL's ``neck`` joint is at the base of the skull-neck column, several cm above
and behind the shoulder midpoint.)
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from human3d.body.lbs import (
    batch_rigid_transform,
    batch_rodrigues,
    kinematic_levels,
    pose_features,
    skinning,
)
from human3d.body.model import BodyModel, BodyOutput
from human3d.body.safe_pickle import ChumpyStandIn, load_pickle
from human3d.body.skeletons import gather_keypoints
from human3d.errors import InvalidInputError, ModelFileError

__all__ = ["SMPL", "SMPLH", "SMPLX", "SMPLFamily", "create", "load_model_data", "find_model_file",
           "SMPL_JOINT_NAMES", "SMPLH_JOINT_NAMES", "SMPLX_JOINT_NAMES", "VERTEX_IDS"]  # fmt: skip

# ---- joint names (smplx joint_names.py order) -----------------------------------------------------------------------
_BODY22 = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
]  # fmt: skip
_FINGERS = [f"{f}{i}" for f in ("index", "middle", "pinky", "ring", "thumb") for i in (1, 2, 3)]
_HANDS = [f"left_{n}" for n in _FINGERS] + [f"right_{n}" for n in _FINGERS]
SMPL_JOINT_NAMES = _BODY22 + ["left_hand", "right_hand"]  # 24
SMPLH_JOINT_NAMES = _BODY22 + _HANDS  # 52
SMPLX_JOINT_NAMES = _BODY22 + ["jaw", "left_eye_smplhf", "right_eye_smplhf"] + _HANDS  # 55

# ---- surface vertices used as keypoints (smplx vertex_ids.py; SMPL and SMPL-H share a topology) -------------------
VERTEX_IDS = {
    "smplh": {
        "nose": 332, "right_eye": 6260, "left_eye": 2800, "right_ear": 4071, "left_ear": 583,
        "left_big_toe": 3216, "left_small_toe": 3226, "left_heel": 3387,
        "right_big_toe": 6617, "right_small_toe": 6624, "right_heel": 6787,
    },
    "smplx": {
        "nose": 9120, "right_eye": 9929, "left_eye": 9448, "right_ear": 616, "left_ear": 6,
        "left_big_toe": 5770, "left_small_toe": 5780, "left_heel": 8846,
        "right_big_toe": 8463, "right_small_toe": 8474, "right_heel": 8635,
    },
}  # fmt: skip
# Keypoints taken from model joints (same indices in all three families).
_JOINT_KEYPOINTS = [
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
]  # fmt: skip


@dataclass(frozen=True)
class _Family:
    """What differs between SMPL, SMPL-H and SMPL-X (one table instead of three constructors)."""

    name: str  # display name
    prefix: str  # file-name prefix (SMPL_NEUTRAL.pkl ...)
    pose_parts: tuple[tuple[str, int], ...]  # (parameter, number of joints) in kinematic order of the file
    joint_names: tuple[str, ...]
    vertex_ids: str  # key of VERTEX_IDS
    exts: tuple[str, ...]  # file extensions, preferred first
    num_vertices: int

    @property
    def num_joints(self) -> int:
        return sum(n for _, n in self.pose_parts)

    @property
    def has_hands(self) -> bool:
        return any(p == "left_hand_pose" for p, _ in self.pose_parts)

    @property
    def has_face(self) -> bool:
        return any(p == "jaw_pose" for p, _ in self.pose_parts)


_HAND_PARTS = (("left_hand_pose", 15), ("right_hand_pose", 15))
FAMILIES = {
    "smpl": _Family("SMPL", "SMPL", (("global_orient", 1), ("body_pose", 23)), tuple(SMPL_JOINT_NAMES),
                    "smplh", ("pkl", "npz"), 6890),
    "smplh": _Family("SMPL-H", "SMPLH", (("global_orient", 1), ("body_pose", 21)) + _HAND_PARTS,
                     tuple(SMPLH_JOINT_NAMES), "smplh", ("pkl", "npz"), 6890),
    "smplx": _Family("SMPL-X", "SMPLX",
                     (("global_orient", 1), ("body_pose", 21), ("jaw_pose", 1), ("leye_pose", 1), ("reye_pose", 1))
                     + _HAND_PARTS, tuple(SMPLX_JOINT_NAMES), "smplx", ("npz", "pkl"), 10475),
}  # fmt: skip
_GENDERS = ("neutral", "male", "female")


# ---- files ------------------------------------------------------------------------------------------------------------
def _candidate_names(family: str, gender: str) -> list[str]:
    fam = FAMILIES[family]
    g1 = {"neutral": "neutral", "male": "m", "female": "f"}[gender]
    names = []
    for ext in fam.exts:
        names.append(f"{fam.prefix}_{gender}.{ext}")
        if family == "smplx":
            names.append(f"{fam.prefix}_{gender}_2020.{ext}")
    if family == "smpl":
        for g in dict.fromkeys((gender, g1)):
            names += [f"basicmodel_{g}_lbs_10_207_0_v1.1.0.pkl", f"basicmodel_{g}_lbs_10_207_0_v1.0.0.pkl"]
    names.append(os.path.join(gender, "model.npz"))  # AMASS layout (smplh/male/model.npz)
    return names


def find_model_file(model_path: str | os.PathLike, family: str = "smpl", gender: str = "neutral") -> Path:
    """Resolve ``model_path`` (a file, or a folder in smplx's layout) to the model file of ``family``/``gender``.

    In a folder, ``DIR/<family>/`` is searched before ``DIR/``; names match case-insensitively.
    """
    if family not in FAMILIES:
        raise InvalidInputError(f"model_type: expected one of {sorted(FAMILIES)}, got {family!r}")
    gender = _check_gender(gender)
    p = Path(model_path).expanduser()
    if p.is_file():
        return p
    if not p.exists():
        raise ModelFileError(f"model_path: '{p}' does not exist")
    names = _candidate_names(family, gender)
    folders = [p / family, p]
    for folder in folders:
        if not folder.is_dir():
            continue
        for name in names:
            sub, base = os.path.split(name)
            where = folder / sub if sub else folder
            if not where.is_dir():
                continue
            lower = {e.name.lower(): e for e in where.iterdir() if e.is_file()}
            if base.lower() in lower:
                return lower[base.lower()]
    raise ModelFileError(
        f"model_path: no {FAMILIES[family].name} {gender} model file in '{p}' (looked in "
        f"{[str(f) for f in folders]} for {names}); download the model from its official site and point "
        "model_path at the file or its folder"
    )


def _check_gender(gender: str) -> str:
    if not isinstance(gender, str) or gender.lower() not in _GENDERS:
        raise InvalidInputError(f"gender: expected one of {list(_GENDERS)}, got {gender!r}")
    return gender.lower()


class _ModelData(Mapping):
    """Arrays of a model file; ``.npz`` members are read lazily (an unused object array never fails)."""

    def __init__(self, data, source: str):
        self._data, self.source = data, source

    def __getitem__(self, key):
        try:
            return self._data[key]
        except KeyError:
            raise
        except Exception as exc:  # object arrays under allow_pickle=False, corrupt members
            raise ModelFileError(f"{self.source}: entry '{key}' cannot be read ({exc})") from None

    def __iter__(self):
        return iter(self._data.files if hasattr(self._data, "files") else self._data)

    def __len__(self):
        return len(self._data.files if hasattr(self._data, "files") else self._data)


def load_model_data(path: str | os.PathLike) -> Mapping[str, Any]:
    """Read a model file into a mapping of arrays: ``.pkl`` via the safe unpickler, ``.npz`` without pickle."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelFileError(f"model file '{p}' does not exist or is not a file")
    with open(p, "rb") as f:
        magic = f.read(4)
    if p.suffix.lower() == ".npz" or (p.suffix.lower() != ".pkl" and magic.startswith(b"PK")):
        try:
            npz = np.load(p, allow_pickle=False)
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise ModelFileError(f"{p}: not a readable .npz model file ({exc})") from None
        except ValueError:  # neither zip nor .npy: numpy would unpickle it, which we refuse
            raise ModelFileError(f"{p}: not a valid .npz model file (expected a zip archive of .npy arrays; "
                                 "pickled data is refused)") from None  # fmt: skip
        if not hasattr(npz, "files"):
            raise ModelFileError(f"{p}: expected an .npz archive of arrays, got a single array")
        return _ModelData(npz, str(p))
    data = load_pickle(p)
    if not isinstance(data, Mapping):
        raise ModelFileError(f"{p}: expected a pickled dict of model arrays, got {type(data).__name__}")
    return _ModelData(data, str(p))


def _array(data: Mapping, key: str, source: str, dtype=np.float64) -> np.ndarray:
    if key not in data:
        raise ModelFileError(f"{source}: missing required key '{key}'")
    value = data[key]
    if hasattr(value, "toarray"):  # scipy.sparse
        value = value.toarray()
    if isinstance(value, ChumpyStandIn):
        value = value.to_numpy()  # raises ModelFileError naming the unsupported node
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{source}: key '{key}' is not a numeric array ({exc})") from None


def _expect(arr: np.ndarray, key: str, shape: tuple, source: str) -> np.ndarray:
    ok = arr.ndim == len(shape) and all(w is None or w == g for w, g in zip(shape, arr.shape))
    if not ok:
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ModelFileError(f"{source}: key '{key}' has shape {arr.shape}, expected {want}")
    return arr


# ---- the model ------------------------------------------------------------------------------------------------------
class SMPLFamily(BodyModel):
    """SMPL-family body model (``family`` is set by :class:`SMPL`, :class:`SMPLH`, :class:`SMPLX`).

    Args:
        model_path: model file, folder (smplx layout), or an already-loaded mapping of the file's arrays.
        gender: "neutral", "male" or "female" (used to find the file in a folder).
        num_betas: shape coefficients to use, 1 .. as many as the file has (10, 16, 300 ...).
        num_expression_coeffs: SMPL-X only: expression coefficients (default 10, up to the file's).
        num_pca_comps: SMPL-H/X only: ``None`` for full 45-D axis-angle hand poses, else the number of hand PCA
            coefficients.
        flat_hand_mean: SMPL-H/X only: if False (smplx's default) the file's mean hand pose is added to the hand
            pose, so zero hand parameters give a relaxed hand; if True zero means a flat hand.
        dtype: float32 (default) or float64.
    """

    family = "smpl"
    prior_family = "smpl"  # SMPL, SMPL-H and SMPL-X share the 21 body joints the "smpl" priors score
    hinge_joints = (("elbow.L", "left_shoulder", "left_elbow", "left_wrist", +1),
                    ("elbow.R", "right_shoulder", "right_elbow", "right_wrist", +1),
                    ("knee.L", "left_hip", "left_knee", "left_ankle", -1),
                    ("knee.R", "right_hip", "right_knee", "right_ankle", -1))  # fmt: skip

    def __init__(
        self,
        model_path: str | os.PathLike | Mapping[str, Any],
        gender: str = "neutral",
        num_betas: int = 10,
        *,
        num_expression_coeffs: int = 10,
        num_pca_comps: int | None = None,
        flat_hand_mean: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        fam = FAMILIES[self.family]
        self.gender = _check_gender(gender)
        if dtype not in (torch.float32, torch.float64):
            raise InvalidInputError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
        if not isinstance(num_betas, int) or num_betas < 1:
            raise InvalidInputError(f"num_betas: expected a positive int, got {num_betas!r}")
        if not fam.has_hands and (num_pca_comps is not None or flat_hand_mean):
            raise InvalidInputError(f"num_pca_comps / flat_hand_mean: {fam.name} has no hand pose parameters")

        if isinstance(model_path, Mapping):
            data, source = model_path, str(getattr(model_path, "source", "<arrays>"))
            self.model_file = Path(model_path.source) if hasattr(model_path, "source") else None
        else:
            self.model_file = find_model_file(model_path, self.family, self.gender)
            data, source = load_model_data(self.model_file), str(self.model_file)

        # -- read and check the arrays ------------------------------------------------------------------------------
        kintree = _array(data, "kintree_table", source, np.int64)
        if kintree.ndim != 2 or kintree.shape[0] != 2:
            raise ModelFileError(f"{source}: key 'kintree_table' has shape {kintree.shape}, expected [2, J]")
        J = kintree.shape[1]
        if J != fam.num_joints:
            guess = {f.num_joints: f.name for f in FAMILIES.values()}.get(J, "an unknown model")
            raise ModelFileError(
                f"{source}: the file has {J} joints ({guess}), but {fam.name} has {fam.num_joints}; "
                "use the matching class or human3d.body.smpl.create()"
            )
        parents = kintree[0].copy()
        parents[0] = -1
        np_dtype = np.float32 if dtype == torch.float32 else np.float64  # the big bases go straight to ``dtype``
        v_template = _array(data, "v_template", source)
        V = v_template.shape[0]
        _expect(v_template, "v_template", (None, 3), source)
        faces = _expect(_array(data, "f", source, np.int64), "f", (None, 3), source)
        if faces.size and (faces.min() < 0 or faces.max() >= V):
            raise ModelFileError(f"{source}: key 'f' indexes vertices outside [0, {V})")
        shapedirs = _array(data, "shapedirs", source, np_dtype)
        if shapedirs.ndim == 2:
            shapedirs = shapedirs[:, :, None]
        _expect(shapedirs, "shapedirs", (V, 3, None), source)
        posedirs = _expect(_array(data, "posedirs", source, np_dtype), "posedirs", (V, 3, 9 * (J - 1)), source)
        J_regressor = _expect(_array(data, "J_regressor", source), "J_regressor", (J, V), source)
        weights = _expect(_array(data, "weights", source), "weights", (V, J), source)
        for key, arr in (("v_template", v_template), ("shapedirs", shapedirs), ("posedirs", posedirs),
                         ("J_regressor", J_regressor), ("weights", weights)):  # fmt: skip
            if not np.isfinite(arr).all():
                raise ModelFileError(f"{source}: key '{key}' contains NaN/inf")
        try:
            self._levels = kinematic_levels(parents.tolist())
        except ValueError as exc:
            raise ModelFileError(f"{source}: key 'kintree_table': {exc}") from None

        # -- shape / expression spaces (smplx's convention for SMPL-X: betas 0:300 + expression 300:400 in 2020
        #    files, betas 0:10 + expression 10:20 in v1.0 files) --------------------------------------------------
        S_all = shapedirs.shape[-1]
        if fam.has_face:
            beta_space, expr_start = (300, 300) if S_all >= 400 else (10, 10)
            beta_space = min(beta_space, S_all)
            expr_space = max(0, min(S_all - expr_start, 100))
            if not isinstance(num_expression_coeffs, int) or not 0 <= num_expression_coeffs <= expr_space:
                raise InvalidInputError(
                    f"num_expression_coeffs: the file {source} has {expr_space} expression components, "
                    f"got {num_expression_coeffs!r}"
                )
        else:
            beta_space, expr_start, num_expression_coeffs = S_all, S_all, 0
        if num_betas > beta_space:
            raise InvalidInputError(
                f"num_betas={num_betas}, but the {fam.name} file {source} has only {beta_space} shape components"
            )
        self.num_betas = num_betas
        self.num_expression_coeffs = num_expression_coeffs
        S = num_betas + num_expression_coeffs
        if num_betas == expr_start or num_expression_coeffs == 0:  # one contiguous block of columns
            shape_cols = slice(0, S) if num_expression_coeffs else slice(0, num_betas)
        else:
            shape_cols = list(range(num_betas)) + list(range(expr_start, expr_start + num_expression_coeffs))

        # -- hands ---------------------------------------------------------------------------------------------------
        self.num_pca_comps = num_pca_comps
        self.flat_hand_mean = bool(flat_hand_mean)
        if fam.has_hands:
            if self.flat_hand_mean:
                hands_mean = np.zeros((2, 45))
            else:
                hands_mean = np.stack([_expect(_array(data, k, source).reshape(-1), k, (45,), source)
                                       for k in ("hands_meanl", "hands_meanr")])  # fmt: skip
            self.register_buffer("hands_mean", torch.tensor(hands_mean, dtype=dtype))  # [2, 45]
            if num_pca_comps is not None:
                comps = [_expect(_array(data, k, source), k, (None, 45), source)
                         for k in ("hands_componentsl", "hands_componentsr")]  # fmt: skip
                avail = min(c.shape[0] for c in comps)
                if not isinstance(num_pca_comps, int) or not 1 <= num_pca_comps <= avail:
                    raise InvalidInputError(f"num_pca_comps: expected an int in [1, {avail}], got {num_pca_comps!r}")
                comps = np.stack([c[:num_pca_comps] for c in comps])
                self.register_buffer("hand_components", torch.tensor(comps, dtype=dtype))  # [2, n, 45]

        # -- precomputed constants (the joint regression in float64; all stored in ``dtype``) ------------------------
        P = 9 * (J - 1)
        blend_dirs = np.empty((V * 3, S + P), np_dtype)  # [V*3, S + P]: the files' own layout, no transposes
        blend_dirs[:, :S] = shapedirs[..., shape_cols].reshape(V * 3, S)
        blend_dirs[:, S:] = posedirs.reshape(V * 3, P)
        del posedirs
        used = np.flatnonzero(np.any(J_regressor != 0, axis=0))  # regressors are sparse: skip unused vertices
        J_used = J_regressor[:, used]
        joint_template = J_used @ v_template[used]  # [J, 3]
        joint_dirs = J_used @ shapedirs[used][..., shape_cols].astype(np.float64).reshape(len(used), 3 * S)
        joint_dirs = joint_dirs.reshape(J, 3, S).transpose(2, 0, 1).reshape(S, J * 3)  # [S, J*3]
        vids = VERTEX_IDS[fam.vertex_ids]
        if max(vids.values()) >= V:
            raise ModelFileError(
                f"{source}: has {V} vertices; {fam.name} keypoint vertices need {fam.num_vertices}"
            )

        def t(a):  # one copy into a fresh, C-contiguous array of the model dtype
            return torch.from_numpy(np.array(a, dtype=np_dtype, order="C", copy=a is not blend_dirs))

        self.register_buffer("faces", torch.tensor(faces, dtype=torch.long))  # [F, 3]
        self.register_buffer("v_template", t(v_template))  # [V, 3]
        self.register_buffer("blend_dirs", t(blend_dirs))  # [V*3, S + P]: shape, expression, pose correctives
        self.register_buffer("joint_template", t(joint_template))  # [J, 3]
        self.register_buffer("joint_dirs", t(joint_dirs))  # [S, J*3] J_regressor applied to the shape basis
        self.register_buffer("J_regressor", t(J_regressor))  # [J, V]
        self.register_buffer("lbs_weights", t(weights))  # [V, J]
        self.register_buffer("parents", torch.tensor(parents, dtype=torch.long))  # [J]
        kp_joints = [fam.joint_names.index(n) for n in _JOINT_KEYPOINTS]
        self._kp_names = _JOINT_KEYPOINTS + list(vids)
        self.register_buffer("keypoint_joint_ids", torch.tensor(kp_joints, dtype=torch.long), persistent=False)
        self.register_buffer("keypoint_vertex_ids", torch.tensor(list(vids.values()), dtype=torch.long),
                             persistent=False)  # fmt: skip

    # ---- BodyModel interface ------------------------------------------------------------------------------------------
    @property
    def joint_names(self) -> list[str]:
        return list(FAMILIES[self.family].joint_names)

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def shapedirs(self) -> torch.Tensor:
        """``[V, 3, num_betas + num_expression_coeffs]`` view of the shape (then expression) basis."""
        S = self.num_betas + self.num_expression_coeffs
        return self.blend_dirs[:, :S].unflatten(0, (-1, 3))

    @property
    def posedirs(self) -> torch.Tensor:
        """``[(J-1)*9, V*3]`` pose-corrective basis (smplx layout)."""
        return self.blend_dirs[:, self.num_betas + self.num_expression_coeffs :].T

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        fam = FAMILIES[self.family]
        shapes = {"global_orient": (3,), "body_pose": (3 * dict(fam.pose_parts)["body_pose"],),
                  "betas": (self.num_betas,), "transl": (3,)}  # fmt: skip
        if fam.has_hands:
            n = 45 if self.num_pca_comps is None else self.num_pca_comps
            shapes.update(left_hand_pose=(n,), right_hand_pose=(n,))
        if fam.has_face:
            shapes.update(jaw_pose=(3,), leye_pose=(3,), reye_pose=(3,), expression=(self.num_expression_coeffs,))
        return shapes

    def pose_groups(self) -> list[tuple[str, list[str]]]:
        """One group per body joint of :data:`generative.priors.pose.SMPL_PRIOR_JOINTS` (the first 21 ``body_pose``
        joints; SMPL's two hand joints are not fitted)."""
        from generative.priors.pose import SMPL_PRIOR_JOINTS

        return [(n, [n]) for n in SMPL_PRIOR_JOINTS]

    def full_pose(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Axis-angle of every joint ``[B, J, 3]`` in the file's joint order (hand PCA / mean applied)."""
        fam = FAMILIES[self.family]
        parts = []
        for name, _ in fam.pose_parts:
            value = params[name]
            if name in ("left_hand_pose", "right_hand_pose"):
                side = 0 if name[0] == "l" else 1
                if self.num_pca_comps is not None:
                    value = value @ self.hand_components[side]  # [B, n] @ [n, 45]
                value = value + self.hands_mean[side]
            parts.append(value)
        return torch.cat(parts, dim=1).unflatten(1, (-1, 3))

    def _forward(self, params: dict[str, torch.Tensor]) -> BodyOutput:
        B = params["global_orient"].shape[0]
        V, J = self.num_vertices, self.num_joints
        rot_mats = batch_rodrigues(self.full_pose(params))  # [B, J, 3, 3]
        shape_coeffs = params["betas"]  # [B, S]
        if self.num_expression_coeffs:
            shape_coeffs = torch.cat([shape_coeffs, params["expression"]], dim=1)
        coeffs = torch.cat([shape_coeffs, pose_features(rot_mats)], dim=1)  # [B, S + P]
        # v_template + shape/expression blend + pose correctives in one GEMM, batch-last ([V*3, B]) as skinning
        # wants it; v_posed is a [B, V, 3] view of that storage
        v_posed = torch.addmm(self.v_template.view(-1, 1), self.blend_dirs, coeffs.T).view(V, 3, B).permute(2, 0, 1)
        joints_rest = torch.addmm(self.joint_template.view(-1), shape_coeffs, self.joint_dirs).view(B, J, 3)
        joints, transforms = batch_rigid_transform(rot_mats, joints_rest, self.parents, self._levels)
        vertices = skinning(v_posed, transforms, self.lbs_weights, params["transl"])  # [B, V, 3]
        joints = joints + params["transl"].unsqueeze(1)
        sources = torch.cat(
            [joints.index_select(1, self.keypoint_joint_ids), vertices.index_select(1, self.keypoint_vertex_ids)], 1
        )  # [B, K, 3]
        named = dict(zip(self._kp_names, sources.unbind(1)))
        keypoints = {s: gather_keypoints(named, s) for s in self.skeletons}
        return BodyOutput(vertices=vertices, joints=joints, faces=self.faces, keypoints=keypoints)

    def extra_repr(self) -> str:
        extra = f", num_expression_coeffs={self.num_expression_coeffs}" if self.num_expression_coeffs else ""
        return (f"{FAMILIES[self.family].name}: gender={self.gender}, vertices={self.num_vertices}, "
                f"joints={self.num_joints}, num_betas={self.num_betas}{extra}, file={self.model_file}")  # fmt: skip


class SMPL(SMPLFamily):
    """SMPL: 6890 vertices, 24 joints (``body_pose`` [B, 69])."""

    family = "smpl"


class SMPLH(SMPLFamily):
    """SMPL+H: SMPL body with MANO hands, 52 joints (``body_pose`` [B, 63], hand poses [B, 45])."""

    family = "smplh"


class SMPLX(SMPLFamily):
    """SMPL-X: 10475 vertices, 55 joints (body, jaw, eyes, hands) and expression coefficients."""

    family = "smplx"


_CLASSES = {"smpl": SMPL, "smplh": SMPLH, "smplx": SMPLX}


def create(
    model_path: str | os.PathLike, model_type: str = "smpl", gender: str = "neutral", **kwargs
) -> SMPLFamily:
    """Build a model like ``smplx.create``: from a folder (``model_type`` picks the family) or a file (the family
    is read from the file's number of joints: 24 SMPL, 52 SMPL-H, 55 SMPL-X). ``kwargs`` go to the class."""
    p = Path(model_path).expanduser()
    if p.is_file():
        data = load_model_data(p)
        J = _array(data, "kintree_table", str(p), np.int64).shape[-1]
        by_joints = {f.num_joints: key for key, f in FAMILIES.items()}
        if J not in by_joints:
            raise ModelFileError(f"{p}: {J} joints is not an SMPL (24), SMPL-H (52) or SMPL-X (55) model")
        return _CLASSES[by_joints[J]](data, gender=gender, **kwargs)
    key = str(model_type).lower().replace("-", "").replace("+", "")
    if key not in _CLASSES:
        raise InvalidInputError(f"model_type: expected one of {sorted(_CLASSES)}, got {model_type!r}")
    return _CLASSES[key](p, gender=gender, **kwargs)
