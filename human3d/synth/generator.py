"""Synthetic humans: Anny or SMPL-family bodies rendered by :mod:`human3d.render.rasterizer` with exact labels.

**SMPL family** (a loaded SMPL / SMPL-H / SMPL-X :class:`BodyModel`, e.g. the Anny-derived SMPL-format file of
:func:`human3d.synth.smpl_files.anny_smpl_model`): shapes are betas ``N(0, 1)`` clipped to [-2, 2]
(:data:`SHAPE_SAMPLERS`), mocap poses are mapped onto the SMPL joints as :mod:`human3d.fitting.synthetic` does
(:func:`human3d.fitting.lgd.model_mocap_poses`), prior poses come from the shipped SMPL-family priors
(``BodyModel.prior_family``; the hand joints at rest), parts come from the dominant skinning joint, and keypoint
visibility weights a joint keypoint by its ``J_regressor`` row (:func:`keypoint_vertex_weights`). Everything
below holds for both.

What a batch holds (``B`` images, up to ``P = max_people`` people each; the main person is slot 0):

* **People**: phenotypes across gender, age (children included: age in [0.25, 1], Anny's 1/3 = child,
  2/3 = young adult), muscle, weight, height, proportions; poses from the mocap corpus retargeted to Anny
  (:func:`human3d.fitting.synthetic.mocap_anny_poses`) or sampled from a shipped pose prior
  (:func:`generative.priors.pose.load_pose_prior`); each turned by a random yaw and stood on the ground
  (``y = 0``; world frame Y up, metres). Secondary people stand around the main one.
* **Camera** (OpenCV, :class:`human3d.geometry.Cameras`): focal ``U(0.9, 2.2) x size`` px, principal point at the
  centre, looking at the main person from a yaw over 360 degrees and an elevation in [-10, 35] degrees, at the
  distance where the person fills a random fraction of the image; with probability ``out_of_frame`` the person
  is framed larger and off-centre so that part of the body leaves the image.
* **Appearance**: per-part clothing colours (shirt / trousers / shoes / skin; short or long sleeves and legs)
  with procedural stripes / checks in body coordinates, Lambertian shading from a random light, over a real-photo
  crop or a procedural background (:mod:`human3d.synth.backgrounds`), occluding boxes painted on top, pixel noise.
* **Labels**: COCO-17 and BODY_25 2D keypoints (the 3D keypoints projected by the camera; continuous pixel
  convention) with visibility (2 visible, 1 in the image but hidden, 0 outside the image); person masks and
  boxes; 3D keypoints and joints (world frame); body parameters that reproduce the people exactly through
  ``AnnyBody`` (``global_orient`` includes the yaw, ``transl`` the placement); the camera.

**Visibility** is a z-buffer test on the vertices that make each keypoint: Anny's keypoints are blends of
surface vertices (:attr:`AnnyBody.keypoint_weights`); a vertex is visible when the z-buffer at its pixel holds
the same person within ``depth_tol`` metres of the vertex's depth, and a keypoint is visible when at least
``vis_fraction`` of its blend weight is on visible vertices, no occluding box covers it and the z-buffer at its
own pixel is not ``occlusion_margin`` metres in front of it (midpoints need both ends visible). All steps are batched (no loops over pixels, vertices or people).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from human3d.errors import InvalidInputError
from human3d.geometry.cameras import Cameras, look_at, make_intrinsics
from human3d.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["SynthConfig", "SynthBatch", "SynthGenerator", "PART_NAMES"]

PART_NAMES = ("head", "torso", "upper_arm", "lower_arm", "hand", "hips", "upper_leg", "lower_leg", "foot")
_PART_OF_PREFIX = {"clavicle": 1, "spine": 1, "shoulder": 1, "upperarm": 2, "lowerarm": 3, "wrist": 4, "finger": 4,
                   "metacarpal": 4, "root": 5, "pelvis": 5, "upperleg": 6, "lowerleg": 7, "foot": 8, "toe": 8,
                   # SMPL-family joint names (bone names of Anny above)
                   "head": 0, "neck": 1, "collar": 1, "left_shoulder": 2, "right_shoulder": 2, "left_elbow": 3,
                   "right_elbow": 3, "left_wrist": 4, "right_wrist": 4, "left_hand": 4, "right_hand": 4, "left_index": 4,
                   "right_index": 4, "left_middle": 4, "right_middle": 4, "left_pinky": 4, "right_pinky": 4,
                   "left_ring": 4, "right_ring": 4, "left_thumb": 4, "right_thumb": 4, "left_hip": 6, "right_hip": 6,
                   "left_knee": 7, "right_knee": 7, "left_ankle": 8, "right_ankle": 8}  # fmt: skip
# garments: 0 skin, 1 shirt, 2 trousers, 3 shoes; lower arm / lower leg are skin when sleeves / legs are short
_GARMENT_OF_PART = (0, 1, 1, 1, 0, 2, 2, 2, 3)


@dataclass
class SynthConfig:
    """What the generator samples (defaults: the CLI's)."""

    size: int = 256
    """Image side in pixels (square images)."""
    max_people: int = 3
    """People per image: uniform in [1, max_people]."""
    prior_fraction: float = 0.3
    """Fraction of poses sampled from the shipped pose prior (``prior``); the rest from mocap."""
    prior: str = "gaussian"
    """Shipped pose prior to sample (``generative.priors.pose.load_pose_prior`` kinds: gaussian, vae, flow, ...)."""
    clips: tuple = ()
    """Mocap clips (``mocap_anny_poses`` entries: corpus clip names or (BVH path, scale)); () = its default."""
    child_fraction: float = 0.2
    """Fraction of people with child ages (Anny age in [0.25, 0.55]; others [0.55, 1])."""
    out_of_frame: float = 0.25
    """Probability that the main person is framed partly outside the image."""
    occluders: float = 0.4
    """Expected number of occluding boxes per image (Poisson)."""
    photo_fraction: float = 0.7
    """Fraction of backgrounds cut from photos (else procedural)."""
    depth_tol: float = 0.02
    """Z-buffer tolerance of the visibility test (metres)."""
    vis_fraction: float = 0.3
    """Share of a keypoint's vertex weight that must be visible for the keypoint to be visible."""
    occlusion_margin: float = 0.25
    """A keypoint is hidden when the z-buffer at its own pixel is this much (metres) in front of it."""
    noise: float = 0.02
    """Standard deviation of the pixel noise added to the image (in [0, 1] units)."""

    def validate(self) -> "SynthConfig":
        if not (isinstance(self.size, int) and 16 <= self.size <= 4096):
            raise InvalidInputError(f"size: expected an image side in [16, 4096] pixels, got {self.size!r}")
        if not (isinstance(self.max_people, int) and 1 <= self.max_people <= 16):
            raise InvalidInputError(f"max_people: expected an int in [1, 16], got {self.max_people!r}")
        for name in ("prior_fraction", "child_fraction", "out_of_frame", "photo_fraction", "vis_fraction"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise InvalidInputError(f"{name}: expected a fraction in [0, 1], got {v!r}")
        for name in ("occluders", "depth_tol", "noise", "occlusion_margin"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise InvalidInputError(f"{name}: expected a non-negative number, got {v!r}")
        return self


@dataclass
class SynthBatch:
    """A rendered batch: ``B`` images, ``P`` person slots each (``present`` marks the used slots)."""

    images: torch.Tensor  # [B, H, W, 3] float in [0, 1]
    cameras: Cameras  # [B] OpenCV cameras (world -> camera)
    present: torch.Tensor  # [B, P] bool
    masks: torch.Tensor  # [B, P, H, W] bool, visible pixels of each person (occluders removed)
    keypoints2d: dict[str, torch.Tensor]  # skeleton -> [B, P, K, 3] (u, v, visibility 0/1/2), continuous pixels
    keypoints3d: dict[str, torch.Tensor]  # skeleton -> [B, P, K, 3] world frame (metres)
    joints3d: torch.Tensor  # [B, P, J, 3] Anny bone heads, world frame
    params: dict[str, torch.Tensor]  # AnnyBody parameters, each [B, P, D]
    depth: torch.Tensor  # [B, H, W] rendered camera depth (0 where no person)
    person_ids: torch.Tensor  # [B, H, W] int64 slot of the visible person, -1 where none
    occluder_mask: torch.Tensor  # [B, H, W] bool
    pose_source: torch.Tensor  # [B, P] int64: 0 mocap, 1 prior
    extras: dict = field(default_factory=dict)

    @property
    def boxes(self) -> torch.Tensor:
        """Person boxes from the masks [B, P, 4] as (x, y, w, h) in pixels (zeros for empty masks)."""
        return mask_boxes(self.masks)


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes [..., 4] (x, y, w, h) of masks [..., H, W] (pixel edges: a one-pixel mask at (i, j) is (j, i, 1, 1))."""
    H, W = masks.shape[-2:]
    rows, cols = masks.any(-1), masks.any(-2)  # [..., H], [..., W]
    ar_h = torch.arange(H, device=masks.device)
    ar_w = torch.arange(W, device=masks.device)
    y0 = torch.where(rows, ar_h, H).amin(-1)
    y1 = torch.where(rows, ar_h, -1).amax(-1) + 1
    x0 = torch.where(cols, ar_w, W).amin(-1)
    x1 = torch.where(cols, ar_w, -1).amax(-1) + 1
    box = torch.stack([x0, y0, x1 - x0, y1 - y0], -1).float()
    return torch.where(rows.any(-1)[..., None], box, torch.zeros_like(box))


def _phenotypes(n: int, size: int, g: torch.Generator, child_fraction: float = 0.2) -> torch.Tensor:
    """Anny phenotypes ``[n, 6]`` in [0, 1]: age child / adult by ``child_fraction``, proportions in [0.2, 0.8]."""
    ph = torch.rand(n, size, generator=g)
    child = torch.rand(n, generator=g) < child_fraction
    ph[:, 1] = torch.where(child, 0.25 + 0.3 * ph[:, 1], 0.55 + 0.45 * ph[:, 1])  # age
    ph[:, 5] = 0.2 + 0.6 * ph[:, 5]  # proportions
    return ph


def _betas(n: int, size: int, g: torch.Generator, child_fraction: float = 0.0) -> torch.Tensor:
    """SMPL-family betas ``[n, size]``: N(0, 1) clipped to [-2, 2] (as :data:`human3d.fitting.lgd.SHAPE_SAMPLERS`)."""
    from human3d.fitting.lgd import SHAPE_SAMPLERS as LGD_SHAPES

    return LGD_SHAPES["betas"](n, size, g)


SHAPE_SAMPLERS = {"phenotypes": _phenotypes, "betas": _betas}
"""Random shapes per ``BodyModel.shape_param``: ``(n, size, generator, child_fraction) -> [n, size]``."""


def keypoint_vertex_weights(model) -> tuple[list[str], torch.Tensor]:
    """The keypoint names and their vertex weights ``[K, V]`` (how much of each keypoint is made of each surface
    vertex; the visibility test's input): Anny's keypoint blends (:attr:`AnnyBody.keypoint_weights`); for the SMPL
    family, a vertex keypoint is its vertex and a joint keypoint the rows of ``J_regressor`` that make the joint."""
    if hasattr(model, "keypoint_weights"):
        return list(model.keypoint_labels), model.keypoint_weights
    V = model.num_vertices
    jr = model.J_regressor.index_select(0, model.keypoint_joint_ids).float().cpu()  # [Kj, V]
    onehot = F.one_hot(model.keypoint_vertex_ids.cpu(), V).float()  # [Kv, V]
    return list(model._kp_names), torch.cat([jr, onehot])


def _vertex_parts(model) -> torch.Tensor:
    """Body part (:data:`PART_NAMES`) of each vertex ``[V]``: the part of its dominant skinning joint."""
    names = list(model.joint_names)
    bone_part = torch.tensor([next((p for k, p in _PART_OF_PREFIX.items() if n.startswith(k)), 0) for n in names])
    if hasattr(model, "anny"):
        a = model.anny
        dominant = a.vertex_bone_indices.gather(1, a.vertex_bone_weights.argmax(1, keepdim=True))[:, 0]  # [V]
    else:
        dominant = model.lbs_weights.argmax(1)  # [V]
    return bone_part[dominant.cpu()]


class SynthGenerator:
    """Renders batches of synthetic humans (see the module docstring). ``model``: an Anny or SMPL-family
    :class:`BodyModel` (None: Anny)."""

    def __init__(self, model=None, config: SynthConfig | None = None, data_root=None):
        if model is None:
            from human3d.body import load_body_model

            model = load_body_model("anny")
        if getattr(model, "shape_param", None) not in SHAPE_SAMPLERS or not hasattr(model, "faces"):
            raise InvalidInputError(f"model: the synthetic generator renders Anny and SMPL-family bodies, got "
                                    f"{getattr(model, 'family', type(model).__name__)!r}")  # fmt: skip
        self.model = model
        self.config = (config or SynthConfig()).validate()
        self.data_root = data_root
        self.faces = model.faces.long()  # [F, 3]
        self.vertex_part = _vertex_parts(model)  # [V] part id
        self.kp_labels, W = keypoint_vertex_weights(model)
        self.kp_weights = W.abs().float().cpu()  # [K, V]
        self.kp_weights = self.kp_weights / self.kp_weights.sum(1, keepdim=True)
        self._poses = None
        self._prior = None

    # ---- sampling -------------------------------------------------------------------------------------------------
    def _mocap(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self._poses is None:
            from human3d.fitting.synthetic import DEFAULT_CLIPS, mocap_anny_poses

            clips = tuple(self.config.clips) or DEFAULT_CLIPS
            go, bp, _ = mocap_anny_poses(4096, seed=0, clips=clips, data_root=self.data_root, fps=10.0)
            from human3d.fitting.lgd import model_mocap_poses

            self._poses = model_mocap_poses(self.model, go, bp)  # 4096 frames at 10 fps (SMPL family: on its joints)
        go, bp = self._poses
        idx = torch.randint(0, go.shape[0], (n,), generator=g)
        return go[idx], bp[idx]

    def _prior_poses(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self._prior is None:
            from generative.priors.pose import load_pose_prior

            self._prior = load_pose_prior(self.config.prior, model=self.model.prior_family)
        with torch.no_grad():
            bp = self._prior.to_body_pose(self._prior.sample(n, generator=g)).float()
        jp = self.model.parameter_shapes()["body_pose"][0]
        bp = F.pad(bp, (0, max(0, jp - bp.shape[1])))[:, :jp]  # SMPL: the prior's 21 joints, the hands at rest
        return torch.zeros(n, 3), bp  # upright (the prior scores body_pose only)

    def sample_people(self, n: int, g: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Parameters of ``n`` people (before yaw and placement) and their pose source [n] (0 mocap, 1 prior)."""
        c = self.config
        shapes = self.model.parameter_shapes()
        sp = self.model.shape_param
        shape = SHAPE_SAMPLERS[sp](n, shapes[sp][0], g, c.child_fraction)
        source = (torch.rand(n, generator=g) < c.prior_fraction).long()
        jp = shapes["body_pose"][0]
        go, bp = torch.zeros(n, 3), torch.zeros(n, jp)
        for src, draw in ((0, self._mocap), (1, self._prior_poses)):
            k = int((source == src).sum())
            if k:
                go[source == src], bp[source == src] = draw(k, g)
        return {"global_orient": go, "body_pose": bp, sp: shape}, source

    # ---- the batch ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, batch_size: int, seed: int = 0) -> SynthBatch:
        """Render ``batch_size`` images; the same ``seed`` gives the same batch."""
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise InvalidInputError(f"batch_size: expected a positive int, got {batch_size!r}")
        c = self.config
        g = torch.Generator().manual_seed(int(seed))
        B, P, S = batch_size, c.max_people, c.size
        N = B * P
        params, source = self.sample_people(N, g)
        # yaw about +Y (the root sits at the origin before transl, so rotating the body = rotating global_orient)
        yaw = torch.rand(N, generator=g) * 2 * math.pi
        R_yaw = axis_angle_to_matrix(torch.stack([torch.zeros(N), yaw, torch.zeros(N)], -1))
        params["global_orient"] = matrix_to_axis_angle(R_yaw @ axis_angle_to_matrix(params["global_orient"]))
        params["transl"] = torch.zeros(N, 3)
        out = self.model(params)
        V = out.vertices.float()  # [N, V, 3]
        lo, hi = V.amin(1), V.amax(1)  # [N, 3]
        height = (hi[:, 1] - lo[:, 1]).clamp(min=0.3)
        # placement: feet on y = 0; person 0 at the origin, the others around it on the ground
        n_people = torch.randint(1, P + 1, (B,), generator=g)
        present = torch.arange(P)[None] < n_people[:, None]  # [B, P]
        ang = torch.rand(N, generator=g) * 2 * math.pi
        rad = 0.7 + 2.0 * torch.rand(N, generator=g)
        ground = torch.stack([rad * torch.cos(ang), torch.zeros(N), rad * torch.sin(ang)], -1).view(B, P, 3)
        ground[:, 0] = 0.0
        centre_xz = 0.5 * (lo + hi) * torch.tensor([1.0, 0.0, 1.0])
        t = ground.view(N, 3) - centre_xz - torch.stack([torch.zeros(N), lo[:, 1], torch.zeros(N)], -1)
        params["transl"] = t
        shift = t[:, None]
        verts = (V + shift).view(B, P, -1, 3)
        kp3d = {k: (v.float() + shift).view(B, P, -1, 3) for k, v in out.keypoints.items()}
        joints = (out.joints.float() + shift).view(B, P, -1, 3)
        # camera: look at person 0 from a random yaw / elevation at the distance that frames it
        h0 = height.view(B, P)[:, 0]
        focal = S * (0.9 + 1.3 * torch.rand(B, generator=g))
        out_frame = torch.rand(B, generator=g) < c.out_of_frame
        fill = torch.where(out_frame, 0.9 + 0.8 * torch.rand(B, generator=g), 0.4 + 0.5 * torch.rand(B, generator=g))
        dist = focal * h0 / (fill * S) + 0.5
        cam_yaw = torch.rand(B, generator=g) * 2 * math.pi
        elev = math.radians(-10) + math.radians(45) * torch.rand(B, generator=g)
        target = torch.stack([torch.zeros(B), 0.5 * h0, torch.zeros(B)], -1)
        jitter = (torch.rand(B, 3, generator=g) - 0.5) * h0[:, None] * torch.where(out_frame, 0.8, 0.2)[:, None]
        target = target + jitter * torch.tensor([1.0, 1.0, 0.0])
        d = torch.stack([torch.sin(cam_yaw) * torch.cos(elev), torch.sin(elev), torch.cos(cam_yaw) * torch.cos(elev)], -1)
        eye = target + dist[:, None] * d
        w2c = look_at(eye, target)
        K = make_intrinsics(focal, focal, S / 2.0, S / 2.0)
        cams = Cameras(K, w2c, S, S)
        # absent people collapse onto the camera centre (behind the near plane: the rasterizer drops them)
        verts = torch.where(present[:, :, None, None], verts, eye[:, None, None, :])
        return self._render(cams, verts, kp3d, joints, params, present, source, g)

    def _render(self, cams, verts, kp3d, joints, params, present, source, g) -> SynthBatch:
        from human3d.render.rasterizer import pixel_normals, rasterize_mesh, shade_lambert
        from human3d.synth.backgrounds import random_backgrounds

        c = self.config
        B, P, Vn, _ = verts.shape
        S = c.size
        Fn = self.faces.shape[0]
        faces = (self.faces[None] + Vn * torch.arange(P)[:, None, None]).reshape(-1, 3)  # [P*F, 3]
        flat = verts.reshape(B, P * Vn, 3)
        frags = rasterize_mesh(flat, faces, cams)
        pid = torch.where(frags.mask, torch.div(frags.face_ids, Fn, rounding_mode="floor"), -1)  # [B, H, W]
        # --- visibility: vertices against the z-buffer, then keypoints by their vertex weights -------------------
        proj = cams.project(flat)  # uv [B, PV, 2], depth [B, PV]
        uv = proj.uv
        j = torch.floor(uv[..., 0]).long()
        i = torch.floor(uv[..., 1]).long()
        inside = proj.valid & (i >= 0) & (i < S) & (j >= 0) & (j < S)
        lin = (i.clamp(0, S - 1) * S + j.clamp(0, S - 1))
        zb = frags.depth.view(B, -1).gather(1, lin)  # [B, PV]
        pb = pid.view(B, -1).gather(1, lin)
        owner = torch.arange(P).repeat_interleave(Vn)[None]  # [1, PV]
        vvis = inside & (pb == owner) & (zb >= proj.depth - c.depth_tol)  # [B, PV]
        vvis = vvis.view(B, P, Vn).float()
        kp_vis = torch.einsum("kv,bpv->bpk", self.kp_weights, vvis) >= c.vis_fraction  # [B, P, 23]
        # --- appearance --------------------------------------------------------------------------------------------
        albedo = self._vertex_albedo(verts, g)  # [B, P, V, 3]
        from human3d.render.rasterizer import interpolate_vertex_attributes

        col = interpolate_vertex_attributes(frags, faces, albedo.reshape(B, P * Vn, 3))  # [B, H, W, 3]
        normals = pixel_normals(frags, flat, faces)
        light_cam = F.normalize(torch.stack([torch.rand(B, generator=g) * 2 - 1, -torch.rand(B, generator=g),
                                             -0.5 - torch.rand(B, generator=g)], -1), dim=-1)  # fmt: skip
        light = (light_cam[:, None] @ cams.world_to_camera[:, :3, :3])[:, 0]  # camera -> world direction
        ambient = float(0.25 + 0.35 * torch.rand((), generator=g))
        rgba = shade_lambert(frags, normals, light, col, ambient=ambient)
        bg = random_backgrounds(B, S, S, g, c.photo_fraction).permute(0, 2, 3, 1)  # [B, H, W, 3]
        img = torch.where(frags.mask[..., None], rgba[..., :3], bg)
        occ = self._occluders(img, g)  # paints boxes in place, returns [B, H, W] bool
        img = (img + c.noise * torch.randn(img.shape, generator=g)).clamp(0, 1)
        masks = (pid[:, None] == torch.arange(P)[None, :, None, None]) & ~occ[:, None]  # [B, P, H, W]
        # --- keypoints ----------------------------------------------------------------------------------------------
        names = self.kp_labels
        kp2d, kp3d_out = {}, {}
        from human3d.body.skeletons import MIDPOINTS, skeleton_names

        for sk in ("coco17", "body25"):
            X = kp3d[sk]  # [B, P, K, 3]
            K_ = X.shape[2]
            pr = cams.project(X.reshape(B, P * K_, 3))
            uvk = pr.uv.view(B, P, K_, 2)
            vis = []
            for name in skeleton_names(sk):
                if name in MIDPOINTS:
                    a, b = (kp_vis[..., names.index(m)] for m in MIDPOINTS[name])
                    vis.append(a & b)
                else:
                    vis.append(kp_vis[..., names.index(name)])
            vis = torch.stack(vis, -1)  # [B, P, K]
            in_img = pr.valid.view(B, P, K_) & (uvk >= 0).all(-1) & (uvk < S).all(-1)
            ki = torch.floor(uvk[..., 1]).long().clamp(0, S - 1)
            kj = torch.floor(uvk[..., 0]).long().clamp(0, S - 1)
            lin_k = (ki * S + kj).view(B, P * K_)
            covered = occ.view(B, -1).gather(1, lin_k).view(B, P, K_)
            zk = frags.depth.view(B, -1).gather(1, lin_k).view(B, P, K_)  # z-buffer at the keypoint's pixel
            covered |= (zk > 0) & (zk < pr.depth.view(B, P, K_) - c.occlusion_margin)
            flag = torch.where(in_img, torch.where(vis & ~covered, 2, 1), 0) * present[..., None]
            kp2d[sk] = torch.cat([uvk, flag[..., None].float()], -1)
            kp3d_out[sk] = X
        params = {k: v.reshape(B, P, *v.shape[1:]).float() for k, v in params.items()}
        return SynthBatch(img, cams, present, masks, kp2d, kp3d_out, joints, params, frags.depth, pid, occ,
                          source.view(B, P))  # fmt: skip

    def _vertex_albedo(self, verts: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Clothing-like vertex colours [B, P, V, 3]: garment colour per part, with stripes or checks."""
        B, P, V, _ = verts.shape
        N = B * P
        skin_base = torch.tensor([[0.95, 0.80, 0.70], [0.80, 0.60, 0.45], [0.55, 0.38, 0.26], [0.35, 0.22, 0.15]])
        tone = torch.rand(N, 1, generator=g) * 3
        lo = tone.floor().long().clamp(max=2)
        skin = torch.lerp(skin_base[lo[:, 0]], skin_base[lo[:, 0] + 1], (tone - lo).clamp(0, 1))  # [N, 3]
        garments = torch.rand(N, 4, 3, generator=g)  # [N, garment, 3]
        garments[:, 0] = skin
        garment_of_part = torch.tensor(_GARMENT_OF_PART).repeat(N, 1)  # [N, parts]
        short_sleeve = torch.rand(N, generator=g) < 0.4
        shorts = torch.rand(N, generator=g) < 0.3
        garment_of_part[short_sleeve, 3] = 0
        garment_of_part[shorts, 7] = 0
        gv = garment_of_part[:, self.vertex_part]  # [N, V]
        base = garments.gather(1, gv[..., None].expand(-1, -1, 3))  # [N, V, 3]
        # procedural pattern per garment: stripes along a random direction, or checks, in body coordinates
        X = verts.reshape(N, V, 3)
        X = X - X.mean(1, keepdim=True)
        dirs = F.normalize(torch.randn(N, 4, 3, generator=g), dim=-1)
        freq = 3 + 25 * torch.rand(N, 4, generator=g)  # cycles per metre
        amp = torch.rand(N, 4, generator=g) * (torch.rand(N, 4, generator=g) < 0.6)
        amp[:, 0] = 0.05  # skin: nearly plain
        d = dirs.gather(1, gv[..., None].expand(-1, -1, 3))  # [N, V, 3]
        f = freq.gather(1, gv)
        a = amp.gather(1, gv)
        s1 = torch.sin(2 * math.pi * f * (X * d).sum(-1))
        s2 = torch.sin(2 * math.pi * f * X[..., 1])
        checks = (torch.rand(N, 1, generator=g) < 0.3).float()
        pattern = torch.where(checks > 0, torch.sign(s1 * s2), torch.sign(s1))  # [N, V] in {-1, 0, 1}
        col = base * (1 - 0.5 * a[..., None] * (1 + pattern[..., None]))
        return col.clamp(0, 1).view(B, P, V, 3)

    def _occluders(self, img: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Paint Poisson(``occluders``) random boxes per image over ``img`` [B, H, W, 3] (in place); their mask."""
        B, H, W, _ = img.shape
        n = torch.poisson(torch.full((B,), float(self.config.occluders)), generator=g).long().clamp(max=4)
        M = int(n.max()) if B else 0
        if M == 0:
            return torch.zeros(B, H, W, dtype=torch.bool)
        wh = (0.1 + 0.3 * torch.rand(B, M, 2, generator=g)) * torch.tensor([W, H])
        xy = torch.rand(B, M, 2, generator=g) * (torch.tensor([W, H]) - wh)
        used = torch.arange(M)[None] < n[:, None]  # [B, M]
        u = torch.arange(W) + 0.5
        v = torch.arange(H) + 0.5
        inx = (u[None, None] >= xy[..., :1]) & (u[None, None] < xy[..., :1] + wh[..., :1])  # [B, M, W]
        iny = (v[None, None] >= xy[..., 1:]) & (v[None, None] < xy[..., 1:] + wh[..., 1:])  # [B, M, H]
        box = iny[..., :, None] & inx[..., None, :] & used[..., None, None]  # [B, M, H, W]
        colour = torch.rand(B, M, 3, generator=g)
        # the top-most box wins: index of the last covering box
        top = torch.where(box, torch.arange(M)[None, :, None, None], -1).amax(1)  # [B, H, W]
        covered = top >= 0
        fill = colour.gather(1, top.clamp(min=0).view(B, -1, 1).expand(-1, -1, 3)).view(B, H, W, 3)
        shade = 0.8 + 0.2 * torch.sin(v[None, :, None] * 0.3 + u[None, None, :] * 0.2)[..., None]
        img[covered] = (fill * shade.expand(B, H, W, 1))[covered]
        return covered
