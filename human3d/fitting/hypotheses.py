"""Several starting hypotheses per person, plausibility checks of a fit, and the choice among them by energy.

SMPLify's energy has depth-flipped and facing-flipped minima that fit the 2D keypoints about as well as the right
one. :func:`check_fit` looks for the signs of such a solution, per person:

* **joint limits**: hinge angles (elbows, knees) beyond their range by more than ``LIMIT_MARGIN``;
* **interpenetration**: two limb capsules (upper/lower arms and legs, the trunk) whose axes come closer than
  half the sum of their radii (``CAPSULES``), i.e. a limb passing through another;
* **depth order**: a keypoint marked occluded (``0 < c < occluded_confidence``) drawn in front of its visible
  left/right counterpart (``c >= occluded_confidence``) by more than ``DEPTH_MARGIN``, or a face seen (nose and
  both eyes visible) on a body that faces away (nose behind the shoulders).

:func:`retry_starts` gives the stage-2 starts tried again for the flagged persons (or everyone):

* ``"flip"``: stage 1's other facing (the body turned 180 degrees about its vertical axis, camera re-fitted on
  the torso), from the mean pose;
* ``"mirror"``: the winner's orientation with its pose mirrored (left and right limbs swapped through the body's
  sagittal plane, :func:`mirror_map`).

Every hypothesis ends in stage 2's energy, and :func:`choose` keeps, per person, the one with the lowest ranking
energy (data + ``restart_prior_weight`` x prior, as restarts are ranked); the default hypothesis wins ties.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from human3d.body.skeletons import skeleton_names
from human3d.fitting.camera_init import body_frame
from human3d.fitting.priors import hinge_angles

__all__ = ["FitChecks", "check_fit", "mirror_map", "mirror_groups", "retry_starts", "choose", "take", "scatter",
           "LIMIT_MARGIN", "DEPTH_MARGIN", "CAPSULES"]  # fmt: skip

LIMIT_MARGIN = 0.1  # rad beyond a hinge's range that counts as a violation
DEPTH_MARGIN = 0.05  # m an occluded keypoint may be in front of its visible counterpart (noise, limb thickness)
# limb capsules: (name, keypoint a, keypoint b, radius m)
CAPSULES = (
    ("left_upper_arm", "left_shoulder", "left_elbow", 0.045), ("left_forearm", "left_elbow", "left_wrist", 0.035),
    ("right_upper_arm", "right_shoulder", "right_elbow", 0.045), ("right_forearm", "right_elbow", "right_wrist", 0.035),
    ("left_thigh", "left_hip", "left_knee", 0.07), ("left_shin", "left_knee", "left_ankle", 0.05),
    ("right_thigh", "right_hip", "right_knee", 0.07), ("right_shin", "right_knee", "right_ankle", 0.05),
    ("trunk", "shoulders", "hips", 0.11),
)  # fmt: skip
_PAIRS = ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "ear", "eye")


@dataclass
class FitChecks:
    """Per-person counts ``[B]`` of implausible features of a fit (0 everywhere: nothing found)."""

    joint_limits: torch.Tensor  # hinge angles beyond range
    interpenetration: torch.Tensor  # limb capsule pairs passing through each other
    depth_order: torch.Tensor  # occluded keypoints in front of visible ones (+ a seen face on a body facing away)

    @property
    def total(self) -> torch.Tensor:
        """[B] failed checks in all."""
        return self.joint_limits + self.interpenetration + self.depth_order

    @property
    def flagged(self) -> torch.Tensor:
        """[B] bool: any check failed."""
        return self.total > 0

    def person(self, b: int) -> dict:
        return {"joint_limits": int(self.joint_limits[b]), "interpenetration": int(self.interpenetration[b]),
                "depth_order": int(self.depth_order[b])}  # fmt: skip


def _points(X: torch.Tensor, names: list[str], key: str) -> torch.Tensor:
    """Keypoint ``key`` ``[B, 3]`` of ``X`` ``[B, K, 3]``; "shoulders" / "hips": the left/right midpoint."""
    if key in ("shoulders", "hips"):
        s = key[:-1]
        return 0.5 * (X[:, names.index(f"left_{s}")] + X[:, names.index(f"right_{s}")])
    return X[:, names.index(key)]


def _segment_distance(a0, a1, b0, b1, n: int = 9) -> torch.Tensor:
    """Approximate distance between segments ``[B, S, 3]`` pairs: min over ``n`` samples on each -> ``[B, S]``."""
    s = torch.linspace(0, 1, n, dtype=a0.dtype, device=a0.device)[:, None]  # [n, 1]
    pa = a0[..., None, :] + s * (a1 - a0)[..., None, :]  # [B, S, n, 3]
    pb = b0[..., None, :] + s * (b1 - b0)[..., None, :]
    return torch.cdist(pa, pb).flatten(-2).amin(-1)


def interpenetration(X: torch.Tensor, skeleton: str) -> torch.Tensor:
    """Limb capsule pairs ``[B]`` whose axes are closer than half their radii's sum (pairs sharing a joint, and a
    limb's root segment against the trunk, are not compared). ``X`` ``[B, K, 3]`` metres."""
    names = skeleton_names(skeleton)
    ends = {c[0]: (c[1], c[2]) for c in CAPSULES}
    pairs = []
    for i, (ni, a, b, ri) in enumerate(CAPSULES):
        for nj, c, d, rj in CAPSULES[i + 1 :]:
            if {a, b} & {c, d}:
                continue
            if "trunk" in (ni, nj) and any(k in ("left_upper_arm", "right_upper_arm", "left_thigh", "right_thigh")
                                           for k in (ni, nj)):  # fmt: skip
                continue
            pairs.append((ni, nj, 0.5 * (ri + rj)))
    P = lambda k: torch.stack([_points(X, names, ends[n][k]) for n, _, _ in pairs], 1)  # noqa: E731
    Q = lambda k: torch.stack([_points(X, names, ends[n][k]) for _, n, _ in pairs], 1)  # noqa: E731
    d = _segment_distance(P(0), P(1), Q(0), Q(1))  # [B, S]
    lim = torch.tensor([p[2] for p in pairs], dtype=X.dtype, device=X.device)
    return (d < lim).sum(-1)


def depth_order(X_cam: torch.Tensor, target: torch.Tensor, skeleton: str, occluded_confidence: float) -> torch.Tensor:
    """Depth-order violations ``[B]`` of camera-frame keypoints ``X_cam`` ``[B, K, 3]`` against the keypoints'
    visibility ``target[..., 2]`` (module docstring)."""
    names = skeleton_names(skeleton)
    c, z = target[..., 2], X_cam[..., 2]
    occ, vis = (c > 0) & (c < occluded_confidence), c >= occluded_confidence  # [B, K]
    li = [names.index(f"left_{p}") for p in _PAIRS if f"left_{p}" in names]
    ri = [names.index(f"right_{p}") for p in _PAIRS if f"right_{p}" in names]
    zl, zr = z[:, li], z[:, ri]
    bad = (occ[:, li] & vis[:, ri] & (zl < zr - DEPTH_MARGIN)) | (occ[:, ri] & vis[:, li] & (zr < zl - DEPTH_MARGIN))
    n = bad.sum(-1)
    face = [names.index(k) for k in ("nose", "left_eye", "right_eye")]
    seen = vis[:, face].all(-1)
    away = z[:, names.index("nose")] > _points(X_cam, names, "shoulders")[:, 2]
    return n + (seen & away).long()


def check_fit(X: torch.Tensor, w2c: torch.Tensor, target: torch.Tensor, skeleton: str, groups, space,
              occluded_confidence: float) -> FitChecks:  # fmt: skip
    """The checks of the module docstring on model keypoints ``X`` ``[B, K, 3]`` (world frame; ``w2c``
    ``[B, 4, 4]``), the input keypoints ``target`` ``[B, K, 3]`` and the pose groups ``[B, G, 3]`` (None: no
    joint-limit check) of a :class:`~human3d.fitting.priors.PoseSpace`."""
    X_cam = torch.einsum("bij,bkj->bki", w2c[:, :3, :3], X) + w2c[:, None, :3, 3]
    if groups is not None:
        ang, lo, hi = hinge_angles(groups, space)
        lim = ((ang > hi + LIMIT_MARGIN) | (ang < lo - LIMIT_MARGIN)).flatten(1).sum(-1)
    else:
        lim = torch.zeros(X.shape[0], dtype=torch.long, device=X.device)
    return FitChecks(lim, interpenetration(X, skeleton), depth_order(X_cam, target, skeleton, occluded_confidence))


# ---- mirrored pose ------------------------------------------------------------------------------------------------
def _partner(name: str) -> str:
    for a, b in ((".L", ".R"), ("_l", "_r"), ("left", "right"), ("Left", "Right"), ("l_", "r_"), ("L_", "R_")):
        if name.endswith(a) or name.startswith(a) or a in name:
            return name.replace(a, b)
        if name.endswith(b) or name.startswith(b) or b in name:
            return name.replace(b, a)
    return name


@torch.no_grad()
def mirror_map(model, space, kp_fn, skeleton: str, base: dict) -> tuple[torch.Tensor, torch.Tensor, float]:
    """How the pose groups mirror through the body's sagittal plane: ``(partner [G], signs [G, 3], residual m)``;
    the mirrored pose is ``groups[:, partner] * signs``. Found per group from the model itself: a random rotation
    of group ``g`` must give the keypoints of the partner's ``signs``-scaled rotation reflected (left/right labels
    swapped); ``residual`` is the worst mean keypoint error of the chosen signs (cached on the model)."""
    cached = getattr(model, "_h3d_mirror", {}).get(skeleton)
    if cached is not None:
        return cached
    G, names = space.num_groups, skeleton_names(skeleton)
    gn = space.group_names
    partner = torch.tensor([gn.index(_partner(n)) if _partner(n) in gn else g for g, n in enumerate(gn)])
    perm = torch.tensor([names.index(_partner(n)) if _partner(n) in names else k for k, n in enumerate(names)])
    b0 = {k: v[:1] for k, v in base.items()}
    X0 = kp_fn(b0)[skeleton][0]
    frame = body_frame(*(X0[None, names.index(n)] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")))
    left = frame[0, :, 0]
    centre = _points(X0[None], names, "hips")[0]
    gen = torch.Generator().manual_seed(7)
    S, n = 4, G
    r = 0.5 * torch.randn(n, S, 3, generator=gen).to(X0)
    signs = torch.tensor([[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)], dtype=X0.dtype)  # [8, 3]

    def keypoints(groups):  # [N, G, 3] -> [N, K, 3]
        N = groups.shape[0]
        p = {k: v[:1].expand(N, *v.shape[1:]) for k, v in base.items()}
        return kp_fn({**p, "body_pose": space.body_pose(groups)})[skeleton]

    g_src = torch.zeros(n, S, G, 3, dtype=X0.dtype)
    g_src[torch.arange(n), :, torch.arange(n)] = r
    X = keypoints(g_src.reshape(-1, G, 3)).reshape(n, S, -1, 3)
    Xm = X - 2 * ((X - centre) @ left)[..., None] * left  # reflected
    T = Xm[:, :, perm]  # labels swapped
    g_dst = torch.zeros(n, 8, S, G, 3, dtype=X0.dtype)
    for g in range(n):
        g_dst[g, :, :, int(partner[g])] = signs[:, None] * r[g][None]
    Y = keypoints(g_dst.reshape(-1, G, 3)).reshape(n, 8, S, -1, 3)
    err = (Y - T[:, None]).norm(dim=-1).mean((-1, -2))  # [G, 8]
    best = err.argmin(-1)
    out = (partner, signs[best], float(err[torch.arange(n), best].max()))
    model._h3d_mirror = {**getattr(model, "_h3d_mirror", {}), skeleton: out}
    return out


def mirror_groups(groups: torch.Tensor, partner: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """The mirrored pose ``[B, G, 3]`` of pose groups ``[B, G, 3]`` (see :func:`mirror_map`)."""
    return groups[:, partner.to(groups.device)] * signs.to(groups)


# ---- hypotheses as batched states -----------------------------------------------------------------------------------
def take(state, j: torch.Tensor):
    """The :class:`~human3d.fitting.stages.FitState` of persons ``j`` [N] (long)."""
    f = lambda v: None if v is None else v[j]  # noqa: E731
    return replace(state, params={k: v[j] for k, v in state.params.items()}, R_body=state.R_body[j],
                   flipped=state.flipped[j], energy=f(state.energy), rank=f(state.rank),
                   trace={k: (v[:, j] if v.dim() == 2 else v) for k, v in state.trace.items()},
                   other=None if state.other is None else take(state.other, j))  # fmt: skip


def scatter(full, part, j: torch.Tensor):
    """``full`` (a state of every person) with persons ``j`` replaced by ``part`` and everyone else's ranking
    energy set to +inf (so that :func:`choose` never picks them from this state)."""
    params = {}
    for k, v in full.params.items():
        params[k] = v.clone()
        params[k][j] = part.params[k].to(v.dtype)
    inf = torch.full_like(full.rank, float("inf"))
    energy, rank = inf.clone(), inf.clone()
    energy[j], rank[j] = part.energy, part.rank
    R, flipped = full.R_body.clone(), full.flipped.clone()
    R[j], flipped[j] = part.R_body, part.flipped
    trace = {}
    for k, v in full.trace.items():
        o = part.trace.get(k)
        if o is not None and v.dim() == 2 and o.shape[0] == v.shape[0]:
            trace[k] = v.clone()
            trace[k][:, j] = o
        elif o is not None and v.dim() == 1:
            trace[k] = v
    return replace(full, params=params, energy=energy, rank=rank, R_body=R, flipped=flipped, trace=trace,
                   iterations=part.iterations, evaluations=part.evaluations, history=[], other=None)  # fmt: skip


def choose(cands: dict) -> tuple[object, torch.Tensor, torch.Tensor]:
    """Per person, the candidate state with the lowest ranking energy (the first on ties) ->
    ``(merged state, winner index [B] into cands, ranks [B, H])`` (``inf``: not tried for that person)."""
    from human3d.fitting.stages import select

    states = list(cands.values())
    ranks = torch.stack([s.rank for s in states], -1)  # [B, H]
    win = torch.zeros(ranks.shape[0], dtype=torch.long, device=ranks.device)
    best = ranks[:, 0].clone()
    for h in range(1, ranks.shape[1]):
        better = ranks[:, h] < best
        win = torch.where(better, torch.full_like(win, h), win)
        best = torch.where(better, ranks[:, h], best)
    return select(states), win, ranks


def retry_starts(pb, rigid, best, names: tuple[str, ...], j: torch.Tensor, g_mean: torch.Tensor) -> dict:
    """Stage-2 starts ``{name: (FitState, groups [N, G, 3])}`` for persons ``j`` of the default problem ``pb``:
    ``"flip"`` (stage 1's other facing, opposite to the winner's, with the mean pose ``g_mean`` [B, G, 3]) and
    ``"mirror"`` (the winner ``best`` with its pose mirrored)."""
    out = {}
    inp = pb.inputs
    if "flip" in names and rigid.other is not None:
        names_k = skeleton_names(inp.skeleton)
        kp0 = pb.kp_fn({k: v[:1] for k, v in pb.base.items()})[inp.skeleton][0]
        fwd = body_frame(*(kp0[None, names_k.index(n)] for n in ("left_shoulder", "right_shoulder", "left_hip",
                                                                  "right_hip")))[0, :, 2]  # model forward [3]  # fmt: skip
        f = lambda R: R @ fwd  # noqa: E731 - [B, 3] forward in the world
        win_f = f(best.R_body)
        use_other = (f(rigid.R_body) * win_f).sum(-1) > (f(rigid.other.R_body) * win_f).sum(-1)
        st = take(rigid, j)
        ot = take(rigid.other, j)
        u = use_other[j]
        params = {k: torch.where(u.reshape(-1, *[1] * (v.dim() - 1)), ot.params[k], v) for k, v in st.params.items()}
        start = replace(st, params=params, R_body=torch.where(u[:, None, None], ot.R_body, st.R_body),
                        flipped=torch.where(u, ot.flipped, st.flipped), other=None, trace={})  # fmt: skip
        out["flip"] = (start, g_mean[j])
    if "mirror" in names:
        partner, signs, _ = mirror_map(pb.model, pb.space, pb.kp_fn, inp.skeleton, pb.base)
        groups = pb.space.groups_from_body_pose(best.params["body_pose"][j])
        out["mirror"] = (replace(take(best, j), other=None, trace={}), mirror_groups(groups, partner, signs))
    return out
