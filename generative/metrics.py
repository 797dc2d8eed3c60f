"""Sample-quality and density-evaluation statistics used by tests and benchmarks.

* ``mmd_rbf``: unbiased squared maximum mean discrepancy with a sum of RBF kernels.
* ``nearest_neighbour_distance``: mean distance from each sample to its nearest data point.
* ``roc_auc``: probability that a positive scores lower energy than a negative (ties count 1/2).
* ``gaussian_nll``: test NLL of a diagonal (or full) Gaussian fitted on training data — the baseline density.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from generative.errors import InvalidInputError, check_tensor


def _flat(x, name):
    check_tensor(x, name, None, dtype_floating=True)
    if x.dim() < 2 or x.shape[0] < 2:
        raise InvalidInputError(f"{name}: expected [N >= 2, ...], got {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1).double()


def median_bandwidth(x: torch.Tensor) -> float:
    """Median pairwise Euclidean distance of ``x`` [N, ...] (a common RBF bandwidth)."""
    xf = _flat(x, "x")
    d = torch.cdist(xf, xf)
    return float(d[~torch.eye(len(xf), dtype=torch.bool)].median())


def mmd_rbf(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float] | None = None) -> float:
    """Unbiased MMD² between samples x [N, ...] and y [M, ...], kernel Σ_σ exp(-||a-b||² / (2σ²)).

    ``bandwidths`` default to the median distance of ``y`` times (0.5, 1, 2)."""
    xf, yf = _flat(x, "x"), _flat(y, "y")
    if xf.shape[1] != yf.shape[1]:
        raise InvalidInputError(f"x, y: feature sizes differ ({xf.shape[1]} vs {yf.shape[1]})")
    if bandwidths is None:
        m = median_bandwidth(y)
        bandwidths = (0.5 * m, m, 2 * m)

    def k(a, b):
        d2 = torch.cdist(a, b) ** 2
        return sum(torch.exp(-d2 / (2 * s * s)) for s in bandwidths)

    kxx, kyy, kxy = k(xf, xf), k(yf, yf), k(xf, yf)
    n, m = len(xf), len(yf)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(sxx + syy - 2 * kxy.mean())


def nearest_neighbour_distance(samples: torch.Tensor, data: torch.Tensor) -> float:
    """Mean over ``samples`` of the Euclidean distance to the nearest row of ``data``."""
    s, d = _flat(samples, "samples"), _flat(data, "data")
    return float(torch.cdist(s, d).min(1).values.mean())


def roc_auc(energy_pos: torch.Tensor, energy_neg: torch.Tensor) -> float:
    """AUC of separating positives (plausible, should have LOW energy) from negatives: P(E_pos < E_neg)."""
    p = torch.as_tensor(energy_pos).double().flatten()
    n = torch.as_tensor(energy_neg).double().flatten()
    if len(p) == 0 or len(n) == 0:
        raise InvalidInputError("roc_auc: need at least one positive and one negative score")
    less = (p[:, None] < n[None, :]).double().mean()
    ties = (p[:, None] == n[None, :]).double().mean()
    return float(less + 0.5 * ties)


def gaussian_nll(train: torch.Tensor, test: torch.Tensor, covariance: str = "diag", ridge: float = 1e-6) -> float:
    """Mean NLL (nats per example) of ``test`` under a Gaussian fitted by maximum likelihood on ``train``."""
    tr, te = _flat(train, "train"), _flat(test, "test")
    mean = tr.mean(0)
    xc = tr - mean
    D = tr.shape[1]
    if covariance == "diag":
        var = (xc**2).mean(0) + ridge * float((xc**2).mean())
        return float((0.5 * (((te - mean) ** 2) / var + var.log() + math.log(2 * math.pi))).sum(1).mean())
    cov = xc.T @ xc / len(tr) + ridge * float((xc**2).mean()) * torch.eye(D, dtype=torch.float64)
    L = torch.linalg.cholesky(cov)
    m = torch.linalg.solve_triangular(L, (te - mean).T, upper=False)
    return float((0.5 * (m**2).sum(0) + torch.log(L.diagonal()).sum() + 0.5 * D * math.log(2 * math.pi)).mean())
