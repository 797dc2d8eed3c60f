"""A built wheel works on its own: it carries the example photo and the pose-prior weights as package data, and
``human3d fit`` from a fresh venv, run in a folder that is not the checkout, fits the shipped example with the
default (learned) prior and writes params, mesh and overlay.

No network: the wheel is built without build isolation (setuptools comes from [dev]) and installed with
``--no-deps --no-index``; its dependencies come from this test venv's site-packages through a ``.pth`` file (a
plain path line: the editable install's finder there is not run, so the checkout stays off ``sys.path``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "human3d", "generative")


def _sh(cmd, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert res.returncode == 0, f"{cmd}\nstdout:\n{res.stdout[-3000:]}\nstderr:\n{res.stderr[-3000:]}"
    return res


def _clean_env() -> dict:
    """This process's environment (Anny's and warp's cache folders included) without anything that would put the
    checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _build_wheel(tmp: Path) -> Path:
    # Build from a copy of the sources (not in-tree: no build/ or egg-info churn in a shared checkout). Only
    # package data declared in pyproject.toml reaches the wheel either way.
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(p, src / name)
    dist = tmp / "dist"
    _sh([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", dist], env=_clean_env(), cwd=tmp)  # fmt: skip
    (wheel,) = dist.glob("human3d-*.whl")
    return wheel


def test_wheel_ships_assets_and_fits_outside_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("human3d/assets/examples/000000000785.jpg", "human3d/assets/examples/000000000785_keypoints.json",
              "generative/priors/weights/anny_pose_flow.safetensors", "generative/priors/weights/anny_pose_flow.json",
              "generative/priors/weights/smpl_pose_flow.safetensors", "generative/priors/weights/PROVENANCE.md"):
        assert f in names, f"{f} missing from the wheel"  # fmt: skip

    venv = tmp_path / "venv"
    _sh([sys.executable, "-m", "venv", "--without-pip", venv])
    py = venv / "bin" / "python"
    site = Path(_sh([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_test_venv_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    _sh([py, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "--no-compile", "-q", wheel],
        env=_clean_env(), cwd=tmp_path)  # fmt: skip

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _clean_env()
    where = json.loads(_sh([py, "-c", (
        "import json, human3d, generative; from human3d.assets import example_photo; "
        "from generative.priors.pose import assets_dir; im, kp = example_photo(); "
        "print(json.dumps({'human3d': human3d.__file__, 'generative': generative.__file__, "
        "'image': str(im), 'keypoints': str(kp), 'weights': str(assets_dir())}))")], env=env, cwd=work).stdout)  # fmt: skip
    for k, v in where.items():  # the wheel's copy, not the checkout's
        assert Path(v).resolve().is_relative_to(site.resolve()), (k, v)
        assert not Path(v).resolve().is_relative_to(ROOT), (k, v)

    out = work / "fit"
    cli = venv / "bin" / "human3d"
    _sh([cli, "fit", where["image"], "--keypoints", where["keypoints"], "--out", out, "--iters", "20",
         "--camera-iters", "10", "-q"], env=env, cwd=work)  # fmt: skip
    s = json.loads((out / "summary.json").read_text())
    from generative.priors.pose import POSE_PRIOR_KINDS

    assert s["persons_fitted"] == 1
    assert s["prior"] in POSE_PRIOR_KINDS, s["prior"]  # the default resolved to a learned prior: its weights loaded
    for f in ("overlay.png", "person_00.obj", "person_00.npz", "person_00.json", "person_00_overlay.png"):
        assert (out / "000000000785" / f).is_file(), f
