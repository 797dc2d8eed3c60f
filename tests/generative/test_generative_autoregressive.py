"""MADE tests: autoregressive structure of the Jacobian, exact normalisation over all binary vectors, Gaussian
normalisation by quadrature, and order re-sampling."""

import itertools

import pytest
import torch
from torch.autograd.functional import jacobian

from generative.autoregressive import MADE, MADEConfig
from generative.errors import InvalidInputError
from generative.metrics import gaussian_nll
from generative.training import TrainConfig, fit


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest.one_thread


def test_jacobian_is_strictly_triangular_in_each_masks_order():
    torch.manual_seed(0)
    D = 7
    made = MADE(MADEConfig(dim=D, hidden=(64, 64), num_masks=4, natural_order=False, seed=3)).double()
    x = torch.randn(D, dtype=torch.float64)
    orders = made.orders
    assert len({tuple(o.tolist()) for o in orders}) > 1  # orders are re-sampled
    for k in range(made.num_masks):
        for out in (0, 1):  # μ and log σ
            J = jacobian(lambda v: made(v[None], None, k)[0, :, out], x)  # [D_out, D_in]
            allowed = orders[k][None, :] < orders[k][:, None]  # input earlier than output in the order
            assert float(J[~allowed].abs().max()) == 0.0
            perm = torch.argsort(orders[k])
            Jp = J[perm][:, perm]  # rows/cols sorted by the order: strictly lower-triangular
            assert torch.equal(Jp, torch.tril(Jp, -1))
            assert float(J[allowed].abs().max()) > 0  # and actually uses the earlier inputs


@pytest.mark.parametrize("cond_dim", [0, 2])
def test_bernoulli_made_probabilities_sum_to_one(cond_dim):
    torch.manual_seed(0)
    D = 6
    made = MADE(MADEConfig(dim=D, hidden=(32,), output="bernoulli", num_masks=3, natural_order=False, cond_dim=cond_dim))
    for p in made.parameters():
        p.data.mul_(3)
    X = torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)))
    c = torch.randn(1, cond_dim).expand(len(X), cond_dim) if cond_dim else None
    for k in (None, 0, 1, 2):
        total = made.log_prob(X, c, mask_index=k).detach().double().exp().sum()
        assert abs(float(total) - 1.0) < 1e-5
    # samples follow the model: empirical frequencies vs exact probabilities (mixture over masks)
    cs = c[:1].expand(20_000, cond_dim) if cond_dim else None
    s = made.sample(20_000, cs, generator=torch.Generator().manual_seed(0))
    idx = (s * (2 ** torch.arange(D - 1, -1, -1))).sum(1).long()
    freq = torch.bincount(idx, minlength=2**D).double() / 20_000
    probs = made.log_prob(X, c).double().exp().detach()
    assert float((freq - probs).abs().sum()) < 0.08  # total variation x2 with 20k samples over 64 cells


def test_gaussian_made_density_integrates_to_one_and_matches_samples():
    torch.manual_seed(0)
    made = MADE(MADEConfig(dim=2, hidden=(16,), num_masks=2, natural_order=False)).double()
    for p in made.parameters():
        p.data.mul_(0.5)
    g = torch.linspace(-10, 10, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], -1)
    with torch.no_grad():
        dens = made.log_prob(pts).exp()
    h2 = (g[1] - g[0]) ** 2
    assert abs(float(dens.sum() * h2) - 1) < 1e-3
    mean_quad = (dens[:, None] * pts).sum(0) * h2
    s = made.sample(40_000)
    torch.testing.assert_close(s.mean(0), mean_quad, atol=0.05, rtol=0)


def test_made_beats_diagonal_gaussian_on_correlated_data():
    torch.manual_seed(0)
    z = torch.randn(3000, 1)
    x = torch.cat([z, z**2 + 0.2 * torch.randn(3000, 1), -z + 0.3 * torch.randn(3000, 1)], 1)
    tr, te = x[:2500], x[2500:]
    made = MADE(MADEConfig(dim=3, hidden=(64, 64), num_masks=1))
    fit(made, tr, config=TrainConfig(steps=400, batch_size=256, lr=3e-3, progress=False))
    with torch.no_grad():
        nll = -float(made.log_prob(te).mean())
    base = gaussian_nll(tr, te, "diag")
    assert nll < base - 1.0, (nll, base)  # margin: one nat per example


def test_made_errors():
    with pytest.raises(InvalidInputError, match="hidden"):
        MADE(MADEConfig(hidden=()))
    made = MADE(MADEConfig(dim=3, hidden=(8,)))
    with pytest.raises(InvalidInputError, match="x"):
        made.log_prob(torch.randn(2, 4))
