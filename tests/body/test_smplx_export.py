"""Exports other tools read: smplx-layout parameter files loaded by smplx itself (``create`` then
``model(**params)``) give our vertices; the animated .glb decoded by pygltflib (an independent glTF reader)."""

from __future__ import annotations

import pickle

import numpy as np
import pygltflib
import pytest
import smplx
import torch
import trimesh

from human3d.body.io import export_animation, save_params
from human3d.body.param_formats import read_params
from human3d.body.smpl import SMPL, SMPLH
from human3d.errors import InvalidInputError
from human3d.synth import smpl_files as synth

TOL = 1e-5


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "smpl": synth.write_pickle(root / "SMPL_MALE.pkl", synth.make_model_data("smpl", seed=8)),
        "smplh": synth.write_pickle(root / "SMPLH_MALE.pkl", synth.make_model_data("smplh", seed=9)),
    }


@pytest.mark.parametrize("family,suffix", [("smpl", ".npz"), ("smpl", ".pkl"), ("smplh", ".pkl")])
def test_smplx_loads_our_export(tmp_path, files, family, suffix):
    ours = {"smpl": SMPL, "smplh": SMPLH}[family](files[family], gender="male")
    g = torch.Generator().manual_seed(3)
    params = {k: 0.3 * torch.randn(2, *s, generator=g) for k, s in ours.parameter_shapes().items()}
    path = save_params(tmp_path / f"fit{suffix}", params, ours, layout="smplx")
    if suffix == ".npz":
        with np.load(path) as npz:  # what a smplx user does: no pickle, plain arrays
            arrays = {k: npz[k] for k in npz.files}
    else:
        with open(path, "rb") as f:
            arrays = pickle.load(f)  # our own file: the smplx user's pickle.load
    assert set(arrays) == set(ours.parameter_shapes()) and all(a.dtype == np.float32 for a in arrays.values())
    kw = {} if family == "smpl" else {"use_pca": False, "ext": "pkl"}
    ref = smplx.create(str(files[family]), model_type=family, gender="male", num_betas=10, **kw)
    with torch.no_grad():
        r = ref(**{k: torch.from_numpy(v) for k, v in arrays.items()})
        assert (ours(params).vertices - r.vertices).abs().max().item() < TOL
    back = read_params(path)  # and we read it back, family inferred from the widths
    assert back.model == family
    for k, v in params.items():
        torch.testing.assert_close(back.params[k], v.reshape(2, -1))


def test_smplx_layout_refusals(tmp_path, anny_model):
    with pytest.raises(InvalidInputError, match="Anny parameters have no smplx model"):
        save_params(tmp_path / "a.pkl", {}, anny_model)
    with pytest.raises(InvalidInputError, match=r"should end with one of \['.npz', '.pkl'\] for the smplx layout"):
        save_params(tmp_path / "a.json", {}, anny_model, layout="smplx")


def _accessor(gltf: pygltflib.GLTF2, index: int, width: int) -> np.ndarray:
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    blob = gltf.binary_blob()
    start = view.byteOffset + (acc.byteOffset or 0)
    assert acc.componentType == pygltflib.FLOAT
    return np.frombuffer(blob[start : start + acc.count * width * 4], "<f4").reshape(acc.count, width)


def test_animated_glb_plays_every_frame(tmp_path):
    g = torch.Generator().manual_seed(0)
    T, V = 5, 40
    frames = torch.cumsum(0.05 * torch.randn(T, V, 3, generator=g), 0) + torch.randn(1, V, 3, generator=g)
    faces = torch.randint(0, V, (30, 3), generator=g)
    path = export_animation(tmp_path / "seq.glb", frames, faces, fps=25.0, z_up=True)

    gltf = pygltflib.GLTF2().load(str(path))
    prim = gltf.meshes[0].primitives[0]
    base = _accessor(gltf, prim.attributes.POSITION, 3)
    np.testing.assert_allclose(base, frames[0].numpy(), atol=1e-6)
    assert len(prim.targets) == T
    for t, target in enumerate(prim.targets):
        acc = gltf.accessors[target["POSITION"]]
        delta = _accessor(gltf, target["POSITION"], 3)
        np.testing.assert_allclose(base + delta, frames[t].numpy(), atol=1e-5)
        np.testing.assert_allclose(acc.min, delta.min(0), atol=1e-6)  # required by the glTF spec for POSITION
    anim = gltf.animations[0]
    sampler = anim.samplers[0]
    assert sampler.interpolation == "STEP" and anim.channels[0].target.path == "weights"
    assert gltf.nodes[anim.channels[0].target.node].mesh == 0
    times = _accessor(gltf, sampler.input, 1)[:, 0]
    np.testing.assert_allclose(times, np.arange(T) / 25.0, atol=1e-7)
    weights = _accessor(gltf, sampler.output, 1).reshape(T, T)  # glTF: T scalars (one per target) per keyframe
    np.testing.assert_array_equal(weights, np.eye(T))
    np.testing.assert_allclose(gltf.nodes[anim.channels[0].target.node].rotation, [-0.5**0.5, 0, 0, 0.5**0.5])
    mesh = trimesh.load(path, force="mesh", process=False)  # the still mesh loads in trimesh too
    assert mesh.vertices.shape == (V, 3)
    with pytest.raises(InvalidInputError, match="should end with .glb"):
        export_animation(tmp_path / "seq.obj", frames, faces)
