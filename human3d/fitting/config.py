"""Configuration of SMPLify fitting (a dataclass with one docstring per field; the CLI maps onto it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from human3d.config import Config
from human3d.errors import InvalidInputError

__all__ = ["SMPLifyConfig", "TrainingBodyConfig", "PRIOR_WEIGHTS", "DEFAULT_PRIOR", "default_prior", "resolve_prior"]

# What the pose prior "auto" (the default) resolves to, per model family: the shipped RealNVP flow for both
# (tools/bench/fit.py --clips holdout: 8 mocap clips held out of every prior, 8 x 64 synthetic persons;
# tools/bench/results/fit_priors_holdout.json). Anny: flow 55.7 mm PA-MPJPE, vae 54.3 (paired flow - vae +1.4 +- 0.9
# mm, 4 of 8 clips each way: not clearly different), simple 66.9 (flow - simple -11.2 +- 1.1, 8 / 8 clips).
# SMPL family (the Anny-derived SMPL-format file): smpl_pose_flow 60.7 mm vs simple 74.2 (paired -13.5 +- 1.2 mm,
# 8 / 8 clips), vae 64.4 (flow - vae -3.7 +- 1.1, 7 / 8), gaussian 65.5 (-4.8 +- 1.1, 7 / 8).
DEFAULT_PRIOR: dict[str, str] = {"anny": "flow", "smpl": "flow"}


def default_prior(family: str) -> str:
    """The prior kind ``"auto"`` means for a model family (``"anny"``, or ``"smpl"`` / ``"smplh"`` / ``"smplx"``)."""
    from generative.priors.pose import pose_prior_family

    from human3d.body import MODEL_NAMES

    try:
        return DEFAULT_PRIOR[pose_prior_family(family)]
    except (InvalidInputError, KeyError):
        raise InvalidInputError(f"family: expected one of {', '.join(MODEL_NAMES)}, got {family!r}") from None


def resolve_prior(prior, family: str):
    """``prior`` with ``"auto"`` replaced by the family's default (:func:`default_prior`); anything else as is.
    The one place ``"auto"`` is resolved (fitting, the pipeline's logs and summary, the CLI)."""
    return default_prior(family) if isinstance(prior, str) and prior == "auto" else prior


# Default pose-prior weight schedule per prior kind (see SMPLifyConfig.pose_prior_weights), tuned on the synthetic
# set of tools/bench/fit.py. "simple": 0.5 x the diagonal Gaussian's NLL; "gaussian": the learned full-covariance
# Gaussian's NLL; "default" (vae, flow, gan and Prior objects) is the NLL-scaled schedule. Measured PA-MPJPE
# mean / median (2 x 32 persons, tools/bench/results/fit_priors.json): none 80.7 / 72.3, simple 64.9 / 64.8,
# gaussian 59.6 / 53.9, vae 57.0 / 53.1, flow 59.5 / 55.5, diffusion 59.4 / 56.9, gan 72.7 / 65.1 mm (the GAN
# discriminator with a SiLU MLP, R1 penalty and 80 % noisy-real negatives; the earlier leaky-ReLU one: 77.1 / 73.5).
PRIOR_WEIGHTS: dict[str, tuple[float, ...]] = {
    "simple": (0.01, 0.001, 0.00003),
    "gaussian": (0.003, 0.001, 0.0003),
    # DPoserPrior (stop-gradient denoising energy): its gradient ~ -score is ~15x the flow NLL's on perturbed poses
    "diffusion": (0.0003, 0.0001, 0.00003),
    "default": (0.003, 0.001, 0.0003),
    # GAN discriminator softplus(-D): the NLL-scaled schedule; 0.33x-10x of it fitted alike (Anny 72.5-73.2 mm,
    # SMPL-format 80.0-81.8 mm on 2 x 32 persons): its gradient is flat on the data (R1) and steep off it
    "gan": (0.003, 0.001, 0.0003),
}


@dataclass
class TrainingBodyConfig(Config):
    """The body model a learned fitting component (HMR, LGD, the keypoint lifter) is trained for: the base of their
    ``data`` components."""

    model: str = "anny"
    """The body model trained for: ``"anny"``, or the path of an SMPL / SMPL-H / SMPL-X model file (or folder) of
    family ``model_type`` (the mocap poses mapped onto its joints, random betas as shapes)."""
    model_type: str = "smpl"
    """Family of a ``model`` path: ``smpl``, ``smplh`` or ``smplx``."""
    num_betas: int = 10
    """Betas of an SMPL-family ``model`` (the shape size)."""

    def validate(self) -> None:
        if self.model != "anny" and self.model_type not in ("smpl", "smplh", "smplx"):
            raise InvalidInputError(f"data.model_type: expected smpl, smplh or smplx, got {self.model_type!r}")


@dataclass
class SMPLifyConfig(Config):
    """Staged SMPLify settings. Energies use residuals in units of the person's size (see ``robust_sigma``)."""

    optimizer: str = "adam"
    """``"adam"`` (default: fixed, cheap iterations, per-iteration annealing) or ``"lbfgs"`` (strong-Wolfe line
    search; each stage is split into ``len(pose_prior_weights)`` sub-stages with constant weights) or ``"lgd"``
    (learned gradient descent, :mod:`human3d.fitting.lgd`: stage 2 is the network's few learned updates; Anny,
    COCO-17 keypoints, identity extrinsics)."""

    lgd_weights: str | None = None
    """``optimizer="lgd"``: the network's safetensors file (None: the shipped ``human3d/fitting/weights/anny_lgd``)."""

    keypoints3d_weight: float | str = "auto"
    """Weight of the 3D keypoint term when 3D keypoints are given (``smplify(keypoints3d=...)``, or the lifter's
    with ``init="lift"``): ``w * mean_k |X_k - X_root - Y_k|^2 / (1.7 m)^2``, root = the mid-hip, camera frame.
    Larger trusts the 3D keypoints more than the 2D ones. A number: that weight for everyone (30 is best where the
    2D keypoints are good, noise under about 1 % of the person's size; 1000 on small, noisy people, 2 px on a
    54 px person). ``"auto"`` (default): per person, from how well the 2D keypoints agree with the 3D ones placed
    where they reproject best (:func:`human3d.fitting.lift.auto_keypoints3d_weight`: 30 where they agree, up to
    1000 where they do not; README)."""

    lift_weights: str | None = None
    """``init="lift"``: the keypoint lifter's safetensors file (None: the shipped
    ``human3d/fitting/weights/anny_lift``)."""

    camera_iters: int = 40
    """Iterations of stage 1 (camera translation and global orientation on the torso). Stage 1 uses the model's
    keypoints as a rigid body, so its iterations are cheap (no body-model evaluation)."""

    body_iters: int = 60
    """Iterations of stage 2 (full body: pose, shape, orientation, translation). With L-BFGS, the total number of
    L-BFGS iterations (split over the sub-stages); each may evaluate the model several times."""

    lr_camera: float = 0.05
    """Adam step size of stage 1 (radians for rotation, metres for translation)."""

    lr_body: float = 0.15
    """Adam step size of stage 2 (radians for poses; the phenotype logits and betas move at the same rate). With
    ``adam_eps`` large, steps along weakly constrained directions are smaller than this (see ``adam_eps``)."""

    lr_body_final: float = 0.1
    """Stage 2's Adam step decays (cosine) to this fraction of ``lr_body``. Adam's steps do not shrink with the
    gradient, so along directions the 2D keypoints barely constrain (limb depth) a large final step makes the
    pose wander; a small one lets it settle in the prior-weighted minimum."""

    adam_eps: float = 3e-3
    """Stage 2's Adam epsilon. Adam divides each step by ``sqrt(v) + eps``: with the tiny default (1e-8) a
    direction the 2D keypoints hardly constrain (a limb's depth) moves a full ``lr_body`` step per iteration on
    noise-sized gradients, and the pose wanders into another depth-flipped minimum even when started at the
    truth (synthetic set: 65 mm PA-MPJPE from the ground-truth pose). A large epsilon makes such directions
    move like plain gradient descent (slowly) while well-constrained ones keep Adam's steps; with
    ``lr_body`` 0.15 it lowered PA-MPJPE by ~3-4 mm."""

    lbfgs_lr: float = 1.0
    """L-BFGS initial step length (the strong-Wolfe line search adapts it)."""

    robust_sigma: float = 0.15
    """Geman–McClure scale, as a fraction of the person's size (longer side of the confident keypoints' bounding
    box). Residuals well below it are penalised quadratically, those above it saturate (outliers)."""

    robust_sigma_start: float = 1.0
    """Stage 2 starts with this Geman–McClure scale and shrinks it geometrically to ``robust_sigma``: a wide scale
    first (nearly quadratic: far-off limbs still pull, e.g. bent legs of a seated or crouching person starting
    from the straight rest pose), robust at the end."""

    pose_prior_weights: tuple[float, ...] | None = None
    """Pose-prior weight, annealed from the first value to the last through stage 2 (geometric interpolation;
    SMPLify's schedule 404 -> 57.4 -> 4.78 likewise ends ~100x lower than it starts). Multiplies the prior's
    energy. None: the prior kind's own schedule from :data:`PRIOR_WEIGHTS` (energies of different kinds have
    different scales, so each kind has its own). Small final values are on purpose: the data term at a 2 px noise
    level is ~1e-4 per person (residuals in units of the person's size); on the synthetic set the earlier
    (0.03, 0.006, 0.0012) for ``"simple"`` cost ~5 mm PA-MPJPE (tools/bench/fit.py)."""

    latent_pose: bool = False
    """With a VAE pose prior (``prior="vae"``), optimise its latent code ``z`` and take the pose from the decoder
    (VPoser-style, Pavlakos et al. 2019); the prior energy is then ``|z|^2`` weighted by ``latent_weights``.
    Off by default: the shipped VAE (16-d latent) reconstructs held-out poses to only ~45 mm PA-MPJPE, so the fit
    cannot reach the keypoints (synthetic set: 84 mm, 8.6 px reprojection, vs 60 mm scoring the VAE's ELBO)."""

    latent_weights: tuple[float, ...] = (0.05, 0.01, 0.002)
    """Weight of ``|z|^2`` (VAE latent fitting), annealed through stage 2 like ``pose_prior_weights``."""

    restarts: int = 1
    """Stage-2 runs per person from different limb poses (the mean pose, then limbs perturbed by the prior's
    spread); each person keeps the run with the lowest data energy + ``restart_prior_weight`` x pose prior.
    Costs ``restarts`` x the stage-2 time."""

    restart_prior_weight: float = 0.003
    """Pose-prior weight in the energy that ranks restarts (see ``restarts``)."""

    shape_weights: tuple[float, ...] = (0.5, 0.1, 0.02)
    """Shape-prior weight (betas L2, or Anny phenotype logits L2 about the neutral 0.5), annealed like the pose."""

    angle_limit_weight: float = 10.0
    """Weight of the joint-angle limit energy (elbows and knees must not bend backwards), not annealed."""

    depth_weight: float = 0.01
    """Stage 1: weight of ``((t_z - t_z_init) / 0.1 m)^2`` keeping depth near the similar-triangles estimate."""

    silhouette_weight: float = 100.0
    """Weight of the silhouette energy (only for persons given a mask, see ``silhouette_loss``). The default
    suits ``"chamfer"`` (squared distances in units of the person's size, like the keypoint term). On the
    synthetic set of tools/bench/fit_silhouette.py 100 and 300 gave the same 3D gains, 300 with a larger
    reprojection error; 1000 pulls the fit off the keypoints and is worse than no mask (with strong gradients
    Adam moves every direction at full step, see ``adam_eps``). ``"soft_iou"`` (energy in [0, 1]) needs ~2."""

    silhouette_start: float = 0.3
    """Fraction of stage 2 (0 to 1) after which the silhouette term is on. The keypoints first pose the limbs:
    from the mean pose a limb's nearest mask outline may belong to another part, and with the term on from the
    start fits were worse than without a mask (synthetic set: 91 vs 59 mm PA-MPJPE at weight 300)."""

    silhouette_loss: str = "chamfer"
    """``"chamfer"``: distance-transform / Chamfer energy between the projected vertices and the mask
    (:func:`~human3d.fitting.losses.silhouette_chamfer_energy`; no rendering). ``"soft_iou"``: ``1 - soft IoU``
    of the soft rasterizer's silhouette (:func:`~human3d.render.soft.render_soft_silhouette`), which is biased
    on a dense mesh (many sub-pixel faces blur and widen the soft silhouette) and much slower."""

    silhouette_size: int = 256
    """Longer side (pixels) of the grid the silhouette is compared on: each mask is cropped to its bounding box
    (plus a margin) and resampled to it."""

    silhouette_points: int = 512
    """``"chamfer"``: mask boundary points per person that must each lie near a projected vertex."""

    silhouette_vertices: int = 2000
    """``"chamfer"``: vertices (farthest-point sample of the rest mesh) the boundary points are matched to."""

    try_flip: bool = True
    """Also start from the orientation turned by pi about the body's vertical axis (person facing away) and keep,
    per person, whichever fits the torso better after stage 1."""

    default_hypothesis: bool = True
    """With an ``init`` (e.g. a regressor's prediction), also run the default start (camera init, both facings,
    restarts) and let each person keep the lower energy. ``False``: stage 2 runs from the ``init`` alone (as SPIN's
    fits in the loop do), the default only for persons without a finite ``init``; about half the time."""

    retry_hypotheses: tuple[str, ...] = ("flip", "mirror")
    """Stage-2 retries for persons whose fit fails a plausibility check (joint limits, interpenetrating limbs,
    depth order against the keypoints' visibility; :mod:`~human3d.fitting.hypotheses`): ``"flip"`` (stage 1's
    other facing) and ``"mirror"`` (the pose's left and right mirrored). Each person keeps the lowest energy;
    ``()``: no retries."""

    retry_all: bool = False
    """Run ``retry_hypotheses`` for every person, not only the flagged ones (costs one stage 2 per retry)."""

    check_weight: float = 0.0
    """Added to a hypothesis's ranking energy per failed plausibility check (0: hypotheses are chosen by energy
    alone; the ranking energy of a good fit is ~0.05-0.1)."""

    occluded_confidence: float = 0.5
    """Keypoints with ``0 < confidence <`` this count as marked occluded, those at or above it as visible, in the
    depth-order check (detectors score hidden joints low; COCO ground truth's flags both map to 1)."""

    min_keypoints: int = 4
    """A person needs at least this many confident keypoints spanning at least ``min_extent_px`` to be fitted;
    others are skipped (reported in the diagnostics with the reason), never fitted to NaN."""

    min_extent_px: float = 4.0
    """Smallest accepted extent (pixels) of a person's confident keypoints."""

    outside_margin: float = 0.1
    """Keypoints farther outside the image than this fraction of its size are treated as missing."""

    tol: float = 0.0
    """Stop stage 2 early once the total energy fell by less than this fraction over 10 iterations (0: never)."""

    threads: int | None = 1
    """torch intra-op threads during the fit (restored afterwards). The fit's tensors are small ([B, K, J] sized),
    so threading gains little and costs a lot on a loaded machine (spinning workers); None keeps torch's setting.
    ``tools/bench/fit.py --threads`` compares."""

    optimize_shape: bool = True
    """Fit shape parameters (betas / phenotypes). If False they stay at their initial (neutral) value."""

    def validate(self):
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise InvalidInputError(f"threads: expected a positive integer or None, got {self.threads!r}")
        if not (isinstance(self.silhouette_start, (int, float)) and 0.0 <= self.silhouette_start <= 1.0):
            raise InvalidInputError(f"silhouette_start: expected a number in [0, 1], got {self.silhouette_start!r}")
        if self.silhouette_loss not in ("chamfer", "soft_iou"):
            raise InvalidInputError(f"silhouette_loss: expected 'chamfer' or 'soft_iou', got {self.silhouette_loss!r}")
        for name in ("silhouette_size", "silhouette_points", "silhouette_vertices"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 8:
                raise InvalidInputError(f"{name}: expected an integer >= 8, got {v!r}")
        if not (isinstance(self.silhouette_weight, (int, float)) and self.silhouette_weight >= 0):
            raise InvalidInputError(
                f"silhouette_weight: expected a non-negative number, got {self.silhouette_weight!r}"
            )
        w3 = self.keypoints3d_weight
        if w3 != "auto" and not (isinstance(w3, (int, float)) and not isinstance(w3, bool) and math.isfinite(w3)
                                 and w3 >= 0):
            raise InvalidInputError(f"keypoints3d_weight: expected 'auto' or a non-negative number, got {w3!r}")
        if self.optimizer not in ("adam", "lbfgs", "lgd"):
            raise InvalidInputError(f"optimizer: expected 'adam', 'lbfgs' or 'lgd', got {self.optimizer!r}")
        for name in ("camera_iters", "body_iters", "min_keypoints", "restarts"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise InvalidInputError(f"{name}: expected a non-negative integer, got {v!r}")
        if self.restarts < 1:
            raise InvalidInputError(f"restarts: expected at least 1, got {self.restarts}")
        if not (isinstance(self.restart_prior_weight, (int, float)) and self.restart_prior_weight >= 0):
            raise InvalidInputError(f"restart_prior_weight: expected a non-negative number, got {self.restart_prior_weight!r}")
        if self.min_keypoints < 2:
            raise InvalidInputError(f"min_keypoints: expected at least 2, got {self.min_keypoints}")
        for name in ("lr_camera", "lr_body", "lr_body_final", "adam_eps", "lbfgs_lr", "robust_sigma", "robust_sigma_start"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0):
                raise InvalidInputError(f"{name}: expected a positive number, got {v!r}")
        bad = [h for h in tuple(self.retry_hypotheses) if h not in ("flip", "mirror")]
        if bad:
            raise InvalidInputError(f"retry_hypotheses: expected names among 'flip', 'mirror', got {bad}")
        self.retry_hypotheses = tuple(self.retry_hypotheses)
        for name in ("pose_prior_weights", "latent_weights", "shape_weights"):
            if name == "pose_prior_weights" and self.pose_prior_weights is None:
                continue
            v = tuple(getattr(self, name))
            if not v or any(not (isinstance(x, (int, float)) and x >= 0) for x in v):
                raise InvalidInputError(f"{name}: expected a non-empty tuple of non-negative numbers, got {v!r}")
            setattr(self, name, v)

    def prior_weights(self, kind: str) -> tuple[float, ...]:
        """The pose-prior schedule for prior ``kind`` (``pose_prior_weights`` if set, else the kind's default)."""
        if self.pose_prior_weights is not None:
            return self.pose_prior_weights
        return PRIOR_WEIGHTS.get(kind, PRIOR_WEIGHTS["default"])
