"""Shape completion in a learned shape space: from the points of one depth view to a whole watertight surface, by
optimising the code of a DeepSDF decoder (DeepSDF's test-time latent optimisation with a partial observation).

The observation: the depth map of a mesh rendered by human3d's rasterizer (:func:`depth_view`), back-projected to
points (optionally noised along the view rays and subsampled). The energy over the code z [D], in the decoder's
unit frame:

    E(z) = mean_i |clamp(f(z, p_i), +-delta)|                        observed surface points: f = 0
         + free_weight mean_j relu(-clamp(f(z, q_j), +-delta))        free space in front of the surface: f >= 0
         + prior_weight prior.energy(z)                               the code prior (nats; Gaussian or flow)

``q_j = p_i - t d_i`` with ``d_i`` the unit ray from the camera centre to ``p_i`` and ``t ~ U(free_min, free_max)``
(the segment between the camera and an observed point is empty). Adam from the prior's mean code (``z0``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from human3d.errors import InvalidInputError

__all__ = ["DEFAULT_PRIOR_WEIGHTS", "DepthView", "depth_view", "CompletionConfig", "free_space_points", "complete_code", "chamfer_to_mesh",
           "check_partial_points"]  # fmt: skip


#: Prior weights chosen on validation bodies by ``tools/bench/implicit.py --shapes`` (256-body Anny run, latent 32):
#: the Gaussian's energy is smoother than the flow's, which wants a 10x smaller weight.
DEFAULT_PRIOR_WEIGHTS = {"gaussian": 1e-4, "flow": 1e-5}


@dataclass
class DepthView:
    """Back-projected depth pixels of one view: points [N, 3] (the mesh's units) and the camera centre [3]."""

    points: np.ndarray
    origin: np.ndarray
    depth: np.ndarray  # [H, W] camera z (0 where empty)


def depth_view(vertices, faces, size: int = 128, yaw: float = 0.0, elevation: float = 10.0, distance: float = 3.0,
               fov: float = 40.0, target=(0.0, 0.0, 0.0), noise: float = 0.0, max_points: int | None = None,
               seed: int = 0) -> DepthView:  # fmt: skip
    """Render the depth of a mesh (vertices [V, 3], faces [F, 3]) from a camera at ``distance`` from ``target``,
    ``yaw`` degrees about +Y from +Z (0: in front of a body facing +Z) and ``elevation`` degrees up, with a
    ``fov``-degree square image of ``size`` pixels; back-project every covered pixel centre. ``noise``: std of
    Gaussian noise on the depth (units of the mesh); ``max_points``: random subsample."""
    from human3d.geometry.cameras import Cameras, intrinsics_from_fov, look_at
    from human3d.render.rasterizer import rasterize_mesh

    if size < 8 or distance <= 0 or not 0 < fov < 180 or noise < 0:
        raise InvalidInputError(f"size / distance / fov / noise: expected >= 8, > 0, (0, 180), >= 0; got {size}, "
                                f"{distance}, {fov}, {noise}")  # fmt: skip
    v = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(faces), dtype=torch.int64)
    a, e = math.radians(yaw), math.radians(elevation)
    tgt = torch.tensor(target, dtype=torch.float32)
    eye = tgt + distance * torch.tensor([math.sin(a) * math.cos(e), math.sin(e), math.cos(a) * math.cos(e)])
    K = intrinsics_from_fov(math.radians(fov), size, size)
    cam = Cameras(K, look_at(eye[None], tgt[None]), size, size)
    frag = rasterize_mesh(v[None], f, cam)
    depth = frag.depth[0].detach()  # [H, W]
    ii, jj = frag.mask[0].nonzero(as_tuple=True)
    if len(ii) == 0:
        raise InvalidInputError("depth_view: the mesh is not in view (no covered pixel)")
    z = depth[ii, jj]
    g = torch.Generator().manual_seed(int(seed))
    if noise > 0:
        z = z + noise * torch.randn(z.shape, generator=g)
    uv = torch.stack([jj.float() + 0.5, ii.float() + 0.5], -1)  # [N, 2] pixel centres (u = column)
    pts = cam.unproject(uv[None], z[None])[0]  # [N, 3] world
    if max_points is not None and len(pts) > max_points:
        pts = pts[torch.randperm(len(pts), generator=g)[:max_points]]
    return DepthView(pts.double().numpy(), eye.double().numpy(), depth.numpy())


@dataclass
class CompletionConfig:
    """Test-time code optimisation against a partial observation (see the module docstring)."""

    steps: int = 400
    """Adam steps."""
    lr: float = 1e-2
    """Adam learning rate of the code (x 0.3 for the last quarter)."""
    prior_weight: float = 1e-4
    """Weight of the prior's energy (nats); :data:`DEFAULT_PRIOR_WEIGHTS` per prior kind."""
    free_weight: float = 1.0
    """Weight of the free-space term (0: surface points only)."""
    free_min: float = 0.01
    """Nearest free-space sample in front of an observed point (unit-frame units)."""
    free_max: float = 0.2
    """Farthest free-space sample in front of an observed point (unit-frame units)."""
    delta: float = 0.1
    """Clamp of the SDF terms (the decoder's training clamp)."""
    batch: int = 4096
    """Observed points (and as many free-space points) per step; all when fewer."""
    seed: int = 0
    """Seed of the batches and free-space draws."""

    def validate(self) -> "CompletionConfig":
        if self.steps < 1 or self.batch < 1 or not self.lr > 0 or not self.delta > 0:
            raise InvalidInputError("completion: steps, batch, lr and delta must be positive")
        if self.prior_weight < 0 or self.free_weight < 0 or not 0 <= self.free_min <= self.free_max:
            raise InvalidInputError("completion: expected prior_weight, free_weight >= 0 and 0 <= free_min <= free_max")
        return self


def check_partial_points(points, name: str = "partial") -> np.ndarray:
    """A partial observation [N, 3]: finite, at least 10 points."""
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise InvalidInputError(f"{name}: expected points [N, 3], got shape {p.shape}")
    bad = ~np.isfinite(p).all(1)
    if bad.any():
        raise InvalidInputError(f"{name}: {int(bad.sum())} of {len(p)} points contain NaN or inf")
    if len(p) < 10:
        raise InvalidInputError(f"{name}: expected at least 10 observed points, got {len(p)}")
    return p


def free_space_points(points: torch.Tensor, origin: torch.Tensor, free_min: float, free_max: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """One free-space sample per observed point [N, 3]: ``p - t (p - o) / |p - o|`` with ``t ~ U(min, max)``,
    clipped to stay between the camera ``origin`` [3] and the point -> [N, 3]."""
    d = points - origin
    length = d.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    t = free_min + (free_max - free_min) * torch.rand(len(points), 1, generator=generator, dtype=points.dtype)
    return points - d / length * torch.minimum(t, 0.99 * length)


def complete_code(decoder, points: torch.Tensor, origin: torch.Tensor | None = None, prior=None,
                  config: CompletionConfig | None = None, z0: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """The code z [D] that explains the observed points [N, 3] (decoder's unit frame) seen from ``origin`` [3]
    (None: no free-space term) under ``prior`` (a generative ``Prior`` over codes; None: no prior term). ``z0``:
    the start (default the prior's mean: ``prior.mean`` of a Gaussian, else the mean of 256 prior samples)."""
    cfg = (config or CompletionConfig()).validate()
    pts = torch.as_tensor(check_partial_points(points, "points"), dtype=torch.float32)
    g = torch.Generator().manual_seed(cfg.seed)
    D = decoder.latent_dim
    if z0 is None:
        z0 = torch.zeros(D) if prior is None else _prior_mean(prior)
    z = z0.detach().clone().float().reshape(1, D).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=cfg.lr)
    use_free = origin is not None and cfg.free_weight > 0
    o = None if origin is None else torch.as_tensor(np.asarray(origin), dtype=torch.float32).reshape(3)
    req = [p.requires_grad for p in decoder.parameters()]
    decoder.requires_grad_(False)
    try:
        for step in range(cfg.steps):
            for grp in opt.param_groups:
                grp["lr"] = cfg.lr * (0.3 if step >= 0.75 * cfg.steps else 1.0)
            idx = torch.randperm(len(pts), generator=g)[: cfg.batch]
            p = pts[idx]
            loss = decoder(z, p).clamp(-cfg.delta, cfg.delta).abs().mean()
            if use_free:
                q = free_space_points(p, o, cfg.free_min, cfg.free_max, g)
                loss = loss + cfg.free_weight * torch.relu(-decoder(z, q).clamp(-cfg.delta, cfg.delta)).mean()
            if prior is not None and cfg.prior_weight > 0:
                loss = loss + cfg.prior_weight * prior.energy(z).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        for prm, r in zip(decoder.parameters(), req):
            prm.requires_grad_(r)
    return z.detach()[0]


@torch.no_grad()
def _prior_mean(prior) -> torch.Tensor:
    mean = getattr(prior, "mean", None)
    if isinstance(mean, torch.Tensor) and hasattr(prior, "denormalize"):
        return prior.denormalize(mean.reshape(1, -1))[0].float()
    return prior.sample(256, generator=torch.Generator().manual_seed(0)).mean(0).float()


def chamfer_to_mesh(pred_vertices, pred_faces, ref_vertices, ref_faces, n: int = 30_000, seed: int = 0) -> float:
    """Chamfer-L1 (:func:`human3d.metrics.chamfer_l1`) between ``n`` area-uniform surface samples of each mesh."""
    from human3d.implicit.sampling import sample_surface
    from human3d.metrics import chamfer_l1

    p, _ = sample_surface(pred_vertices, pred_faces, n, seed=seed)
    q, _ = sample_surface(ref_vertices, ref_faces, n, seed=seed + 1)
    return float(chamfer_l1(p, q))
