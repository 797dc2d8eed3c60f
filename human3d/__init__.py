"""human3d: parametric 3D humans, fitting and neural rendering in PyTorch.

Conventions used everywhere in the package:

* tensors are batch-first and float32 unless stated otherwise; shapes appear in comments (``# [B, N, 3]``);
* units are metres and radians;
* cameras follow OpenCV (x right, y down, z forward); world-to-camera extrinsics; see :mod:`human3d.geometry.cameras`;
* rotations are axis-angle at public APIs (smplx names), matrices / 6D inside.
"""

__version__ = "0.1.0"
