"""Diffusion tests: schedules vs their formulas, q(x_t|x_0) vs iterating q(x_t|x_{t-1}), the DDPM step vs the
Gaussian posterior, samplers driven by the exact ε of Gaussian data, DDIM determinism, and a tiny trained model."""

import math

import pytest
import torch

from generative.diffusion import (
    DDIMScheduler,
    DDPMScheduler,
    DiffusionConfig,
    DiffusionModel,
    TinyUNet,
    cosine_alpha_bar,
    make_scheduler,
    sample_loop,
    v_loss,
)
from generative.errors import InvalidInputError
from generative.metrics import mmd_rbf
from generative.training import TrainConfig, fit


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest.one_thread


def test_schedules_match_their_formulas():
    T = 1000
    lin = DDPMScheduler(T, "linear", 1e-4, 0.02)
    betas = [1e-4 + (0.02 - 1e-4) * i / (T - 1) for i in range(T)]
    ab, ref = 1.0, []
    for b in betas:
        ab *= 1 - b
        ref.append(ab)
    torch.testing.assert_close(lin.alphas_cumprod, torch.tensor(ref, dtype=torch.float64), rtol=1e-10, atol=0)
    assert 3.5e-5 < float(lin.alphas_cumprod[-1]) < 4.5e-5  # DDPM's ᾱ_T ≈ 4e-5
    cos = DDPMScheduler(T, "cosine")
    s = 0.008
    t = torch.arange(T, dtype=torch.float64)
    f = lambda u: torch.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    want = f(t + 1) / f(torch.tensor(0.0, dtype=torch.float64))
    ok = cos.betas < 0.999  # β clipping only affects the very end
    assert bool(ok[: T - 5].all())
    torch.testing.assert_close(cos.alphas_cumprod[ok], want[ok], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(cosine_alpha_bar(t + 1, T), want)


def test_add_noise_matches_iterating_the_forward_chain():
    torch.manual_seed(0)
    sched = DDPMScheduler(200, "linear", 1e-3, 0.05)
    x0 = torch.tensor([[2.0, -1.0, 0.5]]).expand(40_000, 3)
    x = x0.clone().double()
    for step in range(200):  # x_t = sqrt(1 - β_t) x_{t-1} + sqrt(β_t) ε, starting from x_0 at t = 0
        b = float(sched.betas[step])
        x = math.sqrt(1 - b) * x + math.sqrt(b) * torch.randn_like(x)
        if step in (0, 30, 199):
            ab = float(sched.alphas_cumprod[step])
            direct = sched.add_noise(x0, torch.randn_like(x0), torch.full((40_000,), step))
            for samples in (x.float(), direct):
                torch.testing.assert_close(samples.mean(0), math.sqrt(ab) * x0[0], atol=0.02, rtol=0)
                torch.testing.assert_close(samples.var(0), torch.full((3,), 1 - ab), atol=0.02, rtol=0.03)


def test_ddpm_step_matches_gaussian_posterior():
    """Given the true noise, one step samples q(x_{t-1} | x_t, x_0), computed here by Gaussian conditioning."""
    torch.manual_seed(0)
    sched = DDPMScheduler(100, "cosine")
    t, n = 40, 50_000
    x0 = torch.full((n, 1), 0.7)
    eps = torch.randn(n, 1)
    xt = sched.add_noise(x0, eps, torch.full((n,), t))
    out = sched.step(eps, t, xt)
    torch.testing.assert_close(out.pred_original_sample, x0, atol=1e-4, rtol=0)
    ab_prev, ab_t, a_t = (float(v) for v in (sched.alphas_cumprod[t - 1], sched.alphas_cumprod[t], sched.alphas[t]))
    # joint: x_{t-1} ~ N(√ab_prev x0, 1-ab_prev); x_t | x_{t-1} ~ N(√a_t x_{t-1}, 1-a_t) -> condition on x_t
    v_prev, v_t_given = 1 - ab_prev, 1 - a_t
    post_var = 1 / (1 / v_prev + a_t / v_t_given)
    post_mean = post_var * (math.sqrt(ab_prev) * 0.7 / v_prev + math.sqrt(a_t) * xt / v_t_given)  # [n, 1]
    resid = out.prev_sample - post_mean
    assert abs(float(resid.mean())) < 0.01 * math.sqrt(post_var) * 3 + 1e-4
    assert abs(float(resid.var()) / post_var - 1) < 0.03
    # final step (t = 0) is the posterior mean: no noise
    last = sched.step(eps, 0, sched.add_noise(x0, eps, torch.zeros(n, dtype=torch.long)))
    torch.testing.assert_close(last.prev_sample, x0, atol=1e-3, rtol=0)


def _exact_eps(sched, mu, s):
    """Optimal ε-predictor for data N(mu, s²): E[ε | x_t] = sqrt(1-ᾱ)(x_t - sqrt(ᾱ) mu) / (ᾱ s² + 1 - ᾱ)."""
    ab = sched.alphas_cumprod

    def eps(x, t, cond=None, drop=None):
        a = ab[t.cpu()].to(x.dtype)[:, None]
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s * s + 1 - a)

    return eps


@pytest.mark.parametrize(
    "kind,steps,eta,schedule",
    [("ddpm", 1000, 0.0, "linear"), ("ddpm", 250, 0.0, "cosine"), ("ddim", 250, 0.0, "linear"), ("ddim", 250, 1.0, "cosine")],
)
def test_samplers_with_exact_denoiser_recover_gaussian_data(kind, steps, eta, schedule):
    mu, s = 2.0, 0.5
    sched = make_scheduler(kind, num_train_timesteps=1000, beta_schedule=schedule, **({"eta": eta} if kind == "ddim" else {}))
    sched.set_timesteps(steps)
    x = sample_loop(_exact_eps(sched, mu, s), sched, (20_000, 1), generator=torch.Generator().manual_seed(0))
    assert abs(float(x.mean()) - mu) < 0.02
    assert abs(float(x.std()) - s) < 0.02


def test_v_prediction_converts_to_exact_epsilon_and_v_loss_is_zero_at_the_optimum():
    """A v-prediction model whose network outputs the exact v of Gaussian data yields the exact ε (closed form),
    a v-loss equal to the irreducible E||v* - v||^2, and DDIM samples with the data's mean/std."""
    mu, s = -1.0, 0.4
    model = DiffusionModel(DiffusionConfig(data_shape=(1,), hidden=8, depth=1, prediction_type="v", num_train_timesteps=1000))
    ab_all = model.scheduler.alphas_cumprod
    eps_star = _exact_eps(model.scheduler, mu, s)

    def v_star(x, t, cond=None, drop=None):
        a = ab_all[t.cpu()].to(x.dtype)[:, None]
        e = eps_star(x, t)
        x0 = (x - (1 - a).sqrt() * e) / a.sqrt()
        return a.sqrt() * e - (1 - a).sqrt() * x0

    model.network = v_star
    t = torch.randint(0, 1000, (4000,))
    x = torch.randn(4000, 1) * 1.5
    torch.testing.assert_close(model.epsilon(x, t), eps_star(x, t), atol=1e-5, rtol=1e-5)
    # v-loss at the optimum = posterior variance of v: compare with the loss of a slightly wrong network
    x0 = mu + s * torch.randn(20_000, 1)
    torch.manual_seed(0)
    best = float(v_loss(v_star, model.scheduler, x0))
    torch.manual_seed(0)
    worse = float(v_loss(lambda *a: v_star(*a) + 0.1, model.scheduler, x0))
    assert abs(worse - best - 0.01) < 2e-3
    out = model.sample(20_000, scheduler="ddim", num_steps=100, generator=torch.Generator().manual_seed(0))
    assert abs(float(out.mean()) - mu) < 0.02 and abs(float(out.std()) - s) < 0.02


def test_ddim_eta_zero_is_deterministic():
    sched = DDIMScheduler(1000, "linear", eta=0.0)
    sched.set_timesteps(20)
    eps = _exact_eps(sched, 1.0, 0.3)
    xT = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    a = sample_loop(eps, sched, (64, 2), generator=torch.Generator().manual_seed(1), x_T=xT)
    b = sample_loop(eps, sched, (64, 2), generator=torch.Generator().manual_seed(2), x_T=xT)
    assert torch.equal(a, b)
    c = sample_loop(eps, sched, (64, 2), generator=torch.Generator().manual_seed(1), x_T=xT, eta=1.0)
    assert not torch.allclose(a, c)
    ddpm = DDPMScheduler(1000, "linear")
    ddpm.set_timesteps(20)
    d1 = sample_loop(eps, ddpm, (64, 2), generator=torch.Generator().manual_seed(1), x_T=xT)
    d2 = sample_loop(eps, ddpm, (64, 2), generator=torch.Generator().manual_seed(2), x_T=xT)
    assert not torch.allclose(d1, d2)


def test_set_timesteps_strides_and_validates():
    s = DDPMScheduler(1000)
    s.set_timesteps(10)
    assert s.timesteps.tolist() == list(range(900, -1, -100))
    with pytest.raises(InvalidInputError, match="num_inference_steps"):
        s.set_timesteps(0)
    with pytest.raises(InvalidInputError, match="beta_schedule"):
        DDPMScheduler(10, "sigmoid")


def test_tiny_conditional_diffusion_learns_a_mixture_and_guidance_selects_modes():
    """Two classes at ±2 (σ = 0.3) in 2-D: class-conditional samples sit on their mode, unconditional samples cover both,
    guided samples are closer to the data than noise (MMD)."""
    torch.manual_seed(0)
    n = 2000
    y = torch.randint(0, 2, (n,))
    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    x = centres[y] + 0.3 * torch.randn(n, 2)
    model = DiffusionModel(
        DiffusionConfig(data_shape=(2,), hidden=64, depth=2, num_classes=2, cond_drop_prob=0.2, num_train_timesteps=100)
    )
    fit(model, x, y, TrainConfig(steps=800, batch_size=256, lr=3e-3, progress=False))
    g = torch.Generator().manual_seed(0)
    lab = torch.tensor([0] * 300 + [1] * 300)
    s = model.sample(600, cond=lab, scheduler="ddpm", guidance_scale=1.0, generator=g)
    for k in (0, 1):
        m = s[lab == k].mean(0)
        assert float((m - centres[k]).norm()) < 0.35, (k, m)
        assert 0.15 < float(s[lab == k, 0].std()) < 0.6
    unc = model.sample(600, scheduler="ddim", num_steps=50, generator=g)  # null condition
    frac_right = float((unc[:, 0] > 0).float().mean())
    assert 0.25 < frac_right < 0.75
    guided = model.sample(600, cond=lab, scheduler="ddim", num_steps=50, guidance_scale=3.0, generator=g)
    data = centres[lab] + 0.3 * torch.randn(600, 2, generator=g)
    noise = torch.randn(600, 2, generator=g) * 2
    assert mmd_rbf(guided, data) < 0.2 * mmd_rbf(noise, data)
    for k in (0, 1):
        assert float((guided[lab == k].mean(0) - centres[k]).norm()) < 0.35


def test_unet_denoiser_shapes_and_gradients():
    torch.manual_seed(0)
    net = TinyUNet(in_channels=1, base_channels=8, cond_dim=3)
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    out = net(x, torch.tensor([3, 700]), torch.randn(2, 3), torch.tensor([False, True]))
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    model = DiffusionModel(DiffusionConfig(data_shape=(1, 8, 8), base_channels=8, num_train_timesteps=50))
    loss = model.loss(torch.randn(4, 1, 8, 8))
    loss.backward()
    assert model.sample(2, num_steps=5).shape == (2, 1, 8, 8)


def test_diffusion_input_errors():
    model = DiffusionModel(DiffusionConfig(data_shape=(3,), hidden=8, depth=1, num_classes=2))
    with pytest.raises(InvalidInputError, match="x0"):
        model.loss(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(InvalidInputError, match="labels"):
        model.loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(InvalidInputError, match="conditional"):
        model.loss(torch.randn(4, 3))
