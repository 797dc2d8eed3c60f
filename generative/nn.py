"""Building blocks shared by the generative models: MLPs, sinusoidal embeddings, config (de)serialisation, input checks.

Every model in :mod:`generative` is built from a dataclass config (``Model(config)``) so that it can be rebuilt from
JSON (``config_to_dict`` / ``config_from_dict``) when weights are loaded from safetensors.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence, TypeVar

import torch
from torch import nn

from generative.errors import InvalidInputError, check_tensor

C = TypeVar("C")

_ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "leaky_relu": lambda: nn.LeakyReLU(0.2)}


def activation(name: str) -> nn.Module:
    """Return a fresh activation module by name (``silu``, ``relu``, ``gelu``, ``tanh``, ``leaky_relu``)."""
    if name not in _ACTIVATIONS:
        raise InvalidInputError(f"activation: expected one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]()


def mlp(
    in_dim: int, hidden: Sequence[int], out_dim: int, act: str = "silu", zero_init_last: bool = False
) -> nn.Sequential:
    """Fully connected network ``in_dim -> hidden[0] -> ... -> out_dim`` with ``act`` between layers.

    ``hidden=()`` gives a single affine map. ``zero_init_last`` zeroes the last layer (identity-at-init residual
    branches, flow couplings, Glow split priors).
    """
    dims = [int(in_dim), *[int(h) for h in hidden], int(out_dim)]
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(activation(act))
    if zero_init_last:
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (integer or real) timesteps ``t`` [B] -> [B, dim] (DDPM / Transformer style)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # [B, half]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def randn(shape, generator: torch.Generator | None = None, device=None, dtype=None) -> torch.Tensor:
    """``torch.randn`` that accepts a generator on another device (draws there, then moves): lets callers pass a
    CPU ``torch.Generator`` for reproducible sampling of models that live on CUDA."""
    if generator is not None and device is not None and torch.device(device).type != generator.device.type:
        return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def rand(shape, generator: torch.Generator | None = None, device=None, dtype=None) -> torch.Tensor:
    """``torch.rand`` with the same generator/device handling as :func:`randn`."""
    if generator is not None and device is not None and torch.device(device).type != generator.device.type:
        return torch.rand(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
    return torch.rand(shape, generator=generator, device=device, dtype=dtype)


# ----------------------------------------------------------------------------------------------------- configs
def config_to_dict(config: Any) -> dict:
    """Dataclass config -> JSON-compatible dict (tuples become lists)."""
    if not dataclasses.is_dataclass(config):
        raise InvalidInputError(f"config: expected a dataclass instance, got {type(config).__name__}")
    return dataclasses.asdict(config)


def _tuplify(v):
    if isinstance(v, list):
        return tuple(_tuplify(u) for u in v)
    return v


def config_from_dict(cls: type[C], data: dict, name: str = "config") -> C:
    """Build dataclass ``cls`` from a dict (as read from JSON), rejecting unknown keys; lists become tuples."""
    if not isinstance(data, dict):
        raise InvalidInputError(f"{name}: expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise InvalidInputError(f"{name}: unknown {cls.__name__} field(s) {unknown}; expected a subset of {sorted(fields)}")
    try:
        return cls(**{k: _tuplify(v) for k, v in data.items()})
    except TypeError as e:
        raise InvalidInputError(f"{name}: cannot build {cls.__name__}: {e}") from None


# ------------------------------------------------------------------------------------------------------ checks
def check_data(x, name: str, shape: Sequence[int]) -> torch.Tensor:
    """Check ``x`` is a finite float tensor of shape [B, *shape] with B >= 1; return it."""
    check_tensor(x, name, (None, *shape), dtype_floating=True)
    if x.shape[0] == 0:
        raise InvalidInputError(f"{name}: empty batch (shape {tuple(x.shape)})")
    return x


def check_cond(cond, name: str, batch: int, cond_dim: int, num_classes: int) -> torch.Tensor | None:
    """Validate a condition: integer labels [B] in [0, num_classes) or vectors [B, cond_dim]; None if unconditional."""
    if cond_dim == 0 and num_classes == 0:
        if cond is not None:
            raise InvalidInputError(f"{name}: this model is unconditional (cond_dim=0, num_classes=0) but got a condition")
        return None
    if cond is None:
        raise InvalidInputError(f"{name}: this model is conditional; pass labels [B] or vectors [B, {cond_dim}]")
    if num_classes > 0:
        check_tensor(cond, name, (batch,), finite=False)
        if cond.is_floating_point():
            raise InvalidInputError(f"{name}: expected integer class labels [B], got {cond.dtype}")
        if bool((cond < 0).any()) or bool((cond >= num_classes).any()):
            raise InvalidInputError(f"{name}: labels must lie in [0, {num_classes})")
        return cond.long()
    check_tensor(cond, name, (batch, cond_dim), dtype_floating=True)
    return cond


class ConditionEmbedding(nn.Module):
    """Embeds labels (``nn.Embedding``) or vectors (``nn.Linear``) to ``dim``, with a learned *null* condition.

    The null embedding (index ``num_classes`` for labels, a learned vector for vectors) is used wherever
    ``drop`` [B] is True: condition dropout for classifier-free guidance, or unconditional sampling.
    ``dim = 0`` when the model is unconditional; ``forward`` then returns an empty [B, 0] tensor.
    """

    def __init__(self, cond_dim: int, num_classes: int, dim: int):
        super().__init__()
        self.cond_dim, self.num_classes = int(cond_dim), int(num_classes)
        self.dim = dim if (cond_dim > 0 or num_classes > 0) else 0
        self.register_buffer("_device_ref", torch.zeros(0), persistent=False)
        if num_classes > 0:
            self.table = nn.Embedding(num_classes + 1, dim)  # last row: null condition
        elif cond_dim > 0:
            self.proj = nn.Linear(cond_dim, dim)
            self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, cond: torch.Tensor | None, batch: int, drop: torch.Tensor | None = None) -> torch.Tensor:
        dev = self._device_ref.device
        if self.dim == 0:
            return torch.zeros(batch, 0, device=dev)
        if cond is None:  # fully unconditional: null everywhere
            drop = torch.ones(batch, dtype=torch.bool, device=dev)
        if self.num_classes > 0:
            idx = cond if cond is not None else torch.full((batch,), self.num_classes, device=dev)
            idx = idx.long()
            if drop is not None:
                idx = torch.where(drop, torch.full_like(idx, self.num_classes), idx)
            return self.table(idx)  # [B, dim]
        emb = self.proj(cond) if cond is not None else self.null.expand(batch, -1)
        if drop is not None:
            emb = torch.where(drop[:, None], self.null.expand_as(emb), emb)
        return emb
