"""Input encodings for neural fields: positional encoding, Gaussian Fourier features, spherical harmonics and the
multiresolution hash grid of instant-ngp (Müller et al. 2022), all in pure torch.

Each encoding is a pure function plus a thin ``nn.Module`` holding its parameters/buffers and ``out_dim``.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn as nn
import torch.nn.functional as F

from human3d.errors import InvalidInputError

__all__ = [
    "positional_encoding",
    "PositionalEncoding",
    "fourier_features",
    "GaussianFourierFeatures",
    "SH_C0",
    "num_sh_bases",
    "sh_basis",
    "SphericalHarmonicsEncoding",
    "HASH_PRIMES",
    "hash_grid_level_resolutions",
    "hash_grid_indices",
    "interpolate_table",
    "HashGridEncoding",
]


# ------------------------------------------------------------------------------------------- positional encoding
def positional_encoding(x: torch.Tensor, num_frequencies: int, include_input: bool = True) -> torch.Tensor:
    """NeRF positional encoding ``gamma(x) = cat[cos(2^k pi x), sin(2^k pi x)]`` for ``k = 0 .. L-1``.

    Layout: ``[x (if include_input), cos(2^0 pi x), cos(2^1 pi x), ..., cos(2^(L-1) pi x), sin(2^0 pi x), ...]``,
    each block over the D input dims. x [..., D] -> [..., D * (2 L + include_input)].
    """
    freqs = (2.0 ** torch.arange(num_frequencies, dtype=x.dtype, device=x.device)) * math.pi  # [L]
    xb = (x[..., None, :] * freqs[:, None]).flatten(-2)  # [..., L*D]
    parts = [x] if include_input else []
    return torch.cat(parts + [torch.cos(xb), torch.sin(xb)], dim=-1)


class PositionalEncoding(nn.Module):
    """Module form of :func:`positional_encoding` for ``in_dim``-dimensional inputs."""

    def __init__(self, in_dim: int, num_frequencies: int, include_input: bool = True):
        super().__init__()
        self.in_dim, self.num_frequencies, self.include_input = in_dim, num_frequencies, include_input
        self.out_dim = in_dim * (2 * num_frequencies + int(include_input))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return positional_encoding(x, self.num_frequencies, self.include_input)


# ------------------------------------------------------------------------------------------- Fourier features
def fourier_features(x: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Random Fourier features (Tancik et al. 2020): ``cat[cos(2 pi x B^T), sin(2 pi x B^T)]``.

    x [..., D], B [M, D] -> [..., 2 M].
    """
    proj = 2 * math.pi * x @ B.T
    return torch.cat([torch.cos(proj), torch.sin(proj)], dim=-1)


class GaussianFourierFeatures(nn.Module):
    """Fourier features with a fixed Gaussian matrix ``B ~ N(0, sigma^2)`` [num_features, in_dim] (a buffer)."""

    def __init__(self, in_dim: int, num_features: int = 256, sigma: float = 10.0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("B", torch.randn(num_features, in_dim, generator=g) * sigma)
        self.out_dim = 2 * num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fourier_features(x, self.B.to(x.dtype))


# ------------------------------------------------------------------------------------------- spherical harmonics
# The one real spherical-harmonics basis of the project (NeRF direction encodings and splat colours): orthonormal on
# the sphere, with the constants and sign conventions of 3DGS / gsplat (tested against gsplat's ``_torch_impl``).
# ``degree`` is the highest band l (0..3): ``(degree + 1) ** 2`` bases, band-major (l = 0, then the three l = 1, ...).
SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)
SH_MAX_DEGREE = 3


def _check_sh_degree(degree) -> int:
    if isinstance(degree, bool) or not isinstance(degree, numbers.Integral) or not 0 <= degree <= SH_MAX_DEGREE:
        raise InvalidInputError(f"degree: expected the highest SH band as an int in 0..{SH_MAX_DEGREE}, got {degree!r}")
    return int(degree)


def num_sh_bases(degree: int) -> int:
    """Number of SH bases up to band ``degree`` (0..3): ``(degree + 1) ** 2``."""
    return (int(degree) + 1) ** 2


def sh_basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """Real SH bases ``[..., (degree+1)^2]`` at directions ``[..., 3]`` (normalised here); ``degree`` is the highest
    band l, 0..3. Orthonormal on the unit sphere; 3DGS sign convention."""
    _check_sh_degree(degree)
    if not isinstance(dirs, torch.Tensor) or dirs.dim() < 1 or dirs.shape[-1] != 3:
        got = tuple(dirs.shape) if isinstance(dirs, torch.Tensor) else type(dirs).__name__
        raise InvalidInputError(f"dirs: expected a tensor of directions [..., 3], got {got}")
    d = F.normalize(dirs, dim=-1)
    x, y, z = d.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        xy, yz, xz = x * y, y * z, x * z
        out += [
            SH_C2[0] * xy,
            SH_C2[1] * yz,
            SH_C2[2] * (2.0 * zz - xx - yy),
            SH_C2[3] * xz,
            SH_C2[4] * (xx - yy),
        ]
        if degree >= 3:
            out += [
                SH_C3[0] * y * (3.0 * xx - yy),
                SH_C3[1] * xy * z,
                SH_C3[2] * y * (4.0 * zz - xx - yy),
                SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
                SH_C3[4] * x * (4.0 * zz - xx - yy),
                SH_C3[5] * z * (xx - yy),
                SH_C3[6] * x * (xx - 3.0 * yy),
            ]
    return torch.stack(out, dim=-1)


class SphericalHarmonicsEncoding(nn.Module):
    """Direction encoding by :func:`sh_basis` up to band ``degree`` (0..3): ``out_dim = (degree + 1) ** 2``."""

    def __init__(self, degree: int = 3):
        super().__init__()
        self.degree = _check_sh_degree(degree)
        self.out_dim = num_sh_bases(degree)

    def forward(self, dirs: torch.Tensor) -> torch.Tensor:
        return sh_basis(self.degree, dirs)


# ------------------------------------------------------------------------------------------- hash grid
#: instant-ngp's spatial-hash primes (the first is 1 for memory coherence along x)
HASH_PRIMES = (1, 2654435761, 805459861)


def hash_grid_level_resolutions(n_levels: int, base_resolution: int, max_resolution: int) -> list[int]:
    """Grid resolution (cells per axis) of each level: ``floor(N_min * b^l)``, ``b = (N_max/N_min)^(1/(L-1))``."""
    if n_levels == 1:
        return [int(base_resolution)]
    b = math.exp((math.log(max_resolution) - math.log(base_resolution)) / (n_levels - 1))
    return [int(math.floor(base_resolution * b**lvl + 1e-6)) for lvl in range(n_levels)]


def hash_grid_indices(
    x: torch.Tensor, resolutions: torch.Tensor, table_size: int, level_offsets: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hashed vertex indices and trilinear weights of the 8 cell corners, for hashed levels.

    Args:
        x: [N, 3] points in [0, 1]^3.
        resolutions: [L] float cells per axis of each level (vertex ``v`` sits at ``x = v / res``).
        table_size: entries per level (power of two).
        level_offsets: optional [L] int64 multiples of ``table_size`` added to each level's indices.
    Returns:
        idx [L, N, 8] int32 ``((vx * 1) xor (vy * p1) xor (vz * p2)) mod T (+ offset)``, which equals instant-ngp's
        uint32 arithmetic since T divides 2^32, and weights [L, N, 8] (differentiable w.r.t. ``x``).
        Corner ``k`` has bits (x, y, z) = (k >> 2 & 1, k >> 1 & 1, k & 1). The layout is level-major so that the
        gathers and scatters of one level run over one table at a time (cache friendly on CPU).
    """
    pos = x[None, :, :] * resolutions[:, None, None]  # [L, N, 3]
    p0 = torch.floor(pos)
    frac = pos - p0  # [L, N, 3]
    c = torch.arange(2, device=x.device)  # corner offsets {0, 1}
    p0 = p0.long()
    # mask each axis term before the XOR ((a ^ b) & m == (a & m) ^ (b & m)), then work in int32 on the big tensors;
    # the level offset has no bits below T, so OR-ing it into the x term adds it.
    h = [((p0[..., a, None] + c) * HASH_PRIMES[a]) & (table_size - 1) for a in range(3)]  # 3 x [L, N, 2]
    if level_offsets is not None:
        h[0] = h[0] | level_offsets[:, None, None]
    h = [t.int() for t in h]
    idx = h[0][..., :, None, None] ^ (h[1][..., :, None] ^ h[2][..., None, :])[..., None, :, :]
    w = [1.0 - (frac[..., a, None] - c.to(frac.dtype)).abs() for a in range(3)]  # (1 - f, f) per axis
    w = w[0][..., :, None, None] * (w[1][..., :, None] * w[2][..., None, :])[..., None, :, :]  # [L, N, 2, 2, 2]
    return idx.flatten(-3), w.flatten(-3)


class _InterpolateTable(torch.autograd.Function):
    """out[m] = sum_k w[m, k] * table[idx[m, k]] with a scatter-add backward.

    Forward is ``embedding_bag`` (fused gather + weighted sum); its built-in backward sorts the indices, which is
    several times slower on CPU than the ``index_add_`` used here.
    """

    @staticmethod
    def forward(ctx, table, idx, w):
        ctx.save_for_backward(table, idx, w)
        return F.embedding_bag(idx, table, per_sample_weights=w, mode="sum")

    @staticmethod
    def backward(ctx, g):  # g [M, F]
        table, idx, w = ctx.saved_tensors
        g_table = g_w = None
        if ctx.needs_input_grad[0]:
            src = (w[..., None] * g[:, None, :]).reshape(-1, g.shape[-1])  # [M * 8, F]
            g_table = torch.zeros_like(table).index_add_(0, idx.reshape(-1).long(), src)  # int64: fast path
        if ctx.needs_input_grad[2]:
            g_w = (table[idx] * g[:, None, :]).sum(-1)  # [M, 8]
        return g_table, None, g_w


def interpolate_table(table: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted gather ``sum_k w[m, k] table[idx[m, k]]``: table [T, F], idx [M, K] int32/64, w [M, K] -> [M, F]."""
    return _InterpolateTable.apply(table, idx, w)


class HashGridEncoding(nn.Module):
    """Multiresolution hash encoding (instant-ngp) of points in the unit cube ``[0, 1]^3`` -> [N, L * F].

    Level ``l`` has ``res_l = floor(N_min b^l)`` cells per axis and ``(res_l + 1)^3`` vertices. When those fit in
    ``2^log2_table_size`` entries the level is stored densely as a ``[F, V, V, V]`` grid and interpolated with
    ``grid_sample`` (one fused kernel, no collisions); otherwise vertices are hashed into a table of
    ``T = 2^log2_table_size`` entries with instant-ngp's primes and interpolated with ``embedding_bag`` (a fused
    gather + weighted sum). Both are exact trilinear interpolation of the stored vertex features.

    ``dense_max_entries`` (default: the table size) caps the vertex count of densely stored levels; a larger cap
    stores more coarse levels densely (faster on CPU: ``grid_sample`` is cheaper than hashing), 0 hashes every level.
    Points outside the cube are clamped onto it. Parameters are initialised ``U(-1e-4, 1e-4)``.
    """

    def __init__(
        self,
        n_levels: int = 16,
        n_features_per_level: int = 2,
        log2_table_size: int = 19,
        base_resolution: int = 16,
        max_resolution: int = 2048,
        init_scale: float = 1e-4,
        dense_max_entries: int | None = None,
    ):
        super().__init__()
        if n_levels < 1 or n_features_per_level < 1 or base_resolution < 1 or max_resolution < base_resolution:
            raise InvalidInputError(
                f"HashGridEncoding: bad configuration (levels={n_levels}, features={n_features_per_level}, "
                f"resolutions {base_resolution}..{max_resolution})"
            )
        self.n_levels, self.n_features = n_levels, n_features_per_level
        self.table_size = 2**log2_table_size
        self.resolutions = hash_grid_level_resolutions(n_levels, base_resolution, max_resolution)
        cap = self.table_size if dense_max_entries is None else int(dense_max_entries)
        self.dense_levels = [lvl for lvl, r in enumerate(self.resolutions) if (r + 1) ** 3 <= cap]
        self.hashed_levels = [lvl for lvl in range(n_levels) if lvl not in self.dense_levels]
        self.dense_grids = nn.ParameterList(
            [
                nn.Parameter(
                    torch.empty(n_features_per_level, r + 1, r + 1, r + 1).uniform_(-init_scale, init_scale)
                )
                for r in (self.resolutions[lvl] for lvl in self.dense_levels)
            ]
        )
        n_h = len(self.hashed_levels)
        self.hash_table = nn.Parameter(
            torch.empty(n_h * self.table_size, n_features_per_level).uniform_(-init_scale, init_scale)
        )  # [L_h * T, F], level l_h occupies rows [l_h * T, (l_h + 1) * T)
        self.register_buffer(
            "hashed_resolutions",
            torch.tensor([float(self.resolutions[lvl]) for lvl in self.hashed_levels]),
            persistent=False,
        )
        self.register_buffer("level_offsets", torch.arange(n_h, dtype=torch.int64) * self.table_size, persistent=False)
        self.out_dim = n_levels * n_features_per_level

    def vertex_features(self, level: int) -> torch.Tensor:
        """Features of every vertex of a *dense* level as [V, V, V, F] indexed (x, y, z)."""
        g = self.dense_grids[self.dense_levels.index(level)]  # [F, Vz, Vy, Vx]
        return g.permute(3, 2, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, 3] in [0, 1]^3 -> features [N, n_levels * n_features] (levels coarse to fine)."""
        if x.dim() != 2 or x.shape[-1] != 3:
            raise InvalidInputError(f"x: expected points [N, 3], got {tuple(x.shape)}")
        x = x.clamp(0.0, 1.0)
        n = x.shape[0]
        feats = []
        if self.dense_levels:  # coarse levels (resolution grows with the level, so dense levels come first)
            grid = (2.0 * x - 1.0).view(1, 1, 1, n, 3).to(self.dense_grids[0].dtype)
            for g in self.dense_grids:
                # grid_sample coordinate order is (x, y, z) -> (W, H, D); g is [F, D=z, H=y, W=x]
                out = F.grid_sample(g[None], grid, mode="bilinear", padding_mode="border", align_corners=True)
                feats.append(out.view(self.n_features, n).T)
        if self.hashed_levels:
            with torch.set_grad_enabled(torch.is_grad_enabled() and x.requires_grad):
                idx, w = hash_grid_indices(
                    x, self.hashed_resolutions.to(x.dtype), self.table_size, self.level_offsets
                )  # [Lh, N, 8]
            out = interpolate_table(self.hash_table, idx.view(-1, 8), w.reshape(-1, 8).to(self.hash_table.dtype))
            feats.append(out.view(len(self.hashed_levels), n, self.n_features).transpose(0, 1).reshape(n, -1))
        return torch.cat(feats, dim=-1)
