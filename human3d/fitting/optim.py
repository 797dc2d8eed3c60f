"""The optimiser driver of SMPLify: Adam or L-BFGS over a list of tensors, with explicit schedules.

An energy is a function ``energy(t) -> [B]`` of the schedule position ``t`` in [0, 1] (0 = start of the stage,
1 = end); weights that anneal through a stage read it (:func:`anneal`). The driver minimises ``energy(t).sum()``
(persons are independent, so each gets its own gradient):

* Adam: ``t = i / (n - 1)`` at iteration ``i`` of ``n``, and the step size decays from ``lr`` to
  ``lr * lr_final`` on a cosine (:func:`cosine_lr`);
* L-BFGS (strong-Wolfe line search): the stage is split into ``sub_stages`` runs of constant ``t``
  (``s / (sub_stages - 1)``, ``s = 0 .. sub_stages - 1``), the iterations shared out as evenly as possible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["Schedule", "Progress", "anneal", "cosine_lr", "minimize"]

EnergyFn = Callable[[float], torch.Tensor]


def anneal(values: tuple[float, ...], t: float) -> float:
    """Piecewise geometric interpolation through ``values`` at t in [0, 1] (linear where a value is 0)."""
    if len(values) == 1:
        return float(values[0])
    x = t * (len(values) - 1)
    i = min(int(x), len(values) - 2)
    f = x - i
    a, b = float(values[i]), float(values[i + 1])
    if a > 0 and b > 0:
        return math.exp((1 - f) * math.log(a) + f * math.log(b))
    return (1 - f) * a + f * b


def cosine_lr(lr: float, lr_final: float, t: float) -> float:
    """Adam's step size at ``t`` in [0, 1]: cosine decay from ``lr`` to ``lr * lr_final``."""
    return lr * (lr_final + (1 - lr_final) * 0.5 * (1 + math.cos(math.pi * t)))


@dataclass(frozen=True)
class Schedule:
    """How one stage is optimised (see the module docstring)."""

    optimizer: str  # "adam" or "lbfgs"
    iters: int  # Adam iterations, or L-BFGS iterations in all (split over the sub-stages)
    lr: float  # Adam's initial step size
    lbfgs_lr: float = 1.0  # L-BFGS initial step length
    lr_final: float = 0.1  # Adam: the step decays (cosine) to this fraction of lr
    eps: float = 1e-8  # Adam's epsilon
    sub_stages: int = 1  # L-BFGS: runs of constant t
    tol: float = 0.0  # Adam: stop once the total energy fell by less than this fraction over 10 iterations


class Progress:
    """Iteration counter feeding a tqdm bar (``progress=True``) or a callable ``(done, total)``."""

    def __init__(self, progress, total: int):
        self.fn, self.bar, self.done, self.total = None, None, 0, total
        if callable(progress):
            self.fn = progress
        elif progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="smplify", unit="it", leave=False)

    def update(self, n: int = 1):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        if self.fn is not None:
            self.fn(self.done, self.total)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def minimize(variables: list[torch.Tensor], energy: EnergyFn, schedule: Schedule, bar: Progress,
             history: list[float] | None = None, on_step: Callable[[], None] | None = None) -> int:  # fmt: skip
    """Minimise ``energy(t).sum()`` over ``variables`` (leaf tensors, changed in place) following ``schedule``.

    Appends the mean energy of every Adam iteration (L-BFGS: of each sub-stage's last evaluation) to ``history``,
    calls ``on_step()`` at the same points (after the step; the energy closure can stash what it evaluated) and
    returns the iterations run."""
    if schedule.iters <= 0:
        return 0
    if schedule.optimizer == "adam":
        return _adam(variables, energy, schedule, bar, history, on_step)
    return _lbfgs(variables, energy, schedule, bar, history, on_step)


def _adam(variables, energy: EnergyFn, sc: Schedule, bar: Progress, history, on_step=None) -> int:
    opt = torch.optim.Adam(variables, lr=sc.lr, eps=sc.eps)
    last = None
    n = sc.iters
    for i in range(n):
        t = i / max(n - 1, 1)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(sc.lr, sc.lr_final, t)
        opt.zero_grad(set_to_none=True)
        e = energy(t)
        e.sum().backward()
        opt.step()
        bar.update(1)
        if history is not None:
            history.append(float(e.detach().mean()))
        if on_step is not None:
            on_step()
        if sc.tol > 0 and i % 10 == 9:
            cur = float(e.detach().sum())
            if last is not None and (last - cur) <= sc.tol * abs(last):
                bar.update(n - i - 1)
                return i + 1
            last = cur
    return n


def _lbfgs(variables, energy: EnergyFn, sc: Schedule, bar: Progress, history, on_step=None) -> int:
    n_sub = max(1, min(sc.sub_stages, sc.iters))
    done = 0
    for s in range(n_sub):
        its = sc.iters // n_sub + (1 if s < sc.iters % n_sub else 0)
        t = s / max(n_sub - 1, 1)
        opt = torch.optim.LBFGS(variables, lr=sc.lbfgs_lr, max_iter=its, history_size=10,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)  # fmt: skip
        last_e = {}

        def closure():
            opt.zero_grad(set_to_none=True)
            e = energy(t)
            last_e["e"] = e.detach()
            loss = e.sum()
            loss.backward()
            return loss

        opt.step(closure)
        done += int(opt.state[opt._params[0]].get("n_iter", its))
        bar.update(its)
        if history is not None and "e" in last_e:
            history.append(float(last_e["e"].mean()))
        if on_step is not None:
            on_step()
    return done
