"""``SpinHMRTrainer``: HMR trained with SMPLify in the loop, SPIN-style (Kolotouros et al., ICCV 2019).

Real photos come with 2D keypoints but no 3D labels. SPIN trains the regressor on them by fitting: the regressor's
prediction initialises SMPLify, and the fit becomes the regressor's 3D / parameter target. Each image keeps the best
fit found so far in a **fit table**, replaced only where a new fit's reprojection energy is lower, so targets only
improve as the regressor (and with it the fits' starts) gets better.

Here a fraction ``spin.fraction_2d`` of the synthetic training set (:class:`~human3d.hmr.trainer.HMRTrainer`'s,
chosen once from ``run.seed``) is treated as **2D-only**: of those images the trainer reads only ``images``,
``kp2d`` and ``K``; their 3D labels (``kp3d``, pose, shape, ``transl``) are replaced by NaN when the set is loaded,
so a read of them would show as NaN in the losses. Each step:

1. the batch's images are cropped and regressed as in HMR training;
2. on steps ``spin.every`` divides, up to ``spin.max_fits`` of its 2D-only images are fitted by
   :func:`~human3d.fitting.smplify.smplify` from the regressor's (detached, final IEF iteration) camera-frame
   prediction (``init``, ``default_hypothesis=False``: stage 2 from that start alone, no retries), to the image's
   in-image keypoints (confidence 1);
3. each fit's **reprojection energy** :func:`fit_energy` (SMPLify's robust data term: Geman-McClure, residuals in
   units of the person's size, ``spin.fit.robust_sigma``; no prior) is compared to the table's entry, and the entry
   (parameters in the camera frame + energy) is replaced only where it is lower (:func:`keep_lower`; duplicates of
   an image in one batch: the lowest, the first on ties);
4. the losses: HMR's (:func:`~human3d.hmr.trainer.hmr_losses`) on the 3D-labelled images; on the 2D-only images
   with a table entry (energy finite and at most ``spin.max_energy``), the same losses against the entry (its
   parameters and its 3D keypoints), the 3D / parameter terms weighted by ``spin.target_weight``; on 2D-only images
   without one, the 2D reprojection alone. Each group counts by its share of the batch. The adversarial prior and
   its discriminators as in HMR.

The table lives in the checkpoint (``model.spin.*`` tensors of :meth:`SpinHMRTrainer.state_tensors`), so a resumed
run keeps it. Logged per step: ``spin_fitted`` (fits this step), ``spin_updated`` (share of them that replaced their
entry), ``spin_energy`` (mean energy of the filled entries) and ``spin_filled`` (share of the table filled);
``mpjpe_mm`` is on the 3D-labelled images only. ``spin.every = 0`` never fits: the baseline in which 2D-only images
train on their 2D reprojection alone (``tools/bench/hmr_spin.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from human3d.config import Config, from_preset
from human3d.errors import InvalidInputError, ModelFileError
from human3d.hmr.model import to_model_params, weak_to_perspective
from human3d.hmr.trainer import PRESETS, HMRConfig, HMRTrainer, hmr_losses

__all__ = ["SpinFitConfig", "SpinConfig", "SpinHMRConfig", "SpinHMRTrainer", "spin_preset", "keep_lower",
           "fit_energy", "two_d_only_mask", "LABELS_2D"]  # fmt: skip

LABELS_2D = ("images", "kp2d", "K")
"""The training set's fields a 2D-only image keeps (what a real photo with keypoints has); the rest are 3D labels."""


@dataclass
class SpinFitConfig(Config):
    """The fits in the loop (:func:`~human3d.fitting.smplify.smplify` from the regressor's prediction)."""

    optimizer: str = "adam"
    """Stage 2's optimiser: ``"adam"`` (``body_iters`` iterations) or ``"lgd"`` (the shipped learned gradient
    descent, 4 updates)."""
    body_iters: int = 30
    """Adam iterations of stage 2 (0.05 CPU s per person at 30 on this machine's core, vs 0.12 s at SMPLify's
    default 60)."""
    prior: str = "simple"
    """Pose prior of the fits (``"simple"``, ``"flow"``, ... as ``smplify(prior=...)``; ``"auto"``: the model's
    default)."""
    robust_sigma: float = 0.15
    """Geman-McClure scale of the fits and of the table's reprojection energy (fraction of the person's size)."""

    def validate(self) -> None:
        if self.optimizer not in ("adam", "lgd"):
            raise InvalidInputError(f"spin.fit.optimizer: expected 'adam' or 'lgd', got {self.optimizer!r}")
        if not (isinstance(self.body_iters, int) and self.body_iters >= 1):
            raise InvalidInputError(f"spin.fit.body_iters: expected an int >= 1, got {self.body_iters!r}")
        if not (isinstance(self.robust_sigma, (int, float)) and self.robust_sigma > 0):
            raise InvalidInputError(f"spin.fit.robust_sigma: expected a positive number, got {self.robust_sigma!r}")
        if not isinstance(self.prior, str):
            raise InvalidInputError(f"spin.fit.prior: expected a prior name, got {self.prior!r}")


@dataclass
class SpinConfig(Config):
    """The SPIN-style training mode: which images are 2D-only and how they are fitted and supervised."""

    fraction_2d: float = 0.5
    """Fraction of the training images treated as 2D-only (their 3D labels never read: the situation of real
    photos with keypoints), drawn once from ``run.seed``."""
    every: int = 1
    """Fit on every this-many-th step (0: never; the 2D-only images then train on their 2D reprojection alone)."""
    max_fits: int = 8
    """At most this many of a batch's 2D-only images are fitted per fitting step (the first ones drawn)."""
    target_weight: float = 1.0
    """Factor on the 3D keypoint, pose and shape loss weights (``loss.*``) for the fit targets of 2D-only images."""
    max_energy: float | None = None
    """Table entries with a reprojection energy above this are not used as targets (None: every filled entry).
    The energy saturates at 1 per keypoint (17 at most)."""
    fit: SpinFitConfig = field(default_factory=SpinFitConfig)
    """The fits' settings."""

    def validate(self) -> None:
        if not (isinstance(self.fraction_2d, (int, float)) and 0.0 <= self.fraction_2d <= 1.0):
            raise InvalidInputError(f"spin.fraction_2d: expected a number in [0, 1], got {self.fraction_2d!r}")
        for name in ("every", "max_fits"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 0):
                raise InvalidInputError(f"spin.{name}: expected a non-negative int, got {v!r}")
        if not (isinstance(self.target_weight, (int, float)) and self.target_weight >= 0):
            raise InvalidInputError(f"spin.target_weight: expected a non-negative number, got {self.target_weight!r}")
        if self.max_energy is not None and not (isinstance(self.max_energy, (int, float)) and self.max_energy > 0):
            raise InvalidInputError(f"spin.max_energy: expected a positive number or null, got {self.max_energy!r}")


@dataclass
class SpinHMRConfig(HMRConfig):
    """HMR training (:class:`~human3d.hmr.trainer.HMRConfig`) + the SPIN mode (``spin``)."""

    spin: SpinConfig = field(default_factory=SpinConfig)
    """The SPIN-style loop: 2D-only images, fits in the loop, fit targets."""


def spin_preset(name: str = "fast", **overrides) -> SpinHMRConfig:
    """A :class:`SpinHMRConfig` from HMR's :data:`~human3d.hmr.trainer.PRESETS` with dotted ``overrides``."""
    return from_preset(SpinHMRConfig, PRESETS, name, overrides)


# ------------------------------------------------------------------------------------------------------ pure parts
def two_d_only_mask(n: int, fraction: float, seed: int) -> torch.Tensor:
    """``[n]`` bool: ``round(fraction * n)`` images drawn without replacement from ``seed`` are 2D-only."""
    g = torch.Generator().manual_seed(int(seed) * 7919 + 17)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=g)[: int(round(fraction * n))]] = True
    return mask


def keep_lower(table: torch.Tensor, rows: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """SPIN's update rule: which new fits replace their table entry.

    ``table`` [R] current energies (+inf: empty), ``rows`` [n] the entry of each new fit, ``new`` [n] their
    energies (NaN: a failed fit, never kept). Returns ``[n]`` bool: fit ``i`` is written to ``rows[i]`` -- the same
    as applying the fits one after the other, each replacing the entry only when strictly lower (so among several
    fits of one entry the lowest wins, the first on ties). The caller writes the winners (at most one per entry)."""
    new = torch.where(torch.isnan(new), torch.full_like(new, float("inf")), new)
    best = table.clone().scatter_reduce(0, rows, new, reduce="amin", include_self=True)  # [R]
    win = (new < table[rows]) & (new == best[rows])
    same = rows[:, None] == rows[None, :]  # [n, n]
    earlier = torch.ones_like(same).tril(-1)  # j < i
    return win & ~(same & earlier & win[None, :]).any(1)


def fit_energy(kp_fn, params: dict[str, torch.Tensor], keypoints: torch.Tensor, K: torch.Tensor,
               sigma: float = 0.15, skeleton: str = "coco17") -> torch.Tensor:  # fmt: skip
    """Reprojection energy ``[B]`` of camera-frame ``params`` against ``keypoints`` [B, 17, 3] (u, v, confidence)
    under intrinsics ``K`` [B, 3, 3]: SMPLify's robust data term (:func:`~human3d.fitting.losses.reprojection_energy`,
    residuals in units of :func:`~human3d.fitting.losses.keypoint_scale`), no prior."""
    from human3d.fitting.losses import keypoint_scale, reprojection_energy
    from human3d.geometry.cameras import project_points

    with torch.no_grad():
        proj = project_points(kp_fn(params)[skeleton], K)
        return reprojection_energy(proj.uv, proj.valid, keypoints, keypoint_scale(keypoints), sigma)


def fit_keypoints(kp2d: torch.Tensor) -> torch.Tensor:
    """The fits' targets ``[B, 17, 3]``: the in-image keypoints (flag > 0) with confidence 1, the others 0."""
    on = (kp2d[..., 2] > 0).to(kp2d.dtype)
    return torch.cat([kp2d[..., :2] * on[..., None], on[..., None]], -1)


# ------------------------------------------------------------------------------------------------------ trainer
class SpinHMRTrainer(HMRTrainer, kind="HMR-SPIN", config_class=SpinHMRConfig, default_config=lambda: spin_preset("fast"),
                     progress_fields=("mpjpe_mm", "spin_energy")):  # fmt: skip
    """HMR with SPIN's fits in the loop on the 2D-only part of the synthetic set (module docstring)."""

    def build(self) -> None:
        super().build()
        names = self.model.parameter_shapes()
        self.shape_name = "phenotypes" if "phenotypes" in names else "betas"
        self._table: dict[str, torch.Tensor] | None = None  # built with the set (its size)
        self._loaded_table: dict[str, torch.Tensor] | None = None
        self.last_fits: dict | None = None  # the last fitting step's inputs and results (tests, diagnostics)

    # ---- data: 2D-only images lose their 3D labels ----------------------------------------------------------------
    def train_set(self) -> dict[str, torch.Tensor]:
        first = self._set is None
        s = super().train_set()
        if first:
            n = s["images"].shape[0]
            self.two_d = two_d_only_mask(n, self.config.spin.fraction_2d, self.run.seed)
            for k, v in s.items():
                if k not in LABELS_2D and v.is_floating_point():
                    v = v.clone()
                    v[self.two_d] = float("nan")  # never read: a read would show as NaN
                    s[k] = v
            self.rows = torch.full((n,), -1, dtype=torch.long)
            self.rows[self.two_d] = torch.arange(int(self.two_d.sum()))
            self._init_table(int(self.two_d.sum()))
        return s

    def _init_table(self, R: int) -> None:
        shapes = self.model.parameter_shapes()
        t = {f"params.{k}": torch.zeros(R, *shapes[k]) for k in ("global_orient", "body_pose", self.shape_name, "transl")}
        t["energy"] = torch.full((R,), float("inf"))
        t["index"] = self.two_d.nonzero().flatten()
        if self._loaded_table is not None:
            lt = self._loaded_table
            if set(lt) != set(t) or any(lt[k].shape != t[k].shape for k in t) or not torch.equal(lt["index"], t["index"]):
                raise ModelFileError(f"checkpoint '{self.out}': its SPIN fit table does not match the run's 2D-only "
                                     f"images (spin.fraction_2d / data / seed changed?)")  # fmt: skip
            t = {k: v.clone() for k, v in lt.items()}
        self._table = t

    def table(self) -> dict[str, torch.Tensor]:
        """The fit table: ``index`` [R] (image of each entry), ``energy`` [R] (+inf: empty), ``params.<name>``
        [R, ...] camera-frame parameters."""
        self.train_set()
        return self._table

    # ---- the step -------------------------------------------------------------------------------------------------
    def _predicted(self, theta, centre, side, K) -> dict[str, torch.Tensor]:
        dec = self.net.decode(theta)
        return to_model_params(dec, self.space, self.shape_name, weak_to_perspective(dec["cam"], centre, side, K))

    def _fit(self, idx: torch.Tensor, sel: torch.Tensor, init: dict, b: dict) -> dict:
        """Fit the batch entries ``sel`` from ``init`` and update the table by :func:`keep_lower`."""
        from human3d.fitting import smplify

        f = self.config.spin.fit
        kp = fit_keypoints(b["kp2d"][sel]).cpu()
        K = b["K"][sel].cpu()
        start = {k: v[sel].detach().cpu() for k, v in init.items()}
        size = tuple(b["images"].shape[2:0:-1])  # (W, H)
        extra = {"body_iters": f.body_iters} if f.optimizer == "adam" else {}
        r = smplify(self.model, kp, K, prior=f.prior, init=start, default_hypothesis=False, retry_hypotheses=(),
                    optimizer=f.optimizer, robust_sigma=f.robust_sigma, image_size=size, **extra)  # fmt: skip
        params = {k: r.params[k].detach().cpu().float() for k in start}
        e = fit_energy(self.kp_fn, params, kp, K, f.robust_sigma)
        e = torch.where(r.fitted, e, torch.full_like(e, float("nan")))
        tab = self.table()
        rows = self.rows[idx[sel].cpu()]
        win = keep_lower(tab["energy"], rows, e)
        for k, v in params.items():
            tab[f"params.{k}"][rows[win]] = v[win]
        tab["energy"][rows[win]] = e[win]
        self.last_fits = {"index": idx[sel].cpu(), "keypoints": kp, "K": K, "init": start, "params": params,
                          "energy": e, "replaced": win, "image_size": size}  # fmt: skip
        return {"spin_fitted": int(sel.sum()), "spin_updated": float(win.float().mean())}

    def train_step(self) -> dict:
        self._spin_info: dict = {}
        info = super().train_step()  # HMR's step; the losses come from step_losses below
        tab = self.table()
        filled = torch.isfinite(tab["energy"])
        info.update(self._spin_info, spin_filled=float(filled.float().mean()) if filled.numel() else 0.0,
                    spin_energy=float(tab["energy"][filled].mean()) if bool(filled.any()) else float("nan"))  # fmt: skip
        return info

    def step_losses(self, thetas, b: dict, idx: torch.Tensor, centre, side) -> tuple:
        """Fit the batch's 2D-only images (on fitting steps), then HMR's losses per group: 3D-labelled images
        against their labels, 2D-only ones against their table entries or on 2D alone (module docstring)."""
        c, sp = self.config, self.config.spin
        centre, side = centre.to(self.device), side.to(self.device)
        two = self.two_d[idx].to(self.device)  # [B]
        if sp.every and self.step % sp.every == 0 and sp.max_fits and bool(two.any()):
            with torch.no_grad():
                init = self._predicted(thetas[-1].detach(), centre, side, b["K"])
            sel = two.clone()
            sel[sel.cumsum(0) > sp.max_fits] = False
            self._spin_info.update(self._fit(idx, sel.cpu(), init, b))
        tab, rows, B, T = self.table(), self.rows[idx], len(idx), len(thetas)
        e = torch.full((B,), float("inf"))
        if tab["energy"].numel():
            e = torch.where(rows >= 0, tab["energy"][rows.clamp_min(0)], e)
        ok = torch.isfinite(e) & (e <= (sp.max_energy if sp.max_energy is not None else float("inf")))
        has_fit = (two.cpu() & ok).to(self.device)
        loss, groups = 0.0, torch.zeros(B, self.space.num_groups * 3, device=self.device)
        info = {k: float("nan") for k in ("mpjpe_mm_1", f"mpjpe_mm_{T}", f"kp2d_{T}")}  # no 3D-labelled image
        for name, m in (("labelled", ~two), ("fitted", has_fit), ("none", two & ~has_fit)):
            if not bool(m.any()):
                continue
            sub, w = {k: v[m] for k, v in b.items()}, c.loss
            if name != "labelled":  # targets: the table's entry, or (2D only, weight 0) the detached prediction
                with torch.no_grad():
                    p = ({k.removeprefix("params."): v[rows[m.cpu()]].to(self.device) for k, v in tab.items()
                          if k.startswith("params.")} if name == "fitted"
                         else self._predicted(thetas[-1][m].detach(), centre[m], side[m], sub["K"]))  # fmt: skip
                    sub.update({k: v for k, v in p.items() if k in sub}, kp3d=self.kp_fn(p)["coco17"])
                f = sp.target_weight if name == "fitted" else 0.0
                w = w.replace(kp3d=w.kp3d * f, pose=w.pose * f, shape=w.shape * f)
            lg, inf, gr = hmr_losses(self.net, [t[m] for t in thetas], sub, centre[m], side[m], self.kp_fn,
                                     self.space, w)  # fmt: skip
            loss = loss + (float(m.sum()) / B) * lg
            groups = groups.index_put((m.nonzero().flatten(),), gr)
            if name == "labelled":  # mpjpe_mm: the 3D-labelled images only
                info = inf
        return loss, info, groups

    # ---- state ----------------------------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {**super().state_tensors(), **{f"spin.{k}": v for k, v in self.table().items()}}

    def load_state_tensors(self, tensors, state, path) -> None:
        own = {k.removeprefix("spin."): v for k, v in tensors.items() if k.startswith("spin.")}
        if not own:
            raise ModelFileError(f"checkpoint '{path}': no SPIN fit table (spin.* tensors)")
        super().load_state_tensors({k: v for k, v in tensors.items() if not k.startswith("spin.")}, state, path)
        self._loaded_table = own
        if self._set is not None:  # the set is loaded already: check and take the table now
            self._init_table(int(self.two_d.sum()))

    def card(self) -> dict:
        sp = self.config.spin
        return {**super().card(), "spin": {"fraction_2d": sp.fraction_2d, "every": sp.every,
                                           "fit": sp.fit.to_dict(),
                                           "note": "3D labels of the 2D-only images were never read; their targets "
                                                   "were SMPLify fits kept when their reprojection energy dropped"}}  # fmt: skip
