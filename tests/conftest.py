"""Shared pytest fixtures.

``anny_model``: the default Anny body model (float32, skinning "auto"), built ONCE per test session and shared by
every test file. Its first build in a fresh cache takes ~2 min and writes ~0.8 GB to ``$ANNY_CACHE_DIR``
(default ``~/.cache/human3d/anny``); later ones load in well under a second.

Do not move or convert the shared instance (``.to(...)``) or write into its buffers: other tests use it. For
another dtype/device/skinning, build your own ``AnnyBody(dtype=torch.float64)`` etc. (instant once built).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def anny_model():
    """AnnyBody() shared by the whole session (float32, CPU, default skinning)."""
    from human3d.body.anny import AnnyBody

    return AnnyBody()


@pytest.fixture()
def one_thread():
    """One torch intra-op thread for the test (restored after): tiny networks and small-op loops run faster than
    with two threads on a shared 2-core machine, and runs are bit-reproducible."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _synthetic_colmap(root, n_images=9, W=40, H=30, n_points=200, distort=False):
    """A COLMAP model of a random scene seen by ``n_images`` cameras of three camera models, with random images
    written under ``root/images`` (the model is returned, not written); the observations are projections computed
    here independently (OpenCV model)."""
    import math

    import cv2
    import numpy as np
    import torch

    from human3d.data import colmap
    from human3d.geometry import look_at

    rng = np.random.default_rng(1)
    pts = rng.uniform(-1, 1, (n_points, 3))
    rgb = rng.integers(0, 256, (n_points, 3)).astype(np.uint8)
    cams = {
        1: colmap.ColmapCamera(1, "PINHOLE", W, H, np.array([50.0, 52.0, 20.5, 14.5])),
        2: colmap.ColmapCamera(2, "SIMPLE_PINHOLE", W, H, np.array([48.0, 19.0, 15.0])),
        3: colmap.ColmapCamera(
            3, "OPENCV" if distort else "SIMPLE_RADIAL", W, H,
            np.array([45.0, 46.0, 20.0, 15.0, 0.05, -0.01, 0.001, 0.002]) if distort else np.array([45.0, 20.0, 15.0, 0.0]),
        ),
    }  # fmt: skip
    images = {}
    tracks = [[] for _ in range(n_points)]
    for i in range(n_images):
        ang = 2 * math.pi * i / n_images
        eye = np.array([4 * math.cos(ang), 0.5, 4 * math.sin(ang)])
        w2c = look_at(torch.tensor(eye[None]), torch.zeros(1, 3, dtype=torch.float64))[0].numpy()
        R, t = w2c[:3, :3], w2c[:3, 3]
        cam = cams[1 + i % 3]
        p = cam.params
        fx, fy, cx, cy = (p[0], p[0], p[1], p[2]) if cam.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL") else p[:4]
        xc = pts @ R.T + t
        uv = np.stack([fx * xc[:, 0] / xc[:, 2] + cx, fy * xc[:, 1] / xc[:, 2] + cy], -1)
        vis = np.where((uv[:, 0] > 0) & (uv[:, 0] < W) & (uv[:, 1] > 0) & (uv[:, 1] < H))[0]
        for k, pid in enumerate(vis):
            tracks[pid].append((i + 1, k))
        name = f"img_{i:03d}.png"
        images[i + 1] = colmap.ColmapImage(
            i + 1, colmap.rotmat_to_qvec(R), t, cam.id, name, uv[vis], (vis + 1).astype(np.int64)
        )
        (root / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / name), rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    model = colmap.ColmapModel(
        cams, images, np.arange(1, n_points + 1), pts, rgb, rng.uniform(0, 1, n_points),
        [np.array(t, np.int64).reshape(-1, 2) for t in tracks],
    )  # fmt: skip
    return model


@pytest.fixture()
def synthetic_colmap():
    """The factory ``synthetic_colmap(root, n_images=9, W=40, H=30, n_points=200, distort=False) -> ColmapModel``."""
    return _synthetic_colmap


def _check_lgd_gradient(pb, rigid, g0, generator, trials: int = 1, groups_scale: float = 0.2) -> None:
    """LGD's gradient input (:func:`human3d.fitting.lgd.reprojection_gradient`, autograd) against central finite
    differences of the energy along random directions, per variable block, at a state away from stage 1's (where
    every variable matters); persons are independent, so the check is per person."""
    import torch

    from human3d.fitting.lgd import LGDState, initial_state, reprojection_energy_of, reprojection_gradient

    s0 = initial_state(pb, rigid, g0)
    B = s0.transl.shape[0]
    state = LGDState(s0.groups + groups_scale * torch.randn(s0.groups.shape, generator=generator),
                     0.1 * torch.randn(B, 3, generator=generator), s0.transl + 0.05 * torch.randn(B, 3, generator=generator),
                     0.3 * torch.randn(s0.z.shape, generator=generator))  # fmt: skip
    for t in state.tensors():
        t.requires_grad_(True)
    grads, e, _ = reprojection_gradient(pb, state, rigid.R_body)
    assert all(torch.isfinite(g).all() for g in grads) and bool((e > 0).all())
    h = 1e-3
    for i in range(len(grads)):
        for _ in range(trials):
            d = torch.randn(state.tensors()[i].shape, generator=generator)

            def energy(sign, i=i, d=d):
                ts = [t.detach().clone() for t in state.tensors()]
                ts[i] = ts[i] + sign * h * d
                with torch.no_grad():
                    return reprojection_energy_of(pb, LGDState(*ts), rigid.R_body)[0].double()

            fd = (energy(1) - energy(-1)) / (2 * h)  # [B]
            an = (grads[i].double() * d.double()).flatten(1).sum(1)
            assert torch.allclose(an, fd, rtol=0.03, atol=0.02 * float(fd.abs().max()) + 1e-3), (i, an, fd)


@pytest.fixture()
def lgd_gradient_check():
    """:func:`_check_lgd_gradient` (the LGD gradient-input check shared by the Anny and SMPL-family tests)."""
    return _check_lgd_gradient
