"""Tile-based Gaussian rasterizer in pure torch (CPU), with one gsplat-style entry point :func:`rasterize`.

Design (every step vectorised; no Python loop over Gaussians, tiles or pixels):

1. **Project and cull** (:func:`~human3d.splat.projection.project_gaussians`): EWA 2-D covariance, conic and
   support radius; Gaussians behind the near plane, beyond the far plane or off-screen are dropped.
2. **Bound each footprint**: alpha can reach 1/255 only inside the ellipse ``d^T Sigma'^-1 d <= 2 ln(255 o)``;
   its bounding box gives each Gaussian's pixel rectangle (opacity-aware, like gsplat's CUDA kernel).
3. **(tile, Gaussian) pairs** (16x16 tiles): Gaussians are ordered by depth once, expanded to the tiles their
   rectangle touches and stably radix-sorted by tile id, giving (tile, depth) order.
4. **Packed (Gaussian, pixel) fragments**: each pair expands to *rows* (its pixel rows inside the tile) and
   each row to exactly the pixels where the ellipse crosses it (a quadratic per row), so no pixel outside a
   footprint is ever evaluated. Fragments stay in this generation order (row-contiguous: per-row constants
   stream through memory) and a stable radix sort by pixel within the tile gives the compositing order (per
   pixel, front to back). Tiles are processed in chunks (<= 256 tiles, ~4M fragments) to bound memory.
5. **Composite** front to back: ``alpha = min(0.99, o exp(-q/2))`` (skipped below 1/255),
   ``T_k = prod_{j<k}(1 - alpha_j)`` by a segmented cumulative sum of ``log(1 - alpha)`` (float64); a pixel
   stops before the fragment that would bring ``T`` below 1e-4, as in 3DGS. A custom autograd function
   computes the backward pass in closed form (suffix sums per pixel), checked against autograd and finite
   differences in the tests. Only alpha moves to compositing order and the weights / alpha gradients move back.

Pixel convention: pixel (i, j) is sampled at ``(j + 0.5, i + 0.5)``, the convention of gsplat and of
:mod:`human3d.geometry.cameras`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from human3d.errors import InvalidInputError, check_tensor
from human3d.splat.projection import ALPHA_THRESHOLD, project_gaussians
from human3d.splat.sh import eval_sh, num_sh_bases

__all__ = [
    "rasterize",
    "set_compile",
    "build_fragments",
    "composite_fragments",
    "composite_fragments_reference",
    "Fragments",
    "gsplat_available",
    "ALPHA_MAX",
    "TRANSMITTANCE_MIN",
]

#: alpha is clamped to this value (3DGS).
ALPHA_MAX = 0.99
#: a pixel stops compositing once its transmittance would drop below this (3DGS early termination).
TRANSMITTANCE_MIN = 1e-4
_LOG_T_MIN = math.log(TRANSMITTANCE_MIN)
#: default bound on the number of candidate fragments built at once (memory: ~60 bytes each).
DEFAULT_CHUNK_FRAGMENTS = 4_000_000


# ----------------------------------------------------------------------------------------------------------------
# sorting helpers
# ----------------------------------------------------------------------------------------------------------------
def _stable_argsort(keys: torch.Tensor, max_key: int) -> torch.Tensor:
    """Stable argsort of non-negative integer keys (<= max_key). LSD radix passes of 16 bits on the CPU."""
    n = keys.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=keys.device)
    if keys.device.type != "cpu":
        return torch.sort(keys, stable=True).indices
    k = keys.numpy()
    if max_key < 256:
        return torch.from_numpy(np.argsort(k.astype(np.uint8), kind="stable").astype(np.int64, copy=False))
    perm = None
    bits = max(int(max_key).bit_length(), 1)
    for shift in range(0, bits, 16):
        digit = ((k if perm is None else k[perm]) >> shift) & 0xFFFF
        o = np.argsort(digit.astype(np.uint16), kind="stable")
        perm = o if perm is None else perm[o]
    return torch.from_numpy(perm.astype(np.int64, copy=False))


# ----------------------------------------------------------------------------------------------------------------
# fragment construction (no gradient)
# ----------------------------------------------------------------------------------------------------------------
class FragmentChunk:
    """Fragments of a group of whole tiles (segments never cross chunks).

    Fragments are grouped in *rows*: the run of pixels of one (tile, Gaussian) pair on one pixel row, limited to
    the exact span where the Gaussian's alpha can reach 1/255. They are stored in *generation order* (row by row,
    rows in (tile, depth) order, so each row's fragments are contiguous and per-row work streams through memory);
    ``perm`` gives the *compositing order* (by pixel, then front to back), where each pixel is a contiguous segment.

    Attributes:
        row_gauss: [R] long index of each row's Gaussian.
        row_y: [R] long pixel row of each row.
        row: [M] int32 row of each fragment (non-decreasing).
        xc: [M] float pixel-centre x (``col + 0.5``) of each fragment.
        pix: [M] int32 flat pixel index ``cam * H * W + y * W + col`` of each fragment.
        perm: [M] long generation index of the k-th fragment in compositing order.
        seg_start, seg_end: [M] int32 first / last compositing position of the k-th fragment's pixel segment.
    """

    def __init__(self, row_gauss, row_y, row, xc, pix, perm, seg_start, seg_end):
        self.row_gauss, self.row_y, self.row, self.xc, self.pix = row_gauss, row_y, row, xc, pix
        self.perm, self.seg_start, self.seg_end = perm, seg_start, seg_end

    def __len__(self) -> int:
        return self.row.numel()


class Fragments:
    """All fragments of a render: a list of :class:`FragmentChunk` plus sizes."""

    def __init__(self, chunks: list, n_pixels: int, n_tile_pairs: int):
        self.chunks, self.n_pixels, self.n_tile_pairs = chunks, n_pixels, n_tile_pairs

    def __len__(self) -> int:
        return sum(len(c) for c in self.chunks)


_ARANGE_CACHE: dict = {}


def _arange(n: int, device, dtype=torch.long) -> torch.Tensor:
    """torch.arange(n), sliced from a cached buffer."""
    key = (str(device), dtype)
    buf = _ARANGE_CACHE.get(key)
    if buf is None or buf.numel() < n:
        buf = torch.arange(max(n, 2 * (0 if buf is None else buf.numel()), 1 << 16), device=device, dtype=dtype)
        _ARANGE_CACHE[key] = buf
    return buf[:n]


def _repeat_ranges(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For counts [K] -> (owner [sum], local [sum]): element e belongs to owner k and is its local-th element."""
    k = counts.numel()
    owner = torch.repeat_interleave(_arange(k, counts.device), counts)
    first = torch.cumsum(counts, 0) - counts
    local = _arange(owner.numel(), counts.device) - first.index_select(0, owner)
    return owner, local


@torch.no_grad()
def build_fragments(
    means2d: torch.Tensor,  # [V, 2]
    conics: torch.Tensor,  # [V, 3]
    opacities: torch.Tensor,  # [V]
    depths: torch.Tensor,  # [V]
    cam_ids: torch.Tensor,  # [V] long
    n_cameras: int,
    width: int,
    height: int,
    tile_size: int = 16,
    chunk_fragments: int = DEFAULT_CHUNK_FRAGMENTS,
    gauss_ids: torch.Tensor | None = None,
) -> Fragments:
    """Build the packed, sorted fragment list of V screen-space Gaussians (see the module docstring).

    The support of Gaussian v is the ellipse ``q(d) = d^T conic d <= r2 = 2 ln(255 o)`` (where alpha >= 1/255).
    ``gauss_ids`` [V] (long): the ids reported in ``row_gauss`` (default: 0..V-1), e.g. flat instance ids.
    """
    device = means2d.device
    dt = means2d.dtype
    means2d, conics, opacities, depths = means2d.detach(), conics.detach(), opacities.detach(), depths.detach()
    ts = int(tile_size)
    ntx, nty = (width + ts - 1) // ts, (height + ts - 1) // ts
    tiles_per_cam = ntx * nty
    n_pixels = n_cameras * width * height
    empty = Fragments([], n_pixels, 0)

    a, b, c = conics.unbind(-1)
    r2 = 2.0 * torch.log(opacities.clamp_min(1e-30) / ALPHA_THRESHOLD)  # [V] q threshold; <= 0: never visible
    det = (a * c - b * b).clamp_min(1e-30)
    # exact half-extents of the ellipse q <= r2: sqrt(r2 * Sigma'_xx), Sigma'_xx = c / det
    ex = torch.sqrt((r2 * c / det).clamp_min(0.0))
    ey = torch.sqrt((r2 * a / det).clamp_min(0.0))
    margin = 1e-3
    mx, my = means2d[:, 0], means2d[:, 1]
    x0 = torch.ceil(mx - ex - 0.5 - margin).clamp(min=0).long()
    x1 = torch.floor(mx + ex - 0.5 + margin).clamp(max=width - 1).long()
    y0 = torch.ceil(my - ey - 0.5 - margin).clamp(min=0).long()
    y1 = torch.floor(my + ey - 0.5 + margin).clamp(max=height - 1).long()
    ok = (x1 >= x0) & (y1 >= y0) & (r2 > 0)
    tx0, tx1, ty0, ty1 = x0 // ts, x1 // ts, y0 // ts, y1 // ts
    ntile_x = (tx1 - tx0 + 1).clamp(min=1)
    n_tg = torch.where(ok, ntile_x * (ty1 - ty0 + 1), torch.zeros_like(ntile_x))  # tiles per Gaussian

    # ---- (tile, Gaussian) pairs in (tile, depth) order
    order = torch.sort(depths, stable=True).indices
    order = order.index_select(0, torch.nonzero(n_tg.index_select(0, order) > 0).squeeze(1))
    if order.numel() == 0:
        return empty
    owner, local = _repeat_ranges(n_tg.index_select(0, order))
    g = order.index_select(0, owner)  # [P]
    nx = ntile_x.index_select(0, g)
    tx = tx0.index_select(0, g) + local % nx
    ty = ty0.index_select(0, g) + local // nx
    tile = cam_ids.index_select(0, g) * tiles_per_cam + ty * ntx + tx  # [P]
    perm = _stable_argsort(tile, n_cameras * tiles_per_cam - 1)
    g, tile, tx, ty = (t.index_select(0, perm) for t in (g, tile, tx, ty))
    n_pairs = g.numel()
    # rows of each pair inside its tile and an upper bound of its fragments (rectangle area)
    py0 = torch.maximum(y0.index_select(0, g), ty * ts)
    py1 = torch.minimum(y1.index_select(0, g), ty * ts + ts - 1)
    px0 = torch.maximum(x0.index_select(0, g), tx * ts)
    px1 = torch.minimum(x1.index_select(0, g), tx * ts + ts - 1)
    nrows = (py1 - py0 + 1).clamp(min=0)
    bound = nrows * (px1 - px0 + 1).clamp(min=0)

    # ---- chunks of whole tiles: at most 256 tiles (one 16-bit radix pass) and ~chunk_fragments candidates
    tile_first = torch.ones(n_pairs, dtype=torch.bool, device=device)
    tile_first[1:] = tile[1:] != tile[:-1]
    starts = torch.nonzero(tile_first).squeeze(1)  # first pair of each used tile
    cum_before = (torch.cumsum(bound, 0) - bound).index_select(0, starts)
    max_tiles = max(1, 65536 // (ts * ts))
    cuts, lo_i = [0], 0
    cum_list, tile_list = cum_before.tolist(), tile.index_select(0, starts).tolist()
    for i in range(1, len(starts)):  # loop over used tiles (hundreds), not pixels or Gaussians
        if cum_list[i] - cum_list[lo_i] > chunk_fragments or tile_list[i] - tile_list[lo_i] >= max_tiles:
            cuts.append(i)
            lo_i = i
    starts_l = starts.tolist() + [n_pairs]
    pair_cuts = [starts_l[i] for i in cuts] + [n_pairs]

    chunks = []
    for p0, p1 in zip(pair_cuts[:-1], pair_cuts[1:]):
        if p1 <= p0:
            continue
        # rows
        r_pair, r_local = _repeat_ranges(nrows[p0:p1])
        r_pair = r_pair + p0
        rg = g.index_select(0, r_pair)  # [R] Gaussian of each row
        ry = py0.index_select(0, r_pair) + r_local
        # exact span on this row: a dx^2 + 2 b dx dy + c dy^2 <= r2
        dy = ry.to(dt) + 0.5 - my.index_select(0, rg)
        ar, br, cr = a.index_select(0, rg), b.index_select(0, rg), c.index_select(0, rg)
        disc = (br * br - ar * cr) * dy * dy + ar * r2.index_select(0, rg)
        half = torch.sqrt(disc.clamp_min(0.0)) / ar
        centre = mx.index_select(0, rg) - br * dy / ar
        j0 = torch.ceil(centre - half - 0.5 - margin).long()
        j1 = torch.floor(centre + half - 0.5 + margin).long()
        j0 = torch.maximum(j0, px0.index_select(0, r_pair))
        j1 = torch.minimum(j1, px1.index_select(0, r_pair))
        cnt = torch.where(disc >= 0, (j1 - j0 + 1).clamp(min=0), torch.zeros_like(j0))
        keep_rows = torch.nonzero(cnt > 0).squeeze(1)
        if keep_rows.numel() == 0:
            continue
        r_pair = r_pair.index_select(0, keep_rows)
        rg, ry, j0, cnt = (t.index_select(0, keep_rows) for t in (rg, ry, j0, cnt))
        rtile = tile.index_select(0, r_pair)
        rtx = tx.index_select(0, r_pair)
        t_first = int(tile[p0])
        # sort key of a fragment at column x: its pixel's rank in the chunk (tile-major, then row-major in the
        # tile); key = rowkey + x. Fragments are generated row by row in (tile, depth) order.
        rowkey = ((rtile - t_first) * ts + (ry - (ry // ts) * ts)) * ts - rtx * ts
        rpix = ((rtile // tiles_per_cam) * height + ry) * width  # flat index of the row's column 0
        first = torch.cumsum(cnt, 0) - cnt
        # fragment-level arrays are int32 (memory bandwidth); n_pixels < 2^31 is checked by the caller
        i32 = torch.int32
        f_row = torch.repeat_interleave(_arange(cnt.numel(), device, i32), cnt.to(i32))  # [M] non-decreasing
        m = f_row.numel()
        local = _arange(m, device, i32) - first.to(i32).index_select(0, f_row)
        x = j0.to(i32).index_select(0, f_row) + local  # [M] pixel column (generation order)
        key = rowkey.to(i32).index_select(0, f_row) + x
        perm = _stable_argsort(key, (int(tile[p1 - 1]) - t_first + 1) * ts * ts - 1)  # compositing order
        key = key.index_select(0, perm)
        flag = torch.ones(m, dtype=torch.bool, device=device)
        torch.ne(key[1:], key[:-1], out=flag[1:])
        seg_id = torch.cumsum(flag, 0, dtype=i32) - 1
        starts = torch.nonzero(flag).squeeze(1).to(i32)
        ends = torch.cat([starts[1:] - 1, torch.tensor([m - 1], dtype=i32, device=device)])
        pix = rpix.to(i32).index_select(0, f_row) + x
        if gauss_ids is not None:
            rg = gauss_ids.index_select(0, rg)
        chunks.append(FragmentChunk(rg, ry, f_row, x.to(dt) + 0.5, pix, perm, starts.index_select(0, seg_id),
                                    ends.index_select(0, seg_id)))  # fmt: skip
    return Fragments(chunks, n_pixels, n_pairs)


# ----------------------------------------------------------------------------------------------------------------
# compositing
# ----------------------------------------------------------------------------------------------------------------
def _row_params(means2d, conics, opacities, frags: FragmentChunk) -> torch.Tensor:
    """Per-row constants [5, R] of the fragment alpha (differentiable w.r.t. the per-Gaussian inputs).

    For a fragment at pixel-centre x of a row at height y (dy = y + 0.5 - my, dx = x - mx):
    ``q = dx (a dx + p1) + p0`` with ``p1 = 2 b dy``, ``p0 = c dy^2``; ``alpha = o exp(-q / 2)``.
    Rows: (mx, a, p1, p0, o). Channel-first layout: every per-fragment op below is a 1-D op (fast on CPU).
    """
    g = frags.row_gauss
    mx, my = (means2d[:, i].index_select(0, g) for i in range(2))
    a, b, c = (conics[:, i].index_select(0, g) for i in range(3))
    dy = frags.row_y.to(mx.dtype) + 0.5 - my
    return torch.stack([mx, a, 2.0 * b * dy, c * dy * dy, opacities.index_select(0, g)], 0)


def _composite_forward(rp, row_colors, row, xc, pix, perm, seg_start, n_pixels: int):
    """Forward math of one chunk (pure tensor function; optionally compiled). See :class:`_Composite`."""
    mx, a, p1, p0, o = (rp[i].index_select(0, row) for i in range(5))  # sequential (row is sorted)
    dx = xc - mx
    a_raw = o * torch.exp(-0.5 * (dx * (a * dx + p1) + p0))  # [M] generation order
    alpha_g = torch.where(a_raw >= ALPHA_THRESHOLD, a_raw.clamp_max(ALPHA_MAX), torch.zeros_like(a_raw))
    alpha = alpha_g.index_select(0, perm)  # compositing order
    log1m = torch.log1p(-alpha).double()
    cs = torch.cumsum(log1m, 0)
    excl = cs - log1m
    log_t = excl - excl.index_select(0, seg_start)
    keep = (log_t + log1m) >= _LOG_T_MIN  # early termination: a suffix of each pixel's segment
    T = torch.exp(log_t.to(alpha.dtype)) * keep  # 0 for terminated fragments
    w = torch.zeros_like(alpha).index_copy(0, perm, alpha * T)  # back to generation order
    D = row_colors.shape[0]
    out_c = torch.stack(
        [torch.zeros(n_pixels, dtype=w.dtype, device=w.device).index_add(0, pix, w * row_colors[d].index_select(0, row))
         for d in range(D)]
    )  # fmt: skip
    out_a = torch.zeros(n_pixels, dtype=w.dtype, device=w.device).index_add(0, pix, w)
    return out_c, out_a, dx, a_raw, w, alpha, T


def _composite_backward(g_c, g_a, rp, row_colors, row, pix, perm, seg_end, dx, a_raw, w, alpha, T):
    """Backward math of one chunk (pure tensor function; optionally compiled). See :class:`_Composite`."""
    D, R = row_colors.shape
    v = g_a.index_select(0, pix)  # generation order: dL/d(colour) . colour + dL/d(alpha), per fragment
    g_col = []
    for d in range(D):
        gd = g_c[d].index_select(0, pix)
        v = v + row_colors[d].index_select(0, row) * gd
        g_col.append(torch.zeros(R, dtype=w.dtype, device=w.device).index_add(0, row, w * gd))
    v = v.index_select(0, perm)  # compositing order
    wv = (alpha * T * v).double()
    cs = torch.cumsum(wv, 0)
    S = (cs.index_select(0, seg_end) - cs).to(alpha.dtype)  # sum of w v over the fragments behind
    d_alpha = torch.zeros_like(alpha).index_copy(0, perm, T * v - S / (1.0 - alpha))  # generation order
    d_alpha = torch.where((a_raw >= ALPHA_THRESHOLD) & (a_raw <= ALPHA_MAX), d_alpha, torch.zeros_like(d_alpha))
    d_q = -0.5 * a_raw * d_alpha  # alpha = o exp(-q/2) where not clamped
    # q = dx (a dx + p1) + p0 with dx = x - mx
    a = rp[1].index_select(0, row)
    p1 = rp[2].index_select(0, row)
    o = rp[4].index_select(0, row)
    d_qdx = d_q * dx
    parts = [-(d_q * p1 + 2.0 * a * d_qdx), d_qdx * dx, d_qdx, d_q, a_raw / o.clamp_min(1e-30) * d_alpha]
    g_rp = torch.stack([torch.zeros(R, dtype=w.dtype, device=w.device).index_add(0, row, t) for t in parts])
    return g_rp, torch.stack(g_col)


_KERNELS = {"forward": _composite_forward, "backward": _composite_backward}
_COMPILED: dict = {}


def set_compile(enabled: bool) -> bool:
    """Use ``torch.compile`` (inductor, dynamic shapes) for the per-fragment forward/backward math.

    Fuses the ~40 element-wise passes over the fragments into a few loops (several times faster on a CPU) at
    the cost of a one-off compilation (about a minute; cached on disk by torch). Needs a C++ compiler; if
    compilation fails the eager functions are used again (with a warning). Returns the new state.
    """
    if enabled and not _COMPILED:
        try:
            _COMPILED["forward"] = torch.compile(_composite_forward, dynamic=True)
            _COMPILED["backward"] = torch.compile(_composite_backward, dynamic=True)
        except Exception as e:  # pragma: no cover - depends on the platform
            import warnings

            warnings.warn(f"torch.compile unavailable ({e}); using the eager rasterizer", stacklevel=2)
            _COMPILED.clear()
            return False
    _KERNELS.update(_COMPILED if enabled else {"forward": _composite_forward, "backward": _composite_backward})
    return enabled


def _run_kernel(name, *args):
    fn = _KERNELS[name]
    if fn is _composite_forward or fn is _composite_backward:
        return fn(*args)
    try:
        return fn(*args)
    except Exception as e:  # compilation failed at first call: fall back for good
        import warnings

        warnings.warn(f"compiled splat kernel failed ({type(e).__name__}: {e}); using the eager rasterizer",
                      stacklevel=3)  # fmt: skip
        set_compile(False)
        return _KERNELS[name](*args)


class _Composite(torch.autograd.Function):
    """Front-to-back compositing of one chunk; inputs row params [5, R] and row colours [D, R].

    Per-row work runs in generation order (contiguous rows); only alpha goes to compositing order and the
    weights / alpha gradients come back (one gather and one scatter per pass).
    """

    @staticmethod
    def forward(ctx, rp, row_colors, row, xc, pix, perm, seg_start, seg_end, n_pixels):
        out_c, out_a, dx, a_raw, w, alpha, T = _run_kernel(
            "forward", rp, row_colors, row, xc, pix, perm, seg_start, n_pixels)  # fmt: skip
        ctx.save_for_backward(rp, row_colors, row, pix, perm, seg_end, dx, a_raw, w, alpha, T)
        return out_c, out_a

    @staticmethod
    def backward(ctx, g_c, g_a):  # g_c [D, P], g_a [P]
        saved = ctx.saved_tensors
        g_rp, g_col = _run_kernel("backward", g_c.contiguous(), g_a.contiguous(), *saved)
        return g_rp, g_col, None, None, None, None, None, None, None


def composite_fragments(means2d, conics, opacities, colors, frags: Fragments):
    """Alpha-composite fragments front to back (closed-form custom backward).

    Args: per visible Gaussian means2d [V, 2], conics [V, 3], opacities [V], colors [V, D]; ``frags`` from
    :func:`build_fragments`. Returns colour [C*H*W, D] and alpha [C*H*W] (no background).
    """
    out_c = torch.zeros(colors.shape[1], frags.n_pixels, dtype=colors.dtype, device=colors.device)
    out_a = torch.zeros(frags.n_pixels, dtype=colors.dtype, device=colors.device)
    for ch in frags.chunks:
        rp = _row_params(means2d, conics, opacities, ch)
        row_colors = torch.stack([colors[:, d].index_select(0, ch.row_gauss) for d in range(colors.shape[1])])  # [D, R]
        c, a = _Composite.apply(rp, row_colors, ch.row, ch.xc, ch.pix, ch.perm, ch.seg_start, ch.seg_end,
                                frags.n_pixels)  # fmt: skip
        out_c, out_a = out_c + c, out_a + a
    return out_c.t(), out_a


def composite_fragments_reference(means2d, conics, opacities, colors, frags: Fragments):
    """The same compositing written with plain torch ops on each fragment, differentiated by autograd (oracle)."""
    n, D = frags.n_pixels, colors.shape[1]
    out_c = torch.zeros(n, D, dtype=colors.dtype)
    out_a = torch.zeros(n, dtype=colors.dtype)
    for ch in frags.chunks:
        row = ch.row.long()[ch.perm]  # compositing order
        g = ch.row_gauss[row]
        m = means2d[g]
        cn = conics[g]
        dx = ch.xc[ch.perm] - m[:, 0]
        dy = ch.row_y[row].to(m.dtype) + 0.5 - m[:, 1]
        q = cn[:, 0] * dx * dx + 2.0 * cn[:, 1] * dx * dy + cn[:, 2] * dy * dy
        a_raw = opacities[g] * torch.exp(-0.5 * q)
        alpha = torch.minimum(a_raw, torch.full_like(a_raw, ALPHA_MAX)) * (a_raw >= ALPHA_THRESHOLD)
        log1m = torch.log1p(-alpha).double()
        cs = torch.cumsum(log1m, 0)
        excl = cs - log1m
        log_t = excl - excl[ch.seg_start.long()]
        keep = ((log_t + log1m) >= _LOG_T_MIN).detach()
        w = alpha * torch.exp(log_t).to(alpha.dtype) * keep
        pix = ch.pix.long()[ch.perm]
        out_c = out_c.index_add(0, pix, w[:, None] * colors[g])
        out_a = out_a.index_add(0, pix, w)
    return out_c, out_a


# ----------------------------------------------------------------------------------------------------------------
# gsplat backend
# ----------------------------------------------------------------------------------------------------------------
def gsplat_available() -> bool:
    """True when CUDA is available and gsplat imports (its CUDA kernels are then used by ``backend='auto'``)."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except Exception:
        return False
    return True


_RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")


def _rasterize_gsplat(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, near_plane,
                      far_plane, background, eps2d, tile_size, render_mode, rasterize_mode):
    """gsplat's CUDA rasterizer under the same conventions (only called with CUDA tensors)."""
    import gsplat

    C = viewmats.shape[0]
    if background is not None and background.dim() == 1:
        background = background[None].expand(C, -1)
    rc, ra, info = gsplat.rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, sh_degree=sh_degree, backgrounds=background, eps2d=eps2d,
        tile_size=tile_size, render_mode=render_mode, rasterize_mode=rasterize_mode, packed=False,
    )  # fmt: skip
    radii = info["radii"]
    if radii.dim() == 2:  # gsplat < 1.5: one radius per Gaussian
        radii = torch.stack([radii, radii], dim=-1)
    means2d = info["means2d"]
    if means2d.requires_grad:
        means2d.retain_grad()
    meta = {
        "backend": "gsplat",
        "means2d": means2d,
        "radii": radii.int(),
        "radius": radii.float().amax(-1),
        "depths": info["depths"],
        "conics": info["conics"],
        "visible": (radii > 0).all(-1),
        "width": width,
        "height": height,
        "n_cameras": C,
        "tile_size": tile_size,
        "info": info,
    }
    return rc, ra, meta


# ----------------------------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------------------------
def _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, background, C, D):
    check_tensor(means, "means", ("N", 3))
    N = means.shape[0]
    check_tensor(quats, "quats", (N, 4))
    check_tensor(scales, "scales", (N, 3))
    if opacities.dim() == 1:
        check_tensor(opacities, "opacities", (N,))
    else:
        check_tensor(opacities, "opacities", (C, N))
    check_tensor(viewmats, "viewmats", ("C", 4, 4))
    check_tensor(Ks, "Ks", (C, 3, 3))
    if sh_degree is None:
        if colors.dim() == 2:
            check_tensor(colors, "colors", (N, None))
        else:
            check_tensor(colors, "colors", (C, N, None))
    else:
        if not 0 <= int(sh_degree) <= 3:
            raise InvalidInputError(f"sh_degree: expected 0..3 or None, got {sh_degree}")
        check_tensor(colors, "colors", (N, None, 3))
        if colors.shape[1] < num_sh_bases(sh_degree):
            raise InvalidInputError(
                f"colors: sh_degree={sh_degree} needs {num_sh_bases(sh_degree)} SH bases, got {colors.shape[1]}"
            )
    if bool((scales <= 0).any()):
        raise InvalidInputError("scales: expected positive (activated) scales; pass exp(log_scales)")
    if bool(((opacities < 0) | (opacities > 1)).any()):
        raise InvalidInputError("opacities: expected values in [0, 1] (activated); pass sigmoid(logits)")
    if background is not None:
        if background.dim() == 1:
            check_tensor(background, "background", (D,))
        else:
            check_tensor(background, "background", (C, D))


def rasterize(
    means: torch.Tensor,  # [N, 3]
    quats: torch.Tensor,  # [N, 4] WXYZ (normalised inside)
    scales: torch.Tensor,  # [N, 3] activated
    opacities: torch.Tensor,  # [N] or [C, N] activated
    colors: torch.Tensor,  # [N, D], [C, N, D] or SH [N, K, 3] when sh_degree is set
    viewmats: torch.Tensor,  # [C, 4, 4] world-to-camera (OpenCV)
    Ks: torch.Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    sh_degree: int | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    background: torch.Tensor | None = None,  # [D] or [C, D]
    eps2d: float = 0.3,
    tile_size: int = 16,
    render_mode: str = "RGB",
    rasterize_mode: str = "classic",
    backend: str = "auto",
    chunk_fragments: int = DEFAULT_CHUNK_FRAGMENTS,
    validate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Render N 3D Gaussians into C pinhole cameras (front-to-back alpha compositing, differentiable).

    Conventions follow gsplat's ``rasterization``: activated ``scales``/``opacities``, WXYZ ``quats``,
    world-to-camera ``viewmats`` in the OpenCV frame, pixel centres at ``(j + 0.5, i + 0.5)``. With ``sh_degree``
    set, ``colors`` are SH coefficients evaluated along the camera-to-Gaussian direction, then ``+ 0.5`` and
    clamped at 0 (3DGS). ``render_mode``: "RGB", "D" (accumulated depth), "ED" (expected depth = D / alpha),
    "RGB+D", "RGB+ED". ``rasterize_mode="antialiased"`` scales opacities by the EWA compensation factor.
    ``backend``: "torch" (this module), "gsplat" (CUDA only) or "auto" (gsplat when CUDA and gsplat are
    available, else torch).

    Returns:
        render_colors [C, H, W, D'], render_alphas [C, H, W, 1] and a ``meta`` dict with ``means2d`` [C, N, 2]
        (retains its gradient: the screen-space positional gradient used for densification), ``radii``
        [C, N, 2] (int, 0 = culled), ``radius`` [C, N] (3-sigma eigenvalue radius), ``depths`` [C, N],
        ``conics`` [C, N, 3], ``visible`` [C, N] and fragment counts.
    """
    if render_mode not in _RENDER_MODES:
        raise InvalidInputError(f"render_mode: expected one of {_RENDER_MODES}, got {render_mode!r}")
    if rasterize_mode not in ("classic", "antialiased"):
        raise InvalidInputError(f"rasterize_mode: expected 'classic' or 'antialiased', got {rasterize_mode!r}")
    if backend not in ("auto", "torch", "gsplat"):
        raise InvalidInputError(f"backend: expected 'auto', 'torch' or 'gsplat', got {backend!r}")
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise InvalidInputError(f"width/height: expected positive image size, got {width}x{height}")
    if int(tile_size) <= 0:
        raise InvalidInputError(f"tile_size: expected a positive integer, got {tile_size}")
    C = viewmats.shape[0] if isinstance(viewmats, torch.Tensor) and viewmats.dim() == 3 else -1
    D = (3 if sh_degree is not None else colors.shape[-1]) if isinstance(colors, torch.Tensor) else -1
    if validate:
        _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, background, C, D)

    use_gsplat = backend == "gsplat" or (backend == "auto" and means.is_cuda and gsplat_available())
    if use_gsplat:
        if not torch.cuda.is_available() or not means.is_cuda:
            raise InvalidInputError("backend='gsplat' needs CUDA tensors and a CUDA device; use backend='torch'")
        return _rasterize_gsplat(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree,
                                 near_plane, far_plane, background, eps2d, tile_size, render_mode, rasterize_mode)

    N = means.shape[0]
    opac_cn = opacities if opacities.dim() == 2 else opacities[None].expand(C, N)
    proj = project_gaussians(
        means, viewmats, Ks, width, height, quats=quats, scales=scales, opacities=opac_cn, eps2d=eps2d,
        near_plane=near_plane, far_plane=far_plane, calc_compensations=rasterize_mode == "antialiased",
    )
    means2d = proj.means2d
    if means2d.requires_grad:
        means2d.retain_grad()

    # flat (camera, Gaussian) instances [C*N]; fragments index these arrays directly (1-D gathers only)
    m2 = means2d.reshape(C * N, 2)
    cn = proj.conics.reshape(C * N, 3)
    dep = proj.depths.reshape(C * N)
    op = opac_cn.reshape(C * N)
    if proj.compensations is not None:
        op = op * proj.compensations.reshape(C * N)
    if sh_degree is not None:
        campos = -(viewmats[:, :3, :3].transpose(-1, -2) @ viewmats[:, :3, 3:])[..., 0]  # [C, 3]
        dirs = means[None] - campos[:, None]  # [C, N, 3]
        col = torch.clamp_min(eval_sh(int(sh_degree), colors[None], dirs) + 0.5, 0.0)  # [C, N, 3]
    elif colors.dim() == 2:
        col = colors[None].expand(C, N, -1)
    else:
        col = colors
    col = col.reshape(C * N, -1)
    want_rgb = render_mode.startswith("RGB")
    want_depth = render_mode.endswith("D")
    if want_depth:
        col = torch.cat([col, dep[:, None]], dim=-1) if want_rgb else dep[:, None]

    with torch.no_grad():
        vis = torch.nonzero(proj.valid.reshape(-1)).squeeze(1)  # [V] visible instances
        frags = build_fragments(
            m2.detach().index_select(0, vis), cn.detach().index_select(0, vis), op.detach().index_select(0, vis),
            dep.detach().index_select(0, vis), vis // N, C, width, height, tile_size, chunk_fragments, gauss_ids=vis,
        )  # fmt: skip
    out_c, out_a = composite_fragments(m2, cn, op, col, frags)
    render_colors = out_c.reshape(C, height, width, -1)
    render_alphas = out_a.reshape(C, height, width, 1)
    if render_mode.endswith("ED"):
        dch = render_colors[..., -1:] / render_alphas.clamp_min(1e-10)
        render_colors = torch.cat([render_colors[..., :-1], dch], dim=-1)
    if background is not None:
        bg = background if background.dim() == 2 else background[None].expand(C, -1)
        if want_depth:  # the background only applies to the colour channels
            bg = torch.cat([bg, torch.zeros_like(bg[:, :1])], -1) if want_rgb else torch.zeros_like(bg[:, :1])
        render_colors = render_colors + (1.0 - render_alphas) * bg[:, None, None, :]
    meta = {
        "backend": "torch",
        "means2d": means2d,
        "radii": proj.radii,
        "radius": proj.radius,
        "depths": proj.depths,
        "conics": proj.conics,
        "visible": proj.valid,
        "n_fragments": len(frags),
        "n_tile_pairs": frags.n_tile_pairs,
        "width": width,
        "height": height,
        "n_cameras": C,
        "tile_size": tile_size,
    }
    return render_colors, render_alphas, meta
