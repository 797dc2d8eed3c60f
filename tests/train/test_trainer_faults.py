"""``kill -9`` at random points of every trainer's training (NeRF, splat, DVR, implicit fit, DeepSDF, pose2d, LGD, lifter),
then resume: the checkpoint always loads and the step never goes back by more than the checkpoint interval. One
helper (:func:`kill_and_resume`) for all trainers; each runs a tiny configuration for a few steps with a small
``checkpoint_every``.

The trainer runs in a forked child that reports every finished step through a pipe; the parent sends SIGKILL as
soon as the child reports a randomly drawn step (so the kill lands anywhere in the next step, its checkpoint
write included), then opens the run folder itself. Oracle: the core's contract (a checkpoint is written after
every ``checkpoint_every``-th step, atomically), checked against the steps the child reported."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import random
import select
import signal
import time

import numpy as np
import pytest
import torch

CE = 3  # checkpoint interval of every trainer here


def kill_and_resume(make, rounds: int = 3, seed: int = 0, timeout_s: float = 120.0, ce: int = CE) -> int:
    """Train ``make(max_steps)`` (a new or resumed trainer, ``run.checkpoint_every == ce``) in a child, kill it
    with SIGKILL at a random step, reopen the run; ``rounds`` times. Returns the final step (trained 1 further)."""
    rng = random.Random(seed)
    ctx = multiprocessing.get_context("fork")
    start = 0
    for r in range(rounds):
        target = start + (ce - 1 if r == 0 else rng.randint(1, 2 * ce))  # round 0: the kill hits a checkpoint step
        rfd, wfd = os.pipe()

        def child():
            os.close(rfd)
            torch.set_num_threads(1)
            tr = make(10**7)
            tr.train(callback=lambda t, info: os.write(wfd, f"{info['step']}\n".encode()), progress=False)

        p = ctx.Process(target=child, daemon=True)
        p.start()
        os.close(wfd)
        reported, buf, t0 = start, b"", time.monotonic()
        while reported < target:
            assert time.monotonic() - t0 < timeout_s, f"round {r}: no step {target} after {timeout_s} s"
            if select.select([rfd], [], [], 0.5)[0]:
                chunk = os.read(rfd, 4096)
                if not chunk:  # EOF: the child ended by itself
                    p.join()
                    raise AssertionError(f"round {r}: the child ended (exit {p.exitcode}) before step {target}")
                buf += chunk
                *lines, buf = buf.split(b"\n")
                if lines:
                    reported = int(lines[-1])
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        os.close(rfd)
        assert p.exitcode == -signal.SIGKILL
        tr = make(10**7)  # loads the checkpoint (a torn one would raise)
        assert reported - ce < tr.step <= reported + 1, (r, reported, tr.step)  # back by less than the interval
        assert tr.step >= start
        assert tr.resumed == (tr.step > 0)
        start = tr.step
    tr = make(start + 1)
    assert tr.train(progress=False)["step"] == start + 1  # and it trains on
    return start + 1


# ---------------------------------------------------------------------------------------------------- data
def _orbit_c2w_gl(i: int, n: int) -> list:
    from human3d.geometry import look_at

    ang = 2 * math.pi * i / n
    w2c = look_at(torch.tensor([[4 * math.cos(ang), 4 * math.sin(ang), 1.0]]), torch.zeros(1, 3),
                  torch.tensor([[0.0, 0.0, 1.0]]))  # fmt: skip
    return (torch.linalg.inv(w2c)[0] @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))).tolist()


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A tiny RGBA Blender scene (4 train / 2 test views of 24 px)."""
    import cv2

    root = tmp_path_factory.mktemp("scene")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        (root / split).mkdir()
        frames = []
        for i in range(n):
            img = rng.integers(0, 256, (24, 24, 4), dtype=np.uint8)
            img[..., 3] = 0
            img[6:18, 6:18, 3] = 255
            cv2.imwrite(str(root / split / f"r_{i}.png"), img)
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": _orbit_c2w_gl(i, n)})
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
    return root


def _run(ce: int = CE, **kw) -> dict:
    return {"run.checkpoint_every": ce, "run.log_every": 10**6, "run.threads": 1, **kw}


# ---------------------------------------------------------------------------------------------------- trainers
def test_nerf(scene, tmp_path, one_thread):
    from human3d.nerf.trainer import NerfTrainer

    over = {"optim.target_samples": 2**10, "optim.num_rays": 128, "field.n_levels": 2, "field.max_resolution": 32,
            "field.log2_table_size": 10, "estimator.resolution": 16, "estimator.update_every": 2,
            "estimator.warmup_steps": 2}  # fmt: skip
    kill_and_resume(lambda n: NerfTrainer(tmp_path / "run", scene, overrides=_run(**over, **{"run.max_steps": n})))


def test_splat(scene, tmp_path, one_thread):
    from human3d.splat.trainer import SplatTrainer

    over = {"init.num_points": 200, "densify.from_step": 2, "densify.every": 2, "densify.until_step": 10**6,
            "densify.grad_threshold": 1e-6, "sh_degree": 1, "optim.resolution_schedule": ((0, 1),)}  # fmt: skip
    kill_and_resume(lambda n: SplatTrainer(tmp_path / "run", scene, overrides=_run(**over, **{"run.max_steps": n})))


def test_implicit_surface_fit(tmp_path, one_thread):
    from human3d.implicit.trainer import SurfaceFitTrainer

    rng = np.random.default_rng(0)
    p = rng.normal(size=(500, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    np.savetxt(tmp_path / "sphere.xyz", np.concatenate([p, p], 1))  # points and their normals
    over = {"n_points": 500, "batch_size": 128, "hash_levels": 2, "hash_max_resolution": 16, "mesh_resolution": 16}
    kill_and_resume(lambda n: SurfaceFitTrainer(tmp_path / "run", tmp_path / "sphere.xyz",
                                                overrides=_run(**over, **{"run.max_steps": n})))  # fmt: skip


def test_pose2d(tmp_path, one_thread, anny_model):
    from human3d.pose2d.train import Pose2DTrainer
    from human3d.synth.coco import make_dataset
    from human3d.synth.generator import SynthConfig

    data = make_dataset(tmp_path / "coco", 4, SynthConfig(size=64, max_people=1), batch_size=4, model=anny_model)
    over = {"data.crop_size": 32, "model.widths": [8, 8, 8, 8, 8], "model.deconv": [8, 8, 8], "optim.batch_size": 4}
    kill_and_resume(lambda n: Pose2DTrainer(tmp_path / "run", data, overrides=_run(**over, **{"run.max_steps": n})))


def test_lgd(tmp_path, one_thread, monkeypatch, anny_model):
    """The slowest (a step fits cameras to a batch of problems): batch 2, checkpoints every 2 steps, 2 kills."""
    from human3d.fitting import synthetic
    from human3d.hmr.lgd_trainer import LGDTrainer, preset

    # small random poses instead of reading the mocap clips (20 s): the same frames in every process
    dim = anny_model.parameter_shapes()["body_pose"][0]

    def poses(n, seed=0, clips=(), **kw):
        g = torch.Generator().manual_seed(seed)
        return 0.1 * torch.randn(n, 3, generator=g), 0.05 * torch.randn(n, dim, generator=g), None

    monkeypatch.setattr(synthetic, "mocap_anny_poses", poses)
    kill_and_resume(lambda n: LGDTrainer(tmp_path / "run", config=preset("tiny"), overrides=_run(
        2, **{"optim.batch_size": 2, "data.pool": 64, "run.max_steps": n})), rounds=2, ce=2)  # fmt: skip


def test_lift(tmp_path, one_thread, monkeypatch):
    """The keypoint lifter on a fixed random pool (the real one reads the mocap clips)."""
    from human3d.hmr import lift_trainer
    from human3d.hmr.lift_trainer import LiftTrainer, preset

    pool = 0.3 * torch.randn(128, 17, 3, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(lift_trainer, "pool_keypoints", lambda *a, **k: pool)
    kill_and_resume(lambda n: LiftTrainer(tmp_path / "run", config=preset("tiny"), overrides=_run(
        **{"run.max_steps": n})))  # fmt: skip


def test_dvr(scene, tmp_path, one_thread):
    from human3d.dvr.trainer import DVRTrainer, preset

    kill_and_resume(lambda n: DVRTrainer(tmp_path / "run", scene, config=preset("tiny"), overrides=_run(
        **{"optim.num_rays": 64, "field.n_levels": 2, "field.log2_table_size": 10, "march.n_steps": 16,
           "run.max_steps": n})))  # fmt: skip


def test_deepsdf_shape_space(tmp_path, one_thread):
    from human3d.implicit.shapes import ShapeSpaceTrainer, shape_preset

    kill_and_resume(lambda n: ShapeSpaceTrainer(tmp_path / "run", config=shape_preset("tiny"), overrides=_run(
        **{"n_shapes": 2, "n_samples": 1024, "shapes_per_batch": 2, "points_per_shape": 128, "run.max_steps": n})))
