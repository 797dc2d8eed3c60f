"""HMR's adversarial pose prior (generative.priors.adversarial): Rodrigues against roma, real mocap poses scored
above perturbed ones (rank AUC against sklearn's roc_auc_score), save / load, Langevin samples."""

from __future__ import annotations

import pytest
import roma
import torch
from sklearn.metrics import roc_auc_score

from generative.priors import load_prior, save_prior
from generative.priors.adversarial import (AdversarialPosePrior, FactorisedDiscriminator,
                                           FactorisedDiscriminatorConfig, fit_adversarial_prior, perturb_poses,
                                           rotvec_to_matrix)  # fmt: skip


def _groups(anny_model, clips, n, seed):
    from human3d.fitting.priors import pose_space
    from human3d.fitting.synthetic import mocap_anny_poses

    _, bp, _ = mocap_anny_poses(n, seed, clips, fps=10.0)
    return pose_space(anny_model).groups_from_body_pose(bp.float()).reshape(n, -1)


def _auc(prior, real, g):
    fake = perturb_poses(real, g, sigma=0.6, joint_fraction=0.3, swap_fraction=0.0)  # noise on ~5 of 17 joints
    with torch.no_grad():
        s = torch.cat([prior.score(real), prior.score(fake)])
    y = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))])
    # closed-form rank AUC (Mann-Whitney U) beside sklearn's
    r, f = prior.score(real).detach(), prior.score(fake).detach()
    u = ((r[:, None] > f[None]).float() + 0.5 * (r[:, None] == f[None]).float()).mean()
    auc = roc_auc_score(y.numpy(), s.numpy())
    assert abs(auc - float(u)) < 1e-6
    return auc


def test_rodrigues_matches_roma():
    g = torch.Generator().manual_seed(0)
    r = torch.cat([torch.randn(100, 3, generator=g) * 2, 1e-5 * torch.randn(5, 3, generator=g), torch.zeros(1, 3)])
    assert torch.allclose(rotvec_to_matrix(r), roma.rotvec_to_rotmat(r), atol=1e-5)


def test_trained_discriminator_scores_heldout_mocap_above_perturbed(anny_model, one_thread):
    """Trained from scratch on two training clips, tested on a held-out clip (131_03) against noise on a few
    joints: AUC > 0.9."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    train = _groups(anny_model, ("131_01", "14_14"), 1000, 0)
    test = _groups(anny_model, ("131_03",), 300, 1)
    prior = AdversarialPosePrior(FactorisedDiscriminator(FactorisedDiscriminatorConfig(17, 16, 64)))
    losses = fit_adversarial_prior(prior, train, steps=200, batch_size=128, generator=g)
    assert losses[-1] < losses[0]
    assert _auc(prior, test, torch.Generator().manual_seed(5)) > 0.9


def test_shipped_discriminator_separates_heldout_poses(anny_model, one_thread):
    from human3d.hmr.predict import DEFAULT_WEIGHTS, weights_dir

    prior = load_prior(weights_dir() / f"{DEFAULT_WEIGHTS}_disc.safetensors")
    assert isinstance(prior, AdversarialPosePrior) and prior.dim == 51
    test = _groups(anny_model, ("131_03",), 300, 2)
    assert _auc(prior, test, torch.Generator().manual_seed(6)) > 0.9


def test_save_load_and_langevin_samples(tmp_path, one_thread):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    real = 0.3 * torch.randn(800, 12, generator=g) + torch.tensor([0.5, 0.0, 0.0] * 4)
    prior = AdversarialPosePrior(FactorisedDiscriminator(FactorisedDiscriminatorConfig(4, 8, 32)),
                                 sample_steps=60, sample_step=0.02, loc=real.mean(0), scale=real.std(0))  # fmt: skip
    fit_adversarial_prior(prior, real, steps=150, batch_size=128, generator=g)
    path = save_prior(prior, tmp_path / "adv.safetensors", {"test": True})
    back = load_prior(path)
    x = torch.randn(5, 12)
    assert torch.allclose(back.energy(x), prior.energy(x), atol=1e-6)
    # energy is differentiable in x
    xx = x.clone().requires_grad_(True)
    back.energy(xx).sum().backward()
    assert torch.isfinite(xx.grad).all() and xx.grad.abs().sum() > 0
    # Langevin samples are more plausible than the normalisation's Gaussian they start from
    start = back.denormalize(torch.randn(200, 12, generator=torch.Generator().manual_seed(1)))
    samples = back.sample(200, generator=torch.Generator().manual_seed(1))
    assert float(back.energy(samples).mean()) < float(back.energy(start).mean())
    from generative.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        back.energy(torch.zeros(3, 11))
    with pytest.raises(InvalidInputError):
        perturb_poses(torch.zeros(3, 11))
