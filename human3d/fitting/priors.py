"""What fitting optimises and how it is regularised: the pose space per model, the built-in simple pose prior,
joint-angle limits and the shape prior.

Pose space
----------
Fitting does not optimise every entry of ``body_pose``: fingers, toes, eyes and twist bones are not observable
from body keypoints and stay at zero. A :class:`PoseSpace` lists *groups*, each one axis-angle ``[3]`` that drives
one or more ``body_pose`` joints with fixed fractions (``body_pose[:, j] = sum_g E[g, j] r_g``):

* SMPL / SMPL-H / SMPL-X: the 21 body joints, one group each (SMPL's two hand joints stay at zero);
* Anny: the bones that :mod:`human3d.motion.retarget` drives from motion capture: the trunk (one rotation split
  equally over ``spine05..spine01``), the neck (split over ``neck01..neck03``), ``head``, and per side
  ``clavicle``, ``upperarm01``, ``lowerarm01`` (elbow), ``wrist``, ``upperleg01``, ``lowerleg01`` (knee),
  ``foot``: 15 groups.

Joint-angle limits
------------------
Elbows and knees are hinges. Their flexion axis is found from the model's zero pose, so every model is handled
alike and no per-rig axis table is needed: with ``u`` the upper segment's direction (shoulder -> elbow,
hip -> knee) and ``f`` the body's forward direction, the elbow flexes about ``normalize(u x f)`` (the forearm
swings forward) and the knee about ``normalize(f x u)`` (the shin swings backward). Both Anny (``local-ref``) and
SMPL express a joint's relative rotation in axes that are world-aligned in the zero pose, so the projection of
the joint's axis-angle on that axis is its flexion angle. Limits (radians, relative to the zero pose): flexion in ``[-0.1 - b, 2.6]`` (knee) /
``[-0.1 - b, 2.7]`` (elbow), ``b`` the zero pose's own bend (Anny rests with bent elbows); knee side-bend and twist within ``±0.3``; elbow side-bend within ``±0.5``. For SMPL these
axes come out as SMPLify's (its ``exp`` penalty acts on the left/right elbow's y and the knees' x components,
``body_pose`` indices 55, 58, 12, 15 of the 72-vector, with the same signs).

Priors
------
The pose prior is anything with ``energy(x) -> [B]`` (:class:`generative.priors.Prior`). The built-in
``"simple"`` prior is a diagonal Gaussian (:class:`generative.priors.GaussianPrior`) over the group axis-angles:
for Anny its mean and standard deviations are statistics of the learned priors' training mocap (``_ANNY_MEAN``/
``_ANNY_STD``, from ``tools/build_assets/simple_prior_stats.py``; the clips of the tests and benchmarks are held
out); for the SMPL family the same poses mapped onto SMPL's joints (``_SMPL_MEAN``/``_SMPL_STD``,
``--family smpl``). Stage 2 starts from the mean pose. ``"auto"`` picks the family's default
(:data:`human3d.fitting.config.DEFAULT_PRIOR`: the learned flow for Anny and for the SMPL family). Learned priors
(``"gaussian"``, ``"vae"``, ``"flow"``, ``"diffusion"``, ``"gan"``) come from
:func:`generative.priors.pose.load_pose_prior` and see ``body_pose`` entries of the bones they were trained on.
The shape prior is an L2 on betas, or on the logits of Anny's phenotypes (kept inside their range by a sigmoid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from generative.priors.pose import ANNY_PRIOR_GROUPS, POSE_PRIOR_KINDS, SMPL_PRIOR_JOINTS

from human3d.errors import InvalidInputError
from human3d.fitting.config import resolve_prior

__all__ = [
    "PoseSpace",
    "Hinge",
    "PoseTerm",
    "pose_space",
    "simple_pose_prior",
    "make_pose_term",
    "hinge_angles",
    "PRIOR_KINDS",
]

PRIOR_KINDS = ("auto", "simple", *POSE_PRIOR_KINDS, "none")
"""Prior names fitting takes (the CLI's ``--prior`` choices): ``"auto"``, the built-in ``"simple"``, the shipped
learned kinds (:data:`generative.priors.pose.POSE_PRIOR_KINDS`) and ``"none"``."""

# ---- per-model pose statistics ------------------------------------------------------------------------------------
# The pose groups themselves are the model's (BodyModel.pose_groups; their one table is generative.priors.pose's
# ANNY_PRIOR_GROUPS / SMPL_PRIOR_JOINTS); the names below are kept for tools/build_assets/simple_prior_stats.py.
_ANNY_GROUPS = ANNY_PRIOR_GROUPS
_SMPL_BODY = SMPL_PRIOR_JOINTS
# Simple prior for Anny: mean and standard deviation (floored at 0.1 rad) of each group axis-angle over the training
# poses of the shipped learned priors (18,161 poses, 48 CMU / MIT clips retargeted with human3d.motion.retarget at
# <= 30 fps; the HOLDOUT clips of human3d.motion.mocap, 131_03 among them, excluded). Written by
# tools/build_assets/simple_prior_stats.py. Order: _ANNY_GROUPS x (x, y, z).
_ANNY_MEAN = [
    -0.019, 0.024, 0.024, -0.117, -0.134, -0.013, 0.342, -0.052, 0.0, 0.032, -0.058, 0.21, -0.161, -0.266, -0.539,
    -0.326, -0.292, 0.021, -0.037, 0.274, 0.236, -0.237, -0.008, -0.004, 0.456, 0.03, -0.016, -0.167, 0.062, 0.008,
    0.037, 0.031, -0.192, -0.206, 0.104, 0.471, -0.388, 0.347, -0.025, -0.144, -0.081, -0.169, -0.257, 0.013, -0.004,
    0.485, -0.031, 0.017, -0.159, -0.125, -0.019,
]  # fmt: skip
_ANNY_STD = [
    0.154, 0.179, 0.112, 0.189, 0.221, 0.1, 0.237, 0.16, 0.108, 0.1, 0.118, 0.241, 0.504, 0.523, 0.498,
    0.49, 0.432, 0.1, 0.276, 0.255, 0.219, 0.316, 0.197, 0.18, 0.37, 0.1, 0.1, 0.246, 0.181, 0.1,
    0.1, 0.128, 0.23, 0.498, 0.532, 0.512, 0.456, 0.403, 0.1, 0.221, 0.266, 0.212, 0.308, 0.189, 0.199,
    0.4, 0.1, 0.1, 0.227, 0.182, 0.1,
]  # fmt: skip

# Simple prior for the SMPL family (SMPL, SMPL-H, SMPL-X share these 21 body joints): mean and standard deviation
# (floored at 0.1 rad) of each joint's body_pose axis-angle over the same training poses as Anny's, mapped onto SMPL's
# joints (human3d.fitting.synthetic.smpl_pose_from_anny: SMPL's own convention, rotations relative to its T-pose
# rest; the feet are never driven by the mocap: zero mean, std at the floor). Written by
# tools/build_assets/simple_prior_stats.py --family smpl. Order: _SMPL_BODY x (x, y, z).
_SMPL_MEAN = [
    -0.237, -0.008, -0.004, -0.257, 0.013, -0.004, -0.008, 0.01, 0.009, 0.456, 0.03, -0.016, 0.485, -0.031, 0.017,
    -0.008, 0.01, 0.009, -0.167, 0.062, 0.008, -0.159, -0.125, -0.019, -0.004, 0.005, 0.005, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, -0.039, -0.045, -0.004, 0.032, -0.058, 0.21, 0.037, 0.031, -0.192, 0.258, -0.141, 0.015,
    -0.041, -0.344, -1.329, -0.153, 0.205, 1.264, -0.001, -1.171, 0.067, -0.001, 1.253, -0.072, 0.012, 0.063, 0.273,
    0.013, 0.149, -0.18,
]  # fmt: skip
_SMPL_STD = [
    0.316, 0.197, 0.18, 0.308, 0.189, 0.199, 0.1, 0.1, 0.1, 0.37, 0.1, 0.1, 0.4, 0.1, 0.1,
    0.1, 0.1, 0.1, 0.246, 0.181, 0.1, 0.227, 0.182, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1,
    0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.118, 0.241, 0.1, 0.128, 0.23, 0.238, 0.275, 0.124,
    0.518, 0.56, 0.525, 0.508, 0.568, 0.536, 0.1, 0.652, 0.1, 0.1, 0.608, 0.1, 0.1, 0.314, 0.3,
    0.1, 0.282, 0.291,
]  # fmt: skip

# Simple-prior mean and standard deviation [G, 3] per model's prior_family (BodyModel.prior_family).
_SIMPLE_STATS = {"anny": (_ANNY_MEAN, _ANNY_STD), "smpl": (_SMPL_MEAN, _SMPL_STD)}
# (flexion lower, upper), side-bend half range, twist half range (None: free)
_HINGE_LIMITS = {+1: ((-0.1, 2.7), 0.5, None), -1: ((-0.1, 2.6), 0.3, 0.3)}


@dataclass
class Hinge:
    """A hinge joint: its group, flexion/side/twist axes (canonical frame) and limits (radians)."""

    name: str
    group: int  # index into PoseSpace.groups
    flex_axis: torch.Tensor  # [3]
    side_axis: torch.Tensor  # [3]
    twist_axis: torch.Tensor  # [3] (the lower segment's rest direction)
    flex_range: tuple[float, float]
    side_limit: float | None
    twist_limit: float | None


@dataclass
class PoseSpace:
    """The optimised pose variables of a model (see the module docstring)."""

    family: str
    group_names: list[str]
    expand: torch.Tensor  # [G, Jp] fractions: body_pose joint j gets sum_g expand[g, j] * r_g
    n_pose_joints: int  # joints in body_pose
    mean: torch.Tensor  # [G, 3] simple-prior mean (also the pose fitting starts from)
    std: torch.Tensor  # [G, 3] simple-prior standard deviations (radians)
    hinges: list[Hinge] = field(default_factory=list)

    @property
    def num_groups(self) -> int:
        return len(self.group_names)

    def body_pose(self, groups: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """Group axis-angles ``[B, G, 3]`` -> ``body_pose`` ``[B, Jp * 3]`` (``base`` ``[B, Jp*3]`` added if given)."""
        pose = torch.einsum("gj,bgd->bjd", self.expand.to(groups), groups).reshape(groups.shape[0], -1)
        return pose if base is None else base + pose

    def groups_from_body_pose(self, body_pose: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`body_pose` on the groups' joints: ``[B, Jp*3]`` -> ``[B, G, 3]`` (least squares)."""
        bp = body_pose.reshape(body_pose.shape[0], self.n_pose_joints, 3)
        E = self.expand.to(bp)  # [G, Jp]
        return torch.einsum("gj,bjd->bgd", E, bp) / (E**2).sum(1)[None, :, None]

    def limb_hinge_arrays(self):
        """Stacked hinge data: group indices [H], axes [H, 3, 3] (flex, side, twist rows), lo/hi [H, 3]."""
        if not self.hinges:
            return None
        idx = torch.tensor([h.group for h in self.hinges])
        axes = torch.stack([torch.stack([h.flex_axis, h.side_axis, h.twist_axis]) for h in self.hinges])
        inf = float("inf")
        lo = torch.tensor([[h.flex_range[0], -(h.side_limit or inf), -(h.twist_limit or inf)] for h in self.hinges])
        hi = torch.tensor([[h.flex_range[1], h.side_limit or inf, h.twist_limit or inf] for h in self.hinges])
        return idx, axes, lo, hi


def hinge_angles(groups: torch.Tensor, space: PoseSpace):
    """Flexion / side / twist angles ``[B, H, 3]`` of the hinges, and the limits ``lo``, ``hi`` ``[H, 3]``."""
    arr = space.limb_hinge_arrays()
    if arr is None:
        empty = groups.new_zeros(groups.shape[0], 0, 3)
        return empty, groups.new_zeros(0, 3), groups.new_zeros(0, 3)
    idx, axes, lo, hi = arr
    r = groups[:, idx.to(groups.device)]  # [B, H, 3]
    ang = torch.einsum("hkd,bhd->bhk", axes.to(groups), r)
    return ang, lo.to(groups), hi.to(groups)


def _family(model) -> str:
    fam = getattr(model, "prior_family", None)
    if fam not in _SIMPLE_STATS:
        raise InvalidInputError(
            f"model: fitting supports Anny and the SMPL family, got family {getattr(model, 'family', None)!r}"
        )
    return fam


@torch.no_grad()
def pose_space(model) -> PoseSpace:
    """The :class:`PoseSpace` of ``model`` (cached on the model object)."""
    cached = getattr(model, "_h3d_pose_space", None)
    if cached is not None:
        return cached
    fam = _family(model)
    names = list(model.joint_names)
    jp = model.parameter_shapes()["body_pose"][0] // 3
    pose_names = names[1 : 1 + jp]
    groups = model.pose_groups()
    E = torch.zeros(len(groups), jp)
    for g, (_, members) in enumerate(groups):
        for m in members:
            if m not in pose_names:
                raise InvalidInputError(f"model: joint {m!r} missing from {model.family}'s body_pose joints")
            E[g, pose_names.index(m)] = 1.0 / len(members)
    group_names = [n for n, _ in groups]
    mean = torch.tensor(_SIMPLE_STATS[fam][0]).reshape(-1, 3)  # [G, 3]
    std = torch.tensor(_SIMPLE_STATS[fam][1]).reshape(-1, 3)  # [G, 3]

    # Hinge axes from the zero pose (canonical frame: Y up, facing +Z).
    out = model(model.default_params(1))
    J = out.joints[0].detach().double().cpu()  # [J, 3] (the space's tensors live on the CPU; users move them)
    fwd = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    hinges = []
    for hname, upper, mid, low, sign in model.hinge_joints:
        lower = J[names.index(low)]
        u = J[names.index(mid)] - J[names.index(upper)]
        u = u / u.norm()
        flex = torch.linalg.cross(u, fwd) if sign > 0 else torch.linalg.cross(fwd, u)
        flex = flex / flex.norm()
        w = lower - J[names.index(mid)]
        w = w / w.norm()
        side = torch.linalg.cross(w, flex)
        side = side / side.norm()
        (lo, hi), side_lim, twist_lim = _HINGE_LIMITS[sign]
        rest_bend = float(torch.arccos((u * w).sum().clamp(-1.0, 1.0)))  # a bent rest pose can straighten by this
        lo = lo - rest_bend
        g = group_names.index(mid)
        hinges.append(Hinge(hname, g, flex.float(), side.float(), w.float(), (lo, hi), side_lim, twist_lim))
    space = PoseSpace(fam, group_names, E, jp, mean, std, hinges)
    try:
        object.__setattr__(model, "_h3d_pose_space", space)
    except Exception:  # pragma: no cover - exotic models
        pass
    return space


def simple_pose_prior(space: PoseSpace):
    """The built-in simple prior: a zero-mean diagonal Gaussian over the group axis-angles ``[B, G*3]``."""
    from generative.priors import GaussianPrior

    prior = GaussianPrior(space.num_groups * 3)
    prior.mean.copy_(space.mean.flatten())
    prior.scale_tril.copy_(torch.diag(space.std.flatten()))
    return prior.freeze()


@dataclass
class PoseTerm:
    """A pose prior and how its input is built: ``select(groups [B, G, 3], body_pose [B, Jp*3]) -> x [B, D]``."""

    prior: object
    select: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    name: str
    scale: float = 1.0  # multiplies the energy (puts priors of different kinds on a comparable footing)
    latent: "LatentPose | None" = None  # VAE priors: decoder/encoder for latent-space (VPoser-style) fitting

    def energy(self, groups: torch.Tensor, body_pose: torch.Tensor) -> torch.Tensor:
        return self.scale * self.prior.energy(self.select(groups, body_pose))

    def to(self, device) -> "PoseTerm":
        """Move the prior (an ``nn.Module``, moved in place) to ``device``; returns self."""
        if hasattr(self.prior, "to"):
            moved = self.prior.to(device)
            self.prior = moved if moved is not None else self.prior
        return self


@dataclass
class LatentPose:
    """A VAE pose prior's latent space over the pose groups (VPoser-style fitting: ``groups = decode(z)``,
    prior energy ``|z|^2``). ``decode``: ``z [B, L] -> groups [B, G, 3]``; ``encode``: ``groups -> z`` (the
    posterior mean, used to start the fit)."""

    dim: int
    decode: Callable[[torch.Tensor], torch.Tensor]
    encode: Callable[[torch.Tensor], torch.Tensor]


def _latent_of(p, space: PoseSpace) -> LatentPose | None:
    """The latent space of a (PosePrior-wrapped) single-layer VAE prior over the groups, else None."""
    inner = getattr(p, "prior", p)
    vae = getattr(inner, "model", None)
    if vae is None or not all(hasattr(vae, a) for a in ("decode", "encode", "latent_dim")):
        return None
    if not (hasattr(inner, "normalize") and hasattr(inner, "denormalize")):
        return None
    names = getattr(p, "group_names", None)
    if names is not None and list(names) != list(space.group_names):
        return None
    try:
        if isinstance(vae.encode(torch.zeros(1, 3 * space.num_groups)), (list, tuple)) and isinstance(
            vae.encode(torch.zeros(1, 3 * space.num_groups))[0], (list, tuple)
        ):
            return None  # hierarchical VAE: several latent layers
    except Exception:  # noqa: BLE001 - not a VAE we can drive
        return None
    G = space.num_groups

    def decode(z: torch.Tensor) -> torch.Tensor:
        return inner.denormalize(vae.decode(z, mean=True).reshape(z.shape[0], -1)).reshape(z.shape[0], G, 3)

    def encode(groups: torch.Tensor) -> torch.Tensor:
        return vae.encode(inner.normalize(groups.reshape(groups.shape[0], -1)))[0]

    return LatentPose(int(vae.latent_dim), decode, encode)


def make_pose_term(prior, space: PoseSpace, model=None) -> PoseTerm | None:
    """Turn ``prior`` (a kind name from ``PRIOR_KINDS``, a Prior object, or None) into a :class:`PoseTerm`.

    * ``"auto"``: the model family's default (:data:`~human3d.fitting.config.DEFAULT_PRIOR`: ``"flow"`` for Anny
      and for the SMPL family); the returned term is named after the resolved kind;
    * ``"none"`` / None: no pose prior;
    * ``"simple"``: :func:`simple_pose_prior` over the group axis-angles;
    * ``"gaussian" | "vae" | "flow" | "diffusion" | "gan"``: the shipped learned prior for the model family, loaded
      through ``generative.priors.pose.load_pose_prior`` (Anny: its 17 groups; SMPL / SMPL-H / SMPL-X: the first 21
      ``body_pose`` joints, SMPL's two hand joints unscored); it scores the same group vector as ``"simple"``;
    * a Prior object: its ``dim`` must be ``3 * G`` (group axis-angles) or ``3 * Jp`` (full ``body_pose``), unless
      it has a ``bones`` attribute naming ``body_pose`` joints.
    """
    if prior is None or (isinstance(prior, str) and prior == "none"):
        return None
    if isinstance(prior, str):
        if prior not in PRIOR_KINDS:
            raise InvalidInputError(f"prior: expected one of {list(PRIOR_KINDS)} or a Prior object, got {prior!r}")
        prior = resolve_prior(prior, space.family)
        if prior == "simple":
            p = simple_pose_prior(space)
            return PoseTerm(p, lambda g, bp: g.reshape(g.shape[0], -1), "simple", 0.5)
        try:
            from generative.priors.pose import load_pose_prior
        except ImportError as e:
            raise InvalidInputError(
                f"prior: the learned pose priors are not available in this installation ({e}); "
                "use --prior simple or --prior none"
            ) from None
        p = load_pose_prior(prior, model=space.family)  # "anny" or "smpl" (SMPL-H / SMPL-X share SMPL's 21 joints)
        return _term_from_object(p, space, model, prior)
    if not hasattr(prior, "energy"):
        raise InvalidInputError(f"prior: expected a kind name or an object with energy(x), got {type(prior).__name__}")
    return _term_from_object(prior, space, model, type(prior).__name__)


def _term_from_object(p, space: PoseSpace, model, name: str) -> PoseTerm:
    bones = getattr(p, "bones", None) or getattr(p, "bone_names", None)
    dim = int(getattr(p, "dim", -1))
    if bones is not None and model is not None:
        names = list(model.joint_names)[1 : 1 + space.n_pose_joints]
        missing = [b for b in bones if b not in names]
        if missing:
            raise InvalidInputError(f"prior {name}: bones {missing} are not body_pose joints of {model.family}")
        idx = torch.tensor([names.index(b) for b in bones])
        if dim not in (-1, 3 * len(bones)):
            raise InvalidInputError(f"prior {name}: dim {dim} does not match 3 x {len(bones)} bones")

        def select(g, bp, idx=idx):
            return bp.reshape(bp.shape[0], -1, 3)[:, idx.to(bp.device)].reshape(bp.shape[0], -1)

        return PoseTerm(p, select, name)
    if dim == 3 * space.num_groups:
        return PoseTerm(p, lambda g, bp: g.reshape(g.shape[0], -1), name, latent=_latent_of(p, space))
    if dim == 3 * space.n_pose_joints:
        return PoseTerm(p, lambda g, bp: bp, name)
    raise InvalidInputError(
        f"prior {name}: dim {dim} matches neither the {space.num_groups} pose groups ({3 * space.num_groups}) nor "
        f"body_pose ({3 * space.n_pose_joints}); give the prior a 'bones' attribute naming its joints"
    )
