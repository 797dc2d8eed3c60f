"""Adaptive density control of 3D Gaussians (3DGS, Kerbl et al. 2023, Sec. 5.2).

Statistics are accumulated after every backward pass from the screen-space positional gradient
(``meta["means2d"].grad``), expressed in NDC units as in the reference (pixel gradient times W/2, H/2), so the
reference threshold 0.0002 applies at any resolution. Every ``densify_every`` steps:

* **clone** Gaussians whose average gradient norm is >= ``grad_threshold`` and whose largest scale is
  <= ``percent_dense * extent`` (an exact copy is appended);
* **split** those above the threshold with a larger scale into ``split_samples`` Gaussians sampled from the
  original, with scales divided by ``0.8 * split_samples`` (the original is removed);
* **prune** Gaussians with opacity < ``prune_opacity``, and (after the first opacity reset) those whose screen
  radius exceeded ``max_screen_fraction`` of the image size or whose largest scale exceeds
  ``max_world_fraction * extent``.

Clones are appended before the split (with zero statistics, so they are not split), as in the reference.
Optimizer (Adam) moments follow their Gaussians; new Gaussians start with zero moments.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from human3d.geometry.rotations import quaternion_to_matrix
from human3d.splat.gaussians import PARAM_NAMES, Gaussians

__all__ = ["DensityStats", "accumulate_stats", "densify_and_prune", "reset_opacity", "update_param_and_state"]


@dataclass
class DensityStats:
    """Per-Gaussian statistics between two densification steps."""

    grad_accum: torch.Tensor  # [N] sum of NDC positional-gradient norms
    count: torch.Tensor  # [N] number of views in which the Gaussian was visible
    max_radius: torch.Tensor  # [N] largest screen radius seen, as a fraction of max(W, H)

    @classmethod
    def zeros(cls, n: int, device=None) -> "DensityStats":
        z = torch.zeros(n, device=device)
        return cls(z.clone(), z.clone(), z.clone())

    def __len__(self) -> int:
        return self.grad_accum.shape[0]

    def average_grad(self) -> torch.Tensor:  # [N]
        return torch.where(self.count > 0, self.grad_accum / self.count.clamp_min(1), torch.zeros_like(self.count))


@torch.no_grad()
def accumulate_stats(stats: DensityStats, means2d_grad: torch.Tensor, visible: torch.Tensor, radius: torch.Tensor,
                     width: int, height: int) -> None:
    """Add one render's statistics (in place).

    Args:
        means2d_grad: [C, N, 2] gradient of the loss w.r.t. the projected means (pixels).
        visible: [C, N] bool. radius: [C, N] screen radius in pixels.
    """
    C = means2d_grad.shape[0]
    g = means2d_grad.clone()
    g[..., 0] *= 0.5 * width * C  # pixels -> NDC; the loss averages over the C cameras
    g[..., 1] *= 0.5 * height * C
    norm = g.norm(dim=-1) * visible  # [C, N]
    stats.grad_accum += norm.sum(0)
    stats.count += visible.sum(0).to(stats.count.dtype)
    r = (radius * visible).amax(0) / float(max(width, height))
    torch.maximum(stats.max_radius, r.to(stats.max_radius.dtype), out=stats.max_radius)


def update_param_and_state(gaussians: Gaussians, optimizer: torch.optim.Optimizer | None, param_fn, state_fn) -> None:
    """Replace every parameter ``p`` by ``param_fn(name, p)`` and its Adam moments ``m`` by ``state_fn(name, m)``.

    Works with optimizers whose param groups each hold one of the Gaussians' parameters.
    """
    for name in PARAM_NAMES:
        old = getattr(gaussians, name)
        new = nn.Parameter(param_fn(name, old.detach()).contiguous())
        if optimizer is not None:
            for group in optimizer.param_groups:
                for i, p in enumerate(group["params"]):
                    if p is old:
                        group["params"][i] = new
                        state = optimizer.state.pop(old, None)
                        if state is not None:
                            for k in ("exp_avg", "exp_avg_sq"):
                                if k in state:
                                    state[k] = state_fn(name, state[k]).contiguous()
                            optimizer.state[new] = state
        setattr(gaussians, name, new)


@torch.no_grad()
def _split_samples(gaussians: Gaussians, idx: torch.Tensor, n_samples: int, generator=None) -> dict:
    """New parameters for splitting Gaussians ``idx`` into ``n_samples`` each (reference ``densify_and_split``)."""
    scales = gaussians.scales[idx].repeat(n_samples, 1)  # [S*k, 3]
    # drawn on the generator's device (the trainers keep a CPU generator for reproducibility), then moved
    gen_device = generator.device if generator is not None else scales.device
    noise = torch.randn(scales.shape, generator=generator, device=gen_device).to(scales.device) * scales
    R = quaternion_to_matrix(gaussians.quats[idx]).repeat(n_samples, 1, 1)
    means = (R @ noise[..., None])[..., 0] + gaussians.means[idx].repeat(n_samples, 1)
    new = {
        "means": means,
        "log_scales": torch.log(scales / (0.8 * n_samples)),
        "quats": gaussians.quats[idx].repeat(n_samples, 1),
        "opacity_logits": gaussians.opacity_logits[idx].repeat(n_samples),
        "sh_dc": gaussians.sh_dc[idx].repeat(n_samples, 1, 1),
        "sh_rest": gaussians.sh_rest[idx].repeat(n_samples, 1, 1),
    }
    return new


@torch.no_grad()
def densify_and_prune(
    gaussians: Gaussians,
    optimizer: torch.optim.Optimizer | None,
    stats: DensityStats,
    extent: float,
    grad_threshold: float = 0.0002,
    percent_dense: float = 0.01,
    prune_opacity: float = 0.005,
    split_samples: int = 2,
    max_screen_fraction: float | None = None,
    max_world_fraction: float | None = None,
    max_gaussians: int | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, int]:
    """Clone, split and prune (see the module docstring); returns the counts. ``stats`` must be reset after.

    ``max_gaussians`` caps growth: when cloning and splitting would exceed it, only the candidates with the
    largest average gradients are densified (a CPU-budget guard; ``None`` = reference behaviour).
    ``max_screen_fraction`` / ``max_world_fraction`` = None disables those prune tests.
    """
    n0 = len(gaussians)
    avg = stats.average_grad()
    high = avg >= grad_threshold
    max_scale = gaussians.scales.max(dim=-1).values
    small = max_scale <= percent_dense * extent
    clone = high & small
    split = high & ~small
    if max_gaussians is not None:
        room = max(int(max_gaussians) - n0, 0)  # each clone adds 1, each split adds split_samples - 1
        cand = torch.nonzero(clone | split).squeeze(1)
        cost = torch.where(clone[cand], 1, split_samples - 1)
        if int(cost.sum()) > room:
            order = cand[torch.argsort(avg[cand], descending=True, stable=True)]
            ok = torch.cumsum(torch.where(clone[order], 1, split_samples - 1), 0) <= room
            keep = torch.zeros(n0, dtype=torch.bool, device=avg.device)
            keep[order[ok]] = True
            clone, split = clone & keep, split & keep
    clone_idx = torch.nonzero(clone).squeeze(1)
    split_idx = torch.nonzero(split).squeeze(1)
    n_clone, n_split = clone_idx.numel(), split_idx.numel()

    # new Gaussians: clones (exact copies), then split samples
    new_split = _split_samples(gaussians, split_idx, split_samples, generator)
    n_new = n_clone + split_samples * n_split
    remove = torch.zeros(n0 + n_new, dtype=torch.bool, device=avg.device)
    remove[split_idx] = True

    def param_fn(name, p):
        return torch.cat([p, p[clone_idx], new_split[name].to(p)], 0)

    def state_fn(name, m):
        return torch.cat([m, torch.zeros((n_new,) + m.shape[1:], dtype=m.dtype, device=m.device)], 0)

    update_param_and_state(gaussians, optimizer, param_fn, state_fn)
    parent = torch.cat([torch.arange(n0, device=avg.device), clone_idx, split_idx.repeat(split_samples)])

    # prune (on the densified set)
    prune = gaussians.opacities < prune_opacity
    if max_screen_fraction is not None:
        prune |= stats.max_radius[parent] > max_screen_fraction
    if max_world_fraction is not None:
        prune |= gaussians.scales.max(dim=-1).values > max_world_fraction * extent
    prune &= ~remove
    n_prune = int(prune.sum())
    keep = ~(remove | prune)
    if not bool(keep.all()):
        update_param_and_state(gaussians, optimizer, lambda n, p: p[keep], lambda n, m: m[keep])
    return {"cloned": n_clone, "split": n_split, "pruned": n_prune, "before": n0, "after": len(gaussians)}


@torch.no_grad()
def reset_opacity(gaussians: Gaussians, optimizer: torch.optim.Optimizer | None, value: float = 0.01) -> None:
    """Clamp every opacity to at most ``value`` and zero its Adam moments (reference ``reset_opacity``)."""
    logit = torch.logit(torch.tensor(value)).item()

    def param_fn(name, p):
        return p.clamp_max(logit) if name == "opacity_logits" else p

    def state_fn(name, m):
        return torch.zeros_like(m) if name == "opacity_logits" else m

    update_param_and_state(gaussians, optimizer, param_fn, state_fn)
