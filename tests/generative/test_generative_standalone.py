"""``generative`` stands alone: it imports (and trains, checkpoints) with ``human3d`` made unimportable; and
``human3d.errors`` / ``human3d.io_utils`` build on generative's owners instead of duplicating them."""

import subprocess
import sys
import textwrap

import pytest

import generative.errors
import generative.io_utils
import human3d.errors
import human3d.io_utils

_CHILD = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "human3d" or name.startswith("human3d."):
                raise ImportError(f"blocked: {name}")
            return None

    sys.meta_path.insert(0, _Block())
    try:
        import human3d  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the human3d block did not work")

    import torch
    import generative
    from generative.training import TrainConfig, fit, load_checkpoint, save_checkpoint

    names = [m.name for m in pkgutil.walk_packages(generative.__path__, "generative.")]
    for name in names:
        importlib.import_module(name)
    assert len(names) >= 10, names

    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(64, 3)
    cfg = TrainConfig(steps=3, batch_size=32, lr=1e-2, device="cpu", progress=False, log_every=1)
    models = {
        "vae": generative.VAE(generative.VAEConfig(data_shape=(3,), latent_dim=2, hidden=(8,))),
        "flow": generative.RealNVP(generative.RealNVPConfig(dim=3, num_layers=2, hidden=(8,))),
        "diffusion": generative.DiffusionModel(
            generative.DiffusionConfig(data_shape=(3,), hidden=8, depth=1, num_train_timesteps=10)
        ),
    }
    for kind, model in models.items():
        before = [p.detach().clone() for p in model.parameters()]
        hist = fit(model, x, config=cfg)
        assert hist.end_step == 3 and all(torch.isfinite(torch.tensor(r["loss"])) for r in hist.records), kind
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), kind

    path = sys.argv[1] + "/c.safetensors"
    save_checkpoint(path, {"vae": models["vae"]}, step=3)
    assert load_checkpoint(path, {"vae": models["vae"]}) == 3
    try:
        generative.VAE(generative.VAEConfig(data_shape=(3,))).loss(torch.randn(4, 5))
    except generative.errors.InvalidInputError:
        pass
    else:
        raise SystemExit("bad input was not refused")
    bad = sorted(m for m in sys.modules if m == "human3d" or m.startswith("human3d."))
    assert not bad, bad
    print("OK", len(names), "submodules")
    """
)


def test_generative_imports_and_trains_with_human3d_blocked(tmp_path):
    r = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("OK")
    assert (tmp_path / "c.safetensors").is_file()


def test_human3d_errors_and_io_are_generative_s():
    """One owner: human3d re-exports generative's classes and writer, so each catches/uses the other's."""
    assert human3d.errors.InvalidInputError is generative.errors.InvalidInputError
    assert human3d.errors.ModelFileError is generative.errors.ModelFileError
    assert human3d.errors.check_tensor is generative.errors.check_tensor
    assert human3d.io_utils.atomic_path is generative.io_utils.atomic_path
    err = generative.errors.ModelFileError("w.safetensors: missing")
    assert isinstance(err, human3d.errors.Human3DError) and isinstance(err, OSError)
    with pytest.raises(human3d.errors.InvalidInputError, match="x: expected a torch.Tensor"):
        generative.errors.check_tensor([1.0], "x")
    assert issubclass(human3d.errors.DatasetError, generative.errors.GenerativeError)
    assert issubclass(human3d.errors.UnsafePickleError, human3d.errors.ModelFileError)
