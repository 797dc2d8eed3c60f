"""CPU commands start quietly: no warp banner / "CUDA driver" warning, while other native stderr still gets through."""

from __future__ import annotations

import os
import subprocess
import sys

from human3d.io_utils import filtered_stderr


def test_filtered_stderr_drops_only_matching_native_lines(capfd):
    with filtered_stderr(drop=("CUDA driver",)):
        os.write(2, b"Warp CUDA warning: Could not find or load the NVIDIA CUDA driver\n")  # as native code does
        os.write(2, b"a real problem\n")
    err = capfd.readouterr().err
    assert "CUDA driver" not in err
    assert "a real problem" in err


def test_anny_forward_prints_no_warp_noise():
    code = (
        "import torch; from human3d.body import load_body_model\n"
        "m = load_body_model('anny')\n"
        "out = m(global_orient=torch.zeros(1, 3))\n"
        "print('vertices', tuple(out.vertices.shape))\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert "vertices (1," in res.stdout  # the forward pass really ran (and so did warp's skinning kernel)
    for noise in ("Warp ", "CUDA driver", "Initialized:"):
        assert noise not in res.stdout + res.stderr, (noise, res.stdout, res.stderr)
