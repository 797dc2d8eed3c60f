"""The ``Prior`` protocol, a Gaussian prior, adapters turning each generative model into a prior, and safetensors IO.

A prior scores vectors x [B, D] (e.g. pose parameters):

* ``energy(x) -> [B]``: differentiable in x, lower = more plausible. Exact priors use energy = -log p(x).
* ``log_prob(x) -> [B]``: exact log-density (Gaussian, flows, MADE); other priors raise ``NotImplementedError``
  (``exact_log_prob`` tells which).
* ``sample(n) -> [n, D]``; ``dim``: D.

Adapters hold an affine data normalisation ``u = (x - loc) / scale`` (buffers ``loc``, ``scale`` [D]); the wrapped
model lives in u-space and ``log_prob`` includes the Jacobian -Σ log scale. Use it to train on standardised data::

    loc, scale = poses.mean(0), poses.std(0)
    flow = RealNVP(RealNVPConfig(dim=63)); fit(flow, (poses - loc) / scale, config=...)
    prior = FlowPrior(flow, loc=loc, scale=scale)
    save_prior(prior, "assets/priors/pose_flow.safetensors", provenance={"clips": [...]})   # + .json sidecar
    prior = load_prior("assets/priors/pose_flow.safetensors")        # frozen, eval mode
    loss = data_term + w * prior.energy(body_pose.reshape(B, -1)).mean()

Files: ``<name>.safetensors`` (the prior's ``state_dict``; the JSON config is also embedded in its metadata) and
``<name>.json`` (``{"format": "generative.prior", "version": 1, "prior": <class>, "dim": D, "options": {...},
"model": {"class": <model class>, "config": {...}}, "provenance": {...}}``). Subclasses registered with
``@register_prior`` load by class name.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from generative.errors import InvalidInputError, ModelFileError, check_tensor
from generative.io_utils import atomic_path, atomic_write_text

from ..autoregressive import MADE, MADEConfig
from ..diffusion import DiffusionConfig, DiffusionModel
from ..flows import Flow, Glow, GlowConfig, RealNVP, RealNVPConfig
from ..gan import GAN, GANConfig
from ..nn import config_from_dict, config_to_dict
from ..training import read_safetensors
from ..vae import VAE, HierarchicalVAE, HierarchicalVAEConfig, VAEConfig

PRIOR_FORMAT = "generative.prior"
LOG_2PI = math.log(2.0 * math.pi)


@runtime_checkable
class Prior(Protocol):
    """What fitting code needs from a prior over vectors [B, D]."""

    dim: int

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """[B, D] -> [B], differentiable in x; lower = more plausible."""
        ...

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """[n, D] samples."""
        ...

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """[B, D] -> [B] exact log-density (raises NotImplementedError where not exact)."""
        ...


# Model classes a prior file may name, with their config dataclasses.
MODEL_CLASSES: dict[str, tuple[type[nn.Module], type]] = {
    "VAE": (VAE, VAEConfig),
    "HierarchicalVAE": (HierarchicalVAE, HierarchicalVAEConfig),
    "RealNVP": (RealNVP, RealNVPConfig),
    "Glow": (Glow, GlowConfig),
    "MADE": (MADE, MADEConfig),
    "DiffusionModel": (DiffusionModel, DiffusionConfig),
    "GAN": (GAN, GANConfig),
}
PRIOR_CLASSES: dict[str, type["BasePrior"]] = {}


def register_prior(cls):
    """Class decorator: make a ``BasePrior`` subclass loadable by ``load_prior`` (by its class name)."""
    PRIOR_CLASSES[cls.__name__] = cls
    return cls


def register_model(cls, config_cls) -> None:
    """Make a model class (built as ``cls(config_cls(...))``, exposing ``.config``) loadable inside prior files."""
    MODEL_CLASSES[cls.__name__] = (cls, config_cls)


class BasePrior(nn.Module):
    """Common machinery: input checks, normalisation ``u = (x - loc) / scale``, freezing, saving.

    Subclasses implement ``_energy(u)``, ``_sample(n, generator)`` and, if exact, ``_log_prob(u)``; they set
    ``self.model`` (or None) and return their constructor options from ``options()``.
    """

    exact_log_prob: ClassVar[bool] = False

    def __init__(self, dim: int, loc: torch.Tensor | None = None, scale: torch.Tensor | None = None):
        super().__init__()
        self.dim = int(dim)
        loc = torch.zeros(self.dim) if loc is None else torch.as_tensor(loc, dtype=torch.float32).flatten()
        scale = torch.ones(self.dim) if scale is None else torch.as_tensor(scale, dtype=torch.float32).flatten()
        if loc.shape != (self.dim,) or scale.shape != (self.dim,):
            raise InvalidInputError(f"loc/scale: expected shape [{self.dim}], got {tuple(loc.shape)}/{tuple(scale.shape)}")
        if not bool((scale > 0).all()) or not bool(torch.isfinite(scale).all()):
            raise InvalidInputError("scale: must be positive and finite")
        self.register_buffer("loc", loc.clone())
        self.register_buffer("scale", scale.clone())
        self.model: nn.Module | None = None

    # ------------------------------------------------------------------------------------------- interface
    def _check(self, x) -> torch.Tensor:
        check_tensor(x, "x", (None, self.dim), dtype_floating=True)
        return x

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.loc) / self.scale

    def denormalize(self, u: torch.Tensor) -> torch.Tensor:
        return u * self.scale + self.loc

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """[B, D] -> [B]; differentiable w.r.t. x (and the prior's parameters unless frozen)."""
        return self._energy(self.normalize(self._check(x)))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) [B] in nats (only where ``exact_log_prob``)."""
        if not self.exact_log_prob:
            raise NotImplementedError(f"{type(self).__name__} has no exact log-density; use energy(x)")
        return self._log_prob(self.normalize(self._check(x))) - torch.log(self.scale).sum()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """[n, D] samples in data space."""
        if n < 1:
            raise InvalidInputError(f"n: expected >= 1, got {n}")
        return self.denormalize(self._sample(int(n), generator))

    def _energy(self, u):  # default for exact priors: negative log-likelihood (in data space)
        return -(self._log_prob(u) - torch.log(self.scale).sum())

    def _log_prob(self, u):
        raise NotImplementedError

    def _sample(self, n, generator):
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """JSON-serialisable constructor options (besides the model, loc and scale)."""
        return {}

    def freeze(self) -> "BasePrior":
        """eval() mode and no parameter gradients (gradients still flow to x). Returns self."""
        self.eval()
        self.requires_grad_(False)
        return self

    def save(self, path, provenance: dict | None = None) -> Path:
        return save_prior(self, path, provenance)

    @property
    def device(self) -> torch.device:
        return self.loc.device


# -------------------------------------------------------------------------------------------- Gaussian
@register_prior
class GaussianPrior(BasePrior):
    """N(mean, L Lᵀ) with L lower-triangular (diagonal for ``covariance="diag"``); exact log_prob; energy = NLL."""

    exact_log_prob = True

    def __init__(self, dim: int, covariance: str = "diag", loc=None, scale=None):
        super().__init__(dim, loc, scale)
        if covariance not in ("diag", "full"):
            raise InvalidInputError(f"covariance: expected 'diag' or 'full', got {covariance!r}")
        self.covariance = covariance
        self.register_buffer("mean", torch.zeros(self.dim))
        self.register_buffer("scale_tril", torch.eye(self.dim))

    @classmethod
    def fit(cls, data: torch.Tensor, covariance: str = "diag", ridge: float = 1e-6) -> "GaussianPrior":
        """Maximum-likelihood fit to ``data`` [N, D] (N >= 2); ``ridge`` × mean variance is added to the diagonal."""
        check_tensor(data, "data", (None, None), dtype_floating=True)
        if data.shape[0] < 2:
            raise InvalidInputError(f"data: need at least 2 rows to fit a Gaussian, got {data.shape[0]}")
        prior = cls(data.shape[1], covariance)
        d = data.double()
        mean = d.mean(0)
        xc = d - mean
        cov = xc.T @ xc / d.shape[0]
        cov = cov + ridge * float(cov.diagonal().mean().clamp_min(1e-12)) * torch.eye(d.shape[1], dtype=torch.float64)
        L = torch.diag(cov.diagonal().sqrt()) if covariance == "diag" else torch.linalg.cholesky(cov)
        prior.mean.copy_(mean.float())
        prior.scale_tril.copy_(L.float())
        return prior

    def _log_prob(self, u):
        diff = (u - self.mean).T  # [D, B]
        m = torch.linalg.solve_triangular(self.scale_tril, diff, upper=False)  # [D, B]
        logdet = torch.log(self.scale_tril.diagonal()).sum()
        return -0.5 * (m**2).sum(0) - logdet - 0.5 * self.dim * LOG_2PI

    def _sample(self, n, generator):
        eps = torch.randn(n, self.dim, generator=generator).to(self.device, self.mean.dtype)
        return self.mean + eps @ self.scale_tril.T

    def options(self):
        return {"covariance": self.covariance}


# ------------------------------------------------------------------------------------------- adapters
def _check_model_dim(model: nn.Module, dim: int | None = None) -> int:
    shape = getattr(model, "data_shape", None)
    if shape is None:
        raise InvalidInputError(f"model: {type(model).__name__} has no data_shape")
    d = math.prod(shape)
    if len(shape) != 1:
        raise InvalidInputError(f"model: priors work on vectors; {type(model).__name__} has data_shape {shape}")
    return d


@register_prior
class VAEPrior(BasePrior):
    """VAE as a prior (VPoser-like).

    ``energy="elbo"``: E(x) = -ELBO evaluated at z = μ_q(x) (deterministic): -log p(x|μ_q) + KL(q(z|x) || p(z)).
    ``energy="latent"`` (single-layer VAE): E(x) = ||μ_q(x)||^2, the VPoser latent penalty.
    Samples decode z ~ N(0, temperature^2 I) to the decoder mean. No exact log_prob (see ``log_prob_iwae``).
    """

    def __init__(self, model: VAE | HierarchicalVAE, energy: str = "elbo", temperature: float = 1.0, loc=None, scale=None):
        super().__init__(_check_model_dim(model), loc, scale)
        if energy not in ("elbo", "latent"):
            raise InvalidInputError(f"energy: expected 'elbo' or 'latent', got {energy!r}")
        if energy == "latent" and not isinstance(model, VAE):
            raise InvalidInputError("energy='latent' needs a single-layer VAE")
        self.model, self.energy_kind, self.temperature = model, energy, float(temperature)

    def _energy(self, u):
        if self.energy_kind == "latent":
            mu, _ = self.model.encode(u)
            return (mu**2).sum(-1)
        return -self.model.elbo(u, sample=False).elbo

    def _sample(self, n, generator):
        return self.model.sample(n, temperature=self.temperature, generator=generator)

    @torch.no_grad()
    def log_prob_iwae(self, x: torch.Tensor, k: int = 256) -> torch.Tensor:
        """Importance-weighted estimate (lower bound) of log p(x) [B] in data space."""
        return self.model.iwae_log_likelihood(self.normalize(self._check(x)), k) - torch.log(self.scale).sum()

    def options(self):
        return {"energy": self.energy_kind, "temperature": self.temperature}


@register_prior
class FlowPrior(BasePrior):
    """Normalizing flow (e.g. :class:`RealNVP`) as a prior: exact log_prob, energy = NLL, temperature sampling."""

    exact_log_prob = True

    def __init__(self, model: Flow, temperature: float = 1.0, loc=None, scale=None):
        super().__init__(_check_model_dim(model), loc, scale)
        if model.cond_dim:
            raise InvalidInputError("model: FlowPrior needs an unconditional flow")
        self.model, self.temperature = model, float(temperature)

    def _log_prob(self, u):
        return self.model.log_prob(u)

    def _sample(self, n, generator):
        return self.model.sample(n, temperature=self.temperature, generator=generator)

    def options(self):
        return {"temperature": self.temperature}


@register_prior
class MADEPrior(BasePrior):
    """MADE as a prior: exact log_prob (mixture over its mask pool), energy = NLL, sequential sampling."""

    exact_log_prob = True

    def __init__(self, model: MADE, temperature: float = 1.0, loc=None, scale=None):
        super().__init__(model.dim, loc, scale)
        if model.config.output != "gaussian" or model.config.cond_dim:
            raise InvalidInputError("model: MADEPrior needs an unconditional Gaussian MADE")
        self.model, self.temperature = model, float(temperature)

    def _log_prob(self, u):
        return self.model.log_prob(u)

    def _sample(self, n, generator):
        return self.model.sample(n, temperature=self.temperature, generator=generator)

    def options(self):
        return {"temperature": self.temperature}


@register_prior
class DiffusionPrior(BasePrior):
    """Diffusion model as a prior (DPoser-like denoising energy with fixed noise):

      E(x) = 1/K Σ_k w(t_k) · mean_d (ε_θ(sqrt(ᾱ_k) u + sqrt(1 - ᾱ_k) ε_k, t_k) - ε_k)_d^2,   u = (x - loc) / scale

    over K = len(timesteps) × noise_per_timestep fixed pairs (t_k, ε_k) drawn once from ``seed`` (so E is a
    deterministic, smooth function of x). ``weighting="eps"``: w = 1; ``"x0"``: w = (1 - ᾱ)/ᾱ, which makes each term
    the one-step denoising distance mean_d (u - x̂_0)^2. Samples: ``sampler`` (``"ddpm"``: ancestral, robust;
    ``"ddim"``: deterministic η = 0, best with ``prediction_type="v"`` models) with ``sample_steps`` strided steps.
    """

    def __init__(
        self,
        model: DiffusionModel,
        timesteps: tuple[int, ...] = (20, 50, 100, 200),
        noise_per_timestep: int = 4,
        weighting: str = "eps",
        seed: int = 0,
        sample_steps: int = 100,
        sampler: str = "ddpm",
        loc=None,
        scale=None,
    ):
        super().__init__(_check_model_dim(model), loc, scale)
        T = model.config.num_train_timesteps
        if sampler not in ("ddpm", "ddim"):
            raise InvalidInputError(f"sampler: expected 'ddpm' or 'ddim', got {sampler!r}")
        if not 1 <= int(sample_steps) <= T:
            raise InvalidInputError(f"sample_steps: expected 1..{T}, got {sample_steps}")
        self.sampler = sampler
        ts = [int(t) for t in timesteps]
        if not ts or any(not 0 <= t < T for t in ts):
            raise InvalidInputError(f"timesteps: expected values in [0, {T}), got {timesteps}")
        if weighting not in ("eps", "x0"):
            raise InvalidInputError(f"weighting: expected 'eps' or 'x0', got {weighting!r}")
        self.model, self.weighting, self.seed, self.sample_steps = model, weighting, int(seed), int(sample_steps)
        self.timesteps, self.noise_per_timestep = tuple(ts), int(noise_per_timestep)
        g = torch.Generator().manual_seed(self.seed)
        t = torch.tensor(ts).repeat_interleave(self.noise_per_timestep)  # [K]
        ab = model.scheduler.alphas_cumprod[t].float()
        self.register_buffer("t", t, persistent=False)
        self.register_buffer("alpha_bar", ab, persistent=False)
        self.register_buffer("noise", torch.randn(len(t), self.dim, generator=g), persistent=False)  # [K, D]
        w = torch.ones_like(ab) if weighting == "eps" else (1 - ab) / ab
        self.register_buffer("weight", w, persistent=False)

    def _energy(self, u):
        B, K = u.shape[0], self.t.shape[0]
        ab = self.alpha_bar[None, :, None]  # [1, K, 1]
        eps = self.noise[None].expand(B, K, self.dim)  # [B, K, D]
        xt = ab.sqrt() * u[:, None] + (1 - ab).sqrt() * eps
        pred = self.model.epsilon(xt.reshape(B * K, self.dim), self.t.repeat(B)).reshape(B, K, self.dim)
        return (self.weight * ((pred - eps) ** 2).mean(-1)).mean(-1)

    def _sample(self, n, generator):
        return self.model.sample(n, scheduler=self.sampler, num_steps=self.sample_steps, eta=0.0, generator=generator)

    def options(self):
        return {
            "timesteps": list(self.timesteps), "noise_per_timestep": self.noise_per_timestep,
            "weighting": self.weighting, "seed": self.seed, "sample_steps": self.sample_steps,
            "sampler": self.sampler,
        }


@register_prior
class DiscriminatorPrior(BasePrior):
    """GAN discriminator as a prior (HMR-like adversarial prior), samples from the generator.

    Non-saturating GAN: E(x) = -log D(x) = softplus(-logit(x)). WGAN-GP: E(x) = -f(x) (critic value).
    """

    def __init__(self, model: GAN, temperature: float = 1.0, loc=None, scale=None):
        super().__init__(_check_model_dim(model), loc, scale)
        if model.conditional:
            raise InvalidInputError("model: DiscriminatorPrior needs an unconditional GAN")
        self.model, self.temperature = model, float(temperature)

    def _energy(self, u):
        s = self.model.discriminate(u)
        return F.softplus(-s) if self.model.config.loss == "nonsaturating" else -s

    def _sample(self, n, generator):
        return self.model.sample(n, temperature=self.temperature, generator=generator)

    def options(self):
        return {"temperature": self.temperature}


# ------------------------------------------------------------------------------------------------- IO
def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def prior_config(prior: BasePrior, provenance: dict | None = None) -> dict:
    """The JSON description of ``prior`` written beside its weights."""
    model = prior.model
    mdesc = None
    if model is not None:
        name = type(model).__name__
        if name not in MODEL_CLASSES or not hasattr(model, "config"):
            raise InvalidInputError(f"prior: model class {name} is not registered (see register_model)")
        mdesc = {"class": name, "config": config_to_dict(model.config)}
    return {
        "format": PRIOR_FORMAT,
        "version": 1,
        "prior": type(prior).__name__,
        "dim": prior.dim,
        "options": prior.options(),
        "model": mdesc,
        "provenance": provenance or {},
    }


def save_prior(prior: BasePrior, path, provenance: dict | None = None) -> Path:
    """Write ``path`` (.safetensors weights) and ``path.with_suffix('.json')`` (config), both atomically.

    ``provenance``: free JSON (training clips, licences, credit lines) stored in the config."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InvalidInputError(f"path: prior weights must end with .safetensors, got '{path}'")
    if type(prior).__name__ not in PRIOR_CLASSES:
        raise InvalidInputError(f"prior: {type(prior).__name__} is not registered (decorate it with @register_prior)")
    cfg = prior_config(prior, provenance)
    text = json.dumps(cfg, indent=2)
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in prior.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": PRIOR_FORMAT, "config": text})
    atomic_write_text(_sidecar(path), text + "\n")
    return path


def _build_model(desc: dict, where: str) -> nn.Module:
    if not isinstance(desc, dict) or "class" not in desc or "config" not in desc:
        raise ModelFileError(f"{where}: 'model' must be an object with 'class' and 'config'")
    if desc["class"] not in MODEL_CLASSES:
        raise ModelFileError(f"{where}: unknown model class {desc['class']!r}; known: {sorted(MODEL_CLASSES)}")
    cls, cfg_cls = MODEL_CLASSES[desc["class"]]
    try:
        return cls(config_from_dict(cfg_cls, desc["config"], f"{where}: model.config"))
    except InvalidInputError as e:
        raise ModelFileError(str(e)) from None


def load_prior(path, device: str | torch.device = "cpu", freeze: bool = True) -> BasePrior:
    """Load a prior written by :func:`save_prior` (reads the JSON sidecar, else the config embedded in the weights).

    Returns it on ``device``, frozen (eval mode, no parameter gradients) unless ``freeze=False``."""
    path = Path(path)
    tensors, meta = read_safetensors(path, "prior weights")
    side = _sidecar(path)
    try:
        text = side.read_text() if side.is_file() else meta.get("config")
        if text is None:
            raise ModelFileError(f"prior '{path}': no JSON config ('{side.name}' missing and none embedded)")
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelFileError(f"prior config '{side if side.is_file() else path}': malformed JSON ({e})") from None
    where = f"prior config for '{path.name}'"
    if not isinstance(cfg, dict) or cfg.get("format") != PRIOR_FORMAT:
        raise ModelFileError(f"{where}: not a {PRIOR_FORMAT} file")
    name = cfg.get("prior")
    if name not in PRIOR_CLASSES:
        raise ModelFileError(f"{where}: unknown prior class {name!r}; known: {sorted(PRIOR_CLASSES)}")
    cls = PRIOR_CLASSES[name]
    options = cfg.get("options") or {}
    if not isinstance(options, dict):
        raise ModelFileError(f"{where}: 'options' must be an object")
    try:
        if cfg.get("model") is None:
            prior = cls(int(cfg["dim"]), **options)
        else:
            prior = cls(_build_model(cfg["model"], where), **options)
    except (TypeError, KeyError, InvalidInputError) as e:
        raise ModelFileError(f"{where}: cannot build {name} ({e})") from None
    try:
        prior.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise ModelFileError(f"prior '{path}': weights do not match the config ({e})") from None
    if prior.dim != int(cfg.get("dim", prior.dim)):
        raise ModelFileError(f"{where}: dim {cfg.get('dim')} does not match the model's {prior.dim}")
    prior.provenance = cfg.get("provenance") or {}
    prior.to(device)
    return prior.freeze() if freeze else prior
