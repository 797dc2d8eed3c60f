"""Training utilities: resume after an interruption reproduces the uninterrupted run exactly; checkpoint format;
batching; device selection; input errors."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from generative.errors import InvalidInputError, ModelFileError
from generative.flows import RealNVP, RealNVPConfig
from generative.gan import GAN, GANConfig
from generative.training import (
    TrainConfig,
    batch_indices,
    fit,
    flatten_optimizer_state,
    load_checkpoint,
    save_checkpoint,
    select_device,
    unflatten_optimizer_state,
)
from generative.vae import VAE, VAEConfig


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks: one intra-op thread avoids OpenMP contention on the shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class _Interrupt(Exception):
    pass


def _interrupt_at(model, step):
    """Make ``model.loss`` raise on its ``step``-th call (simulated crash / Ctrl-C)."""
    calls = {"n": 0}
    orig = model.loss

    def loss(*a):
        if calls["n"] == step:
            raise _Interrupt
        calls["n"] += 1
        return orig(*a)

    model.loss = loss
    return model


def _make(kind):
    torch.manual_seed(123)  # same initial weights for every run
    if kind == "flow":  # ActNorm data-dependent init + Adam state
        return RealNVP(RealNVPConfig(dim=3, num_layers=2, hidden=(16,)))
    return VAE(VAEConfig(data_shape=(3,), latent_dim=2, hidden=(16,)))  # reparameterisation noise: RNG state


@pytest.mark.parametrize("kind", ["flow", "vae"])
def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, kind):
    x = torch.randn(300, 3) @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.5]])
    cfg = dict(steps=23, batch_size=64, lr=1e-2, seed=7, progress=False)
    ref = _make(kind)
    fit(ref, x, config=TrainConfig(**cfg))

    ckpt = tmp_path / "run.safetensors"
    crashed = _interrupt_at(_make(kind), 13)
    with pytest.raises(_Interrupt):
        fit(crashed, x, config=TrainConfig(**cfg, checkpoint=str(ckpt), checkpoint_every=5))
    with safe_open(str(ckpt), framework="pt") as f:
        assert f.metadata()["step"] == "10"  # last periodic checkpoint before the crash
    torch.manual_seed(999)  # a different process state: everything must come from the checkpoint
    resumed = _make(kind)
    hist = fit(resumed, x, config=TrainConfig(**cfg, checkpoint=str(ckpt), checkpoint_every=5))
    assert hist.start_step == 10 and hist.end_step == 23
    for (name, a), (_, b) in zip(ref.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    # a finished run resumes to a no-op
    again = _make(kind)
    h2 = fit(again, x, config=TrainConfig(**cfg, checkpoint=str(ckpt)))
    assert h2.start_step == h2.end_step == 23
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), again.state_dict().values()))


def test_gan_resume_restores_both_optimizers(tmp_path):
    x = torch.randn(256, 2)
    cfg = dict(steps=12, batch_size=32, lr=1e-3, progress=False)

    def make():
        torch.manual_seed(0)
        return GAN(GANConfig(data_shape=(2,), latent_dim=2, gen_hidden=(8,), disc_hidden=(8,), d_steps=2))

    ref = make()
    ref.fit(x, config=TrainConfig(**cfg))
    ck = tmp_path / "gan.safetensors"
    part = make()
    part.fit(x, config=TrainConfig(**{**cfg, "steps": 7}, checkpoint=str(ck)))
    rest = make()
    rest.fit(x, config=TrainConfig(**cfg, checkpoint=str(ck)))
    for (name, a), (_, b) in zip(ref.state_dict().items(), rest.state_dict().items()):
        assert torch.equal(a, b), name


def test_checkpoint_contents_and_errors(tmp_path):
    m = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    m(torch.randn(4, 3)).sum().backward()
    opt.step()
    p = save_checkpoint(tmp_path / "c.safetensors", {"m": m}, {"m": opt}, step=5, config={"a": 1})
    with safe_open(str(p), framework="pt") as f:
        keys, meta = set(f.keys()), f.metadata()
    assert {"module.m.weight", "module.m.bias", "optim.m.state.0.exp_avg", "rng.torch"} <= keys
    assert json.loads(meta["config"]) == {"a": 1} and meta["step"] == "5"
    m2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(m2.parameters(), lr=0.5)
    assert load_checkpoint(p, {"m": m2}, {"m": opt2}) == 5
    assert torch.equal(m2.weight, m.weight)
    assert opt2.param_groups[0]["lr"] == 0.01
    torch.testing.assert_close(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert not list(tmp_path.glob(".c.safetensors*"))  # no temporary files left behind
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 20)
    with pytest.raises(ModelFileError, match="bad.safetensors"):
        load_checkpoint(bad, {"m": m2})
    with pytest.raises(ModelFileError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors", {"m": m2})
    with pytest.raises(ModelFileError, match="do not match"):
        load_checkpoint(p, {"m": torch.nn.Linear(3, 4)})


def _two_group_adam(seed):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    groups = [{"params": m[0].parameters(), "lr": 0.05}, {"params": m[2].parameters(), "lr": 0.01, "betas": (0.8, 0.9)}]
    return m, torch.optim.Adam(groups, weight_decay=1e-3)


def _adam_step(m, opt, x):
    opt.zero_grad()
    (m(x) ** 2).mean().backward()
    opt.step()


def test_optimizer_state_round_trip_two_groups(tmp_path):
    """Flatten -> safetensors file -> unflatten into a fresh Adam: one more step equals the uninterrupted step."""
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    m, opt = _two_group_adam(0)
    for _ in range(3):
        _adam_step(m, opt, x)
    tensors, meta = {}, {}
    flatten_optimizer_state("net", opt, tensors, meta)
    assert set(meta) == {"optim.net.param_groups", "optim.net.nontensor_state"}
    assert {f"optim.net.state.{i}.{k}" for i in range(4) for k in ("step", "exp_avg", "exp_avg_sq")} == set(tensors)
    p = tmp_path / "o.safetensors"
    save_file(tensors, str(p), metadata=meta)  # the format is safetensors-safe: str -> str metadata, CPU tensors
    with safe_open(str(p), framework="pt") as f:
        tensors2, meta2 = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()

    m2, opt2 = _two_group_adam(5)  # fresh weights and optimizer; copy the weights, restore only the optimizer
    m2.load_state_dict(m.state_dict())
    opt2.load_state_dict(unflatten_optimizer_state("net", tensors2, meta2, p))
    assert [g["lr"] for g in opt2.param_groups] == [0.05, 0.01] and tuple(opt2.param_groups[1]["betas"]) == (0.8, 0.9)
    m3, opt3 = _two_group_adam(5)  # the same without the restored state: its step must differ (the test can fail)
    m3.load_state_dict(m.state_dict())
    for mod, o in ((m, opt), (m2, opt2), (m3, opt3)):
        _adam_step(mod, o, x)
    for a, b, c in zip(m.parameters(), m2.parameters(), m3.parameters()):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, c) for a, c in zip(m.parameters(), m3.parameters()))
    with pytest.raises(ModelFileError, match="o.safetensors.*'other'"):
        unflatten_optimizer_state("other", tensors2, meta2, p)


def test_batch_indices_are_deterministic_epoch_permutations():
    a = [batch_indices(10, 3, s, seed=1) for s in range(3)]
    b = [batch_indices(10, 3, s, seed=1) for s in range(3)]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    epoch = torch.cat(a)
    assert len(set(epoch.tolist())) == 9  # one epoch: distinct rows (last partial batch dropped)
    assert not torch.equal(batch_indices(10, 3, 3, seed=1), a[0])  # next epoch: new permutation
    assert torch.equal(torch.sort(batch_indices(5, 8, 0, 0)).values, torch.arange(5))


def test_device_selection_and_data_errors():
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert select_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="CUDA"):
            select_device("cuda")
    m = VAE(VAEConfig(data_shape=(2,), latent_dim=1, hidden=(4,)))
    with pytest.raises(InvalidInputError, match="empty"):
        fit(m, torch.zeros(0, 2), config=TrainConfig(steps=1, progress=False))
    with pytest.raises(InvalidInputError, match="NaN"):
        fit(m, torch.full((4, 2), float("nan")), config=TrainConfig(steps=1, progress=False))
    with pytest.raises(InvalidInputError, match="rows"):
        fit(m, torch.zeros(4, 2), torch.zeros(3, 1), config=TrainConfig(steps=1, progress=False))
