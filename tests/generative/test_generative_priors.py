"""Priors: exact Gaussian log-density vs torch.distributions, energies differentiable (autograd vs finite differences),
lower on held-out data than on perturbed/random vectors (AUC), exact save/load round trips, clear file errors."""

import json
import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from generative.autoregressive import MADE, MADEConfig
from generative.diffusion import DiffusionConfig, DiffusionModel
from generative.errors import InvalidInputError, ModelFileError
from generative.flows import RealNVP, RealNVPConfig
from generative.gan import GAN, GANConfig
from generative.metrics import roc_auc
from generative.priors import (
    DiffusionPrior,
    DiscriminatorPrior,
    FlowPrior,
    GaussianPrior,
    MADEPrior,
    Prior,
    VAEPrior,
    load_prior,
    save_prior,
)
from generative.training import TrainConfig, fit
from generative.vae import VAE, HierarchicalVAE, HierarchicalVAEConfig, VAEConfig

D = 6


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest.one_thread


def _manifold(n, seed):
    """A curved 2-D manifold in 6-D (a stand-in for pose vectors), with small noise and non-unit scales."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=g)
    x = torch.stack(
        [z[:, 0], z[:, 1], z[:, 0] * z[:, 1], torch.sin(2 * z[:, 0]), z[:, 1] ** 2 - 1, 0.5 * z[:, 0] + 0.5 * z[:, 1]], 1
    )
    return (x + 0.05 * torch.randn(n, D, generator=g)) * torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0, 1.0]) + 0.3


@pytest.fixture(scope="module")
def data():
    return _manifold(3000, 0), _manifold(400, 1)


@pytest.fixture(scope="module")
def priors(data):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    train, _ = data
    loc, scale = train.mean(0), train.std(0)
    u = (train - loc) / scale
    cfg = lambda steps, lr=3e-3: TrainConfig(steps=steps, batch_size=256, lr=lr, progress=False)  # noqa: E731
    torch.manual_seed(0)
    out = {"gaussian": GaussianPrior.fit(train, "full")}
    vae = VAE(VAEConfig(data_shape=(D,), latent_dim=2, hidden=(32, 32), fixed_logvar=-2.0))
    fit(vae, u, config=cfg(200))
    out["vae"] = VAEPrior(vae, loc=loc, scale=scale)
    out["vae_latent"] = VAEPrior(vae, energy="latent", loc=loc, scale=scale)
    hvae = HierarchicalVAE(HierarchicalVAEConfig(data_shape=(D,), latent_dims=(4, 2), hidden=(32,), fixed_logvar=-2.0))
    fit(hvae, u, config=cfg(300))
    out["hvae"] = VAEPrior(hvae, loc=loc, scale=scale)
    flow = RealNVP(RealNVPConfig(dim=D, num_layers=3, hidden=(32,)))
    fit(flow, u, config=cfg(200))
    out["flow"] = FlowPrior(flow, loc=loc, scale=scale)
    made = MADE(MADEConfig(dim=D, hidden=(64,), num_masks=2))
    fit(made, u, config=cfg(200))
    out["made"] = MADEPrior(made, loc=loc, scale=scale)
    diff = DiffusionModel(DiffusionConfig(data_shape=(D,), hidden=64, depth=2, num_train_timesteps=100))
    fit(diff, u, config=cfg(300))
    out["diffusion"] = DiffusionPrior(diff, timesteps=(2, 5, 10, 20), noise_per_timestep=4, sample_steps=20, loc=loc, scale=scale)
    # auxiliary negatives (perturbed data) make the discriminator an energy that also rejects off-manifold vectors
    gan = GAN(GANConfig(data_shape=(D,), latent_dim=4, gen_hidden=(64,), disc_hidden=(64, 64), aux_negative_fraction=0.5))
    gan.fit(u, config=TrainConfig(steps=300, batch_size=256, lr=2e-3, betas=(0.5, 0.9), progress=False))
    out["gan"] = DiscriminatorPrior(gan, loc=loc, scale=scale)
    torch.set_num_threads(n)
    return out


NAMES = ["gaussian", "vae", "vae_latent", "hvae", "flow", "made", "diffusion", "gan"]


@pytest.mark.parametrize("name", NAMES)
def test_energy_lower_on_held_out_data_than_on_perturbed_or_random(priors, data, name):
    train, test = data
    prior = priors[name].freeze()
    assert isinstance(prior, Prior) and prior.dim == D
    g = torch.Generator().manual_seed(5)
    std = train.std(0)
    perturbed = test + 1.0 * std * torch.randn(test.shape, generator=g)
    lo, hi = train.min(0).values, train.max(0).values
    uniform = lo + (hi - lo) * torch.rand(test.shape, generator=g)
    with torch.no_grad():
        e_test, e_pert, e_unif = prior.energy(test), prior.energy(perturbed), prior.energy(uniform)
    auc_p, auc_u = roc_auc(e_test, e_pert), roc_auc(e_test, e_unif)
    if name not in ("gaussian", "vae_latent"):  # a Gaussian / latent-norm cannot see the curved manifold: no claim
        assert auc_p >= 0.9 and auc_u >= 0.9, (auc_p, auc_u)
    else:
        assert auc_u >= 0.6, auc_u
    s = prior.sample(64, generator=torch.Generator().manual_seed(0))
    assert s.shape == (64, D) and bool(torch.isfinite(s).all())


@pytest.mark.parametrize("name", NAMES)
def test_energy_gradient_matches_finite_differences(priors, data, name):
    prior = priors[name].freeze().double()
    x = data[1][:3].double().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(prior.energy(x).sum(), x)
    h = 1e-5
    fd = torch.zeros_like(x)
    with torch.no_grad():
        for j in range(D):
            e = torch.zeros_like(x)
            e[:, j] = h
            fd[:, j] = (prior.energy(x + e) - prior.energy(x - e)) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-6)
    prior.float()


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip_is_exact(priors, data, name, tmp_path):
    prior = priors[name].freeze()
    path = tmp_path / f"{name}.safetensors"
    save_prior(prior, path, provenance={"clips": ["a", "b"], "credit": "test"})
    cfg = json.loads(path.with_suffix(".json").read_text())
    assert cfg["prior"] == type(prior).__name__ and cfg["dim"] == D
    loaded = load_prior(path)
    assert type(loaded) is type(prior) and loaded.provenance["credit"] == "test"
    x = data[1][:50]
    with torch.no_grad():
        assert torch.equal(loaded.energy(x), prior.energy(x))
    torch.manual_seed(0)
    a = loaded.sample(8, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    b = prior.sample(8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    if prior.exact_log_prob:
        assert torch.equal(loaded.log_prob(x), prior.log_prob(x))
    else:
        with pytest.raises(NotImplementedError):
            prior.log_prob(x)
    assert not any(p.requires_grad for p in loaded.parameters())


def test_gaussian_prior_log_prob_matches_torch():
    torch.manual_seed(0)
    x = torch.randn(500, 3) @ torch.tensor([[1.0, 0.4, 0.0], [0.0, 0.8, 0.2], [0.0, 0.0, 0.3]]) + 1
    for cov in ("full", "diag"):
        p = GaussianPrior.fit(x.double(), cov, ridge=0.0).double()
        xd = x.double()
        C = torch.cov(xd.T, correction=0)
        ref = MultivariateNormal(xd.mean(0), C if cov == "full" else torch.diag(C.diagonal()))
        torch.testing.assert_close(p.log_prob(xd[:20]), ref.log_prob(xd[:20]), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(p.energy(xd[:20]), -ref.log_prob(xd[:20]), rtol=1e-5, atol=1e-5)
        s = p.sample(50_000)
        torch.testing.assert_close(s.mean(0), ref.mean, atol=0.03, rtol=0)


def test_normalisation_enters_log_prob_with_its_jacobian():
    """A flow prior on u = (x - loc)/scale: its data-space density must still integrate to one."""
    torch.manual_seed(0)
    flow = RealNVP(RealNVPConfig(dim=2, num_layers=2, hidden=(8,))).double()
    prior = FlowPrior(flow, loc=torch.tensor([1.0, -1.0]), scale=torch.tensor([0.5, 2.0])).double().freeze()
    g1 = torch.linspace(-4, 6, 301, dtype=torch.float64)
    g2 = torch.linspace(-13, 11, 301, dtype=torch.float64)
    xx, yy = torch.meshgrid(g1, g2, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], -1)
    mass = prior.log_prob(pts).exp().sum() * (g1[1] - g1[0]) * (g2[1] - g2[0])
    assert abs(float(mass) - 1) < 2e-3


def test_prior_file_errors(tmp_path, priors):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_prior(tmp_path / "none.safetensors")
    path = tmp_path / "f.safetensors"
    save_prior(priors["flow"], path)
    side = path.with_suffix(".json")
    side.write_text("{not json")
    with pytest.raises(ModelFileError, match="malformed JSON"):
        load_prior(path)
    cfg = json.loads(json.dumps({"format": "generative.prior", "prior": "Nope", "dim": D}))
    side.write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="unknown prior class"):
        load_prior(path)
    good = json.loads(json.dumps(__import__("generative.priors", fromlist=["prior_config"]).prior_config(priors["flow"])))
    good["model"]["config"]["num_layers"] = 2
    side.write_text(json.dumps(good))
    with pytest.raises(ModelFileError, match="do not match"):
        load_prior(path)
    good["model"]["config"]["bogus"] = 1
    side.write_text(json.dumps(good))
    with pytest.raises(ModelFileError, match="bogus"):
        load_prior(path)
    side.unlink()  # falls back to the config embedded in the weights
    assert isinstance(load_prior(path), FlowPrior)
    path.write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="safetensors"):
        load_prior(path)
    with pytest.raises(InvalidInputError, match=".safetensors"):
        save_prior(priors["flow"], tmp_path / "x.pt")
    with pytest.raises(InvalidInputError, match="x"):
        priors["flow"].energy(torch.randn(3, D + 1))
    with pytest.raises(InvalidInputError, match="scale"):
        FlowPrior(RealNVP(RealNVPConfig(dim=2)), scale=torch.tensor([1.0, 0.0]))
    assert math.isfinite(float(priors["gaussian"].energy(torch.zeros(1, D))))
