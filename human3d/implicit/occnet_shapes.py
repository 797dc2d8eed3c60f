"""An occupancy network over a shape family, conditioned on an input point cloud (Mescheder et al. 2019).

The same families as the DeepSDF shape space (:mod:`human3d.implicit.shapes`: Anny bodies generated on the fly in
:data:`~human3d.implicit.shapes.ANNY_FRAME`, or the watertight meshes of a folder, each in its own unit sphere), but
instead of one optimised code per shape, a ResNet-PointNet encoder maps a point cloud to the code ``c`` and the
decoder maps ``(x, c)`` to an occupancy logit (:class:`~human3d.implicit.models.OccupancyNetwork`). Completion is
**one forward pass** (encoder + MISE extraction of ``-logit``), no test-time optimisation.

Training data per shape, cached in the run (``samples.safetensors``): DeepSDF's sample mix
(:func:`~human3d.implicit.sampling.sample_sdf` with ``near_fraction`` of the samples near the surface; occupancy =
``sdf < 0``) and ``views_per_shape`` input clouds, each
the back-projected depth map of one random view (:func:`~human3d.implicit.completion.depth_view`: yaw uniform in
[0, 360) deg, elevation in [-5, 25] deg; camera 3 units from the frame's centre: metres for Anny, unit-frame units for
meshes), resampled to ``n_input`` points. Loss: BCE at ``points_per_shape`` query points per shape
(:func:`~human3d.implicit.models.occupancy_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from human3d.config import from_preset
from human3d.errors import DatasetError, InvalidInputError
from human3d.implicit.extract import ExtractedMesh, extract_mesh
from human3d.implicit.io import turntable, write_mesh
from human3d.implicit.models import OccupancyNetwork, occupancy_loss
from human3d.implicit.sampling import Normalization, sample_sdf
from human3d.implicit.shapes import (
    ANNY_FRAME, SAMPLES_FILE, ShapeFamilyConfig, ShapeSet, _mesh_files, _read_shape_set, _write_shape_set,
    anny_bodies, load_watertight,
)  # fmt: skip
from human3d.train.core import RunConfig, Trainer

__all__ = ["OccNetShapeConfig", "OccNetShapeTrainer", "OCCNET_PRESETS", "occnet_preset", "random_views",
           "resample_cloud", "open_occnet_run"]  # fmt: skip

_VIEW_KEYS = ("view_points", "view_origins")  # stored with the ShapeSet's params in the samples cache


def resample_cloud(points: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` of the points [N, 3] (a random subset; drawn with replacement when N < n) -> [n, 3]."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(points))[:n] if len(points) >= n else rng.integers(0, len(points), n)
    return np.asarray(points)[idx]


def random_views(vertices, faces, k: int, n_input: int, size: int, normalization: Normalization | None,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``k`` random one-view clouds of a mesh (vertices in the family's units; ``normalization`` maps them to the
    unit frame, None: they already are): points [k, n_input, 3] and camera centres [k, 3], unit frame."""
    from human3d.implicit.completion import depth_view

    rng = np.random.default_rng(seed)
    pts, origins = [], []
    for j in range(k):
        yaw, elev = rng.uniform(0.0, 360.0), rng.uniform(-5.0, 25.0)
        target = (0.0, 0.0, 0.0) if normalization is None else tuple(normalization.center)
        v = depth_view(vertices, faces, size=size, yaw=yaw, elevation=elev, target=target, seed=seed + j)
        p, o = (v.points, v.origin) if normalization is None else (normalization.to_unit(v.points),
                                                                   normalization.to_unit(v.origin[None])[0])  # fmt: skip
        pts.append(resample_cloud(p, n_input, seed + j)), origins.append(o)
    return np.stack(pts).astype(np.float32), np.stack(origins).astype(np.float32)


@dataclass
class OccNetShapeConfig(ShapeFamilyConfig):
    """Occupancy network conditioned on a point cloud, over a shape family (see the module docstring; the family
    fields: :class:`~human3d.implicit.shapes.ShapeFamilyConfig`)."""

    n_samples: int = 16384
    """Occupancy query samples per shape (:func:`~human3d.implicit.sampling.sample_sdf`'s mix)."""
    near_fraction: float = 0.5
    """Share of the query samples near the surface (the rest uniform in the cube; OccNet trains on uniform
    samples, DeepSDF on 94 % near ones: occupancy right at the surface is a coin toss)."""
    views_per_shape: int = 8
    """Input clouds per shape (one random depth view each)."""
    view_size: int = 96
    """Depth image side in pixels of the training views."""
    n_input: int = 1024
    """Points per input cloud (training views are resampled to it; so are larger clouds at inference)."""
    c_dim: int = 128
    """Code size C of the encoder."""
    encoder_hidden: int = 64
    """ResNet-PointNet width (its 5 blocks over every input point dominate a step's cost: 128 wide, a step of 16
    clouds of 1024 points takes ~1.2 s on one CPU core)."""
    hidden: int = 128
    """Decoder width."""
    n_layers: int = 4
    """Decoder hidden layers (input skip at the middle)."""
    lr: float = 1e-3
    """Adam learning rate (x 0.3 at 60 % and 85 % of the run)."""
    shapes_per_batch: int = 16
    """Shapes (one random view each) per step."""
    points_per_shape: int = 1024
    """Occupancy queries per shape per step."""
    mesh_resolution: int = 128
    """Marching-cubes resolution of completed meshes (MISE from 32^3)."""
    run: RunConfig = field(default_factory=lambda: RunConfig(max_steps=3000, log_every=50, checkpoint_every=500))

    def validate(self) -> None:
        self.validate_family()
        for name in ("n_samples", "views_per_shape", "n_input", "c_dim", "encoder_hidden", "hidden",
                     "n_layers", "shapes_per_batch", "points_per_shape"):  # fmt: skip
            if not int(getattr(self, name)) > 0:
                raise InvalidInputError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.view_size < 8 or not self.lr > 0 or not 0 <= self.near_fraction <= 1:
            raise InvalidInputError(f"view_size / lr / near_fraction: expected >= 8, > 0, in [0, 1]; got "
                                    f"{self.view_size}, {self.lr}, {self.near_fraction}")  # fmt: skip


OCCNET_PRESETS: dict[str, dict] = {
    # a CPU run of minutes: 64 bodies, 3000 steps
    "fast": {},
    # the benchmark's shape space: 256 bodies (run with a time budget: tools/bench/implicit.py --occnet)
    "bodies": {"n_shapes": 256, "n_samples": 8192, "run.max_steps": 12000, "run.checkpoint_every": 1000, "run.log_every": 100},
    # tests: a few shapes, tiny networks
    "tiny": {"n_shapes": 8, "n_samples": 4096, "views_per_shape": 4, "view_size": 48, "n_input": 256, "c_dim": 32,
             "encoder_hidden": 32, "hidden": 64, "n_layers": 3, "shapes_per_batch": 8, "points_per_shape": 512,
             "lr": 2e-3, "mesh_resolution": 32, "run.max_steps": 300, "run.log_every": 20, "run.checkpoint_every": 100},
}


def occnet_preset(name: str = "fast", **overrides) -> OccNetShapeConfig:
    return from_preset(OccNetShapeConfig, OCCNET_PRESETS, name, overrides)


def _occnet_shape_set(cfg: OccNetShapeConfig, data, seed: int) -> ShapeSet:
    """Occupancy samples and input views of the family (the same bodies as a DeepSDF run with the same seed); views in ``params["view_points"]`` [S, K, P, 3] and ``params["view_origins"]`` [S, K, 3]."""
    from tqdm import tqdm

    if cfg.family == "anny":
        params, verts, faces = anny_bodies(cfg.n_shapes, seed, cfg.poses, cfg.child_fraction)
        meshes = [(verts[i], faces, ANNY_FRAME) for i in range(len(verts))]
        names = [f"anny_{seed}_{i}" for i in range(len(verts))]
    else:
        params, meshes, names = {}, [], []
        for p in _mesh_files(data):
            meshes.append((*load_watertight(p), None)), names.append(p.name)
    samples, vp, vo = [], [], []
    for i, (v, f, frame) in enumerate(tqdm(meshes, desc="OccNet samples and views", disable=True)):
        s = sample_sdf(v, f, cfg.n_samples, cfg.near_fraction, seed=int(seed) * 100_003 + i, normalization=frame)
        samples.append(s)
        vv, nn = (v, frame) if frame is not None else (s.normalization.to_unit(v), None)
        p, o = random_views(vv, f, cfg.views_per_shape, cfg.n_input, cfg.view_size, nn, seed=int(seed) * 7919 + 31 * i)
        vp.append(p), vo.append(o)
    pts = torch.from_numpy(np.stack([s.points for s in samples]).astype(np.float32))
    sdf = torch.from_numpy(np.stack([s.sdf for s in samples]).astype(np.float32))
    params = {**params, "view_points": torch.from_numpy(np.stack(vp)), "view_origins": torch.from_numpy(np.stack(vo))}
    return ShapeSet(pts, sdf, [s.normalization for s in samples], names, params)


class OccNetShapeTrainer(Trainer, kind="OccNet", config_class=OccNetShapeConfig, default_config=occnet_preset,
                         progress_fields=("bce",), needs_data=False):  # fmt: skip
    """OccNet over a shape family. ``data``: the mesh folder (family ``"meshes"``) or None (Anny).

    ``RUN/`` holds ``checkpoint.safetensors`` (encoder + decoder), ``samples.safetensors`` (the cached samples and
    views) and, after training, ``example.obj`` / ``turntable.png`` (training shape 0 completed from its first view).
    """

    def build(self) -> None:
        cfg = self.config
        if cfg.family == "meshes":
            if self.data is None:
                raise InvalidInputError("data: the 'meshes' family needs a folder of watertight meshes")
            self.n_shapes = len(_mesh_files(self.data))
        else:
            if self.data is not None:
                raise InvalidInputError(f"data: the 'anny' family generates its bodies; got a data path '{self.data}'")
            self.n_shapes = cfg.n_shapes
        self._shapes: ShapeSet | None = None
        self.model = OccupancyNetwork(cfg.c_dim, cfg.hidden, cfg.n_layers, cfg.encoder_hidden).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)

    @property
    def shapes(self) -> ShapeSet:
        """Occupancy samples and input views of the training shapes (generated on first use, then cached)."""
        if self._shapes is None:
            cache = self.out / SAMPLES_FILE
            if cache.is_file():
                self._shapes = _read_shape_set(cache)
            else:
                self._shapes = _occnet_shape_set(self.config, self.data, self.run.seed)
            if len(self._shapes.names) != self.n_shapes or not all(k in self._shapes.params for k in _VIEW_KEYS):
                raise DatasetError(f"data: {len(self._shapes.names)} shapes in the samples, but the run has "
                                   f"{self.n_shapes} (the folder changed; delete '{cache}' to regenerate)")  # fmt: skip
            if not cache.is_file():
                _write_shape_set(cache, self._shapes)
        return self._shapes

    def before_train(self) -> None:
        self.shapes  # noqa: B018 - generate the samples before the clock starts

    def train_step(self) -> dict:
        cfg = self.config
        S, N = self.shapes.sdf.shape
        views = self.shapes.params["view_points"]  # [S, K, P, 3]
        p = self.progress()
        for grp in self.opt.param_groups:
            grp["lr"] = cfg.lr * (1.0 if p < 0.6 else (0.3 if p < 0.85 else 0.09))
        ids = torch.randint(0, S, (cfg.shapes_per_batch,), generator=self.generator)  # [B]
        k = torch.randint(0, views.shape[1], (len(ids),), generator=self.generator)
        cloud = views[ids, k].to(self.device)  # [B, P, 3]
        pj = torch.randint(0, N, (len(ids), cfg.points_per_shape), generator=self.generator)  # [B, M]
        x = self.shapes.points[ids[:, None], pj].to(self.device)  # [B, M, 3]
        inside = (self.shapes.sdf[ids[:, None], pj] < 0).to(self.device)  # [B, M]
        loss, terms = occupancy_loss(self.model, cloud, x, inside)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {**terms, "bce": terms["loss"]}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": self.opt}

    # ------------------------------------------------------------------------------------------- products
    @property
    def frame(self) -> Normalization | None:
        """The family's shared frame (Anny: :data:`ANNY_FRAME`); None for per-shape frames (mesh folders)."""
        return ANNY_FRAME if self.config.family == "anny" else None

    @torch.no_grad()
    def encode(self, points) -> torch.Tensor:
        """Code c [C] of a cloud [N, 3] in the unit frame (resampled to ``n_input`` points when larger)."""
        from human3d.implicit.completion import check_partial_points

        p = check_partial_points(points, "points")
        if len(p) > self.config.n_input:
            p = resample_cloud(p, self.config.n_input)
        enc = self.model.encoder.cpu().eval()
        return enc(torch.as_tensor(p, dtype=torch.float32)[None])[0]

    def extract(self, c: torch.Tensor, resolution: int | None = None, method: str = "mise",
                normalization: Normalization | None = None) -> ExtractedMesh:  # fmt: skip
        """Mesh of code c [C] (level set occupancy 0.5); vertices mapped out of the unit frame by ``normalization``
        (default: the family's frame; unit-frame vertices when there is none)."""
        model = self.model.cpu().eval()
        m = extract_mesh(model.field(c.detach().float()), resolution or self.config.mesh_resolution, method)
        norm = normalization or self.frame
        if norm is not None:
            m.vertices = norm.from_unit(m.vertices).astype(np.float32)
        return m

    def complete(self, points, resolution: int | None = None, method: str = "mise") -> ExtractedMesh:
        """The watertight mesh of a partial cloud [N, 3] in the family's units (Anny: metres in Anny's frame; mesh
        folders: the unit frame): one encoder pass, then MISE. Mesh in the same units."""
        from human3d.implicit.completion import check_partial_points

        p = check_partial_points(points, "points")
        return self.extract(self.encode(p if self.frame is None else self.frame.to_unit(p)), resolution, method)

    def shape_mesh(self, i: int | None = None, resolution: int | None = None, method: str = "mise") -> ExtractedMesh:
        """Training shape i completed from its first view, in its own units; None: the mean code of the training
        shapes' first views."""
        sh = self.shapes
        views = sh.params["view_points"][:, 0]  # [S, P, 3]
        if i is None:
            with torch.no_grad():
                c = self.model.encoder.cpu().eval()(views).mean(0)
            return self.extract(c, resolution, method)
        if not 0 <= int(i) < len(sh.names):
            raise InvalidInputError(f"shape: expected an index in 0..{len(sh.names) - 1}, got {i}")
        return self.extract(self.encode(views[int(i)].numpy()), resolution, method, sh.normalizations[int(i)])

    def finalize(self) -> dict:
        try:
            m = self.shape_mesh(0)
        except InvalidInputError:  # a run stopped very early: no 0.5 level set yet
            return {}
        return {"example": write_mesh(self.out / "example.obj", m.vertices, m.faces, m.normals),
                "turntable": turntable(self.out / "turntable.png", m.vertices, m.faces)}


def open_occnet_run(run) -> OccNetShapeTrainer:
    """Open an OccNet run folder (clear error when it is another kind of run)."""
    return OccNetShapeTrainer.from_run(run)
