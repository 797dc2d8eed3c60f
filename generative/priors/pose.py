"""Learned pose priors for body models: the pose vector they score, and loading the shipped weights.

The prior vector (Anny)
-----------------------
A prior does not score all 103 bones of Anny's ``body_pose``: fingers, toes, eyes and twist bones are not driven
by the mocap it was trained on (nor observable from body keypoints). It scores the 17 *groups* of
:data:`ANNY_PRIOR_GROUPS`, the same groups, in the same order, as the Anny pose space of
:mod:`human3d.fitting.priors`: the trunk (one rotation, split equally over ``spine05..spine01``), the neck
(split over ``neck01..neck03``), the head, and per side (L then R) the clavicle, shoulder (``upperarm01``),
elbow (``lowerarm01``), wrist, hip (``upperleg01``), knee (``lowerleg01``) and ankle (``foot``).

Each group is an **axis-angle** ``[3]`` (radians) in AnnyBody's ``body_pose`` convention (Anny's ``local-ref``
deltas: rotation relative to the parent, in axes that are world-aligned in the zero pose of the canonical frame,
Y up, facing +Z); for a split group it is the whole group's rotation (``r`` gives each of its ``k`` bones
``r / k``, which compose exactly to ``r`` since the bones' axes are world-aligned). The vector is the groups
concatenated: ``x`` ``[B, 51]``. Axis-angle was chosen over 6D because it has no redundant dimensions, so
densities (flows, Gaussians) are well defined; the training poses stay well inside the ``|r| < pi`` ball.
:meth:`PosePrior.from_body_pose` / :meth:`PosePrior.to_body_pose` convert between ``body_pose`` ``[B, 309]``
and ``x`` (bones outside the groups are ignored / set to zero).

The prior vector (SMPL family)
------------------------------
The ``smpl_pose_<kind>`` priors score SMPL's ``body_pose`` of its first 21 joints (:data:`SMPL_PRIOR_JOINTS`:
hips, spine1-3, knees, ankles, feet, neck, collars, head, shoulders, elbows, wrists), one group per joint, as
axis-angles in SMPL's own convention (rotation relative to the parent in axes that are world-aligned in SMPL's
T-pose rest): ``x`` ``[B, 63]``. SMPL-H and SMPL-X have exactly these 21 ``body_pose`` joints; SMPL's 23 end with
the two hand joints, which the prior ignores (:meth:`PosePrior.from_body_pose` takes the first 21). They were
trained on the Anny priors' mocap *mapped onto SMPL's joints*
(:func:`human3d.fitting.synthetic.smpl_pose_from_anny`), not on real SMPL fits or AMASS (see
``generative/priors/weights/PROVENANCE.md`` for what that leaves out).

Kinds
-----
``"gaussian"`` (full-covariance Gaussian, exact), ``"vae"`` (VPoser-like, energy = -ELBO at the posterior mean),
``"flow"`` (RealNVP, exact NLL), ``"diffusion"`` (:class:`DPoserPrior`: DPoser's one-step denoising energy
with a stop-gradient), ``"gan"`` (HMR-like discriminator energy). Weights ship in
``generative/priors/weights/<model>_pose_<kind>.safetensors`` (+ ``.json``; ``model`` ``anny`` or ``smpl``;
package data), trained by ``tools/build_assets/train_pose_priors.py`` on permissively licensed mocap (CMU, MIT); see
``generative/priors/weights/PROVENANCE.md``.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from generative.errors import InvalidInputError, ModelFileError, check_tensor

from .base import BasePrior, DiffusionPrior, load_prior, register_prior

__all__ = [
    "ANNY_PRIOR_GROUPS",
    "SMPL_PRIOR_JOINTS",
    "POSE_PRIOR_MODELS",
    "POSE_PRIOR_KINDS",
    "pose_prior_family",
    "PosePrior",
    "load_pose_prior",
    "pose_prior_path",
    "groups_from_body_pose",
    "body_pose_from_groups",
    "assets_dir",
    "group_expand_matrix",
    "pose_provenance",
    "DPoserPrior",
]

POSE_PRIOR_KINDS = ("gaussian", "vae", "flow", "diffusion", "gan")
"""The learned pose-prior kinds (the one list: fitting's and the CLI's prior names build on it)."""
POSE_PRIOR_MODELS = ("anny", "smpl")
"""Body-model families with shipped pose priors (SMPL-H and SMPL-X use the ``"smpl"`` ones)."""
_MODEL_ALIASES = {"anny": "anny", "smpl": "smpl", "smplh": "smpl", "smplx": "smpl"}

SMPL_PRIOR_JOINTS = [
    "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
]  # fmt: skip
"""The SMPL-family priors' joints: the first 21 of ``body_pose`` (SMPL, SMPL-H, SMPL-X alike), in order."""

_SPINE = ["spine05", "spine04", "spine03", "spine02", "spine01"]
_NECK = ["neck01", "neck02", "neck03"]
ANNY_PRIOR_GROUPS: list[tuple[str, list[str]]] = [("trunk", _SPINE), ("neck", _NECK), ("head", ["head"])]
for _s in ("L", "R"):
    ANNY_PRIOR_GROUPS += [
        (f"{b}.{_s}", [f"{b}.{_s}"])
        for b in ("clavicle", "upperarm01", "lowerarm01", "wrist", "upperleg01", "lowerleg01", "foot")
    ]


@register_prior
class DPoserPrior(DiffusionPrior):
    """Diffusion model as a pose prior with DPoser's denoising energy (Lu et al. 2023, "DPoser: diffusion model as
    robust 3D human pose prior"): the distance of the pose to its one-step denoised version, with a stop-gradient
    on the denoiser,

      E(u) = 1/K Σ_k w_k · ½ |u - sg(x̂_0(x_k, t_k))|^2,   x_k = sqrt(ᾱ_k) u + sqrt(1 - ᾱ_k) ε_k,
      x̂_0 = (x_k - sqrt(1 - ᾱ_k) ε_θ(x_k, t_k)) / sqrt(ᾱ_k),   w_k = ᾱ_k / (1 - ᾱ_k),   u = (x - loc) / scale,

    over fixed pairs (t_k, ε_k) (common random numbers drawn once from ``seed``; with ``antithetic`` each ε also
    as -ε, which cancels the noise term of the gradient to first order). The gradient is therefore
    ``1/K Σ_k w_k (u - x̂_0)`` = ``1/K Σ_k sqrt(w_k) (ε_θ - ε_k)``, the score-distillation direction, which for small
    noise approximates ``-∇ log p(u)`` (Tweedie) and is on the scale of an NLL's gradient; it is *not* the derivative
    of the value through the network. Backpropagating through ε_θ (:class:`~generative.priors.DiffusionPrior`)
    gives a gradient dominated by the network's Jacobian: on held-out poses perturbed by 0.1-0.3 rad its cosine
    with the direction back to the clean pose is 0.06 / 0.0, against 0.27 / 0.28 here (the shipped Anny prior;
    ``tools/bench/results/fit_priors.log``).
    """

    def __init__(
        self,
        model,
        timesteps: tuple[int, ...] = (50, 100, 200, 300),
        noise_per_timestep: int = 4,
        antithetic: bool = True,
        seed: int = 0,
        sample_steps: int = 100,
        sampler: str = "ddpm",
        loc=None,
        scale=None,
    ):
        super().__init__(model, timesteps, noise_per_timestep, "eps", seed, sample_steps, sampler, loc, scale)
        self.antithetic = bool(antithetic)
        if self.antithetic:
            self.t = torch.cat([self.t, self.t])
            self.alpha_bar = torch.cat([self.alpha_bar, self.alpha_bar])
            self.noise = torch.cat([self.noise, -self.noise])
        self.weight = self.alpha_bar / (1 - self.alpha_bar)

    def _energy(self, u):
        B, K = u.shape[0], self.t.shape[0]
        ab = self.alpha_bar[None, :, None].to(u)  # [1, K, 1]
        xt = ab.sqrt() * u[:, None] + (1 - ab).sqrt() * self.noise[None].to(u)  # [B, K, D]
        with torch.no_grad():
            eps = self.model.epsilon(xt.reshape(B * K, self.dim), self.t.repeat(B)).reshape(B, K, self.dim)
            x0 = (xt - (1 - ab).sqrt() * eps) / ab.sqrt()  # one-step denoised poses
        return (self.weight.to(u) * 0.5 * ((u[:, None] - x0) ** 2).sum(-1)).mean(-1)  # [B]

    def options(self):
        return {
            "timesteps": list(self.timesteps), "noise_per_timestep": self.noise_per_timestep,
            "antithetic": self.antithetic, "seed": self.seed, "sample_steps": self.sample_steps,
            "sampler": self.sampler,
        }  # fmt: skip


def assets_dir() -> Path:
    """The folder of the shipped pose-prior weights: ``generative/priors/weights``, package data found through
    :mod:`importlib.resources` (editable and wheel installs alike)."""
    folder = importlib.resources.files("generative.priors") / "weights"
    if not isinstance(folder, Path):  # a zipped install: the weights are not plain files
        raise ModelFileError(f"pose prior weights {folder!s}: expected a folder on disk (install unzipped)")
    return folder


def group_expand_matrix(groups: list[tuple[str, list[str]]], joints: list[str]) -> torch.Tensor:
    """``[G, J]``: body_pose joint j gets ``sum_g E[g, j] r_g`` (``1/k`` for each of a group's k members)."""
    E = torch.zeros(len(groups), len(joints))
    for g, (name, members) in enumerate(groups):
        for m in members:
            if m not in joints:
                raise InvalidInputError(f"pose group {name!r}: joint {m!r} is not a body_pose joint")
            E[g, joints.index(m)] = 1.0 / len(members)
    return E


def groups_from_body_pose(body_pose: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """``body_pose`` ``[B, J*3]`` -> prior vector ``[B, G*3]``: each group's members summed (least squares inverse
    of :func:`body_pose_from_groups`; exact when the members are equal)."""
    B = body_pose.shape[0]
    bp = body_pose.reshape(B, E.shape[1], 3)
    g = torch.einsum("gj,bjd->bgd", E.to(bp), bp) / (E.to(bp) ** 2).sum(1)[None, :, None]
    return g.reshape(B, -1)


def body_pose_from_groups(x: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """Prior vector ``[B, G*3]`` -> ``body_pose`` ``[B, J*3]`` (group rotations split over their members)."""
    B = x.shape[0]
    return torch.einsum("gj,bgd->bjd", E.to(x), x.reshape(B, E.shape[0], 3)).reshape(B, -1)


class PosePrior(nn.Module):
    """A :class:`~generative.priors.Prior` over a body model's pose groups, with the body_pose mapping.

    Implements the Prior protocol (``dim``, ``energy``, ``log_prob``, ``sample``) by delegation to the wrapped
    prior, over the vector ``x`` ``[B, 3 * G]`` of :data:`ANNY_PRIOR_GROUPS`-style groups.
    """

    def __init__(
        self,
        prior: BasePrior,
        groups: list[tuple[str, list[str]]],
        body_pose_joints: list[str],
        kind: str = "",
        model: str = "anny",
        provenance: dict[str, Any] | None = None,
    ):
        super().__init__()
        if prior.dim != 3 * len(groups):
            raise InvalidInputError(f"prior: dim {prior.dim} does not match 3 x {len(groups)} pose groups")
        self.prior = prior
        self.groups = [(str(n), [str(m) for m in ms]) for n, ms in groups]
        self.body_pose_joints = list(body_pose_joints)
        self.kind, self.model_family = kind, model
        self.provenance = provenance or {}
        self.register_buffer("expand", group_expand_matrix(self.groups, self.body_pose_joints), persistent=False)

    # ---- Prior protocol ---------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.prior.dim

    @property
    def exact_log_prob(self) -> bool:
        return bool(getattr(self.prior, "exact_log_prob", False))

    @property
    def group_names(self) -> list[str]:
        return [n for n, _ in self.groups]

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, dim] -> [B]``, differentiable in x; lower = more plausible."""
        return self.prior.energy(x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density ``[B]`` (Gaussian and flow priors; others raise NotImplementedError)."""
        return self.prior.log_prob(x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[n, dim]`` prior samples (pose vectors)."""
        return self.prior.sample(n, generator=generator)

    # ---- body_pose mapping ------------------------------------------------------------------------------------
    def from_body_pose(self, body_pose: torch.Tensor) -> torch.Tensor:
        """``body_pose`` ``[B, 3 * J]`` (or ``[B, J, 3]``) -> prior vector ``[B, dim]``. SMPL-family priors also
        take SMPL's ``[B, 69]`` (23 joints): its first 21 joints are the prior's, the two hand joints are ignored."""
        J = len(self.body_pose_joints)
        if body_pose.dim() == 3:
            body_pose = body_pose.reshape(body_pose.shape[0], -1)
        if self.model_family == "smpl" and body_pose.dim() == 2 and body_pose.shape[1] == 3 * (J + 2):
            body_pose = body_pose[:, : 3 * J]  # SMPL: drop left_hand, right_hand
        check_tensor(body_pose, "body_pose", (None, 3 * J), dtype_floating=True)
        return groups_from_body_pose(body_pose, self.expand)

    def to_body_pose(self, x: torch.Tensor) -> torch.Tensor:
        """Prior vector ``[B, dim]`` -> ``body_pose`` ``[B, 3 * J]`` (bones outside the groups at zero)."""
        check_tensor(x, "x", (None, self.dim), dtype_floating=True)
        return body_pose_from_groups(x, self.expand)

    def body_pose_energy(self, body_pose: torch.Tensor) -> torch.Tensor:
        """Energy of full ``body_pose`` vectors ``[B, 3 * J]`` -> ``[B]``."""
        return self.energy(self.from_body_pose(body_pose))

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, model={self.model_family!r}, dim={self.dim}, groups={len(self.groups)}"


def pose_prior_family(model: str) -> str:
    """The pose-prior family of a body-model family name: ``"anny"`` -> ``"anny"``; ``"smpl"``, ``"smplh"``,
    ``"smplx"`` -> ``"smpl"`` (one of :data:`POSE_PRIOR_MODELS`)."""
    key = _MODEL_ALIASES.get(model) if isinstance(model, str) else None
    if key is None:
        raise InvalidInputError(
            f"model: pose priors ship for {list(POSE_PRIOR_MODELS)} (SMPL-H / SMPL-X use 'smpl'), got {model!r}"
        )
    return key


def pose_prior_path(kind: str, model: str = "anny", root=None) -> Path:
    """Path of the shipped weights of a pose prior kind for ``model`` (``"anny"``, or ``"smpl"`` / ``"smplh"`` /
    ``"smplx"``, which share the ``smpl_pose_<kind>`` files)."""
    if kind not in POSE_PRIOR_KINDS:
        raise InvalidInputError(f"kind: expected one of {list(POSE_PRIOR_KINDS)}, got {kind!r}")
    return Path(root or assets_dir()) / f"{pose_prior_family(model)}_pose_{kind}.safetensors"


def load_pose_prior(
    kind: str = "flow", model: str = "anny", root=None, device: str | torch.device = "cpu"
) -> PosePrior:
    """Load a shipped pose prior (frozen): ``kind`` in :data:`POSE_PRIOR_KINDS`; ``model`` the body-model family,
    ``"anny"`` (51-D pose groups) or ``"smpl"`` (SMPL's first 21 ``body_pose`` joints, 63-D; ``"smplh"`` and
    ``"smplx"`` load the same files).

    ``root`` overrides the weights folder (default :func:`assets_dir`, the shipped ``generative/priors/weights``).
    The returned :class:`PosePrior` scores the group vector (``from_body_pose`` builds it from a full
    ``body_pose``).
    """
    path = pose_prior_path(kind, model, root)
    fam = pose_prior_family(model)
    if not path.is_file():
        raise ModelFileError(
            f"pose prior '{path}' not found; build it with tools/build_assets/train_pose_priors.py"
            + ("" if fam == "anny" else " --family smpl")
        )
    prior = load_prior(path, device=device)
    prov = getattr(prior, "provenance", {}) or {}
    pose = prov.get("pose")
    if not isinstance(pose, dict) or "groups" not in pose or "body_pose_joints" not in pose:
        raise ModelFileError(f"pose prior '{path}': its config lacks provenance.pose (groups, body_pose_joints)")
    if pose.get("model", "anny") != fam:
        raise ModelFileError(f"pose prior '{path}': trained for model {pose.get('model')!r}, not {fam!r}")
    try:
        groups = [(str(n), list(ms)) for n, ms in pose["groups"]]
        out = PosePrior(prior, groups, list(pose["body_pose_joints"]), kind=kind, model=fam, provenance=prov)
    except (TypeError, ValueError, InvalidInputError) as e:
        raise ModelFileError(f"pose prior '{path}': malformed pose description ({e})") from None
    return out.to(device)


def pose_provenance(
    groups: list[tuple[str, list[str]]], body_pose_joints: list[str], model: str = "anny", **extra: Any
) -> dict[str, Any]:
    """The ``provenance`` dict written beside pose-prior weights (JSON-serialisable); ``model`` ``"anny"`` or
    ``"smpl"``."""
    rep = {
        "anny": "axis-angle per group, AnnyBody body_pose convention (local-ref, canonical axes)",
        "smpl": "axis-angle per joint, SMPL body_pose convention (relative to the parent, world-aligned axes of the "
        "T-pose rest); the first 21 body_pose joints; poses mapped from Anny-retargeted mocap "
        "(human3d.fitting.synthetic.smpl_pose_from_anny)",
    }[pose_prior_family(model)]
    out = {
        "pose": {
            "model": pose_prior_family(model),
            "representation": rep,
            "groups": [[n, list(ms)] for n, ms in groups],
            "body_pose_joints": list(body_pose_joints),
        }
    }
    out.update(extra)
    json.dumps(out)  # fail early if not serialisable
    return out
