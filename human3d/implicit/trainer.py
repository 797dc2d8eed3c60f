"""Surface reconstruction from a point cloud or mesh on the training core: IGR or the hash-grid SDF.

``SurfaceFitTrainer(out, data=scan.ply, config=preset("fast")).train()`` writes a run folder (see
:mod:`human3d.train.core`: run.json, checkpoint.safetensors, log.jsonl, training.png) and, at the end, ``mesh.obj``
(MISE at ``mesh_resolution``, in the input's units) and ``turntable.png``. The points are normalised to the unit
sphere (:class:`~human3d.implicit.sampling.Normalization`, saved in the checkpoint) and meshes map back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from human3d.config import Config, from_preset
from human3d.errors import InvalidInputError
from human3d.implicit.extract import ExtractedMesh, extract_mesh
from human3d.implicit.io import read_points, turntable, write_mesh
from human3d.implicit.models import HashGridSDF, IGRNetwork, igr_loss, knn_sigma
from human3d.implicit.sampling import Normalization, load_mesh, sample_surface, unit_sphere_normalization
from human3d.train.core import RunConfig, Trainer

__all__ = ["SurfaceFitConfig", "SurfaceFitTrainer", "PRESETS", "preset", "compare_meshes"]


@dataclass
class SurfaceFitConfig(Config):
    """Fit one signed distance field to one point cloud (IGR loss, see :func:`~human3d.implicit.models.igr_loss`)."""

    method: str = "hashsdf"
    """``"igr"`` (softplus MLP, IGR) or ``"hashsdf"`` (hash grid + tiny MLP: the fast CPU path)."""
    n_points: int = 100_000
    """Points used (sampled from a mesh input; a larger cloud is subsampled)."""
    batch_size: int = 2048
    """Surface points per step (plus as many perturbed and 1/8 as many uniform points)."""
    lr: float = 1e-2
    """Adam learning rate."""
    eikonal_weight: float = 0.1
    """Weight of ``(||grad f|| - 1)^2``."""
    normal_weight: float = 1.0
    """Weight of ``||grad f - n||`` (when the input has normals)."""
    knn: int = 50
    """Off-surface samples are perturbed by each point's distance to its knn-th neighbour."""
    hidden: int = 64
    """Hidden width (IGR MLP; the hash SDF's MLP uses 32)."""
    n_layers: int = 4
    """Hidden layers of the IGR MLP (skip connection at the middle)."""
    hash_levels: int = 8
    """Hash-grid levels."""
    hash_max_resolution: int = 128
    """Finest hash-grid resolution over the cube [-1, 1]^3."""
    hash_log2_table_size: int = 15
    """log2 of the hash table entries per level."""
    init_radius: float = 0.5
    """Radius of the sphere the field starts as (unit-sphere units)."""
    mesh_resolution: int = 128
    """Marching-cubes resolution of the final mesh (MISE from 32^3)."""
    run: RunConfig = field(default_factory=lambda: RunConfig(max_steps=600, log_every=20, checkpoint_every=200))

    def validate(self) -> None:
        if self.method not in ("igr", "hashsdf"):
            raise InvalidInputError(f"method: expected 'igr' or 'hashsdf', got '{self.method}'")
        for name in ("n_points", "batch_size", "knn", "hidden", "n_layers", "hash_levels"):
            if not int(getattr(self, name)) > 0:
                raise InvalidInputError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if not self.lr > 0 or not 0 < self.init_radius < 1:
            raise InvalidInputError(f"lr / init_radius: expected lr > 0 and 0 < init_radius < 1, got {self.lr}, "
                                    f"{self.init_radius}")  # fmt: skip


PRESETS: dict[str, dict] = {
    # 12 levels 8 -> 512 with 2^19 entries: the armadillo needs the finer, less-colliding grid (2^15 / 128 reached only
    # 0.61 % of the diagonal in 3 CPU minutes; see tools/bench/results/implicit.txt)
    "fast": {"hash_levels": 12, "hash_max_resolution": 512, "hash_log2_table_size": 19},
    "igr": {"method": "igr", "lr": 5e-3, "hidden": 128, "n_layers": 4, "run.max_steps": 1000},
}


def preset(name: str = "fast", **overrides) -> SurfaceFitConfig:
    return from_preset(SurfaceFitConfig, PRESETS, name, overrides)


def make_surface_model(cfg: SurfaceFitConfig) -> torch.nn.Module:
    if cfg.method == "igr":
        return IGRNetwork(cfg.hidden, cfg.n_layers, radius=cfg.init_radius)
    return HashGridSDF(cfg.hash_levels, 2, cfg.hash_log2_table_size, 8, cfg.hash_max_resolution,
                       radius=cfg.init_radius)  # fmt: skip


class SurfaceFitTrainer(Trainer, kind="implicit-fit", config_class=SurfaceFitConfig, default_config=preset,
                        progress_fields=("manifold", "eikonal")):  # fmt: skip
    """IGR / hash-grid SDF fit of one point cloud or mesh (``data``: .ply/.xyz cloud or a mesh file)."""

    def build(self) -> None:
        cfg = self.config
        pts, normals = read_points(self.data, cfg.n_points, seed=self.run.seed)
        if len(pts) > cfg.n_points:
            keep = np.random.default_rng(self.run.seed).choice(len(pts), cfg.n_points, replace=False)
            pts, normals = pts[keep], (None if normals is None else normals[keep])
        self.normalization: Normalization = unit_sphere_normalization(pts)
        u = self.normalization.to_unit(pts)
        self.points = torch.tensor(u, dtype=torch.float32)  # [N, 3] unit-sphere units
        self.normals = None if normals is None else torch.tensor(normals, dtype=torch.float32)
        self.sigma = torch.tensor(knn_sigma(u, cfg.knn), dtype=torch.float32)  # [N]
        self.model = make_surface_model(cfg).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)

    def train_step(self) -> dict:
        cfg = self.config
        idx = torch.randint(0, len(self.points), (cfg.batch_size,), generator=self.generator)
        nrm = None if self.normals is None else self.normals[idx].to(self.device)
        loss, terms = igr_loss(self.model, self.points[idx].to(self.device), self.sigma[idx].to(self.device), nrm,
                               cfg.eikonal_weight, cfg.normal_weight, generator=self.generator)  # fmt: skip
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return terms

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": self.opt}

    def extra_state(self) -> dict:
        return {"normalization": self.normalization.to_dict()}

    # ------------------------------------------------------------------------------------------- products
    def field(self):
        """The trained SDF in unit-sphere coordinates, on the CPU: x [N, 3] -> [N] (negative inside)."""
        model = self.model.cpu().eval()
        return lambda x: model(x)

    def extract(self, resolution: int | None = None, method: str = "mise") -> ExtractedMesh:
        """The zero level set, in the input's units (normals unchanged: the map is a similarity)."""
        m = extract_mesh(self.field(), resolution or self.config.mesh_resolution, method)
        m.vertices = self.normalization.from_unit(m.vertices).astype(np.float32)
        return m

    def finalize(self) -> dict[str, Path]:
        m = self.extract()
        out = {"mesh": write_mesh(self.out / "mesh.obj", m.vertices, m.faces, m.normals)}
        out["turntable"] = turntable(self.out / "turntable.png", m.vertices, m.faces)
        return out

    def inside(self, points: np.ndarray) -> np.ndarray:
        """Occupancy of points [N, 3] in input units by the sign of the field -> bool [N]."""
        from human3d.implicit.extract import evaluate_field

        return evaluate_field(self.field(), self.normalization.to_unit(points).astype(np.float32)) < 0


def compare_meshes(pred_vertices, pred_faces, ref_path, n: int = 100_000, tau_fraction: float = 0.01,
                   pred_inside=None, seed: int = 0) -> dict:
    """Chamfer-L1, normal consistency, F-score and volumetric IoU of a predicted mesh against a reference mesh file.

    ``n`` surface points on each mesh; distances are also given relative to the reference's bounding-box diagonal
    (``*_rel``); F-score at ``tau = tau_fraction * diagonal``; IoU from ``n`` uniform samples of the reference's
    bounding box padded by 5 %, with occupancy by ray parity (reference) and ``pred_inside(points)`` (default: ray
    parity on the predicted mesh, which must then be watertight).
    """
    from human3d.implicit.sampling import SignedDistance
    from human3d.metrics import chamfer_l1, fscore, normal_consistency, volumetric_iou

    rv, rf = load_mesh(ref_path)
    diag = float(np.linalg.norm(rv.max(0) - rv.min(0)))
    p, pn = sample_surface(pred_vertices, pred_faces, n, seed=seed)
    q, qn = sample_surface(rv, rf, n, seed=seed + 1)
    t0 = time.perf_counter()
    cd = float(chamfer_l1(p, q))
    nc = float(normal_consistency(p, pn, q, qn))
    f, prec, rec = (float(t) for t in fscore(p, q, tau_fraction * diag))
    lo, hi = rv.min(0), rv.max(0)
    pad = 0.05 * (hi - lo)
    u = np.random.default_rng(seed + 2).uniform(lo - pad, hi + pad, (n, 3))
    ref_in = SignedDistance(rv, rf).inside(u)
    pred_in = pred_inside(u) if pred_inside is not None else SignedDistance(pred_vertices, pred_faces, False).inside(u)
    iou = float(volumetric_iou(torch.from_numpy(ref_in), torch.from_numpy(np.asarray(pred_in))))
    return {"chamfer_l1": cd, "chamfer_l1_rel": cd / diag, "normal_consistency": nc, "fscore": f,
            "precision": prec, "recall": rec, "tau": tau_fraction * diag, "iou": iou, "diagonal": diag,
            "metric_time_s": time.perf_counter() - t0}  # fmt: skip
