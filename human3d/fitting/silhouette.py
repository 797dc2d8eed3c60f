"""The silhouette term of SMPLify: projected mesh against per-person masks (``SMPLifyConfig.silhouette_*``).

Energies are per person ``[B]`` in units of the person's size (as the keypoint term); cameras follow
:mod:`human3d.geometry.cameras` (OpenCV, pixel centres at ``j + 0.5``).
"""

from __future__ import annotations

import math
import weakref

import torch
import torch.nn.functional as F

from human3d.fitting.losses import (
    mask_boundary_points,
    mask_distance_transform,
    silhouette_chamfer_energy,
    soft_iou_energy,
)
from human3d.geometry.cameras import Cameras, project_points

__all__ = ["SilhouetteTerm"]

_COVER_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> {n: vertex indices}


def _cover_vertices(model, n: int) -> torch.Tensor:
    """Farthest-point sample of ``n`` vertices of the model's rest mesh (cached per model)."""
    per_model = _COVER_CACHE.setdefault(model, {})
    if n not in per_model:
        with torch.no_grad():
            rest = model(model.default_params(1)).vertices[0]  # [V, 3]
        per_model[n] = _farthest_points(rest.to(torch.float32), n)
    return per_model[n]


def _farthest_points(x: torch.Tensor, n: int) -> torch.Tensor:
    """Indices [n] of a farthest-point sample of points ``x`` [V, 3] (deterministic: starts at vertex 0)."""
    V = x.shape[0]
    if n >= V:
        return torch.arange(V, device=x.device)
    idx = torch.zeros(n, dtype=torch.long, device=x.device)
    d = ((x - x[0]) ** 2).sum(-1)
    for i in range(1, n):
        idx[i] = d.argmax()
        d = torch.minimum(d, ((x - x[idx[i]]) ** 2).sum(-1))
    return idx


class SilhouetteTerm:
    """Silhouette term against per-person masks (``cfg.silhouette_loss``); a person whose mask is None has none.

    Each mask is cropped to its bounding box (plus a margin) and resampled so the crop's longer side has
    ``cfg.silhouette_size`` pixels; the camera intrinsics are mapped to the crop (pixel centres stay at ``j + 0.5``).

    * ``"chamfer"``: :func:`~human3d.fitting.losses.silhouette_chamfer_energy` on the projected vertices
      (distance transform of the mask + Chamfer from mask boundary points to a farthest-point vertex subset).
    * ``"soft_iou"``: ``1 - soft IoU`` of :func:`~human3d.render.soft.render_soft_silhouette` in the crop.
    """

    MARGIN = 0.15  # crop margin, fraction of the mask's bounding box's longer side

    def __init__(self, model, masks, K, w2c, scale, cfg):
        """``masks``: (list of B ``[H, W]`` tensors or None, list of B bools: mask shared with other persons)."""
        masks, shared = masks
        B, dtype, device = K.shape[0], K.dtype, K.device
        self.model, self.faces, self.loss = model, model.faces, cfg.silhouette_loss
        self.has = torch.tensor([m is not None for m in masks], device=device)
        S = int(cfg.silhouette_size)
        crops, Ks, factors = [], [], []
        for b, m in enumerate(masks):
            if m is None:
                m = torch.ones(2, 2)
            m = (m > 0.5).float() if self.loss == "chamfer" else m.to(torch.float32)  # chamfer: binary at 0.5
            ii, jj = (m > 0.5).nonzero(as_tuple=True)
            i0, i1, j0, j1 = int(ii.min()), int(ii.max()) + 1, int(jj.min()), int(jj.max()) + 1
            pad = int(math.ceil(self.MARGIN * max(i1 - i0, j1 - j0))) + 2
            i0, i1, j0, j1 = i0 - pad, i1 + pad, j0 - pad, j1 + pad
            H, W = m.shape
            oi, oj = max(0, -i0), max(0, -j0)  # where the image's (0, 0) sits in the padded array
            crop = F.pad(m, (oj, max(0, j1 - W), oi, max(0, i1 - H)))[i0 + oi : i1 + oi, j0 + oj : j1 + oj]
            f = min(1.0, S / max(i1 - i0, j1 - j0))
            h, w = max(2, round((i1 - i0) * f)), max(2, round((j1 - j0) * f))
            fy, fx = h / (i1 - i0), w / (j1 - j0)
            if (h, w) != tuple(crop.shape):
                crop = F.interpolate(crop[None, None], size=(h, w), mode="area")[0, 0]
            Kb = K[b].clone()
            Kb[0] = Kb[0] * fx - torch.tensor([0.0, 0.0, j0 * fx], dtype=dtype, device=device)
            Kb[1] = Kb[1] * fy - torch.tensor([0.0, 0.0, i0 * fy], dtype=dtype, device=device)
            crops.append(crop.clamp(0, 1))
            Ks.append(Kb)
            factors.append(math.sqrt(fx * fy))
        self.H, self.W = max(c.shape[0] for c in crops), max(c.shape[1] for c in crops)
        self.cameras = Cameras(torch.stack(Ks), w2c, self.W, self.H)
        self.scale = scale * torch.tensor(factors, dtype=dtype, device=device)  # person size in crop pixels
        if self.loss == "soft_iou":
            target = torch.zeros(B, self.H, self.W)
            for b, c in enumerate(crops):
                target[b, : c.shape[0], : c.shape[1]] = c
            self.target = target.to(device, dtype)
            return
        # chamfer: distance transforms (a crop smaller than the grid is padded with background: the transform of
        # the padded mask is the same as the crop's, the mask being inside the crop), boundary points
        dist = torch.zeros(B, self.H, self.W)
        pts = torch.zeros(B, cfg.silhouette_points, 2)
        valid = torch.zeros(B, cfg.silhouette_points, dtype=torch.bool)
        for b, c in enumerate(crops):
            full = torch.zeros(self.H, self.W)
            full[: c.shape[0], : c.shape[1]] = c
            dist[b] = mask_distance_transform(full)
            if not shared[b]:  # a shared mask only keeps the body inside it (no coverage term)
                p = mask_boundary_points(c, cfg.silhouette_points)
                pts[b, : p.shape[0]], valid[b, : p.shape[0]] = p, True
        self.dist, self.pts, self.valid = dist.to(device, dtype), pts.to(device, dtype), valid.to(device)
        self.cover = _cover_vertices(model, cfg.silhouette_vertices).to(device)

    def energy(self, vertices: torch.Tensor) -> torch.Tensor:
        """[B] silhouette energy of posed vertices [B, V, 3] (world frame); 0 for persons without a mask."""
        if self.loss == "soft_iou":
            from human3d.render.soft import render_soft_silhouette  # lazy: the soft rasterizer

            sil = render_soft_silhouette(vertices, self.faces, self.cameras, sigma=1.0, compute_depth=False,
                                         cull_backfaces=True).silhouette  # fmt: skip
            e = soft_iou_energy(sil, self.target)
        else:
            pr = project_points(vertices, self.cameras.K, self.cameras.world_to_camera)
            e = silhouette_chamfer_energy(pr.uv, self.dist, self.pts, self.valid, self.scale,
                                          uv_cover=pr.uv[:, self.cover], vertex_valid=pr.valid)  # fmt: skip
        return torch.where(self.has, e, torch.zeros_like(e))
