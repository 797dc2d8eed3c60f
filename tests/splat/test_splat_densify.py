"""Adaptive density control: exact clone / split / prune counts from controlled statistics."""

import math

import torch

from human3d.splat.densify import DensityStats, accumulate_stats, densify_and_prune, reset_opacity
from human3d.splat.gaussians import PARAM_NAMES, Gaussians

EXTENT = 10.0  # percent_dense 0.01 -> scale threshold 0.1


def _setup():
    #            G0 clone  G1 split  G2 keep   G3 prune  G4 clone+prune  G5 never seen (big)
    scales = torch.tensor([0.05, 0.5, 0.05, 0.05, 0.05, 0.5])
    opac = torch.tensor([0.5, 0.5, 0.5, 0.001, 0.001, 0.5])
    grad = torch.tensor([1e-3, 2e-3, 1e-5, 1e-5, 5e-4, 0.0])
    count = torch.tensor([4.0, 4.0, 4.0, 4.0, 4.0, 0.0])
    n = 6
    g = Gaussians(
        torch.arange(n * 3, dtype=torch.float32).reshape(n, 3),
        torch.log(scales)[:, None].repeat(1, 3),
        torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        torch.logit(opac),
        torch.arange(n, dtype=torch.float32)[:, None, None].repeat(1, 1, 3),
        torch.zeros(n, 3, 3),
    )
    opt = torch.optim.Adam([{"params": [getattr(g, k)], "name": k} for k in PARAM_NAMES], lr=1e-3)
    for k in PARAM_NAMES:  # fake Adam moments: row i holds i + 1
        p = getattr(g, k)
        rows = torch.arange(1, n + 1, dtype=torch.float32).reshape((n,) + (1,) * (p.dim() - 1))
        opt.state[p] = {"step": torch.tensor(3.0), "exp_avg": rows.expand_as(p).clone(), "exp_avg_sq": rows.expand_as(p).clone()}
    stats = DensityStats(grad * count, count, torch.tensor([0.0, 0.0, 0.5, 0.0, 0.0, 0.0]))
    return g, opt, stats


def test_clone_split_prune_counts():
    g, opt, stats = _setup()
    parent_means = g.means.detach().clone()
    out = densify_and_prune(g, opt, stats, EXTENT, grad_threshold=2e-4, generator=torch.Generator().manual_seed(0))
    # +2 clones (G0, G4), G1 -> 2 samples (net +1), prune G3, G4 and G4's clone
    assert out == {"cloned": 2, "split": 1, "pruned": 3, "before": 6, "after": 6}
    assert len(g) == 6
    # survivors in order: G0, G2, G5, clone of G0, split samples of G1 (x2)
    torch.testing.assert_close(g.means[:3].detach(), parent_means[[0, 2, 5]])
    torch.testing.assert_close(g.means[3].detach(), parent_means[0])
    torch.testing.assert_close(g.scales[4:].detach(), torch.full((2, 3), 0.5 / 1.6))
    assert float((g.means[4:].detach() - parent_means[1]).norm(dim=-1).max()) < 5 * 0.5  # sampled from G1
    torch.testing.assert_close(g.sh_dc[:, 0, 0].detach(), torch.tensor([0.0, 2.0, 5.0, 0.0, 1.0, 1.0]))
    # Adam moments follow their Gaussians; new Gaussians start at zero; the optimiser holds the new tensors
    for k in PARAM_NAMES:
        p = getattr(g, k)
        assert any(q is p for grp in opt.param_groups for q in grp["params"])
        m = opt.state[p]["exp_avg"].reshape(6, -1)[:, 0]
        torch.testing.assert_close(m, torch.tensor([1.0, 3.0, 6.0, 0.0, 0.0, 0.0]))


def test_screen_and_world_size_pruning():
    g, opt, stats = _setup()
    out = densify_and_prune(g, opt, stats, EXTENT, grad_threshold=2e-4, max_screen_fraction=0.15,
                            max_world_fraction=0.04, generator=torch.Generator().manual_seed(0))  # fmt: skip
    # in addition: G2 (screen radius 0.5 of the image) and G5 (scale 0.5 > 0.04 * 10); split samples (0.3125) stay
    assert out == {"cloned": 2, "split": 1, "pruned": 5, "before": 6, "after": 4}


def test_max_gaussians_densifies_largest_gradients_first():
    g, opt, stats = _setup()
    out = densify_and_prune(g, opt, stats, EXTENT, grad_threshold=2e-4, max_gaussians=7)
    assert out["cloned"] == 0 and out["split"] == 1  # room for one more: G1 has the largest gradient
    g, opt, stats = _setup()
    out = densify_and_prune(g, opt, stats, EXTENT, grad_threshold=2e-4, max_gaussians=8)
    assert out["cloned"] == 1 and out["split"] == 1  # then G0 (1e-3) before G4 (5e-4)


def test_reset_opacity():
    g, opt, _ = _setup()
    before = g.opacities.detach().clone()
    reset_opacity(g, opt, 0.01)
    torch.testing.assert_close(g.opacities.detach(), torch.minimum(before, torch.tensor(0.01)))
    assert float(opt.state[g.opacity_logits]["exp_avg"].abs().sum()) == 0
    assert float(opt.state[g.means]["exp_avg"].abs().sum()) > 0


def test_accumulate_stats_in_ndc_units():
    stats = DensityStats.zeros(3)
    grad = torch.tensor([[[1e-4, 0.0], [3e-4, 4e-4], [1.0, 1.0]]])  # [C=1, N=3, 2] pixels
    visible = torch.tensor([[True, True, False]])
    radius = torch.tensor([[10.0, 40.0, 90.0]])
    for _ in range(2):
        accumulate_stats(stats, grad, visible, radius, width=200, height=100)
    torch.testing.assert_close(stats.count, torch.tensor([2.0, 2.0, 0.0]))
    ndc1 = math.hypot(3e-4 * 100, 4e-4 * 50)
    torch.testing.assert_close(stats.average_grad(), torch.tensor([1e-4 * 100, ndc1, 0.0]))
    torch.testing.assert_close(stats.max_radius, torch.tensor([0.05, 0.2, 0.0]))
