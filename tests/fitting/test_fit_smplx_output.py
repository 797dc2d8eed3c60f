"""``human3d fit`` with an SMPL-family model writes a ``.pkl`` that smplx itself loads: ``pickle.load`` then
``smplx.create(...)(**params)`` gives the vertices of the fitted mesh we wrote (the oracle is smplx, not us)."""

from __future__ import annotations

import pickle

import numpy as np
import smplx
import torch
import trimesh

from human3d.assets import examples_dir
from human3d.body.smpl import SMPL
from human3d.fitting.config import SMPLifyConfig
from human3d.fitting.pipeline import fit_images
from human3d.synth import smpl_files as synth


def test_fit_writes_params_smplx_loads(tmp_path, one_thread):
    path = synth.write_pickle(tmp_path / "SMPL_NEUTRAL.pkl", synth.make_model_data("smpl", seed=4))
    model = SMPL(path)
    photo = examples_dir() / "000000000785.jpg"
    cfg = SMPLifyConfig(camera_iters=5, body_iters=5, restarts=1, retry_hypotheses=())
    run = fit_images(photo, examples_dir() / "000000000785_keypoints.json", tmp_path / "fit", model=model,
                     prior="simple", config=cfg, overlays=False, progress=False, log=None)  # fmt: skip
    assert run.num_fitted == 1
    person = tmp_path / "fit" / "000000000785" / "person_00"
    with open(person.with_suffix(".pkl"), "rb") as f:
        arrays = pickle.load(f)  # our own file, loaded the way a smplx user does
    assert {"global_orient", "body_pose", "betas", "transl"} <= set(arrays)
    ref = smplx.create(str(path), model_type="smpl", gender="neutral", num_betas=10)
    with torch.no_grad():
        verts = ref(**{k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}).vertices[0].numpy()
    mesh = trimesh.load(person.with_suffix(".obj"), process=False)
    assert np.abs(np.asarray(mesh.vertices) - verts).max() < 1e-4
