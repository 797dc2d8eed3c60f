"""Hard z-buffer mesh rasterizer in pure torch (CPU or GPU), for overlays, depth maps and masks.

Conventions
-----------
* Cameras are :class:`human3d.geometry.Cameras` (OpenCV: x right, y down, z forward; world-to-camera
  extrinsics). Pixel ``(row i, column j)`` is sampled at its centre ``(u, v) = (j + 0.5, i + 0.5)``.
* **Coverage**: a pixel is covered by a triangle when its centre lies inside the projected triangle or on an
  edge (inclusive test). Edge functions are evaluated with a canonical edge orientation (lower vertex id
  first), so two triangles sharing an edge see exactly opposite values there: a closed mesh rasterizes with no
  holes.
* **Near plane**: triangles with *any* vertex at camera depth ``z <= near`` are dropped (no clipping).
  Degenerate triangles (zero projected area) are dropped too.
* **Depth** is the camera-frame z (metres, perspective-correct: ``1/z`` is interpolated linearly in screen
  space). Empty pixels have depth **0** (like a sensor depth map), ``mask`` False, ``face_ids`` -1 and zero
  barycentrics.
* **Barycentrics** are perspective-correct weights of the triangle's vertices ``faces[f, 0..2]`` (they
  interpolate camera-space, hence world-space, attributes exactly). They and ``depth`` are differentiable
  w.r.t. the vertices (visibility itself is not).
* Ties in depth go to the lower face index (deterministic).

Algorithm: per-face screen-space bounding boxes are expanded into (face, pixel) candidate pairs
(``repeat_interleave``), processed in chunks of bounded size; edge functions decide coverage; the z-buffer is
resolved with one ``scatter_reduce(amin)`` on an int64 key packing (float32 depth bits, face id). The winners'
barycentrics and depths are then recomputed once per covered pixel with autograd enabled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from human3d.errors import InvalidInputError, check_tensor
from human3d.geometry.cameras import Cameras, transform_points

__all__ = [
    "Fragments",
    "rasterize_mesh",
    "interpolate_face_attributes",
    "interpolate_vertex_attributes",
    "face_normals",
    "vertex_normals",
    "pixel_normals",
    "headlight_direction",
    "shade_lambert",
]

_KEY_EMPTY = torch.iinfo(torch.int64).max


@dataclass
class Fragments:
    """Per-pixel output of :func:`rasterize_mesh` (``H, W`` = ``cameras.height, cameras.width``).

    Attributes:
        depth: [B, H, W] camera-frame z of the visible surface in metres; 0 where empty.
        mask: [B, H, W] bool, True where a triangle covers the pixel centre.
        face_ids: [B, H, W] int64 index into ``faces`` of the visible triangle; -1 where empty.
        barycentrics: [B, H, W, 3] perspective-correct barycentric weights of ``faces[face_id]``'s three
            vertices (sum to 1 where covered); 0 where empty.
    """

    depth: torch.Tensor
    mask: torch.Tensor
    face_ids: torch.Tensor
    barycentrics: torch.Tensor

    @property
    def height(self) -> int:
        return self.depth.shape[1]

    @property
    def width(self) -> int:
        return self.depth.shape[2]


# ----------------------------------------------------------------------------------------------------------
# Input checks and shared set-up (also used by the soft renderer)
# ----------------------------------------------------------------------------------------------------------


def _check_inputs(vertices, faces, cameras) -> tuple[torch.Tensor, torch.Tensor, Cameras, int]:
    """Validate at the boundary; return (vertices [B,V,3], faces [F,3] long, cameras [B], B)."""
    check_tensor(vertices, "vertices", (None, None, 3), dtype_floating=True)
    if not isinstance(cameras, Cameras):
        raise InvalidInputError(f"cameras: expected a human3d.geometry.Cameras, got {type(cameras).__name__}")
    if not isinstance(faces, torch.Tensor):
        raise InvalidInputError(f"faces: expected a torch.Tensor of vertex indices, got {type(faces).__name__}")
    check_tensor(faces, "faces", (None, 3))
    if faces.is_floating_point() or faces.dtype == torch.bool:
        raise InvalidInputError(f"faces: expected an integer tensor of vertex indices, got {faces.dtype}")
    n_verts = vertices.shape[1]
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= n_verts):
        raise InvalidInputError(
            f"faces: vertex indices must lie in [0, {n_verts - 1}] (vertices has {n_verts}), "
            f"got range [{int(faces.min())}, {int(faces.max())}]"
        )
    bv, bc = vertices.shape[0], len(cameras)
    if bv != bc and 1 not in (bv, bc):
        raise InvalidInputError(
            f"vertices and cameras: batch sizes differ ({bv} vs {bc}); they must match or one must be 1"
        )
    B = max(bv, bc)
    if bv != B:
        vertices = vertices.expand(B, -1, -1)
    if bc != B:
        cameras = Cameras(
            cameras.K.expand(B, -1, -1), cameras.world_to_camera.expand(B, -1, -1), cameras.width, cameras.height
        )
    cameras = cameras.to(device=vertices.device, dtype=vertices.dtype)
    return vertices, faces.to(device=vertices.device, dtype=torch.long), cameras, B


def _check_near(near) -> float:
    if not (isinstance(near, (int, float)) and math.isfinite(near) and near > 0):
        raise InvalidInputError(f"near: expected a positive finite distance in metres, got {near!r}")
    return float(near)


def _project(vertices: torch.Tensor, cameras: Cameras, near: float) -> tuple[torch.Tensor, torch.Tensor]:
    """World vertices [B, V, 3] -> pixel coordinates uv [B, V, 2] and camera depth z [B, V].

    Vertices at or behind ``near`` are projected at ``z = near`` to stay finite; their faces are dropped later.
    """
    cam = transform_points(cameras.world_to_camera, vertices)  # [B, V, 3]
    z = cam[..., 2]
    z_safe = torch.where(z > near, z, torch.full_like(z, near))
    xy = cam[..., :2] / z_safe[..., None]
    uv = xy @ cameras.K[:, :2, :2].transpose(-1, -2) + cameras.K[:, None, :2, 2]
    return uv, z


def _face_bboxes(tri_uv: torch.Tensor, height: int, width: int, pad: float = 0.0):
    """Integer pixel ranges [i0, i1] x [j0, j1] whose centres can lie within ``pad`` px of each triangle.

    tri_uv: [N, 3, 2]. Returns i0, i1, j0, j1 (int64 [N], clamped to the image; empty when i1 < i0 or j1 < j0).
    """
    lo = tri_uv.amin(dim=1) - pad  # [N, 2]
    hi = tri_uv.amax(dim=1) + pad
    # pixel centre c = k + 0.5 lies in [lo, hi]  <=>  ceil(lo - 0.5) <= k <= floor(hi - 0.5)
    lo_k = torch.ceil(lo - 0.5).clamp(min=-1, max=max(height, width)).long()
    hi_k = torch.floor(hi - 0.5).clamp(min=-1, max=max(height, width)).long()
    j0 = lo_k[:, 0].clamp(min=0)
    j1 = hi_k[:, 0].clamp(max=width - 1)
    i0 = lo_k[:, 1].clamp(min=0)
    i1 = hi_k[:, 1].clamp(max=height - 1)
    return i0, i1, j0, j1


_WINDOW_SIZES = (4, 8, 16, 32)


def _covered_pairs(
    table: torch.Tensor,
    i0: torch.Tensor,
    i1: torch.Tensor,
    j0: torch.Tensor,
    j1: torch.Tensor,
    threshold: float,
    max_elems: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield chunks of (face index [M], pixel row [M], pixel column [M], edge values [M, 3]) for every pixel
    centre whose three edge values are all >= ``threshold``.

    Each face's pixel box is covered by windows of ``Th x Tw`` pixels (sizes from ``_WINDOW_SIZES`` chosen per
    axis; boxes larger than 32 px are tiled). Inside a window the edge functions are separable,
    ``E_k(r, c) = U_k[r] - V_k[c]``, so the test is one broadcast subtraction over ``[E, 3, Th, Tw]`` with no
    gathers; window pixels past the face's (image-clipped) box are masked out. The loop runs over 16 window
    classes and memory chunks, never over faces.

    table: [N, 3, 4] per face and edge (a.x, a.y, d.x, d.y): edge value ``d.x (p.y - a.y) - d.y (p.x - a.x)``.
    """
    dev, dtype = table.device, table.dtype
    if table.shape[0] == 0:
        return
    sizes = torch.tensor(_WINDOW_SIZES, device=dev)
    bh, bw = i1 - i0 + 1, j1 - j0 + 1
    ok = (bh > 0) & (bw > 0)
    ch = torch.bucketize(bh, sizes).clamp(max=len(_WINDOW_SIZES) - 1)
    cw = torch.bucketize(bw, sizes).clamp(max=len(_WINDOW_SIZES) - 1)
    cls = torch.where(ok, ch * len(_WINDOW_SIZES) + cw, torch.full_like(ch, -1))
    order = torch.argsort(cls, stable=True)
    counts = torch.bincount(cls[ok], minlength=len(_WINDOW_SIZES) ** 2).tolist()
    start = int((~ok).sum())
    for c, n in enumerate(counts):
        if n == 0:
            continue
        faces_c = order[start : start + n]
        start += n
        Th, Tw = _WINDOW_SIZES[c // len(_WINDOW_SIZES)], _WINDOW_SIZES[c % len(_WINDOW_SIZES)]
        nh = torch.div(bh[faces_c] + Th - 1, Th, rounding_mode="floor")
        nw = torch.div(bw[faces_c] + Tw - 1, Tw, rounding_mode="floor")
        nwin = nh * nw
        if bool((nwin == 1).all()):
            win_face, oi, oj = faces_c, i0[faces_c], j0[faces_c]
        else:  # tile big boxes
            total = int(nwin.sum())
            rep = torch.repeat_interleave(torch.arange(n, device=dev), nwin, output_size=total)
            k = torch.arange(total, device=dev) - torch.repeat_interleave(torch.cumsum(nwin, 0) - nwin, nwin)
            kr = torch.div(k, nw[rep], rounding_mode="floor")
            win_face = faces_c[rep]
            oi = i0[win_face] + kr * Th
            oj = j0[win_face] + (k - kr * nw[rep]) * Tw
        edge_offsets = torch.arange(3, device=dev)
        rows = torch.arange(Th, device=dev, dtype=dtype) + 0.5
        cols = torch.arange(Tw, device=dev, dtype=dtype) + 0.5
        step = max(1, max_elems // (3 * Th * Tw))
        for s in range(0, win_face.shape[0], step):
            wf, wi, wj = win_face[s : s + step], oi[s : s + step], oj[s : s + step]
            py = wi.to(dtype)[:, None, None] + rows  # [E, 1, Th]
            px = wj.to(dtype)[:, None, None] + cols  # [E, 1, Tw]
            t = table.index_select(0, wf)[..., None]  # [E, 3, 4, 1]
            U = t[:, :, 2] * (py - t[:, :, 1])  # [E, 3, Th]
            V = t[:, :, 3] * (px - t[:, :, 0])  # [E, 3, Tw]
            # pixels past the face's box (and so past the image) fail the test: U = -inf or V = +inf
            U = U.masked_fill((py > i1[wf].to(dtype)[:, None, None] + 0.5), -math.inf)
            V = V.masked_fill((px > j1[wf].to(dtype)[:, None, None] + 0.5), math.inf)
            Ev = U[..., :, None] - V[..., None, :]  # [E, 3, Th, Tw]
            inside = Ev.amin(dim=1) >= threshold  # [E, Th, Tw]
            flat = inside.view(-1).nonzero()[:, 0]  # [M] index into [E, Th, Tw]
            if flat.numel() == 0:
                continue
            e = torch.div(flat, Th * Tw, rounding_mode="floor")
            rc = flat - e * (Th * Tw)
            r = torch.div(rc, Tw, rounding_mode="floor")
            w = torch.take(Ev, (flat + 2 * Th * Tw * e)[:, None] + edge_offsets * (Th * Tw))  # [M, 3]
            yield wf[e], wi[e] + r, wj[e] + (rc - r * Tw), w


def _setup_faces(uv: torch.Tensor, z: torch.Tensor, faces: torch.Tensor, near: float, cull_backfaces: bool):
    """Gather per-face screen data for the batch and keep only drawable faces.

    Returns (batch index [N], face index [N], tri_uv [N, 3, 2], tri_z [N, 3], signed doubled area [N]) for the
    N kept (batch, face) pairs. Area > 0 means the triangle is seen from its back (OpenCV pixel axes, faces
    wound counter-clockwise around their outward normal).
    """
    B, F_ = uv.shape[0], faces.shape[0]
    tri_uv = uv[:, faces]  # [B, F, 3, 2]
    tri_z = z[:, faces]  # [B, F, 3]
    e1 = tri_uv[..., 1, :] - tri_uv[..., 0, :]
    e2 = tri_uv[..., 2, :] - tri_uv[..., 0, :]
    area2 = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]  # [B, F]
    keep = (tri_z > near).all(dim=-1) & (area2 != 0) & torch.isfinite(area2)
    if cull_backfaces:
        keep &= area2 < 0
    b_idx, f_idx = keep.nonzero(as_tuple=True)
    return b_idx, f_idx, tri_uv[b_idx, f_idx], tri_z[b_idx, f_idx], area2[b_idx, f_idx]


def _edge_table(tri_uv: torch.Tensor, tri_vid: torch.Tensor, area2: torch.Tensor) -> torch.Tensor:
    """Per-face edge-function coefficients [N, 3, 4]: for each k (weight of vertex k) the edge (a, b) opposite
    vertex k as (a.x, a.y, s*(b-a).x, s*(b-a).y), with a, b in canonical order (lower vertex id first) and s
    folding both the canonical flip and the triangle's orientation so that inside means value >= 0.
    """
    cols = []
    sgn_area = torch.sign(area2)
    for k in range(3):
        ka, kb = (k + 1) % 3, (k + 2) % 3
        va, vb = tri_uv[:, ka], tri_uv[:, kb]
        swap = tri_vid[:, ka] > tri_vid[:, kb]
        a = torch.where(swap[:, None], vb, va)
        b = torch.where(swap[:, None], va, vb)
        s = torch.where(swap, -sgn_area, sgn_area)[:, None]
        cols.append(torch.cat([a, (b - a) * s], dim=1))
    return torch.stack(cols, dim=1)  # [N, 3, 4]


# ----------------------------------------------------------------------------------------------------------
# Hard rasterizer
# ----------------------------------------------------------------------------------------------------------


def rasterize_mesh(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: Cameras,
    *,
    near: float = 1e-3,
    cull_backfaces: bool = False,
    max_pairs: int = 1 << 21,
) -> Fragments:
    """Rasterize triangle meshes with a hard z-buffer.

    Args:
        vertices: [B, V, 3] world coordinates (metres). B may be 1 with several cameras, or vice versa.
        faces: [F, 3] integer vertex indices shared by the batch.
        cameras: :class:`Cameras` of batch B (or 1); the image size is ``cameras.height x cameras.width``.
        near: triangles with any vertex at camera z <= near are dropped (no clipping).
        cull_backfaces: drop triangles seen from behind (assumes faces wound counter-clockwise around the
            outward normal, as in SMPL / Anny / trimesh).
        max_pairs: memory bound: window elements (candidate pixel x face x 3 edges) evaluated per chunk.

    Returns:
        :class:`Fragments` (depth 0 / mask False / face_ids -1 / barycentrics 0 where empty).
    """
    vertices, faces, cameras, B = _check_inputs(vertices, faces, cameras)
    near = _check_near(near)
    H, W = int(cameras.height), int(cameras.width)
    dev, dtype = vertices.device, vertices.dtype
    if faces.shape[0] >= 2**31:
        raise InvalidInputError(f"faces: at most 2^31 - 1 faces are supported, got {faces.shape[0]}")

    uv, z = _project(vertices, cameras, near)  # [B, V, 2], [B, V]
    zbuf = torch.full((B, H, W), _KEY_EMPTY, dtype=torch.int64, device=dev)
    with torch.no_grad():
        b_idx, f_idx, tri_uv, tri_z, area2 = _setup_faces(uv.detach(), z.detach(), faces, near, cull_backfaces)
        i0, i1, j0, j1 = _face_bboxes(tri_uv, H, W)
        table = _edge_table(tri_uv, faces[f_idx], area2)  # [N, 3, 4]
        inv_z = 1.0 / tri_z  # [N, 3]
        zflat = zbuf.view(-1)
        for lf, pi, pj, w in _covered_pairs(table, i0, i1, j0, j1, 0.0, max_pairs):
            inv_depth = (w * inv_z[lf]).sum(dim=1) / w.sum(dim=1)  # [M] perspective-correct 1/z
            depth = (1.0 / inv_depth).float().clamp(min=0)
            key = (depth.view(torch.int32).long() << 32) | f_idx[lf]
            pix = (b_idx[lf] * H + pi) * W + pj
            zflat.scatter_reduce_(0, pix, key, reduce="amin", include_self=True)
    zbuf = zbuf.view(-1)

    mask_flat = zbuf != _KEY_EMPTY
    face_flat = torch.where(mask_flat, zbuf & 0xFFFFFFFF, torch.full_like(zbuf, -1))
    pix = mask_flat.nonzero(as_tuple=True)[0]  # [P]
    bb = torch.div(pix, H * W, rounding_mode="floor")
    rem = pix - bb * (H * W)
    pi = torch.div(rem, W, rounding_mode="floor")
    pj = rem - pi * W
    ff = face_flat[pix]
    # recompute the winners' barycentrics and depth with autograd (one triangle per covered pixel)
    vid = (faces.index_select(0, ff) + (bb * uv.shape[1])[:, None]).view(-1)  # [P*3] into the flat batch
    puv = uv.reshape(-1, 2).index_select(0, vid).view(-1, 3, 2)  # [P, 3, 2]
    pz = z.reshape(-1).index_select(0, vid).view(-1, 3)  # [P, 3]
    p = torch.stack([pj.to(dtype) + 0.5, pi.to(dtype) + 0.5], dim=-1)  # [P, 2]
    bary_s, _ = _screen_barycentrics(puv, p)  # [P, 3]
    wz = bary_s / pz
    inv_depth = wz.sum(dim=-1)
    bary = wz / inv_depth[:, None]

    depth = torch.zeros(B * H * W, dtype=dtype, device=dev).index_put((pix,), 1.0 / inv_depth)
    bary_img = torch.zeros(B * H * W, 3, dtype=dtype, device=dev).index_put((pix,), bary)
    return Fragments(
        depth=depth.view(B, H, W),
        mask=mask_flat.view(B, H, W),
        face_ids=face_flat.view(B, H, W),
        barycentrics=bary_img.view(B, H, W, 3),
    )


def _screen_barycentrics(tri_uv: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen-space barycentrics [M, 3] of points p [M, 2] w.r.t. triangles tri_uv [M, 3, 2] (+ doubled area)."""
    a, b, c = tri_uv.unbind(dim=1)

    def cross(o, q, r):  # z of (q - o) x (r - o)
        return (q[:, 0] - o[:, 0]) * (r[:, 1] - o[:, 1]) - (q[:, 1] - o[:, 1]) * (r[:, 0] - o[:, 0])

    area2 = cross(a, b, c)
    w = torch.stack([cross(b, c, p), cross(c, a, p), cross(a, b, p)], dim=-1) / area2[:, None]
    return w, area2


# ----------------------------------------------------------------------------------------------------------
# Attribute interpolation, normals and shading
# ----------------------------------------------------------------------------------------------------------


def interpolate_face_attributes(fragments: Fragments, face_attributes: torch.Tensor) -> torch.Tensor:
    """Interpolate per-face-corner attributes with the fragments' barycentrics.

    Args:
        face_attributes: [F, 3, D] or [B, F, 3, D] (value of attribute at each corner of each face).
    Returns:
        [B, H, W, D]; zeros where the pixel is empty.
    """
    B, H, W = fragments.depth.shape
    if face_attributes.dim() == 3:
        face_attributes = face_attributes.unsqueeze(0).expand(B, -1, -1, -1)
    check_tensor(face_attributes, "face_attributes", (B, None, 3, None))
    n_faces, D = face_attributes.shape[1], face_attributes.shape[3]
    pix = fragments.mask.view(-1).nonzero()[:, 0]  # [P] covered pixels only
    fid = fragments.face_ids.view(-1)[pix] + torch.div(pix, H * W, rounding_mode="floor") * n_faces  # [P]
    corners = face_attributes.reshape(-1, 3, D).index_select(0, fid)  # [P, 3, D]
    bary = fragments.barycentrics.view(-1, 3)[pix].to(corners.dtype)  # [P, 3]
    vals = (bary[:, :, None] * corners).sum(dim=1)  # [P, D]
    out = torch.zeros(B * H * W, D, dtype=vals.dtype, device=vals.device).index_put((pix,), vals)
    return out.view(B, H, W, D)


def interpolate_vertex_attributes(
    fragments: Fragments, faces: torch.Tensor, vertex_attributes: torch.Tensor
) -> torch.Tensor:
    """Interpolate per-vertex attributes [V, D] or [B, V, D] to pixels -> [B, H, W, D] (zeros where empty)."""
    if vertex_attributes.dim() == 2:
        vertex_attributes = vertex_attributes.unsqueeze(0)
    B = fragments.depth.shape[0]
    if vertex_attributes.shape[0] == 1 and B > 1:
        vertex_attributes = vertex_attributes.expand(B, -1, -1)
    return interpolate_face_attributes(fragments, vertex_attributes[:, faces.long()])


def face_normals(vertices: torch.Tensor, faces: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Face normals [B, F, 3] (right-hand rule over the face's vertex order; area-weighted if not normalized)."""
    tri = vertices[:, faces.long()]  # [B, F, 3, 3]
    n = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    return F.normalize(n, dim=-1, eps=1e-12) if normalize else n


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals [B, V, 3] for vertices [B, V, 3] and faces [F, 3]."""
    faces = faces.long()
    fn = face_normals(vertices, faces, normalize=False)  # [B, F, 3]
    vn = torch.zeros_like(vertices)
    for k in range(3):  # three corners, not a loop over faces
        vn = vn.index_add(1, faces[:, k], fn)
    return F.normalize(vn, dim=-1, eps=1e-12)


def pixel_normals(
    fragments: Fragments, vertices: torch.Tensor, faces: torch.Tensor, smooth: bool = True
) -> torch.Tensor:
    """Unit surface normals per pixel [B, H, W, 3], in the frame of ``vertices`` (world); zeros where empty.

    ``smooth=True`` interpolates area-weighted vertex normals (Phong-style); False uses flat face normals.
    """
    B, H, W = fragments.depth.shape
    if vertices.shape[0] == 1 and B > 1:
        vertices = vertices.expand(B, -1, -1)
    faces = faces.long()
    if smooth:
        n = interpolate_vertex_attributes(fragments, faces, vertex_normals(vertices, faces))
    else:
        fn = face_normals(vertices, faces)  # [B, F, 3]
        n = interpolate_face_attributes(fragments, fn[:, :, None, :].expand(-1, -1, 3, -1))
    return F.normalize(n, dim=-1, eps=1e-12)


def headlight_direction(cameras: Cameras, offset: tuple[float, float, float] = (-0.3, -0.4, -1.0)) -> torch.Tensor:
    """World-space direction [B, 3] towards a light attached to the camera.

    ``offset`` is the direction towards the light in the OpenCV camera frame; the default sits slightly up
    (-y) and left (-x) of the viewer, which reads well for overlays. ``(0, 0, -1)`` is an exact headlight.
    """
    d = torch.as_tensor(offset, dtype=cameras.K.dtype, device=cameras.K.device)
    R = cameras.world_to_camera[:, :3, :3]  # [B, 3, 3] camera <- world
    return F.normalize(d @ R, dim=-1)  # R^T d for each camera


def shade_lambert(
    fragments: Fragments,
    normals: torch.Tensor,
    light_dir: torch.Tensor | tuple[float, float, float] = (0.0, 0.0, -1.0),
    color: torch.Tensor | tuple[float, float, float] = (0.7, 0.7, 0.7),
    ambient: float = 0.3,
    two_sided: bool = True,
) -> torch.Tensor:
    """Lambertian shading -> RGBA image [B, H, W, 4] in [0, 1] (alpha = coverage mask; 0 where empty).

    Args:
        normals: [B, H, W, 3] unit normals (e.g. :func:`pixel_normals`).
        light_dir: direction *towards* the light, in the frame of ``normals``: [3] or [B, 3]. The default
            (0, 0, -1) is a headlight when normals are in the OpenCV camera frame; for world-space normals use
            :func:`headlight_direction`.
        color: albedo, RGB in [0, 1]: [3], [B, 3] or per pixel [B, H, W, 3].
        ambient: intensity = ambient + (1 - ambient) * max(n . l, 0).
        two_sided: use |n . l| so that faces seen from behind (open meshes, flipped winding) are lit too.
    """
    B, H, W = fragments.depth.shape
    dtype, dev = normals.dtype, normals.device
    check_tensor(normals, "normals", (B, H, W, 3))
    light = F.normalize(torch.as_tensor(light_dir, dtype=dtype, device=dev).reshape(-1, 3), dim=-1)
    if light.shape[0] not in (1, B):
        raise InvalidInputError(f"light_dir: expected [3] or [{B}, 3], got {tuple(light.shape)}")
    col = torch.as_tensor(color, dtype=dtype, device=dev)
    if col.dim() <= 2:
        col = col.reshape(-1, 1, 1, 3)
    if col.shape[-1] != 3 or col.shape[0] not in (1, B):
        raise InvalidInputError(f"color: expected [3], [B, 3] or [B, H, W, 3], got {tuple(col.shape)}")
    ndotl = (normals * light[:, None, None, :]).sum(-1)  # [B, H, W]
    ndotl = ndotl.abs() if two_sided else ndotl.clamp(min=0)
    intensity = ambient + (1.0 - ambient) * ndotl
    mask = fragments.mask.to(dtype)
    rgb = (col * intensity[..., None]).clamp(0, 1) * mask[..., None]
    return torch.cat([rgb, mask[..., None]], dim=-1)
