"""Retarget motion capture (BVH rigs of :data:`SPECS`, CMU ASF exp-maps, DeepMimic's humanoid3d of
:data:`OTHER_SPECS`) onto the default body model, Anny.

Feeding mocap joint rotations straight into Anny is wrong: the rest poses differ (Anny rests in an A-pose with
bent elbows; CMU's T-pose has the legs splayed ~20 degrees; some rigs rest with every bone along one axis) and
so do the local joint frames. The method here works in *world-axis changes* instead:

1. **Calibration** (once per rig): in a reference pose of the mocap rig (its rest pose, or a frame where the actor
   stands neutrally), map the mocap's world into the canonical frame (Y up, facing +Z, left on +X: the frame of
   :class:`~human3d.body.anny.AnnyBody`) by its up axis and its hip line, and for each mapped Anny bone compute
   ``A`` = the minimal rotation taking the Anny bone's reference direction (zero pose) to the mocap bone's
   direction in the reference pose. Store it in the mocap joint's local frame: ``K_j = Rw_j(ref)^T M_ref^T A``.
   The feet are the exception: rigs place their ankle and toe joints too differently for the ankle -> toe
   direction to mean the same thing (CMU subject 131's toe joint sits above its ankle when standing, Bandai's 40
   degrees below), so a foot starts neutral in the reference pose and is then re-levelled on data: over the
   stance frames (the lowest 20 % of each ankle's heights), the median pitch of Anny's foot below its zero-pose
   pitch (where it stands flat) is removed, so that feet on the ground lie flat (except for rigs whose reference
   feet are flat by construction, ``SkeletonSpec.level_feet=False``: DeepMimic).
   Twist is fixed where the mocap gives more than a direction: the hand by a second direction (the thumb), and the
   upper arm and thigh by their hinge: the twist is rotated so that, averaged over the rig's frames, the forearm
   bends the way Anny's reference elbow bends and the shin bends backwards (:func:`calibrate_rig` pools the
   clips of one rig; a limb that hardly bends keeps its reference twist).
2. **Per frame**: the mocap joint's world rotation ``Rw_j(f)`` (FK of the clip) gives the Anny bone's *world
   delta* (its world rotation relative to the zero pose) ``G = M_up Rw_j(f) K_j``. By construction
   ``G r_anny = M_up Rw_j(f) Rw_j(ref)^T t_ref``: the Anny bone points exactly where the mocap bone points,
   and its twist follows the mocap joint frame.
3. Bone by bone, children after parents, the deltas become Anny's "local-ref" pose (relative rotations in
   world-aligned axes, ``D_c = G_parent^T G_c``), which is AnnyBody's ``body_pose`` convention:
   - root <- the mocap hips (facing, tilt); the trunk (spine05..spine01) gets one rotation, that of the mocap
     upper chest relative to the hips, split equally over the five spine bones ("one tilt"); the neck
     (neck01..03) likewise between the chest and the upper neck; the head its own;
   - clavicle, upper arm, upper leg, lower leg, foot: full rotations (twist from the mocap frame);
   - the elbow (lowerarm01) is the *minimal* rotation that points the forearm along the mocap forearm, so it
     stays a hinge; the forearm twist (pronation) goes to the distal twist bone lowerarm02 (swing-twist
     decomposition of the hand relative to the forearm), the rest of the hand rotation to the wrist;
   - unmapped bones (pelvis, twist bones upperarm02/upperleg02/lowerleg02, shoulder01, fingers, toes, eyes)
     keep a zero delta.

All of this is vectorised over frames; rotations act on column vectors; metres.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Union

import torch

from human3d.errors import InvalidInputError
from human3d.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_matrix,
)
from human3d.motion.bvh import Motion

__all__ = [
    "BoneMap",
    "SkeletonSpec",
    "Calibration",
    "AnnyReference",
    "RetargetResult",
    "SPECS",
    "OTHER_SPECS",
    "ANNY_ROLES",
    "SPINE_BONES",
    "NECK_BONES",
    "detect_spec",
    "anny_reference",
    "calibrate",
    "calibrate_rig",
    "retarget",
    "minimal_rotation",
    "swing_twist",
    "segment_directions",
    "up_matrix",
]

SPINE_BONES = ["spine05", "spine04", "spine03", "spine02", "spine01"]
NECK_BONES = ["neck01", "neck02", "neck03"]

# Anny role -> (driven Anny bone, Anny segment (head bone, tail bone or None for the bone's own y axis)).
ANNY_ROLES: dict[str, tuple[str, tuple[str, str | None]]] = {
    "trunk": ("spine01", ("spine05", "neck01")),
    "neck": ("neck03", ("neck01", "head")),
    "head": ("head", ("head", None)),
}
for _s in ("L", "R"):
    ANNY_ROLES.update(
        {
            f"clavicle.{_s}": (f"clavicle.{_s}", (f"clavicle.{_s}", f"upperarm01.{_s}")),
            f"upperarm.{_s}": (f"upperarm01.{_s}", (f"upperarm01.{_s}", f"lowerarm01.{_s}")),
            f"forearm.{_s}": (f"lowerarm01.{_s}", (f"lowerarm01.{_s}", f"wrist.{_s}")),
            f"hand.{_s}": (f"wrist.{_s}", (f"wrist.{_s}", f"finger3-1.{_s}")),
            f"thigh.{_s}": (f"upperleg01.{_s}", (f"upperleg01.{_s}", f"lowerleg01.{_s}")),
            f"shin.{_s}": (f"lowerleg01.{_s}", (f"lowerleg01.{_s}", f"foot.{_s}")),
            f"foot.{_s}": (f"foot.{_s}", (f"foot.{_s}", f"toe3-1.{_s}")),
        }
    )
# Roles whose calibration falls back to another role's when the mocap has no usable direction for them
# ("identity": the bone is in Anny's zero pose in the mocap reference pose, e.g. the head of a neutral stance).
_FALLBACK = {
    "head": "identity", "hand.L": "forearm.L", "hand.R": "forearm.R", "foot.L": "shin.L", "foot.R": "shin.R",
}  # fmt: skip
# Roles calibrated as neutral in the reference pose (their fallback) even when the mocap gives a direction: the
# ankle -> toe segment depends on where each rig puts its ankle and toe joints (CMU's toe joint sits above the
# ankle's height in some subjects, Bandai's 40 degrees below it), so matching it would tilt Anny's feet by tens
# of degrees; rest poses and neutral stances have flat feet, i.e. a zero ankle delta.
NEUTRAL_AT_REFERENCE = {"foot.L", "foot.R"}
# Secondary Anny directions used to fix a role's twist in the reference pose (thumb side of the hand).
ANNY_SECONDARY: dict[str, tuple[str, str]] = {f"hand.{s}": (f"wrist.{s}", f"finger1-3.{s}") for s in ("L", "R")}
# Hinges: (parent role, child role). The parent's twist is calibrated on data so that the child's bend
# direction (averaged over frames) is Anny's: the elbow flexes the way Anny's reference elbow is bent, the knee
# backwards (-Z).
HINGES = [(f"{a}.{s}", f"{b}.{s}") for s in ("L", "R") for a, b in (("upperarm", "forearm"), ("thigh", "shin"))]


@dataclasses.dataclass(frozen=True)
class BoneMap:
    """How one Anny role is driven by the mocap rig."""

    rot: str
    """Mocap joint whose world rotation drives the Anny bone."""
    calib: tuple[str, str] | None
    """Mocap segment (from, to) whose reference-pose direction matches the Anny segment; an end point is a joint
    name (its head) or ``"Name:end"`` (its End Site). None: the head is taken as neutral (Anny's zero pose) in the
    reference pose, the hand as aligned with the forearm."""
    secondary: tuple[str, str] | None = None
    """Optional second mocap segment fixing the twist in the reference pose (matched to ``ANNY_SECONDARY``)."""


@dataclasses.dataclass(frozen=True)
class SkeletonSpec:
    """A mocap rig: which joints drive which Anny roles, and how to read it."""

    name: str
    """Short identifier (e.g. ``"cmu_3dsmax"``)."""
    hips: str
    """Joint whose world rotation is the pelvis (Anny's root)."""
    left_hip: str
    """Left hip joint (with ``right_hip`` it defines the left direction of the reference pose)."""
    right_hip: str
    """Right hip joint."""
    bones: dict[str, BoneMap]
    """Anny role (keys of ``ANNY_ROLES``) -> mocap joints; roles left out keep zero deltas."""
    up: str = "+Y"
    """World up axis of the files: ``"+Y"`` or ``"+Z"``."""
    reference: Union[str, int] = "rest"
    """Reference pose for calibration: ``"rest"`` (all channels zero: a T-pose or arms-down rest) or a frame index
    where the actor stands neutrally (rigs whose rest pose is not a human pose)."""
    scale: float = 1.0
    """File length unit -> metres."""
    signature: tuple[str, ...] = ()
    """Joint names that identify the rig (all must be present), for :func:`detect_spec`."""
    level_feet: bool = True
    """Re-level the feet on data (stance frames, see the module docstring). False for rigs whose reference pose
    has flat feet by construction (DeepMimic: the foot box is axis-aligned with the ankle frame), where the
    stance statistics of acrobatic clips would only add a clip-dependent ankle bias."""
    neutral_roles: tuple[str, ...] = ()
    """Roles without a direction match whose Anny bone is in its zero-pose orientation (up to the facing) in the
    reference pose, instead of their ``_FALLBACK`` role's alignment (DeepMimic's flat feet: falling back to the
    shin would tilt them by the shin's alignment)."""


def _sided(template: dict[str, tuple], sides: dict[str, dict[str, str]]):
    out = {}
    for s, fmt in sides.items():
        for role, (rot, calib, *rest) in template.items():
            sec = rest[0] if rest else None
            out[f"{role}.{s}"] = BoneMap(
                rot.format(**fmt),
                None if calib is None else tuple(c.format(**fmt) for c in calib),
                None if sec is None else tuple(c.format(**fmt) for c in sec),
            )
    return out


_LR = {"L": {"Side": "Left", "s": "l", "S": "L"}, "R": {"Side": "Right", "s": "r", "S": "R"}}

SPECS: dict[str, SkeletonSpec] = {}

# CMU, cgspeed "3dsMax-friendly" BVH (subject 131, 14_14): arms-down rest pose.
SPECS["cmu_3dsmax"] = SkeletonSpec(
    name="cmu_3dsmax",
    hips="Hips",
    left_hip="LeftHip",
    right_hip="RightHip",
    bones={
        "trunk": BoneMap("Chest2", ("Hips", "lowerneck")),
        "neck": BoneMap("Neck", ("lowerneck", "Head")),
        "head": BoneMap("Head", ("Head", "Head:end")),
        **_sided(
            {
                "clavicle": ("{Side}Collar", ("{Side}Collar", "{Side}Shoulder")),
                "upperarm": ("{Side}Shoulder", ("{Side}Shoulder", "{Side}Elbow")),
                "forearm": ("{Side}Elbow", ("{Side}Elbow", "{Side}Wrist")),
                "hand": ("{s}hand", ("{s}hand", "{S}Fingers"), ("{S}Thumb", "{S}Thumb:end")),
                "thigh": ("{Side}Hip", ("{Side}Hip", "{Side}Knee")),
                "shin": ("{Side}Knee", ("{Side}Knee", "{Side}Ankle")),
                "foot": ("{Side}Ankle", ("{Side}Ankle", "{Side}Toe")),
            },
            _LR,
        ),
    },
    scale=0.056444,
    signature=("LeftCollar", "lhand", "Chest2"),
)
# CMU, cgspeed "MotionBuilder-friendly" BVH (01_01): T-pose rest.
SPECS["cmu_mb"] = SkeletonSpec(
    name="cmu_mb",
    hips="Hips",
    left_hip="LeftUpLeg",
    right_hip="RightUpLeg",
    bones={
        "trunk": BoneMap("Spine1", ("Hips", "Neck")),
        "neck": BoneMap("Neck1", ("Neck", "Head")),
        "head": BoneMap("Head", ("Head", "Head:end")),
        **_sided(
            {
                "clavicle": ("{Side}Shoulder", ("{Side}Shoulder", "{Side}Arm")),
                "upperarm": ("{Side}Arm", ("{Side}Arm", "{Side}ForeArm")),
                "forearm": ("{Side}ForeArm", ("{Side}ForeArm", "{Side}Hand")),
                "hand": ("{Side}FingerBase", ("{Side}FingerBase", "{S}Fingers"), ("{S}Thumb", "{S}Thumb:end")),
                "thigh": ("{Side}UpLeg", ("{Side}UpLeg", "{Side}Leg")),
                "shin": ("{Side}Leg", ("{Side}Leg", "{Side}Foot")),
                "foot": ("{Side}Foot", ("{Side}Foot", "{Side}ToeBase")),
            },
            _LR,
        ),
    },
    scale=0.056444,
    signature=("LeftFingerBase", "LowerBack", "Neck1"),
)
# CMU via the DAZ/Poser-friendly conversion (subject 60 salsa): T-pose rest, ZXY joints.
SPECS["cmu_daz"] = SkeletonSpec(
    name="cmu_daz",
    hips="hip",
    left_hip="lThigh",
    right_hip="rThigh",
    bones={
        "trunk": BoneMap("chest", ("hip", "neck")),
        "neck": BoneMap("neck", ("neck", "head")),
        "head": BoneMap("head", None),
        **_sided(
            {
                "clavicle": ("{s}Collar", ("{s}Collar", "{s}Shldr")),
                "upperarm": ("{s}Shldr", ("{s}Shldr", "{s}ForeArm")),
                "forearm": ("{s}ForeArm", ("{s}ForeArm", "{s}Hand")),
                "hand": ("{s}Hand", ("{s}Hand", "{s}Mid1"), ("{s}Hand", "{s}Thumb2")),
                "thigh": ("{s}Thigh", ("{s}Thigh", "{s}Shin")),
                "shin": ("{s}Shin", ("{s}Shin", "{s}Foot")),
                "foot": ("{s}Foot", ("{s}Foot", "{s}Foot:end")),
            },
            _LR,
        ),
    },
    scale=1.28,
    signature=("lCollar", "lShldr", "abdomen"),
)
# AnimatedDrawings "fair1" captures: Z up, T-pose rest, ~inches.
SPECS["fair1"] = SkeletonSpec(
    name="fair1",
    hips="Hips",
    left_hip="LeftUpLeg",
    right_hip="RightUpLeg",
    bones={
        "trunk": BoneMap("Spine3", ("Hips", "Neck")),
        "neck": BoneMap("Neck", ("Neck", "Head")),
        "head": BoneMap("Head", ("Head", "Head:end")),
        **_sided(
            {
                "clavicle": ("{Side}Shoulder", ("{Side}Shoulder", "{Side}Arm")),
                "upperarm": ("{Side}Arm", ("{Side}Arm", "{Side}ForeArm")),
                "forearm": ("{Side}ForeArm", ("{Side}ForeArm", "{Side}Hand")),
                "hand": ("{Side}Hand", ("{Side}Hand", "{Side}HandEnd"), ("{Side}Hand", "{Side}HandThumb1:end")),
                "thigh": ("{Side}UpLeg", ("{Side}UpLeg", "{Side}Leg")),
                "shin": ("{Side}Leg", ("{Side}Leg", "{Side}Foot")),
                "foot": ("{Side}Foot", ("{Side}Foot", "{Side}ToeBase")),
            },
            _LR,
        ),
    },
    up="+Z",
    scale=0.0254,
    signature=("LeftHandEnd", "Spine3"),
)
# Mixamo-named rigs (Rokoko capture): bones along local axes at rest -> calibrate on a neutral frame.
SPECS["mixamo"] = SkeletonSpec(
    name="mixamo",
    hips="Hips",
    left_hip="LeftUpLeg",
    right_hip="RightUpLeg",
    bones={
        "trunk": BoneMap("Spine2", ("Hips", "Neck")),
        "neck": BoneMap("Neck", ("Neck", "Head")),
        "head": BoneMap("Head", None),  # its End Site lies along the rest axis, not the skull: neutral at frame 0
        **_sided(
            {
                "clavicle": ("{Side}Shoulder", ("{Side}Shoulder", "{Side}Arm")),
                "upperarm": ("{Side}Arm", ("{Side}Arm", "{Side}ForeArm")),
                "forearm": ("{Side}ForeArm", ("{Side}ForeArm", "{Side}Hand")),
                "hand": ("{Side}Hand", ("{Side}Hand", "{Side}HandMiddle1"), ("{Side}Hand", "{Side}HandThumb3")),
                "thigh": ("{Side}UpLeg", ("{Side}UpLeg", "{Side}Leg")),
                "shin": ("{Side}Leg", ("{Side}Leg", "{Side}Foot")),
                "foot": ("{Side}Foot", ("{Side}Foot", "{Side}ToeBase")),
            },
            _LR,
        ),
    },
    reference=0,
    scale=0.01,
    signature=("LeftHandMiddle1", "Spine2", "LeftUpLeg"),
)
# Bandai Namco Research motion dataset (evaluation only: CC BY-NC-ND): bones along local X at rest.
SPECS["bandai"] = SkeletonSpec(
    name="bandai",
    hips="Hips",
    left_hip="UpperLeg_L",
    right_hip="UpperLeg_R",
    bones={
        "trunk": BoneMap("Chest", ("Hips", "Neck")),
        "neck": BoneMap("Neck", ("Neck", "Head")),
        "head": BoneMap("Head", None),
        **_sided(
            {
                "clavicle": ("Shoulder_{S}", ("Shoulder_{S}", "UpperArm_{S}")),
                "upperarm": ("UpperArm_{S}", ("UpperArm_{S}", "LowerArm_{S}")),
                "forearm": ("LowerArm_{S}", ("LowerArm_{S}", "Hand_{S}")),
                "hand": ("Hand_{S}", None),
                "thigh": ("UpperLeg_{S}", ("UpperLeg_{S}", "LowerLeg_{S}")),
                "shin": ("LowerLeg_{S}", ("LowerLeg_{S}", "Foot_{S}")),
                "foot": ("Foot_{S}", ("Foot_{S}", "Toes_{S}")),
            },
            _LR,
        ),
    },
    reference=0,
    scale=0.01,
    signature=("UpperArm_L", "joint_Root"),
)


# Rigs of the non-BVH motion formats (kept apart from the BVH rigs of SPECS; detect_spec searches both).
OTHER_SPECS: dict[str, SkeletonSpec] = {}
# DeepMimic humanoid3d character (xbpeng/DeepMimic, human3d.motion.deepmimic): Y up, facing +X, right on +Z; rest
# pose = standing, straight legs, arms hanging down (a human pose: calibrated on it). 13 animated joints: no
# clavicles, one neck joint at the base of the neck that carries the head (mapped to Anny's neck chain; Anny's
# head keeps a zero delta), revolute knees/elbows (local z), fixed wrists without fingers (Anny's hands follow the
# forearms), ankles carrying an axis-aligned foot box (flat at rest = Anny's zero-pose foot; not re-levelled).
OTHER_SPECS["deepmimic"] = SkeletonSpec(
    name="deepmimic",
    hips="root",
    left_hip="left_hip",
    right_hip="right_hip",
    bones={
        "trunk": BoneMap("chest", ("root", "neck")),
        "neck": BoneMap("neck", ("neck", "neck:end")),
        **_sided(
            {
                "upperarm": ("{side}_shoulder", ("{side}_shoulder", "{side}_elbow")),
                "forearm": ("{side}_elbow", ("{side}_elbow", "{side}_wrist")),
                "thigh": ("{side}_hip", ("{side}_hip", "{side}_knee")),
                "shin": ("{side}_knee", ("{side}_knee", "{side}_ankle")),
                "foot": ("{side}_ankle", ("{side}_ankle", "{side}_ankle:end")),
            },
            {"L": {"side": "left"}, "R": {"side": "right"}},
        ),
    },
    signature=("right_knee", "left_elbow", "chest"),
    level_feet=False,
    neutral_roles=("foot.L", "foot.R"),
)


def detect_spec(names: list[str]) -> SkeletonSpec:
    """The :data:`SPECS` (BVH rigs) or :data:`OTHER_SPECS` entry whose signature joints are all in ``names``."""
    have = set(names)
    for spec in (*SPECS.values(), *OTHER_SPECS.values()):
        if spec.signature and all(n in have for n in spec.signature):
            return spec
    known = [*SPECS, *OTHER_SPECS]
    raise InvalidInputError(f"no known mocap rig matches joints {names[:12]}...; known rigs: {known}")


# ---- rotation helpers ---------------------------------------------------------------------------------------------
def minimal_rotation(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """``[..., 3, 3]`` smallest rotation taking direction ``a`` [..., 3] to direction ``b`` [..., 3].

    For opposite directions, a half turn about an axis perpendicular to ``a``.
    """
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)
    axis = torch.cross(a, b, dim=-1)
    s = axis.norm(dim=-1, keepdim=True)
    c = (a * b).sum(-1, keepdim=True)
    angle = torch.atan2(s, c)  # [..., 1]
    # Perpendicular fallback axis for the antiparallel case.
    ex = torch.tensor([1.0, 0.0, 0.0], dtype=a.dtype, device=a.device)
    ey = torch.tensor([0.0, 1.0, 0.0], dtype=a.dtype, device=a.device)
    ref = torch.where(a[..., :1].abs() < 0.9, ex, ey)
    perp = torch.cross(a, ref.expand_as(a), dim=-1)
    perp = perp / perp.norm(dim=-1, keepdim=True)
    axis = torch.where(s > 1e-7, axis / s.clamp_min(eps), perp)
    return axis_angle_to_matrix(axis * angle)


def swing_twist(R: torch.Tensor, axis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split rotations ``R`` [..., 3, 3] as ``R = S @ T``: ``T`` a rotation about ``axis`` [..., 3] (twist),
    ``S`` a rotation about an axis perpendicular to it (swing)."""
    q = matrix_to_quaternion(R)  # [..., 4] wxyz
    n = axis / axis.norm(dim=-1, keepdim=True)
    n = n.expand(q.shape[:-1] + (3,))
    proj = (q[..., 1:] * n).sum(-1, keepdim=True) * n
    qt = torch.cat([q[..., :1], proj], -1)
    norm = qt.norm(dim=-1, keepdim=True)
    ident = torch.zeros_like(qt)
    ident[..., 0] = 1.0
    qt = torch.where(norm > 1e-9, qt / norm.clamp_min(1e-12), ident)
    T = quaternion_to_matrix(qt)
    return R @ T.transpose(-1, -2), T


def _fractional(R: torch.Tensor, w: float) -> torch.Tensor:
    """``R^w`` for rotations [..., 3, 3] (scaled rotation vector; angle in [0, pi])."""
    return axis_angle_to_matrix(matrix_to_axis_angle(R) * w)


# ---- Anny reference skeleton --------------------------------------------------------------------------------------
@dataclasses.dataclass
class AnnyReference:
    """Anny's zero pose in the canonical frame (Y up, facing +Z), as AnnyBody produces it."""

    names: list[str]
    """Bone labels, ``anny.Anny().bone_labels`` (root first)."""
    parents: list[int]
    """Parent index per bone (-1 for the root)."""
    heads: torch.Tensor
    """``[J, 3]`` bone heads of the zero pose (root at the origin), metres."""
    y_axes: torch.Tensor
    """``[J, 3]`` each bone's own axis (Blender y: head -> tail) in the zero pose."""

    def index(self, name: str) -> int:
        return self.names.index(name)

    def segment(self, head: str, tail: str | None) -> torch.Tensor:
        """Unit direction [3] of an Anny segment in the zero pose (tail None: the bone's y axis)."""
        if tail is None:
            return self.y_axes[self.index(head)]
        d = self.heads[self.index(tail)] - self.heads[self.index(head)]
        return d / d.norm()


@functools.lru_cache(maxsize=4)
def _anny_reference_cached(cache_dir: str | None) -> AnnyReference:
    from human3d.body.anny import AnnyBody

    body = AnnyBody(skinning="lbs", dtype=torch.float64, cache_dir=cache_dir)
    params = body.default_params(1)
    heads = body(params).joints[0]  # [J, 3] canonical, root at the origin (transl = 0)
    # Bone axes: from Anny's own posed bone frames, brought to the canonical frame by the rotation that maps
    # Anny's raw bone heads onto AnnyBody's joints (Kabsch), whatever frame change AnnyBody applies internally.
    deltas = body.delta_transforms(params["global_orient"], params["body_pose"])
    raw = body.anny(deltas, params["phenotypes"])["bone_poses"][0]  # [J, 4, 4]
    raw_heads = raw[:, :3, 3] - raw[0, :3, 3]
    U, _, Vt = torch.linalg.svd(heads.T @ raw_heads)
    S = torch.diag(torch.tensor([1.0, 1.0, float(torch.det(U @ Vt))], dtype=U.dtype))
    frame = U @ S @ Vt  # canonical <- raw
    y_axes = raw[:, :3, 1] @ frame.T
    return AnnyReference(
        names=list(body.joint_names),
        parents=[int(p) for p in body.anny.bone_parents],
        heads=heads.detach().clone(),
        y_axes=y_axes.detach().clone(),
    )


def anny_reference(cache_dir: str | None = None) -> AnnyReference:
    """Anny's zero-pose skeleton (built once per process; needs the Anny cache)."""
    return _anny_reference_cached(None if cache_dir is None else str(cache_dir))


# ---- calibration and retargeting ------------------------------------------------------------------------------------
_UP = {"+Y": (0.0, 1.0, 0.0), "+Z": (0.0, 0.0, 1.0), "-Y": (0.0, -1.0, 0.0), "-Z": (0.0, 0.0, -1.0)}


def up_matrix(up: str) -> torch.Tensor:
    """``[3, 3]`` rotation taking the mocap world to a Y-up world (``"+Y"``: identity; ``"+Z"``: z -> y, y -> -z)."""
    mats = {
        "+Y": ((1.0, 0, 0), (0, 1, 0), (0, 0, 1)),
        "+Z": ((1.0, 0, 0), (0, 0, 1), (0, -1, 0)),
        "-Y": ((1.0, 0, 0), (0, -1, 0), (0, 0, -1)),
        "-Z": ((1.0, 0, 0), (0, 0, -1), (0, 1, 0)),
    }
    if up not in mats:
        raise InvalidInputError(f"up: expected one of {list(mats)}, got {up!r}")
    return torch.tensor(mats[up], dtype=torch.float64)


@dataclasses.dataclass
class Calibration:
    """Per-rig constants of the retargeting (see the module docstring)."""

    spec: SkeletonSpec
    K: dict[str, torch.Tensor]
    """Role (and ``"root"``) -> ``[3, 3]`` constant in the mocap joint's local frame: ``G = M_up Rw_j K``."""
    M_up: torch.Tensor
    """``[3, 3]`` mocap world -> Y-up world."""
    hinge_twists: dict[str, float] = dataclasses.field(default_factory=dict)
    """Twist corrections (radians) applied to the hinge parents (``"upperarm.L"``, ``"thigh.R"``, ...)."""
    foot_pitches: dict[str, float] = dataclasses.field(default_factory=dict)
    """Pitch (radians, about the foot's lateral axis) removed from the feet so that they lie flat in stance."""


def _reference_pose(motion: Motion, spec: SkeletonSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World positions [J, 3], world rotations [J, 3, 3] and End Site positions [J, 3] of the reference pose."""
    if spec.reference == "rest":
        pos = motion.rest_positions()
        rot = torch.eye(3, dtype=torch.float64).expand(motion.num_joints, 3, 3).clone()
    else:
        k = int(spec.reference)
        if not -motion.num_frames <= k < motion.num_frames:
            raise InvalidInputError(f"{motion.source}: reference frame {k} out of range ({motion.num_frames} frames)")
        one = motion.slice(slice(k, k + 1 if k != -1 else None))
        p, r = one.forward_kinematics()
        pos, rot = p[0], r[0]
    ends = pos + (rot @ torch.nan_to_num(motion.end_offsets, nan=0.0)[..., None])[..., 0]
    ends[torch.isnan(motion.end_offsets[:, 0])] = float("nan")
    return pos, rot, ends


def _frame(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[3, 3]`` orthonormal frame with columns (a, b made perpendicular to a, a x b)."""
    e1 = a / a.norm()
    e2 = b - (b @ e1) * e1
    e2 = e2 / e2.norm()
    return torch.stack([e1, e2, torch.cross(e1, e2, dim=0)], 1)


def _role_world(motion: Motion, pos_rot, K: dict[str, torch.Tensor], M_up: torch.Tensor, joint: str, role: str):
    """World deltas ``G = M_up Rw_j K_role`` [F, 3, 3] of one role."""
    return M_up @ pos_rot[1][:, motion.index(joint)] @ K[role]


def _direction_calibration(motion: Motion, spec: SkeletonSpec, anny: AnnyReference) -> Calibration:
    """Step 1 of the module docstring: the constants K from ``motion``'s reference pose (no hinge correction)."""
    pos, rot, ends = _reference_pose(motion, spec)
    M_up = up_matrix(spec.up)
    up = M_up.T @ torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)  # mocap world up
    left = pos[motion.index(spec.left_hip)] - pos[motion.index(spec.right_hip)]
    left = left - (left @ up) * up
    if float(left.norm()) < 1e-9:
        raise InvalidInputError(f"{motion.source}: left and right hips coincide in the reference pose")
    left = left / left.norm()
    M_ref = torch.stack([left, up, torch.cross(left, up, dim=0)])  # rows: mocap world -> canonical

    def point(name: str) -> torch.Tensor:
        if name.endswith(":end"):
            return ends[motion.index(name[: -len(":end")])]
        return pos[motion.index(name)]

    def direction(seg: tuple[str, str] | None) -> torch.Tensor | None:
        if seg is None:
            return None
        d = point(seg[1]) - point(seg[0])
        if not bool(torch.isfinite(d).all()) or float(d.norm()) < 1e-6:
            return None
        return M_ref @ (d / d.norm())

    K = {"root": rot[motion.index(spec.hips)].T @ M_ref.T}
    A: dict[str, torch.Tensor] = {}
    pending = []
    for role, bm in spec.bones.items():
        if role not in ANNY_ROLES:
            raise InvalidInputError(f"spec {spec.name}: unknown Anny role {role!r}")
        t = None if role in NEUTRAL_AT_REFERENCE else direction(bm.calib)
        if t is None:
            pending.append(role)
            continue
        _, (h, tl) = ANNY_ROLES[role]
        r = anny.segment(h, tl)
        t2 = direction(bm.secondary)
        if t2 is not None and role in ANNY_SECONDARY:
            r2 = anny.segment(*ANNY_SECONDARY[role])
            A[role] = _frame(t, t2) @ _frame(r, r2).T
        else:
            A[role] = minimal_rotation(r, t)
    for role in pending:  # fallbacks
        fb = "identity" if role in spec.neutral_roles else _FALLBACK.get(role)
        if fb == "identity":
            A[role] = torch.eye(3, dtype=torch.float64)
            continue
        if fb is None or fb not in A:
            raise InvalidInputError(f"spec {spec.name}: role {role!r} has no usable calibration direction")
        A[role] = A[fb]
    for role, bm in spec.bones.items():
        K[role] = rot[motion.index(bm.rot)].T @ M_ref.T @ A[role]
    return Calibration(spec=spec, K=K, M_up=M_up)


def _hinge_twists(
    motions: list[Motion], cals: list[Calibration], anny: AnnyReference, max_fps: float, min_bend: float
) -> dict[str, float]:
    """Twist (radians, about the parent bone) that turns each hinge's mean bend direction into Anny's, pooled over
    ``motions`` (each with its own calibration); hinges bending less than ``min_bend`` on average are skipped."""
    spec = cals[0].spec
    fks = [m.subsample(max_fps).forward_kinematics() for m in motions]
    out = {}
    for parent, child in HINGES:
        if parent not in spec.bones or child not in spec.bones:
            continue
        _, (h, tl) = ANNY_ROLES[parent]
        r_p = anny.segment(h, tl)
        _, (h, tl) = ANNY_ROLES[child]
        r_c = anny.segment(h, tl)
        bend = r_c if parent.startswith("upperarm") else torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64)
        bend = bend - (bend @ r_p) * r_p
        total = torch.zeros(3, dtype=torch.float64)
        count = 0
        for m, fk, cal in zip(motions, fks, cals):
            Gp = _role_world(m, fk, cal.K, cal.M_up, spec.bones[parent].rot, parent)  # [F, 3, 3]
            Gc = _role_world(m, fk, cal.K, cal.M_up, spec.bones[child].rot, child)
            v = (Gp.transpose(-1, -2) @ (Gc @ r_c)[..., None])[..., 0]  # child direction in parent ref axes
            total += (v - (v @ r_p)[:, None] * r_p).sum(0)
            count += v.shape[0]
        if count == 0 or float(total.norm()) / count < min_bend:
            continue
        out[parent] = float(torch.atan2(r_p @ torch.cross(bend, total, dim=0), bend @ total))
    return out


def _foot_pitches(
    motions: list[Motion], cals: list[Calibration], anny: AnnyReference, max_fps: float
) -> dict[str, float]:
    """How much lower (radians) each Anny foot points than in the zero pose, where it stands flat, over the stance
    frames of ``motions`` (the 20 % of frames where that ankle is lowest): median over frames, per side."""
    spec = cals[0].spec

    def pitch(d):  # [..., 3] -> angle below the horizontal plane
        return torch.atan2(-d[..., 1], d[..., [0, 2]].norm(dim=-1))

    out = {}
    for s in ("L", "R"):
        foot = f"foot.{s}"
        if foot not in spec.bones:
            continue
        r = anny.segment(*ANNY_ROLES[foot][1])
        vals = []
        for m, cal in zip(motions, cals):
            sub = m.subsample(max_fps)
            pos, rot = sub.forward_kinematics()
            j = sub.index(spec.bones[foot].rot)
            height = (pos[:, j] @ cal.M_up.T)[:, 1]  # [F]
            stance = height <= torch.quantile(height, 0.2)
            G = cal.M_up @ rot[stance][:, j] @ cal.K[foot]  # [S, 3, 3]
            vals.append(pitch((G @ r[:, None])[..., 0]) - pitch(r))
        out[foot] = float(torch.cat(vals).median())
    return out


def _apply_foot_pitches(cal: Calibration, pitches: dict[str, float]) -> Calibration:
    K = dict(cal.K)
    for foot, theta in pitches.items():
        K[foot] = K[foot] @ axis_angle_to_matrix(torch.tensor([-theta, 0.0, 0.0], dtype=torch.float64))
    return dataclasses.replace(cal, K=K, foot_pitches=dict(pitches))


def _apply_twists(cal: Calibration, twists: dict[str, float], anny: AnnyReference) -> Calibration:
    K = dict(cal.K)
    for parent, psi in twists.items():
        _, (h, tl) = ANNY_ROLES[parent]
        K[parent] = K[parent] @ axis_angle_to_matrix(anny.segment(h, tl) * psi)
    return dataclasses.replace(cal, K=K, hinge_twists=dict(twists))


def calibrate_rig(
    motions: list[Motion],
    spec: SkeletonSpec | None = None,
    anny: AnnyReference | None = None,
    hinge: bool = True,
    hinge_clips: list[bool] | None = None,
    hinge_max_fps: float = 30.0,
    min_bend: float = 0.15,
) -> list[Calibration]:
    """One calibration per clip of one rig (see the module docstring).

    Rigs with ``spec.reference == "rest"`` get their direction constants from each clip's own rest pose (subjects'
    proportions differ); the others share those of the first clip's reference frame. The hinge twists are pooled
    over the clips flagged in ``hinge_clips`` (default all), subsampled to ``hinge_max_fps``, and applied to all;
    a hinge whose child bends less than ``min_bend`` (radians of the mean perpendicular component, ~0.15 = 9
    degrees) on average keeps the reference twist.
    """
    motions = list(motions)
    if not motions:
        raise InvalidInputError("motions: expected at least one Motion")
    spec = spec or detect_spec(motions[0].names)
    anny = anny or anny_reference()
    if spec.reference == "rest":
        cals = [_direction_calibration(m, spec, anny) for m in motions]
    else:
        cals = [_direction_calibration(motions[0], spec, anny)] * len(motions)
    if not hinge:
        return cals
    use = [True] * len(motions) if hinge_clips is None else list(hinge_clips)
    if len(use) != len(motions):
        raise InvalidInputError(f"hinge_clips: expected {len(motions)} flags, got {len(use)}")
    sel = [i for i, u in enumerate(use) if u]
    twists = _hinge_twists([motions[i] for i in sel], [cals[i] for i in sel], anny, hinge_max_fps, min_bend)
    cals = [_apply_twists(c, twists, anny) for c in cals]
    if not spec.level_feet:
        return cals
    if spec.reference == "rest":  # each clip's own skeleton: its own stance ankle angle
        return [_apply_foot_pitches(c, _foot_pitches([m], [c], anny, hinge_max_fps)) for m, c in zip(motions, cals)]
    pitches = _foot_pitches([motions[i] for i in sel], [cals[i] for i in sel], anny, hinge_max_fps)
    return [_apply_foot_pitches(c, pitches) for c in cals]


def calibrate(
    motion: Motion,
    spec: SkeletonSpec | None = None,
    anny: AnnyReference | None = None,
    hinge: bool = True,
    hinge_max_fps: float = 30.0,
    min_bend: float = 0.15,
) -> Calibration:
    """Calibration of one clip from its own reference pose and (``hinge=True``) its own hinge statistics
    (:func:`calibrate_rig` pools several clips of a rig, which is more robust)."""
    return calibrate_rig([motion], spec, anny, hinge, None, hinge_max_fps, min_bend)[0]


@dataclasses.dataclass
class RetargetResult:
    """Anny pose parameters per frame (AnnyBody conventions: canonical frame, axis-angle, metres)."""

    global_orient: torch.Tensor
    """``[F, 3]`` root rotation."""
    body_pose: torch.Tensor
    """``[F, 103 * 3]`` local-ref rotations of ``names[1:]``."""
    transl: torch.Tensor
    """``[F, 3]`` mocap hips position (Y-up world of the clip, metres)."""
    names: list[str]
    """Anny bone labels (root first)."""
    world: torch.Tensor
    """``[F, J, 3, 3]`` world deltas G (each bone's world rotation relative to the zero pose)."""
    fps: float


def retarget(
    motion: Motion,
    calibration: Calibration | None = None,
    spec: SkeletonSpec | None = None,
    anny: AnnyReference | None = None,
    forearm_twist: str = "lowerarm02",
) -> RetargetResult:
    """Retarget every frame of ``motion`` onto Anny (see the module docstring).

    ``calibration`` defaults to :func:`calibrate` on ``motion`` itself with ``spec`` (auto-detected by joint names).
    ``forearm_twist``: ``"lowerarm02"`` puts the forearm twist (pronation) on Anny's distal forearm twist bone;
    ``"none"`` drops it (lowerarm02 stays zero and the wrist keeps only the swing of the hand relative to the
    forearm), which is the pose space of fitting and of the pose priors (pronation is not observable from body
    keypoints).
    """
    if forearm_twist not in ("lowerarm02", "none"):
        raise InvalidInputError(f"forearm_twist: expected 'lowerarm02' or 'none', got {forearm_twist!r}")
    anny = anny or anny_reference()
    if calibration is None:
        calibration = calibrate(motion, spec, anny)
    spec = calibration.spec
    K, M_up = calibration.K, calibration.M_up
    pos, Rw = motion.forward_kinematics()  # [F, J, 3], [F, J, 3, 3]
    F = pos.shape[0]
    dt = torch.float64
    Rw = Rw.to(dt)

    def world(role: str) -> torch.Tensor:  # [F, 3, 3]
        j = motion.index(spec.hips if role == "root" else spec.bones[role].rot)
        return M_up @ Rw[:, j] @ K[role]

    J = len(anny.names)
    idx = {n: i for i, n in enumerate(anny.names)}
    eye = torch.eye(3, dtype=dt).expand(F, 3, 3)
    # D: local-ref deltas per bone; bones not set stay identity.
    D = eye.unsqueeze(1).repeat(1, J, 1, 1)  # [F, J, 3, 3]
    G: dict[str, torch.Tensor] = {}
    has = spec.bones.__contains__

    G["root"] = world("root")
    D[:, 0] = G["root"]
    # Trunk: one rotation relative to the pelvis, split over the five spine bones.
    chest = world("trunk") if has("trunk") else G["root"]
    step = _fractional(G["root"].transpose(-1, -2) @ chest, 1.0 / len(SPINE_BONES))
    for b in SPINE_BONES:
        D[:, idx[b]] = step
    G["spine01"] = chest
    # Neck: relative to the chest, split over three bones; then the head.
    neck = world("neck") if has("neck") else chest
    step = _fractional(chest.transpose(-1, -2) @ neck, 1.0 / len(NECK_BONES))
    for b in NECK_BONES:
        D[:, idx[b]] = step
    head = world("head") if has("head") else neck
    D[:, idx["head"]] = neck.transpose(-1, -2) @ head

    for s in ("L", "R"):
        clav = world(f"clavicle.{s}") if has(f"clavicle.{s}") else chest
        D[:, idx[f"clavicle.{s}"]] = chest.transpose(-1, -2) @ clav
        # shoulder01 keeps a zero delta: the upper arm is relative to the clavicle.
        ua = world(f"upperarm.{s}") if has(f"upperarm.{s}") else clav
        D[:, idx[f"upperarm01.{s}"]] = clav.transpose(-1, -2) @ ua
        # Elbow: minimal rotation pointing the forearm along the mocap forearm (a hinge when the upper-arm twist
        # is right); pronation goes to lowerarm02, the rest of the hand rotation to the wrist.
        _, (h, t) = ANNY_ROLES[f"forearm.{s}"]
        r_fa = anny.segment(h, t).to(dt)  # [3]
        fa_full = world(f"forearm.{s}") if has(f"forearm.{s}") else ua
        fa_dir = fa_full @ r_fa
        lo1 = minimal_rotation(ua @ r_fa, fa_dir) @ ua
        D[:, idx[f"lowerarm01.{s}"]] = ua.transpose(-1, -2) @ lo1
        hand = world(f"hand.{s}") if has(f"hand.{s}") else fa_full
        swing, twist = swing_twist(lo1.transpose(-1, -2) @ hand, r_fa)
        if forearm_twist == "lowerarm02":
            D[:, idx[f"lowerarm02.{s}"]] = twist
            D[:, idx[f"wrist.{s}"]] = twist.transpose(-1, -2) @ swing @ twist
        else:
            D[:, idx[f"wrist.{s}"]] = swing
        # Legs: full rotations.
        th = world(f"thigh.{s}") if has(f"thigh.{s}") else G["root"]
        D[:, idx[f"upperleg01.{s}"]] = G["root"].transpose(-1, -2) @ th  # pelvis.* keep zero deltas
        sh = world(f"shin.{s}") if has(f"shin.{s}") else th
        D[:, idx[f"lowerleg01.{s}"]] = th.transpose(-1, -2) @ sh
        ft = world(f"foot.{s}") if has(f"foot.{s}") else sh
        D[:, idx[f"foot.{s}"]] = sh.transpose(-1, -2) @ ft

    # World deltas of every bone from the chain (for diagnostics and checks).
    Wd = [None] * J
    for c, p in enumerate(anny.parents):
        Wd[c] = D[:, c] if p < 0 else Wd[p] @ D[:, c]
    world_all = torch.stack(Wd, 1)
    rotvec = matrix_to_axis_angle(D)  # [F, J, 3]
    hips = pos[:, motion.index(spec.hips)]
    return RetargetResult(
        global_orient=rotvec[:, 0].float(),
        body_pose=rotvec[:, 1:].reshape(F, -1).float(),
        transl=(hips @ M_up.T).float(),
        names=list(anny.names),
        world=world_all,
        fps=motion.fps,
    )


def segment_directions(
    joints: torch.Tensor, names: list[str], segments: list[tuple[str, str]]
) -> torch.Tensor:
    """Unit directions ``[B, S, 3]`` of named segments (head joint -> tail joint) from joints ``[B, J, 3]``."""
    ia = [names.index(a) for a, _ in segments]
    ib = [names.index(b) for _, b in segments]
    d = joints[:, ib] - joints[:, ia]
    return d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
