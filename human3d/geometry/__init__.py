"""Rotations and cameras: the single geometry module shared by every part of human3d."""

from human3d.geometry.cameras import *  # noqa: F401,F403
from human3d.geometry.cameras import __all__ as _cam_all
from human3d.geometry.rotations import *  # noqa: F401,F403
from human3d.geometry.rotations import __all__ as _rot_all

__all__ = list(_cam_all) + list(_rot_all)
