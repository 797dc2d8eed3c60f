"""VAE tests against closed forms: Gaussian KL, a linear-Gaussian model whose log p(x) and posterior are known."""

import math

import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from generative.errors import InvalidInputError
from generative.vae import (
    VAE,
    HierarchicalVAE,
    HierarchicalVAEConfig,
    VAEConfig,
    gaussian_log_prob,
    kl_diag_gaussians,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks: one intra-op thread avoids OpenMP contention on the shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_kl_diag_gaussians_matches_torch_and_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mq, lq, mp, lp = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(4))
    ours = kl_diag_gaussians(mq, lq, mp, lp)  # [5]
    q = Independent(Normal(mq, (0.5 * lq).exp()), 1)
    p = Independent(Normal(mp, (0.5 * lp).exp()), 1)
    torch.testing.assert_close(ours, kl_divergence(q, p), rtol=1e-10, atol=1e-10)
    # Monte Carlo E_q[log q - log p]
    z = q.sample((50_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    se = (q.log_prob(z) - p.log_prob(z)).std(0) / math.sqrt(50_000)
    assert torch.all((mc - ours).abs() < 5 * se + 1e-3)
    # default prior: standard normal
    torch.testing.assert_close(kl_diag_gaussians(mq, lq), kl_divergence(q, Independent(Normal(0 * mq, 1 + 0 * mq), 1)))


def _linear_gaussian_vae(D=4, Z=2, sigma2=0.25, seed=0):
    """VAE with affine encoder/decoder = linear-Gaussian model p(z)=N(0,I), p(x|z)=N(Wz+b, σ²I), W with orthogonal
    columns so that the exact posterior is diagonal; the encoder is set to that exact posterior."""
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(D, Z, generator=g, dtype=torch.float64))[0]
    W = Q * torch.tensor([1.5, 0.7], dtype=torch.float64)  # W^T W = diag(2.25, 0.49)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    vae = VAE(VAEConfig(data_shape=(D,), latent_dim=Z, hidden=(), decoder_variance="fixed", fixed_logvar=math.log(sigma2)))
    vae.double()
    S = torch.linalg.inv(torch.eye(Z, dtype=torch.float64) + W.T @ W / sigma2)  # posterior covariance (diagonal)
    assert torch.allclose(S, torch.diag(S.diagonal()), atol=1e-12)
    A = S @ W.T / sigma2  # mu = A (x - b)
    with torch.no_grad():
        enc, dec = vae.encoder[0], vae.decoder[0]
        enc.weight.zero_()
        enc.weight[:Z] = A
        enc.bias[:Z] = -A @ b
        enc.bias[Z:] = torch.log(S.diagonal())
        dec.weight.copy_(W)
        dec.bias.copy_(b)
    marginal = MultivariateNormal(b, W @ W.T + sigma2 * torch.eye(D, dtype=torch.float64))
    return vae, marginal, (A, b, S)


def test_exact_posterior_makes_every_importance_weight_equal_log_px():
    torch.manual_seed(0)
    vae, marginal, _ = _linear_gaussian_vae()
    x = marginal.sample((16,))
    logpx = marginal.log_prob(x)
    for k in (1, 7):
        torch.testing.assert_close(vae.iwae_log_likelihood(x, k=k), logpx, rtol=0, atol=1e-9)
    # the ELBO with analytic KL: MC only in the reconstruction term
    elbo = vae.elbo(x, n_samples=20_000).elbo
    torch.testing.assert_close(elbo, logpx, rtol=0, atol=0.03)


def test_elbo_gap_is_kl_to_true_posterior_and_iwae_tightens_with_k():
    torch.manual_seed(1)
    vae, marginal, (A, b, S) = _linear_gaussian_vae()
    with torch.no_grad():  # perturb the encoder: q is no longer the posterior
        vae.encoder[0].bias[:2] += torch.tensor([0.4, -0.3], dtype=torch.float64)
        vae.encoder[0].bias[2:] += torch.tensor([0.5, -0.6], dtype=torch.float64)
    x = marginal.sample((8,))
    logpx = marginal.log_prob(x)
    with torch.no_grad():
        mu_q, lv_q = vae.encode(x)
    post = MultivariateNormal((x - b) @ A.T, S)
    q = MultivariateNormal(mu_q, torch.diag_embed(lv_q.exp()))
    gap = kl_divergence(q, post)  # ELBO = log p(x) - KL(q || p(z|x))
    assert bool((gap > 0.05).all())
    elbo = vae.elbo(x, n_samples=40_000).elbo
    torch.testing.assert_close(elbo, logpx - gap, rtol=0, atol=0.03)
    # IWAE bound averaged over repetitions and the 8 points: increases with K, stays below log p(x)
    reps = {1: 2000, 4: 500, 32: 60, 256: 10}
    bounds = [float(vae.iwae_log_likelihood(x.repeat(r, 1), k=k).mean()) for k, r in reps.items()]
    assert bounds == sorted(bounds), bounds
    assert bounds[-1] <= float(logpx.mean()) + 0.01
    assert float(logpx.mean()) - bounds[-1] < 0.1 * float(gap.mean())


def test_beta_weights_only_the_kl_term():
    torch.manual_seed(0)
    x = torch.randn(32, 5)
    vae1 = VAE(VAEConfig(data_shape=(5,), latent_dim=3, hidden=(16,), beta=1.0))
    vae4 = VAE(VAEConfig(data_shape=(5,), latent_dim=3, hidden=(16,), beta=4.0))
    vae4.load_state_dict(vae1.state_dict())
    torch.manual_seed(3)
    l1 = vae1.loss(x)
    torch.manual_seed(3)
    l4 = vae4.loss(x)
    kl = kl_diag_gaussians(*vae1.encode(x)).mean()
    torch.testing.assert_close(l4 - l1, 3.0 * kl)


def test_hierarchical_elbo_equals_expected_log_weight():
    """The analytic-KL hierarchical ELBO equals E_q[log p(x, z_1..L) - log q(z_1..L|x)] (full log-densities)."""
    torch.manual_seed(0)
    hv = HierarchicalVAE(HierarchicalVAEConfig(data_shape=(3,), latent_dims=(4, 2), hidden=(16,))).double()
    for p in hv.parameters():
        p.data.mul_(1.5)
    x = torch.randn(4, 3, dtype=torch.float64)
    n = 8_000
    logw = hv.iwae_log_likelihood(x.repeat(n, 1), k=1).reshape(n, 4)  # samples of log w (K = 1)
    t = hv.elbo(x, n_samples=n)
    se = logw.std(0) / math.sqrt(n)
    assert torch.all((t.elbo - logw.mean(0)).abs() < 5 * se + 5e-3)
    assert len(t.kl_per_layer) == 2 and torch.allclose(sum(t.kl_per_layer), t.kl)
    assert bool((hv.iwae_log_likelihood(x, k=512) >= t.elbo - 0.05).all())
    s = hv.sample(7)
    assert s.shape == (7, 3) and torch.isfinite(s).all()


def test_hierarchical_vae_top_down_prior_is_used_when_sampling():
    torch.manual_seed(0)
    hv = HierarchicalVAE(HierarchicalVAEConfig(data_shape=(2,), latent_dims=(3, 2), hidden=(8,), decoder_variance="fixed"))
    with torch.no_grad():  # make p(z_1|z_2) a point mass at a constant: samples become deterministic
        last = hv.priors[0][-1]
        last.weight.zero_()
        last.bias[:3] = torch.tensor([1.0, -2.0, 0.5])
        last.bias[3:] = -30.0
    a, b = hv.sample(5), hv.sample(5)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    ref = hv.decode(torch.tensor([[1.0, -2.0, 0.5]]).expand(5, 3))
    torch.testing.assert_close(a, ref, atol=1e-5, rtol=0)


def test_bernoulli_likelihood_is_log_bernoulli():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(data_shape=(1, 2, 3), latent_dim=2, hidden=(8,), likelihood="bernoulli"))
    x = (torch.rand(4, 1, 2, 3) > 0.5).float()
    z = torch.randn(4, 2)
    logits, _ = vae.decoder_params(z)
    ref = torch.distributions.Bernoulli(logits=logits).log_prob(x.reshape(4, -1)).sum(-1)
    torch.testing.assert_close(vae.log_likelihood(x.reshape(4, -1), z), ref)
    assert vae.sample(3).shape == (3, 1, 2, 3) and bool(((vae.sample(3) >= 0) & (vae.sample(3) <= 1)).all())
    with pytest.raises(InvalidInputError, match="\\[0, 1\\]"):
        vae.loss(x * 3)


def test_learned_and_shared_variance_are_gaussian_log_probs():
    torch.manual_seed(0)
    for kind in ("learned", "shared"):
        vae = VAE(VAEConfig(data_shape=(3,), latent_dim=2, hidden=(8,), decoder_variance=kind, min_logvar=-4.0))
        z, x = torch.randn(5, 2), torch.randn(5, 3)
        loc, lv = vae.decoder_params(z)
        assert bool((lv > -4.0).all())
        ref = Independent(Normal(loc, (0.5 * lv).exp()), 1).log_prob(x)
        torch.testing.assert_close(vae.log_likelihood(x, z), ref)
        torch.testing.assert_close(gaussian_log_prob(x, loc, lv), ref)


def test_bad_inputs_raise_clear_errors():
    vae = VAE(VAEConfig(data_shape=(4,), latent_dim=2, hidden=(8,)))
    with pytest.raises(InvalidInputError, match="x"):
        vae.loss(torch.randn(3, 5))
    with pytest.raises(InvalidInputError, match="NaN"):
        vae.loss(torch.full((3, 4), float("nan")))
    with pytest.raises(InvalidInputError, match="likelihood"):
        VAE(VAEConfig(likelihood="poisson"))
    with pytest.raises(InvalidInputError, match="2 layers"):
        HierarchicalVAE(HierarchicalVAEConfig(latent_dims=(4,)))
