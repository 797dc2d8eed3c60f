"""One error policy in the low layers: bad input to the public functions of ``splat/sh``, ``splat/projection``,
``body/skeletons``, ``geometry/rotations`` and ``body/lbs`` raises :class:`human3d.errors.InvalidInputError` (still a
``ValueError``) whose message names the argument and what was expected; ``LPIPSUnavailableError`` lives in
``human3d.errors``."""

from __future__ import annotations

import pytest
import torch

from human3d import errors, metrics
from human3d.body.lbs import kinematic_levels
from human3d.body.skeletons import skeleton_names
from human3d.errors import InvalidInputError
from human3d.fields.encodings import SphericalHarmonicsEncoding
from human3d.geometry.rotations import euler_to_matrix
from human3d.splat.projection import project_gaussians
from human3d.splat.sh import eval_sh, sh_basis, sh_degree_from_bases


def _raises(match: str):
    return pytest.raises(InvalidInputError, match=match)


def test_invalid_input_error_is_a_value_error():
    assert issubclass(InvalidInputError, ValueError)  # callers catching ValueError keep working


@pytest.mark.parametrize("degree", [-1, 4, 1.5, True, "2"])
def test_sh_degree(degree):
    with _raises(r"degree: expected the highest SH band as an int in 0\.\.3"):
        sh_basis(degree, torch.randn(5, 3))
    with _raises(r"degree: expected the highest SH band"):
        SphericalHarmonicsEncoding(degree)


def test_sh_dirs_coeffs_and_bases():
    with _raises(r"dirs: expected a tensor of directions \[\.\.\., 3\], got \(5, 2\)"):
        sh_basis(2, torch.randn(5, 2))
    with _raises(r"coeffs: expected \[\.\.\., K >= 9, C\] SH coefficients for degree 2, got \(5, 4, 3\)"):
        eval_sh(2, torch.randn(5, 4, 3), torch.randn(5, 3))
    with _raises(r"k: expected \(degree \+ 1\)\^2 SH bases .* got 5"):
        sh_degree_from_bases(5)
    assert [sh_degree_from_bases(k) for k in (1, 4, 9, 16)] == [0, 1, 2, 3]
    assert SphericalHarmonicsEncoding(3).out_dim == 16 == sh_basis(3, torch.randn(2, 3)).shape[-1]


def test_projection_needs_quats_and_scales_or_covars():
    K = torch.tensor([[[50.0, 0, 16], [0, 50.0, 16], [0, 0, 1]]])
    with _raises(r"quats, scales / covars: expected quats \[N, 4\] and scales \[N, 3\], or covars \[N, 3, 3\]"):
        project_gaussians(torch.randn(4, 3), torch.eye(4)[None], K, 32, 32, quats=torch.randn(4, 4))


def test_skeleton_name():
    with _raises(r"skeleton: expected one of \['body25', 'coco17', .*got 'coco18'"):
        skeleton_names("coco18")


@pytest.mark.parametrize("order", ["XY", "XYW", 3])
def test_euler_order(order):
    with _raises(r"order: expected three letters from 'XYZ'"):
        euler_to_matrix(torch.zeros(3), order)


@pytest.mark.parametrize(
    "parents, match",
    [
        ([0, 0, 1], r"parents: joint 0 must be the root \(parent -1\), got parent 0"),
        ([-1, 2, 0], r"parents: joint 1 has parent 2; parents must precede their children"),
    ],
)
def test_kinematic_tree(parents, match):
    with _raises(match):
        kinematic_levels(parents)


def test_lpips_error_in_errors_module():
    assert metrics.LPIPSUnavailableError is errors.LPIPSUnavailableError
    assert issubclass(errors.LPIPSUnavailableError, errors.Human3DError)
    with pytest.raises(errors.LPIPSUnavailableError, match="LPIPS is not available"):
        metrics.lpips(torch.zeros(4, 4, 3), torch.zeros(4, 4, 3))
