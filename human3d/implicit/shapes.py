"""A learned shape space: DeepSDF's auto-decoder over many shapes, on the training core.

Shapes come from a family:

* ``"anny"``: Anny bodies generated on the fly (no files, no licence question): phenotypes drawn as the synthetic
  people of :mod:`human3d.synth` (gender, age with a share of children, muscle, weight, height, proportions) and
  poses drawn from the shipped Anny pose flow (trained on the retargeted mocap corpus; ``implicit`` may not import
  ``motion``), upright (``global_orient = 0``, root at the origin, Y up, facing +Z, metres). Anny's mesh is closed but has four components: the skin and three closed inner parts (two
  eyeballs, the mouth) that sit inside the head; ray parity would call points inside an eyeball *outside*, so only
  the skin's faces (the largest component, :func:`anny_skin_faces`) are used. Posed bodies can self-intersect
  (a hand in the hip): there open3d's parity sign is wrong in the overlap; such overlaps are small in the corpus.
  Every body shares one frame, :data:`ANNY_FRAME` (metres -> unit ball), so size and pose stay in the codes.
* ``"meshes"``: every watertight mesh of a folder (``data``), each normalised to its own unit sphere (DeepSDF's
  convention), sorted by file name.

Training: per-shape codes ``z_i ~ N(0, code_sigma^2)`` and the decoder minimise clamped L1 (``delta``) on DeepSDF's
sample mix (:func:`~human3d.implicit.sampling.sample_sdf`) plus ``code_reg ||z||^2 / code_sigma^2``
(:func:`~human3d.implicit.models.deepsdf_loss`). The end products are the code priors (a Gaussian and a RealNVP
flow over the learned codes, :mod:`human3d.implicit.code_prior`) and the mean shape's mesh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from human3d.config import Config, from_preset
from human3d.errors import DatasetError, InvalidInputError
from human3d.implicit.extract import ExtractedMesh, extract_mesh
from human3d.implicit.io import turntable, write_mesh
from human3d.implicit.models import AutoDecoder, deepsdf_loss
from human3d.implicit.sampling import Normalization, check_mesh, load_mesh, sample_sdf
from human3d.train.core import RunConfig, Trainer

__all__ = [
    "ANNY_FRAME",
    "ShapeSet",
    "anny_skin_faces",
    "anny_bodies",
    "anny_shape_set",
    "mesh_dir_shape_set",
    "ShapeFamilyConfig",
    "ShapeSpaceConfig",
    "ShapeSpaceTrainer",
    "load_watertight",
    "SHAPE_PRESETS",
    "shape_preset",
]

#: The shared frame of every Anny body: metres -> unit ball (root at the origin). Over 128 mocap-posed bodies the
#: vertices reach y in [-1.29, 1.34] m (a tall adult with raised hands) and 1.44 m from (0, -0.05, 0): scale 1.5 m
#: (:func:`anny_bodies` redraws the rare body beyond radius 0.97).
ANNY_FRAME = Normalization((0.0, -0.05, 0.0), 1.5)


@dataclass
class ShapeSet:
    """SDF samples of S shapes, N each (unit frame of each shape): points [S, N, 3], sdf [S, N] (negative inside)."""

    points: torch.Tensor
    sdf: torch.Tensor
    normalizations: list[Normalization]
    names: list[str]
    params: dict[str, torch.Tensor] = field(default_factory=dict)  # Anny: phenotypes [S, 6], body_pose [S, 309]


_SKIN_CACHE: dict[int, np.ndarray] = {}


def anny_skin_faces(model) -> np.ndarray:
    """Faces [F', 3] of the largest connected component of Anny's mesh (the skin; eyeballs and mouth dropped)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = model.faces.cpu().numpy().astype(np.int64)
    key = id(model)
    if key not in _SKIN_CACHE:
        V = int(f.max()) + 1
        e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]]])
        _, lab = connected_components(coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(V, V)), directed=False)
        big = np.bincount(lab[f[:, 0]]).argmax()
        _SKIN_CACHE[key] = f[lab[f[:, 0]] == big]
    return _SKIN_CACHE[key]


def _anny_phenotypes(n: int, g: torch.Generator, child_fraction: float) -> torch.Tensor:
    """[n, 6] phenotypes, drawn as :meth:`human3d.synth.generator.SynthGenerator.sample_people` draws them."""
    ph = torch.rand(n, 6, generator=g)
    child = torch.rand(n, generator=g) < child_fraction
    ph[:, 1] = torch.where(child, 0.25 + 0.3 * ph[:, 1], 0.55 + 0.45 * ph[:, 1])  # age
    ph[:, 5] = 0.2 + 0.6 * ph[:, 5]  # proportions
    return ph


def anny_bodies(n: int, seed: int = 0, poses: str = "prior", child_fraction: float = 0.2, model=None,
                max_radius: float = 0.97) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:  # fmt: skip
    """``n`` random upright Anny bodies: (params {phenotypes [n, 6], body_pose [n, 309]}, vertices [n, V, 3]
    float64 metres, skin faces [F', 3]). ``poses``: ``"prior"`` (samples of the shipped Anny pose flow, trained on
    the retargeted mocap corpus: :func:`generative.priors.pose.load_pose_prior`) or ``"rest"``. Bodies reaching
    beyond ``max_radius`` in :data:`ANNY_FRAME` are redrawn. The same seed gives the same bodies."""
    if n < 1:
        raise InvalidInputError(f"n_shapes: expected >= 1, got {n}")
    if poses not in ("prior", "rest"):
        raise InvalidInputError(f"poses: expected 'prior' or 'rest', got {poses!r}")
    if model is None:
        from human3d.body import load_body_model

        model = load_body_model("anny")
    g = torch.Generator().manual_seed(int(seed))
    jp = model.parameter_shapes()["body_pose"][0]
    pose_prior = None
    if poses == "prior":
        from generative.priors.pose import load_pose_prior

        pose_prior = load_pose_prior("flow", model="anny")
    phs, bps, verts, have = [], [], [], 0
    while have < n:
        k = max(8, n - have + 4)
        ph = _anny_phenotypes(k, g, child_fraction)
        with torch.no_grad():
            bp = torch.zeros(k, jp) if pose_prior is None else pose_prior.to_body_pose(
                pose_prior.sample(k, generator=g)).float()  # fmt: skip
            v = model(phenotypes=ph, body_pose=bp).vertices.double().cpu().numpy()  # [k, V, 3]
        ok = np.linalg.norm(ANNY_FRAME.to_unit(v.reshape(-1, 3)).reshape(v.shape), axis=2).max(1) <= max_radius
        phs.append(ph[ok]), bps.append(bp[ok]), verts.append(v[ok])
        have += int(ok.sum())
    ph, bp, v = torch.cat(phs)[:n], torch.cat(bps)[:n], np.concatenate(verts)[:n]
    return {"phenotypes": ph, "body_pose": bp}, v, anny_skin_faces(model)


def _stack(samples, names, norms, params=None) -> ShapeSet:
    pts = torch.from_numpy(np.stack([s.points for s in samples]).astype(np.float32))
    sdf = torch.from_numpy(np.stack([s.sdf for s in samples]).astype(np.float32))
    return ShapeSet(pts, sdf, norms, names, params or {})


def anny_shape_set(n: int, n_samples: int, seed: int = 0, poses: str = "prior", child_fraction: float = 0.2,
                   model=None, progress: bool = False) -> ShapeSet:  # fmt: skip
    """DeepSDF samples of :func:`anny_bodies` in :data:`ANNY_FRAME`."""
    from tqdm import tqdm

    params, verts, faces = anny_bodies(n, seed, poses, child_fraction, model)
    out = []
    for i in tqdm(range(n), desc="Anny SDF samples", disable=not progress, leave=False):
        out.append(sample_sdf(verts[i], faces, n_samples, seed=int(seed) * 100_003 + i, normalization=ANNY_FRAME))
    return _stack(out, [f"anny_{seed}_{i}" for i in range(n)], [ANNY_FRAME] * n, params)


MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl", ".glb")


def _mesh_files(folder) -> list[Path]:
    d = Path(folder)
    if not d.is_dir():
        raise InvalidInputError(f"data: '{d}' is not a folder of meshes (expected a folder of {MESH_SUFFIXES} files)")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in MESH_SUFFIXES)
    if len(files) < 1:
        raise DatasetError(f"data: no meshes ({', '.join(MESH_SUFFIXES)}) in '{d}'")
    return files


def load_watertight(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A mesh of a shape folder: vertices, faces; :class:`DatasetError` naming the file unless it is watertight."""
    v, f = load_mesh(path)
    try:
        check_mesh(v, f, name=f"mesh '{path.name}'")
    except InvalidInputError as e:
        raise DatasetError(str(e)) from None
    return v, f


def mesh_dir_shape_set(folder, n_samples: int, seed: int = 0, progress: bool = False) -> ShapeSet:
    """DeepSDF samples of every watertight mesh in ``folder`` (sorted by name), each in its own unit sphere."""
    from tqdm import tqdm

    files = _mesh_files(folder)
    out, names = [], []
    for i, p in enumerate(tqdm(files, desc="mesh SDF samples", disable=not progress, leave=False)):
        v, f = load_watertight(p)
        out.append(sample_sdf(v, f, n_samples, seed=int(seed) * 100_003 + i))
        names.append(p.name)
    return _stack(out, names, [s.normalization for s in out])


SAMPLES_FILE = "samples.safetensors"


def _write_shape_set(path: Path, shapes: ShapeSet) -> None:
    """Cache of a run's SDF samples (so a resumed or reopened run does not regenerate them), written atomically."""
    import json

    from safetensors.torch import save_file

    from human3d.io_utils import atomic_path

    tensors = {"points": shapes.points.contiguous(), "sdf": shapes.sdf.contiguous()}
    tensors.update({f"params.{k}": v.contiguous() for k, v in shapes.params.items()})
    meta = {"names": json.dumps(shapes.names), "normalizations": json.dumps([n.to_dict() for n in shapes.normalizations])}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def _read_shape_set(path: Path, normalizations=None, names=None) -> ShapeSet:
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    from human3d.errors import ModelFileError

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
        t = load_file(str(path))
        norms = [Normalization.from_dict(d) for d in json.loads(meta["normalizations"])]
        return ShapeSet(t["points"], t["sdf"], norms, list(json.loads(meta["names"])),
                        {k[len("params."):]: v for k, v in t.items() if k.startswith("params.")})  # fmt: skip
    except (OSError, KeyError, ValueError) as e:
        raise ModelFileError(f"samples '{path}' are corrupt ({e}); delete the file to regenerate them") from None


# ------------------------------------------------------------------------------------------------- the trainer
@dataclass
class ShapeFamilyConfig(Config):
    """The shape family a shape-space model trains on (DeepSDF here, OccNet in :mod:`~human3d.implicit.occnet_shapes`)."""

    family: str = "anny"
    """``"anny"`` (bodies generated on the fly) or ``"meshes"`` (the watertight meshes of the data folder)."""
    n_shapes: int = 64
    """Anny bodies to generate (the meshes family uses every mesh of the folder)."""
    poses: str = "prior"
    """Anny poses: ``"prior"`` (samples of the shipped Anny pose flow, trained on the mocap corpus) or ``"rest"``."""
    child_fraction: float = 0.2
    """Share of Anny bodies with child ages."""

    def validate_family(self) -> None:
        if self.family not in ("anny", "meshes"):
            raise InvalidInputError(f"family: expected 'anny' or 'meshes', got {self.family!r}")
        if self.poses not in ("prior", "rest"):
            raise InvalidInputError(f"poses: expected 'prior' or 'rest', got {self.poses!r}")
        if not int(self.n_shapes) > 0 or not 0 <= self.child_fraction <= 1:
            raise InvalidInputError(f"n_shapes / child_fraction: expected a positive integer and a fraction in [0, 1], "
                                    f"got {self.n_shapes}, {self.child_fraction}")  # fmt: skip


@dataclass
class ShapeSpaceConfig(ShapeFamilyConfig):
    """DeepSDF auto-decoder over a family of shapes (see the module docstring)."""

    n_samples: int = 16384
    """SDF samples per shape (DeepSDF mix: 94 % near the surface, 6 % uniform in the cube)."""
    latent_dim: int = 32
    """Code size D."""
    hidden: int = 128
    """Decoder width."""
    n_layers: int = 4
    """Decoder hidden layers (input skip at the middle)."""
    code_sigma: float = 0.1
    """Std of the codes' N(0, sigma^2) prior (and of their initialisation)."""
    code_reg: float = 1e-4
    """Weight of ``||z||^2 / sigma^2`` in the loss."""
    delta: float = 0.1
    """Clamp of the clamped L1 (unit-ball units)."""
    lr: float = 1e-3
    """Adam learning rate of the decoder (x 0.3 at 60 % and 85 % of the run)."""
    lr_codes: float = 3e-3
    """Adam learning rate of the codes (same schedule)."""
    shapes_per_batch: int = 16
    """Shapes per step."""
    points_per_shape: int = 1024
    """SDF samples per shape per step."""
    mesh_resolution: int = 128
    """Marching-cubes resolution of the end-product meshes (MISE from 32^3)."""
    flow_layers: int = 4
    """RealNVP blocks of the learned code prior."""
    flow_hidden: int = 64
    """Coupling MLP width of the code flow."""
    flow_steps: int = 2000
    """Optimisation steps of the code flow (trained in ``finalize``)."""
    flow_noise: float = 0.05
    """Gaussian noise (in standardised code units) added to the codes while the flow trains (regularises a flow
    fit to few codes)."""
    run: RunConfig = field(default_factory=lambda: RunConfig(max_steps=3000, log_every=50, checkpoint_every=500))

    def validate(self) -> None:
        self.validate_family()
        for name in ("n_shapes", "n_samples", "latent_dim", "hidden", "n_layers", "shapes_per_batch",
                     "points_per_shape", "flow_layers", "flow_hidden", "flow_steps"):  # fmt: skip
            if not int(getattr(self, name)) > 0:
                raise InvalidInputError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        for name in ("code_sigma", "delta", "lr", "lr_codes"):
            if not float(getattr(self, name)) > 0:
                raise InvalidInputError(f"{name}: expected a positive number, got {getattr(self, name)}")
        if not 0 <= self.child_fraction <= 1 or self.code_reg < 0 or self.flow_noise < 0:
            raise InvalidInputError("child_fraction / code_reg / flow_noise: expected a fraction in [0, 1] and "
                                    "non-negative weights")  # fmt: skip


SHAPE_PRESETS: dict[str, dict] = {
    # a CPU run of minutes: 64 bodies, 3000 steps
    "fast": {},
    # the benchmark's shape space: 256 bodies (run with a time budget: tools/bench/implicit.py --shapes)
    "bodies": {"n_shapes": 256, "n_samples": 8192, "run.max_steps": 12000, "run.checkpoint_every": 1000, "run.log_every": 100},
    # tests: a few bodies, a tiny decoder
    "tiny": {"n_shapes": 8, "n_samples": 4096, "latent_dim": 8, "hidden": 64, "n_layers": 3, "shapes_per_batch": 8,
             "points_per_shape": 512, "mesh_resolution": 32, "flow_steps": 200, "flow_hidden": 32, "flow_layers": 2,
             "run.max_steps": 200, "run.log_every": 20, "run.checkpoint_every": 100},
}


def shape_preset(name: str = "fast", **overrides) -> ShapeSpaceConfig:
    return from_preset(ShapeSpaceConfig, SHAPE_PRESETS, name, overrides)


class ShapeSpaceTrainer(Trainer, kind="DeepSDF", config_class=ShapeSpaceConfig, default_config=shape_preset,
                        progress_fields=("clamped_l1",), needs_data=False):  # fmt: skip
    """DeepSDF over a shape family. ``data``: the mesh folder (family ``"meshes"``) or None (Anny).

    After training, ``RUN/`` holds ``checkpoint.safetensors`` (decoder + codes), ``prior_gaussian.*`` and
    ``prior_flow.*`` (the code priors, generative's prior files), ``mean.obj`` (decoder at the mean code, in the
    family's units) and ``turntable.png``."""

    def build(self) -> None:
        cfg = self.config
        if cfg.family == "meshes":
            if self.data is None:
                raise InvalidInputError("data: the 'meshes' family needs a folder of watertight meshes")
            S = len(_mesh_files(self.data))
        else:
            if self.data is not None:
                raise InvalidInputError(f"data: the 'anny' family generates its bodies; got a data path '{self.data}'")
            S = cfg.n_shapes
        self._shapes: ShapeSet | None = None  # generated on first use (training), not when a run is only opened
        self.names: list[str] | None = None
        self.normalizations: list[Normalization] | None = None
        self.shape_params: dict[str, torch.Tensor] = {}
        self.model = AutoDecoder(S, cfg.latent_dim, cfg.code_sigma, hidden=cfg.hidden, n_layers=cfg.n_layers,
                                 skip=cfg.n_layers // 2 if cfg.n_layers > 2 else None).to(self.device)  # fmt: skip
        self.opt = torch.optim.Adam([{"params": self.model.decoder.parameters(), "lr": cfg.lr},
                                     {"params": self.model.codes.parameters(), "lr": cfg.lr_codes}])  # fmt: skip

    @property
    def shapes(self) -> ShapeSet:
        """The training shapes' SDF samples (generated from the seed on first use; the same on resume)."""
        if self._shapes is None:
            cfg = self.config
            cache = self.out / SAMPLES_FILE
            if cache.is_file():
                self._shapes = _read_shape_set(cache, self.normalizations, self.names)
            elif cfg.family == "meshes":
                self._shapes = mesh_dir_shape_set(self.data, cfg.n_samples, self.run.seed, progress=True)
            else:
                self._shapes = anny_shape_set(cfg.n_shapes, cfg.n_samples, self.run.seed, cfg.poses,
                                              cfg.child_fraction, progress=True)  # fmt: skip
            if len(self._shapes.names) != self.model.codes.num_embeddings:
                raise DatasetError(f"data: {len(self._shapes.names)} shapes, but the run has "
                                   f"{self.model.codes.num_embeddings} codes (the folder changed)")  # fmt: skip
            self.names, self.normalizations = self._shapes.names, self._shapes.normalizations
            self.shape_params = self._shapes.params
            if not cache.is_file():
                _write_shape_set(cache, self._shapes)
        return self._shapes

    def before_train(self) -> None:
        self.shapes  # noqa: B018 - generate the samples before the clock starts

    def _lr_factor(self) -> float:
        p = self.progress()
        return 1.0 if p < 0.6 else (0.3 if p < 0.85 else 0.09)

    def train_step(self) -> dict:
        cfg = self.config
        S, N = self.shapes.sdf.shape
        f = self._lr_factor()
        for grp, base in zip(self.opt.param_groups, (cfg.lr, cfg.lr_codes)):
            grp["lr"] = base * f
        ids = torch.randperm(S, generator=self.generator)[: cfg.shapes_per_batch]
        if len(ids) < cfg.shapes_per_batch:  # fewer shapes than the batch: draw with replacement
            ids = torch.randint(0, S, (cfg.shapes_per_batch,), generator=self.generator)
        pj = torch.randint(0, N, (len(ids), cfg.points_per_shape), generator=self.generator)  # [B, P]
        x = self.shapes.points[ids[:, None], pj].to(self.device)  # [B, P, 3]
        sdf = self.shapes.sdf[ids[:, None], pj].to(self.device)  # [B, P]
        loss, terms = deepsdf_loss(self.model, ids.to(self.device), x, sdf, cfg.delta, cfg.code_reg)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return terms

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = dict(self.model.state_dict())
        if not self.shape_params and self.normalizations is None:
            self.shapes  # noqa: B018 - a fresh run saved before training: generate to record the parameters
        out.update({f"shape_params.{k}": v for k, v in self.shape_params.items()})
        return out

    def load_state_tensors(self, tensors, state, path) -> None:
        from human3d.errors import ModelFileError

        try:
            self.model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("shape_params.")})
        except RuntimeError as e:
            raise ModelFileError(f"checkpoint '{path}': does not match the DeepSDF config ({e})") from None
        self.shape_params = {k[len("shape_params."):]: v for k, v in tensors.items() if k.startswith("shape_params.")}
        if "names" in state and "normalizations" in state:
            self.names = list(state["names"])
            self.normalizations = [Normalization.from_dict(d) for d in state["normalizations"]]

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": self.opt}

    def extra_state(self) -> dict:
        if self.normalizations is None:
            self.shapes  # noqa: B018
        return {"names": self.names, "normalizations": [n.to_dict() for n in self.normalizations]}

    # ------------------------------------------------------------------------------------------- products
    @property
    def codes(self) -> torch.Tensor:
        """The learned codes [S, D] (CPU)."""
        return self.model.codes.weight.detach().cpu().clone()

    @property
    def decoder(self):
        """The decoder f(z [..., D], x [..., 3]) -> [...], on the CPU in eval mode."""
        return self.model.decoder.cpu().eval()

    @property
    def frame(self) -> Normalization | None:
        """The family's shared frame (Anny: :data:`ANNY_FRAME`); None for per-shape frames (mesh folders)."""
        return ANNY_FRAME if self.config.family == "anny" else None

    def field(self, z: torch.Tensor):
        """Negative-inside field of code z [D] in the unit frame: x [N, 3] -> [N]."""
        dec, z = self.decoder, z.detach().reshape(1, -1).float()
        return lambda x: dec(z, x)

    def extract(self, z: torch.Tensor, resolution: int | None = None, method: str = "mise",
                normalization: Normalization | None = None) -> ExtractedMesh:  # fmt: skip
        """Mesh of code z; vertices mapped out of the unit frame by ``normalization`` (default: the family's
        frame; unit-frame vertices when there is none)."""
        m = extract_mesh(self.field(z), resolution or self.config.mesh_resolution, method)
        norm = normalization or self.frame
        if norm is not None:
            m.vertices = norm.from_unit(m.vertices).astype(np.float32)
        return m

    def shape_mesh(self, i: int, resolution: int | None = None, method: str = "mise") -> ExtractedMesh:
        """Mesh of training shape i, in its own units."""
        S = self.model.codes.num_embeddings
        if not 0 <= int(i) < S:
            raise InvalidInputError(f"shape: expected an index in 0..{S - 1}, got {i}")
        if self.normalizations is None:
            self.shapes  # noqa: B018
        return self.extract(self.codes[int(i)], resolution, method, self.normalizations[int(i)])

    def code_prior(self, kind: str = "gaussian"):
        """The run's code prior (``"gaussian"`` or ``"flow"``; written by ``finalize``), frozen."""
        from human3d.implicit.code_prior import load_code_prior

        return load_code_prior(self.out, kind)

    def finalize(self) -> dict[str, Path]:
        from human3d.implicit.code_prior import fit_code_priors, save_code_priors

        cfg = self.config
        priors = fit_code_priors(self.codes, cfg.flow_layers, cfg.flow_hidden, cfg.flow_steps, cfg.flow_noise,
                                 seed=self.run.seed)  # fmt: skip
        out = save_code_priors(self.out, priors, {"run": str(self.out), "family": cfg.family, "step": self.step,
                                                  "n_shapes": int(self.codes.shape[0])})  # fmt: skip
        try:
            m = self.extract(self.codes.mean(0))
        except InvalidInputError:  # a run stopped very early: the decoder has no zero level set yet
            return out
        out["mean"] = write_mesh(self.out / "mean.obj", m.vertices, m.faces, m.normals)
        out["turntable"] = turntable(self.out / "turntable.png", m.vertices, m.faces)
        return out


def open_shape_run(run) -> ShapeSpaceTrainer:
    """Open a DeepSDF run folder (clear error when it is another kind of run)."""
    return ShapeSpaceTrainer.from_run(run)
