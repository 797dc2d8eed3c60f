"""Generative priors over a shape space's codes, behind generative's ``Prior`` interface (``energy``, ``log_prob``,
``sample``), as the pose priors are: a full-covariance Gaussian fit in closed form, and a RealNVP flow trained on
the standardised codes (noise-augmented: a flow fit to a few hundred codes otherwise collapses onto them).

Files in the run folder: ``prior_gaussian.safetensors`` / ``prior_flow.safetensors`` with their JSON sidecars
(:func:`generative.priors.save_prior`; provenance: the run, its family, its step).
"""

from __future__ import annotations

from pathlib import Path

import torch

from human3d.errors import InvalidInputError, ModelFileError

__all__ = ["CODE_PRIOR_KINDS", "fit_gaussian_code_prior", "fit_flow_code_prior", "fit_code_priors",
           "save_code_priors", "load_code_prior", "code_prior_path"]  # fmt: skip

CODE_PRIOR_KINDS = ("gaussian", "flow")


def fit_gaussian_code_prior(codes: torch.Tensor, ridge: float = 1e-3):
    """Maximum-likelihood N(mu, Sigma) of codes [S, D] (full covariance, ``ridge`` x mean variance on the
    diagonal so that S < D stays invertible)."""
    from generative.priors import GaussianPrior

    return GaussianPrior.fit(codes.detach().float(), covariance="full", ridge=ridge)


def fit_flow_code_prior(codes: torch.Tensor, layers: int = 4, hidden: int = 64, steps: int = 2000,
                        noise: float = 0.05, seed: int = 0, lr: float = 1e-3):  # fmt: skip
    """RealNVP on the codes [S, D] standardised per component (loc = mean, scale = std), trained by maximum
    likelihood with N(0, noise^2) added to each batch (standardised units). Returns a frozen FlowPrior."""
    from generative import RealNVP, RealNVPConfig, TrainConfig, fit, seed_everything
    from generative.priors import FlowPrior

    x = codes.detach().float()
    if x.ndim != 2 or x.shape[0] < 2:
        raise InvalidInputError(f"codes: expected [S >= 2, D], got {tuple(x.shape)}")
    loc, scale = x.mean(0), x.std(0).clamp_min(1e-6)
    u = (x - loc) / scale
    seed_everything(seed)
    model = RealNVP(RealNVPConfig(dim=x.shape[1], num_layers=layers, hidden=(hidden, hidden)))

    def noisy(m, xb):
        return m.loss(xb + noise * torch.randn_like(xb))

    fit(model, u, config=TrainConfig(steps=steps, batch_size=256, lr=lr, seed=seed, device="cpu", progress=False,
                                     grad_clip=10.0, weight_decay=1e-4), loss_fn=noisy)  # fmt: skip
    return FlowPrior(model, loc=loc, scale=scale).freeze()


def fit_code_priors(codes: torch.Tensor, flow_layers: int = 4, flow_hidden: int = 64, flow_steps: int = 2000,
                    flow_noise: float = 0.05, seed: int = 0) -> dict:  # fmt: skip
    """Both priors of codes [S, D]: ``{"gaussian": GaussianPrior, "flow": FlowPrior}``."""
    return {"gaussian": fit_gaussian_code_prior(codes).freeze(),
            "flow": fit_flow_code_prior(codes, flow_layers, flow_hidden, flow_steps, flow_noise, seed)}  # fmt: skip


def code_prior_path(run, kind: str) -> Path:
    if kind not in CODE_PRIOR_KINDS:
        raise InvalidInputError(f"prior: expected one of {list(CODE_PRIOR_KINDS)}, got {kind!r}")
    return Path(run) / f"prior_{kind}.safetensors"


def save_code_priors(run, priors: dict, provenance: dict) -> dict[str, Path]:
    """Write each prior to ``RUN/prior_<kind>.safetensors`` (+ .json), atomically."""
    from generative.priors import save_prior

    return {f"prior_{k}": save_prior(p, code_prior_path(run, k), {"codes": provenance, "kind": k})
            for k, p in priors.items()}  # fmt: skip


def load_code_prior(run, kind: str = "gaussian"):
    """The frozen code prior ``kind`` of a DeepSDF run folder."""
    from generative.priors import load_prior

    path = code_prior_path(run, kind)
    if not path.is_file():
        raise ModelFileError(f"code prior '{path}' not found: the run has not finished training (its finalize "
                             "step writes the priors); train it to the end or resume it")  # fmt: skip
    return load_prior(path)
