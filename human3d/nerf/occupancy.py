"""Occupancy-grid estimator (instant-ngp / nerfacc): ray marching that skips empty space, kept up to date during
training by re-evaluating the field's density at random points of the grid cells.

Pure torch and vectorised: candidates at a fixed step along every ray are tested against the binary grid in one
pass (chunked over rays to bound memory) and the survivors are packed with ``nonzero`` (so they come out sorted by
ray, then by ``t``). An optional no-grad density pass then drops samples behind the point where the transmittance
falls under ``early_stop_eps`` and samples with ``alpha < alpha_thre``, as nerfacc does.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from human3d.nerf.rendering import exclusive_segment_cumsum, segment_starts
from human3d.nerf.samplers import RaySamples, ray_aabb_intersect

__all__ = ["OccupancyGrid", "OccGridEstimator"]


class OccupancyGrid(nn.Module):
    """A ``resolution^3`` binary occupancy grid over ``aabb`` [2, 3] with an EMA of per-cell occupancy.

    Buffers: ``occs`` [res^3] (EMA of ``density * step_size``, an alpha estimate; -1 for cells never evaluated,
    which count as occupied), ``binary`` [res, res, res] bool, indexed (x, y, z). Starts fully occupied.
    """

    def __init__(self, aabb, resolution: int = 128):
        super().__init__()
        self.resolution = int(resolution)
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3).clone())
        n = self.resolution**3
        self.register_buffer("occs", torch.full((n,), -1.0))  # -1: never evaluated (treated as occupied)
        self.register_buffer("binary", torch.ones(self.resolution, self.resolution, self.resolution, dtype=torch.bool))
        # cells that may hold content at all (visual hull from masks); updates never mark other cells occupied
        self.register_buffer("hull", torch.ones(self.resolution, self.resolution, self.resolution, dtype=torch.bool))

    # ------------------------------------------------------------------------------------------ queries
    def cell_index(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World points [..., 3] -> (linear cell index [...], inside-the-box mask [...])."""
        u = (x - self.aabb[0]) / (self.aabb[1] - self.aabb[0])
        inside = ((u >= 0) & (u < 1)).all(-1)
        ijk = (u * self.resolution).long().clamp(0, self.resolution - 1)
        lin = (ijk[..., 0] * self.resolution + ijk[..., 1]) * self.resolution + ijk[..., 2]
        return lin, inside

    def occupied(self, x: torch.Tensor) -> torch.Tensor:
        """[..., 3] -> bool [...]: inside the box and in an occupied cell."""
        lin, inside = self.cell_index(x)
        return self.binary.view(-1)[lin] & inside

    def _lookup(self, grid: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Value of a bool grid [n, n, n] over the box at points [..., 3] (clamped to the box)."""
        n = grid.shape[0]
        u = (x - self.aabb[0]) / (self.aabb[1] - self.aabb[0])
        ijk = (u * n).long().clamp(0, n - 1)
        return grid.view(-1)[(ijk[..., 0] * n + ijk[..., 1]) * n + ijk[..., 2]]

    def _coarse_grid(self) -> tuple[torch.Tensor, float]:
        """The binary grid max-pooled to about 32^3 and dilated by one coarse cell (cached until ``binary``
        changes); returns it and its smallest cell size."""
        key = (self.binary._version, self.binary.data_ptr())
        if getattr(self, "_coarse_key", None) != key:
            pool = max(1, self.resolution // 32)
            b = self.binary.float()[None, None]
            c = torch.nn.functional.max_pool3d(b, pool, stride=pool, ceil_mode=True)
            c = torch.nn.functional.max_pool3d(c, 3, stride=1, padding=1)
            self._coarse = c[0, 0] > 0
            self._coarse_cell = float(((self.aabb[1] - self.aabb[0]) / self._coarse.shape[0]).min())
            self._coarse_key = key
        return self._coarse, self._coarse_cell

    def occupancy_fraction(self) -> float:
        return float(self.binary.float().mean())

    def cell_centers(self, cells: torch.Tensor | None = None) -> torch.Tensor:
        """World centres [M, 3] of linear cell indices ``cells`` (all cells when None)."""
        res = self.resolution
        if cells is None:
            cells = torch.arange(res**3, device=self.occs.device)
        ijk = torch.stack([cells // (res * res), (cells // res) % res, cells % res], -1).float()
        return self.aabb[0] + (ijk + 0.5) / res * (self.aabb[1] - self.aabb[0])

    @torch.no_grad()
    def carve_from_masks(
        self,
        K: torch.Tensor,
        world_to_camera: torch.Tensor,
        alphas: torch.Tensor,
        empty_below: float = 0.02,
        dilate: int = 1,
    ) -> float:
        """Restrict the grid to the visual hull of foreground masks (space carving).

        A cell is carved (made permanently empty) when its centre projects inside some training image onto a pixel
        with ``alpha < empty_below``; the kept set is then dilated by ``dilate`` cells so cells only partly seen
        as background survive. K [N, 3, 3], world_to_camera [N, 4, 4] (OpenCV), alphas [N, H, W] in [0, 1].
        Returns the fraction of cells kept.
        """
        from human3d.geometry.cameras import project_points

        N, H, W = alphas.shape
        centers = self.cell_centers()  # [C, 3]
        alive = torch.arange(centers.shape[0], device=centers.device)  # cells not carved yet
        for v in range(N):  # loop over cameras (not a hot path): one vectorised projection of the live cells each
            pts = centers[alive]
            proj = project_points(pts[None], K[v : v + 1].to(pts), world_to_camera[v : v + 1].to(pts))
            uv, valid = proj.uv[0], proj.valid[0]
            j, i = uv[:, 0].floor().long(), uv[:, 1].floor().long()
            inside = valid & (j >= 0) & (j < W) & (i >= 0) & (i < H)
            a = alphas[v].to(pts.device)[i.clamp(0, H - 1), j.clamp(0, W - 1)]
            alive = alive[~(inside & (a < empty_below))]
        keep = torch.zeros(centers.shape[0], dtype=torch.bool, device=centers.device)
        keep[alive] = True
        hull = keep.view(1, 1, *self.binary.shape).float()
        if dilate > 0:
            hull = torch.nn.functional.max_pool3d(hull, 2 * dilate + 1, stride=1, padding=dilate)
        self.hull.copy_(hull[0, 0] > 0)
        self.binary &= self.hull
        self.occs[~self.hull.view(-1)] = 0.0
        return float(self.hull.float().mean())

    # ------------------------------------------------------------------------------------------ update
    @torch.no_grad()
    def update(
        self,
        eval_fn: Callable[[torch.Tensor], torch.Tensor],
        step_size: float,
        n_cells: int | None = None,
        occ_thre: float = 0.01,
        ema_decay: float = 0.95,
        generator: torch.Generator | None = None,
        chunk: int = 1 << 16,
    ) -> None:
        """Re-evaluate the density at one jittered point in each of ``n_cells`` random cells (all when None) plus up
        to as many occupied cells; ``occs = max(occs * ema_decay, density * step_size)`` there, then
        ``binary = occs > min(occ_thre, mean(occs))`` (cells never evaluated stay occupied).

        ``eval_fn`` maps world points [M, 3] to densities [M].
        """
        res, dev = self.resolution, self.occs.device
        candidates = torch.nonzero(self.hull.view(-1))[:, 0]  # only cells inside the hull can be occupied
        total = candidates.numel()
        if n_cells is None or n_cells >= total:
            cells = candidates
        else:
            cells = candidates[torch.randint(0, total, (n_cells,), generator=generator).to(dev)]
            occ_cells = torch.nonzero(self.binary.view(-1))[:, 0]
            if occ_cells.numel() > n_cells:
                pick = torch.randint(0, occ_cells.numel(), (n_cells,), generator=generator).to(dev)
                occ_cells = occ_cells[pick]
            cells = torch.cat([cells, occ_cells])
        ijk = torch.stack([cells // (res * res), (cells // res) % res, cells % res], -1).float()
        jitter = torch.rand(cells.shape[0], 3, generator=generator).to(dev)
        x = self.aabb[0] + (ijk + jitter) / res * (self.aabb[1] - self.aabb[0])
        dens = torch.cat([eval_fn(x[i : i + chunk]).float() for i in range(0, x.shape[0], chunk)]) * step_size
        # scatter max handles cells drawn twice
        new = self.occs.clone()
        new[cells] = self.occs[cells] * ema_decay
        new.scatter_reduce_(0, cells, dens, reduce="amax")
        self.occs.copy_(new)
        hull = self.hull.view(-1)
        seen = (self.occs >= 0) & hull
        thre = min(occ_thre, float(self.occs[seen].mean())) if bool(seen.any()) else occ_thre
        self.binary.copy_((((self.occs > thre) | (self.occs < 0)) & hull).view(res, res, res))

    # ------------------------------------------------------------------------------------------ marching
    @torch.no_grad()
    def march(
        self,
        origins: torch.Tensor,
        dirs: torch.Tensor,
        near: float,
        far: float,
        step_size: float,
        randomize: bool = False,
        generator: torch.Generator | None = None,
        sigma_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        early_stop_eps: float = 1e-4,
        alpha_thre: float = 0.0,
        max_candidates: int = 1 << 22,
    ) -> RaySamples:
        """March rays origins/dirs [R, 3] (unit dirs) with a fixed ``step_size`` inside ``[near, far]`` and the box.

        Intervals ``[t, t + step_size]`` whose midpoint lies in an occupied cell are kept. ``randomize`` shifts each
        ray's start by ``U(0, step_size)`` (training). ``sigma_fn(samples, positions) -> sigma [S]`` enables
        transmittance-based culling (``T < early_stop_eps`` or ``alpha < alpha_thre`` samples are dropped).
        """
        R, dev = origins.shape[0], origins.device
        t_enter, t_exit, _ = ray_aabb_intersect(origins, dirs, self.aabb)
        t0 = t_enter.clamp_min(near)
        t1 = t_exit.clamp_max(far)
        if randomize:
            t0 = t0 + torch.rand(R, generator=generator).to(dev) * step_size
        span = (t1 - t0).clamp_min(0)
        n_steps = torch.ceil(span / step_size).long()  # [R]
        k_max = int(n_steps.max()) if R else 0
        if k_max == 0:
            empty = torch.zeros(0, device=dev)
            return RaySamples(torch.zeros(0, dtype=torch.long, device=dev), empty, empty, R)
        # coarse-to-fine: test groups of G fine steps against a pooled + dilated copy of the grid, then test the
        # fine steps of the groups that may be occupied (same result as testing every fine step, far fewer tests)
        coarse, coarse_cell = self._coarse_grid()
        G = int(max(1, min(16, coarse_cell // step_size)))  # G * step <= coarse cell: dilation by 1 is conservative
        kc_max = -(-k_max // G)
        rays_per_chunk = max(1, max_candidates // kc_max)
        kc = torch.arange(kc_max, device=dev, dtype=origins.dtype)
        kf = torch.arange(G, device=dev)
        ri_list, ts_list = [], []
        for a in range(0, R, rays_per_chunk):
            b = min(R, a + rays_per_chunk)
            tc = t0[a:b, None] + (kc[None] + 0.5) * (G * step_size)  # [r, Kc] group midpoints
            pts = origins[a:b, None] + dirs[a:b, None] * tc[..., None]
            hit = (t0[a:b, None] + kc[None] * (G * step_size) < t1[a:b, None]) & self._lookup(coarse, pts)
            r_idx, c_idx = torch.nonzero(hit, as_tuple=True)
            k = c_idx[:, None] * G + kf[None]  # [M, G] fine step indices of the candidate groups
            r_idx = r_idx + a
            t_s = t0[r_idx, None] + k.to(origins.dtype) * step_size
            t_m = t_s + 0.5 * step_size
            fine_pts = origins[r_idx, None] + dirs[r_idx, None] * t_m[..., None]
            keep = (t_m < t1[r_idx, None]) & self.occupied(fine_pts)
            m_idx, g_idx = torch.nonzero(keep, as_tuple=True)
            ri_list.append(r_idx[m_idx])
            ts_list.append(t_s[m_idx, g_idx])
        ray_indices = torch.cat(ri_list)
        t_starts = torch.cat(ts_list)
        samples = RaySamples(ray_indices, t_starts, t_starts + step_size, R)
        if sigma_fn is not None and len(samples) > 0:
            samples = samples.select(self._cull(samples, origins, dirs, sigma_fn, early_stop_eps, alpha_thre))
        return samples

    @staticmethod
    def _cull(samples, origins, dirs, sigma_fn, early_stop_eps, alpha_thre, round_size: int = 32) -> torch.Tensor:
        """Keep-mask [S] of samples with ``T > early_stop_eps`` (and ``alpha >= alpha_thre``), evaluating the density
        progressively: rounds of ``round_size`` samples per ray, rays whose transmittance has vanished drop out, so
        the samples far behind surfaces are never evaluated."""
        R = samples.n_rays
        ri = samples.ray_indices
        starts, counts = segment_starts(ri, R)
        rank = torch.arange(len(samples), device=ri.device) - starts[ri]  # position of each sample on its ray
        rnd = rank // round_size
        tau = torch.zeros(R, dtype=torch.float64, device=ri.device)  # optical depth accumulated so far
        alive = torch.ones(R, dtype=torch.bool, device=ri.device)
        keep = torch.zeros(len(samples), dtype=torch.bool, device=ri.device)
        for r in range(int(counts.max()) // round_size + 1):
            idx = torch.nonzero((rnd == r) & alive[ri])[:, 0]  # ascending: still packed by ray
            if idx.numel() == 0:
                break
            sub = samples.select(idx)
            sig = sigma_fn(sub, sub.positions(origins, dirs))
            sd = (sig * (sub.t_ends - sub.t_starts)).double()
            excl = exclusive_segment_cumsum(sd, sub.ray_indices, R)
            trans = torch.exp(-(tau[sub.ray_indices] + excl))
            k = trans > early_stop_eps
            if alpha_thre > 0:
                k &= (1.0 - torch.exp(-sd)) >= alpha_thre
            keep[idx] = k
            tau.index_add_(0, sub.ray_indices, sd)
            alive &= torch.exp(-tau) > early_stop_eps
        return keep


class OccGridEstimator(nn.Module):
    """An :class:`OccupancyGrid` with its sampling and update schedule (nerfacc's ``OccGridEstimator``).

    Args:
        aabb: scene box [2, 3]. resolution: cells per axis. step_size: ray-marching step (world units; None: box
            diagonal / 1024). update_every: steps between grid updates. warmup_steps / warmup_fraction: during the
            first ``warmup_steps`` updates re-evaluate this fraction of the cells; update_fraction: afterwards.
        occ_thre, ema_decay: see :meth:`OccupancyGrid.update`. alpha_thre, early_stop_eps: sample culling while
            training (see :meth:`OccupancyGrid.march`).
    """

    def __init__(self, aabb, resolution: int = 128, step_size: float | None = None, update_every: int = 16,
                 warmup_steps: int = 256, warmup_fraction: float = 1.0, update_fraction: float = 0.25,
                 occ_thre: float = 0.01, ema_decay: float = 0.95, alpha_thre: float = 0.0,
                 early_stop_eps: float = 1e-4):  # fmt: skip
        super().__init__()
        self.grid = OccupancyGrid(aabb, resolution)
        diag = float((self.grid.aabb[1] - self.grid.aabb[0]).norm())
        self.step_size = float(step_size or diag / 1024.0)
        self.update_every, self.warmup_steps = int(update_every), int(warmup_steps)
        self.warmup_fraction, self.update_fraction = float(warmup_fraction), float(update_fraction)
        self.occ_thre, self.ema_decay = float(occ_thre), float(ema_decay)
        self.alpha_thre, self.early_stop_eps = float(alpha_thre), float(early_stop_eps)

    @property
    def aabb(self) -> torch.Tensor:  # [2, 3]
        return self.grid.aabb

    def occupied(self, x: torch.Tensor) -> torch.Tensor:
        return self.grid.occupied(x)

    @torch.no_grad()
    def update(self, step: int, density_fn: Callable[[torch.Tensor], torch.Tensor],
               generator: torch.Generator | None = None) -> None:  # fmt: skip
        """Called after every training step ``step`` (1-based); updates the grid every ``update_every`` steps."""
        if step % self.update_every != 0:
            return
        frac = self.warmup_fraction if step < self.warmup_steps else self.update_fraction
        n = None if frac >= 1 else max(1, int(frac * self.grid.resolution**3))
        self.grid.update(density_fn, self.step_size, n, self.occ_thre, self.ema_decay, generator)

    @torch.no_grad()
    def sample(self, origins: torch.Tensor, dirs: torch.Tensor, near: float, far: float,
               sigma_fn: Callable[[torch.Tensor], torch.Tensor], randomize: bool = False,
               generator: torch.Generator | None = None) -> RaySamples:  # fmt: skip
        """Packed samples of rays origins/dirs [R, 3] in occupied cells, culled by transmittance (and by alpha while
        training, ``randomize=True``); ``sigma_fn`` maps world points [S, 3] to densities [S]."""
        return self.grid.march(
            origins, dirs, near, far, self.step_size, randomize, generator,
            sigma_fn=lambda samples, positions: sigma_fn(positions), early_stop_eps=self.early_stop_eps,
            alpha_thre=self.alpha_thre if randomize else 0.0,
        )  # fmt: skip
