"""DVR recovers known surfaces from 24 renders (32 px): a unit sphere (Chamfer-L1 against exact samples of the
sphere, a closed form) and spot (Chamfer-L1 against its ground-truth mesh). Bounds are in the renders' world units
(the object fills the unit ball; one pixel spans about 0.09 units at the object's distance)."""

from __future__ import annotations

import numpy as np
import torch

from human3d.dvr.config import preset
from human3d.dvr.trainer import DVRTrainer
from human3d.implicit.sampling import is_watertight, load_mesh, sample_surface
from human3d.metrics import chamfer_l1

# measured (seed 0, tiny preset): sphere Chamfer-L1 0.050 (mean radial error 0.047) after 100 steps, about half a
# pixel: the silhouettes pin the surface to a pixel at 32 px; spot 0.0235 after 250 steps, with test mask IoU 0.904
# and PSNR 21.4 dB. Bounds leave margin for other seeds / BLAS.
SPHERE_BOUND = 0.07
SPOT_BOUND = 0.045


def _train(tmp_path, data, steps):
    cfg = preset("tiny", **{"run.max_steps": steps, "run.checkpoint_every": 10**6})
    tr = DVRTrainer(tmp_path / "run", data, config=cfg)
    tr.train(progress=False)
    return tr


def test_sphere_is_recovered(tmp_path, sphere_scene, one_thread):
    tr = _train(tmp_path, sphere_scene, 100)
    mesh = tr.extract_mesh(tmp_path / "sphere.obj", 64)
    assert mesh["watertight"]
    v, f = load_mesh(tmp_path / "sphere.obj")
    p, _ = sample_surface(v, f, 20000, seed=0)
    q = torch.nn.functional.normalize(torch.randn(20000, 3, generator=torch.Generator().manual_seed(0),
                                                  dtype=torch.float64), dim=-1).numpy()  # exact unit sphere
    cd = float(chamfer_l1(p, q))
    radial = np.abs(np.linalg.norm(p, axis=1) - 1.0).mean()
    assert cd < SPHERE_BOUND and radial < SPHERE_BOUND, (cd, radial)


def test_spot_is_recovered_and_evaluated(tmp_path, spot_scene, one_thread):
    tr = _train(tmp_path, spot_scene, 250)
    mesh = tr.extract_mesh(tmp_path / "spot.obj", 64)
    assert mesh["watertight"]
    v, f = load_mesh(tmp_path / "spot.obj")
    gv, gf = load_mesh(spot_scene / "mesh.obj")
    cd = float(chamfer_l1(sample_surface(v, f, 20000, seed=0)[0], sample_surface(gv, gf, 20000, seed=1)[0]))
    assert cd < SPOT_BOUND, cd
    m = tr.evaluate("test", write_images=False)
    # the test views' masks are exact (alpha): the recovered silhouette must overlap them closely
    assert m["mask_iou"] > 0.85 and m["psnr"] > 18, (m["mask_iou"], m["psnr"])
    assert is_watertight(f)
