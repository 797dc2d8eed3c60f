"""Flow tests: each layer's log-det against slogdet of its autograd Jacobian, inverses, ActNorm init, LU layer,
normalisation of the density, and a fit to a 2-D Gaussian against its closed-form log-density."""

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.distributions import MultivariateNormal

from generative.errors import InvalidInputError
from generative.flows import (
    ActNorm,
    AffineCoupling,
    AffineCoupling2d,
    Glow,
    GlowConfig,
    InvertibleLinearLU,
    Permutation,
    RealNVP,
    RealNVPConfig,
    SplitPrior,
    Squeeze,
)
from generative.training import TrainConfig, fit


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest.one_thread


def _perturb(module, scale=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def _brute_logdet(fn, x, cond=None):
    """slogdet of the full Jacobian of fn at each example: x [B, ...] -> [B]."""
    out = []
    for i in range(x.shape[0]):
        c = None if cond is None else cond[i : i + 1]
        f = lambda v: fn(v.reshape(1, *x.shape[1:]), c)[0].reshape(-1)  # noqa: E731
        J = jacobian(f, x[i].reshape(-1), vectorize=True)
        out.append(torch.linalg.slogdet(J)[1])
    return torch.stack(out)


def _layers():
    torch.manual_seed(0)
    vec = torch.randn(3, 5, dtype=torch.float64)
    img = torch.randn(2, 4, 2, 2, dtype=torch.float64)
    cond = torch.randn(3, 2, dtype=torch.float64)
    cond_img = torch.randn(2, 3, dtype=torch.float64)
    an_v = ActNorm(5).double()
    an_v.initialize(vec * 2 + 1)
    an_i = ActNorm(4).double()
    an_i.initialize(img * 3 - 1)
    return [
        ("actnorm_vec", _perturb(an_v), vec, None),
        ("actnorm_img", _perturb(an_i), img, None),
        ("lu_linear", _perturb(InvertibleLinearLU(5).double()), vec, None),
        ("lu_1x1conv", _perturb(InvertibleLinearLU(4).double()), img, None),
        ("permutation", Permutation(5, torch.tensor([2, 0, 4, 1, 3])).double(), vec, None),
        ("coupling_tanh", _perturb(AffineCoupling(5, (8,)).double()), vec, None),
        ("coupling_sigmoid", _perturb(AffineCoupling(5, (8,), scale="sigmoid").double()), vec, None),
        ("coupling_cond", _perturb(AffineCoupling(5, (8,), cond_dim=2).double()), vec, cond),
        ("coupling2d_sigmoid", _perturb(AffineCoupling2d(4, 8, scale="sigmoid").double(), 0.2), img, None),
        ("coupling2d_cond", _perturb(AffineCoupling2d(4, 8, cond_dim=3, scale="tanh").double(), 0.2), img, cond_img),
        ("squeeze", Squeeze(), img, None),
        ("split_prior", _perturb(SplitPrior(4).double(), 0.2), img, None),
    ]


@pytest.mark.parametrize("name,layer,x,cond", _layers(), ids=[n for n, *_ in _layers()])
def test_layer_logdet_matches_autograd_jacobian_and_inverse_round_trips(name, layer, x, cond):
    layer.eval()
    with torch.no_grad():
        y, logdet = layer(x, cond)
    assert logdet.shape == (x.shape[0],)
    torch.testing.assert_close(logdet, _brute_logdet(layer, x, cond), rtol=1e-8, atol=1e-8)
    with torch.no_grad():
        x_back = layer.inverse(y, cond)
    assert float((x_back - x).abs().max()) < 1e-5
    # and in float32
    layer32 = layer.float()
    x32 = x.float()
    c32 = None if cond is None else cond.float()
    with torch.no_grad():
        assert float((layer32.inverse(layer32(x32, c32)[0], c32) - x32).abs().max()) < 1e-5
    layer.double()


def test_lu_logdet_is_sum_log_abs_s_and_weight_is_invertible():
    torch.manual_seed(1)
    lu = _perturb(InvertibleLinearLU(6).double())
    W = lu.weight()
    sign, logabs = torch.linalg.slogdet(W)
    torch.testing.assert_close(logabs, lu.log_s.sum())
    x = torch.randn(2, 6, 3, 5, dtype=torch.float64)
    _, ld = lu(x)
    torch.testing.assert_close(ld, (3 * 5 * logabs).expand(2))  # H·W times for the 1×1 convolution
    # the 1×1 convolution is W applied at every pixel
    ref = torch.einsum("oc,bchw->bohw", W, x)
    torch.testing.assert_close(lu(x)[0], ref)
    # at init W is a rotation (|det| = 1)
    fresh = InvertibleLinearLU(6).double()
    torch.testing.assert_close(fresh.weight() @ fresh.weight().T, torch.eye(6, dtype=torch.float64), atol=1e-6, rtol=0)


def test_actnorm_data_dependent_init_standardises_the_first_batch():
    torch.manual_seed(0)
    x = torch.randn(256, 3) * torch.tensor([0.1, 2.0, 5.0]) + torch.tensor([3.0, -1.0, 0.5])
    an = ActNorm(3).train()
    y, _ = an(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    assert bool(an.initialized)
    y2, _ = an(x * 7)  # second batch: no re-initialisation
    torch.testing.assert_close(y2, an(x * 7)[0])
    assert float(y2.detach().std(0).min()) > 3
    img = torch.randn(16, 2, 5, 5) * torch.tensor([3.0, 0.5])[None, :, None, None] + 2
    an2 = ActNorm(2).train()
    yi, ldi = an2(img)
    torch.testing.assert_close(yi.mean((0, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(yi.std((0, 2, 3), unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
    # loaded weights keep their init
    an3 = ActNorm(2)
    an3.load_state_dict(an2.state_dict())
    an3.train()
    torch.testing.assert_close(an3(img * 5)[0], an2(img * 5)[0])


def test_whole_flows_logdet_and_inverse():
    torch.manual_seed(0)
    nvp = RealNVP(RealNVPConfig(dim=5, num_layers=3, hidden=(16,), cond_dim=2)).double()
    x, c = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    nvp.train()
    nvp(x, c)  # ActNorm init
    _perturb(nvp, 0.1).eval()
    z, ld = nvp(x, c)
    torch.testing.assert_close(ld, _brute_logdet(nvp, x, c), rtol=1e-8, atol=1e-8)
    assert float((nvp.inverse(z, c) - x).detach().abs().max()) < 1e-8

    glow = Glow(GlowConfig(image_shape=(1, 4, 4), levels=2, steps_per_level=2, hidden_channels=8)).double()
    xi = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    glow.train()
    glow(torch.randn(8, 1, 4, 4, dtype=torch.float64))
    _perturb(glow, 0.05).eval()
    zi, ldi = glow(xi)
    assert zi.shape == (2, 16)
    torch.testing.assert_close(ldi, _brute_logdet(glow, xi), rtol=1e-7, atol=1e-7)
    assert float((glow.inverse(zi) - xi).detach().abs().max()) < 1e-8
    assert glow.sample(3, temperature=0.7).shape == (3, 1, 4, 4)


@pytest.mark.parametrize("mixing", ["lu", "reverse"])
def test_flow_density_integrates_to_one(mixing):
    torch.manual_seed(2)
    nvp = RealNVP(RealNVPConfig(dim=2, num_layers=3, hidden=(16,), mixing=mixing)).double()
    nvp.train()
    nvp(torch.randn(64, 2, dtype=torch.float64) * 0.7)
    _perturb(nvp, 0.1).eval()
    assert float(nvp.sample(20_000).abs().max()) < 12  # the grid covers the mass
    g = torch.linspace(-16, 16, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], -1)
    with torch.no_grad():
        mass = nvp.log_prob(pts).exp().sum() * (g[1] - g[0]) ** 2
    assert abs(float(mass) - 1.0) < 1e-2


def test_realnvp_fits_a_2d_gaussian_log_density():
    torch.manual_seed(0)
    target = MultivariateNormal(torch.tensor([1.0, -2.0]), torch.tensor([[2.0, 1.2], [1.2, 1.0]]))
    x = target.sample((4000,))
    flow = RealNVP(RealNVPConfig(dim=2, num_layers=2, hidden=(32,)))
    fit(flow, x, config=TrainConfig(steps=300, batch_size=500, lr=5e-3, progress=False))
    test = target.sample((2000,))
    with torch.no_grad():
        err = (flow.log_prob(test) - target.log_prob(test)).abs()
    assert float(err.mean()) < 0.1, float(err.mean())
    # temperature sampling scales the spread around the mode (affine-like flow)
    s1, s05 = flow.sample(4000), flow.sample(4000, temperature=0.5)
    torch.testing.assert_close(s1.mean(0), target.mean, atol=0.15, rtol=0)
    ratio = (s05 - target.mean).std(0) / (s1 - target.mean).std(0)
    assert bool(((ratio > 0.4) & (ratio < 0.6)).all()), ratio


def test_flow_input_errors():
    nvp = RealNVP(RealNVPConfig(dim=3, num_layers=1, hidden=(4,)))
    with pytest.raises(InvalidInputError, match="x"):
        nvp.log_prob(torch.randn(2, 4))
    with pytest.raises(InvalidInputError, match="unconditional"):
        nvp.log_prob(torch.randn(2, 3), torch.randn(2, 1))
    with pytest.raises(InvalidInputError, match="divisible"):
        Glow(GlowConfig(image_shape=(1, 6, 6), levels=2))
    with pytest.raises(InvalidInputError, match="mixing"):
        RealNVP(RealNVPConfig(mixing="shuffle"))
