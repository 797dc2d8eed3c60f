"""The one pinhole camera module used by every part of human3d.

Convention (stated once, used everywhere)
-----------------------------------------
* **OpenCV camera frame**: x right, y down, z forward (points in front of the camera have z > 0).
* **Extrinsics** are *world-to-camera* 4x4 rigid transforms ``[B, 4, 4]``: ``x_cam = R @ x_world + t``.
  ``camera_to_world`` is its inverse (what Blender / NeRF ``transform_matrix`` stores, in OpenGL axes).
* **Intrinsics** ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in pixels, ``[B, 3, 3]``.
* **Pixel coordinates** are continuous: the image covers ``[0, W] x [0, H]`` and the centre of pixel
  ``(row i, column j)`` is at ``(u, v) = (j + 0.5, i + 0.5)``. Rays are generated through pixel centres.
* **OpenGL / Blender** camera frame: x right, y up, z backward. :func:`opengl_to_opencv` converts
  camera-to-world matrices between the two (the map is its own inverse).

Everything is batch-first; a single camera is a batch of one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from human3d.errors import InvalidInputError, check_tensor

__all__ = [
    "Cameras",
    "Projection",
    "make_intrinsics",
    "intrinsics_from_fov",
    "invert_rigid",
    "make_rigid",
    "transform_points",
    "project_points",
    "unproject_points",
    "pixel_centers",
    "generate_rays",
    "rays_at_pixels",
    "opengl_to_opencv",
    "opencv_to_opengl",
    "look_at",
    "frame_points",
]

_GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


class Projection(NamedTuple):
    """Result of :func:`project_points`."""

    uv: torch.Tensor  # [B, N, 2] pixel coordinates (finite everywhere; meaningless where ~valid)
    depth: torch.Tensor  # [B, N] z in the camera frame (metres)
    valid: torch.Tensor  # [B, N] bool: the point lies in front of the near plane


def make_intrinsics(fx, fy, cx, cy, batch_size: int | None = None, dtype=torch.float32, device=None) -> torch.Tensor:
    """Build ``K`` [B, 3, 3] from focal lengths and principal point (floats or [B] tensors)."""
    vals = [torch.as_tensor(v, dtype=dtype, device=device).reshape(-1) for v in (fx, fy, cx, cy)]
    b = max(v.numel() for v in vals) if batch_size is None else batch_size
    fx, fy, cx, cy = (v.expand(b) for v in vals)
    K = torch.zeros(b, 3, 3, dtype=dtype, device=device)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = fx, fy, cx, cy, 1.0
    return K


def intrinsics_from_fov(fov_x: float, width: int, height: int, batch_size: int = 1, dtype=torch.float32, device=None):
    """``K`` [B, 3, 3] for a horizontal field of view ``fov_x`` (radians), square pixels, centred principal point."""
    f = 0.5 * width / math.tan(0.5 * fov_x)
    return make_intrinsics(f, f, width / 2.0, height / 2.0, batch_size, dtype, device)


def make_rigid(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """[B, 3, 3] rotation + [B, 3] translation -> [B, 4, 4] homogeneous transform."""
    T = torch.zeros(R.shape[:-2] + (4, 4), dtype=R.dtype, device=R.device)
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    return T


def invert_rigid(T: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms [..., 4, 4] (uses R^T, no general matrix inverse)."""
    R, t = T[..., :3, :3], T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    return make_rigid(Rt, -(Rt @ t)[..., 0])


def transform_points(T: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply [B, 4, 4] transforms to [B, N, 3] points."""
    return points @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]


def project_points(
    points: torch.Tensor,
    K: torch.Tensor,
    world_to_camera: torch.Tensor | None = None,
    near: float = 1e-4,
) -> Projection:
    """Project world points [B, N, 3] to pixels with intrinsics K [B, 3, 3] and extrinsics [B, 4, 4].

    Points at or behind the near plane (``z <= near``) are *rejected*: ``valid`` is False for them and their
    ``uv`` is computed at ``z = near`` so that it stays finite (no NaN enters a loss or its gradient). Callers
    must mask with ``valid``. If ``world_to_camera`` is None the points are already in the camera frame.
    """
    if world_to_camera is not None:
        points = transform_points(world_to_camera, points)
    z = points[..., 2]
    valid = z > near
    z_safe = torch.where(valid, z, torch.full_like(z, near))
    xy = points[..., :2] / z_safe[..., None]
    uv = xy @ K[..., :2, :2].transpose(-1, -2) + K[..., None, :2, 2]
    return Projection(uv, z, valid)


def unproject_points(
    uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, world_to_camera: torch.Tensor | None = None
) -> torch.Tensor:
    """Inverse of :func:`project_points`: pixels [B, N, 2] at camera-z ``depth`` [B, N] -> world points [B, N, 3]."""
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    cx, cy = K[..., 0, 2, None], K[..., 1, 2, None]
    x = (uv[..., 0] - cx) / fx * depth
    y = (uv[..., 1] - cy) / fy * depth
    cam = torch.stack([x, y, depth], dim=-1)
    if world_to_camera is None:
        return cam
    return transform_points(invert_rigid(world_to_camera), cam)


def pixel_centers(height: int, width: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """[H, W, 2] (u, v) coordinates of pixel centres: ``(j + 0.5, i + 0.5)``."""
    v, u = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device) + 0.5,
        torch.arange(width, dtype=dtype, device=device) + 0.5,
        indexing="ij",
    )
    return torch.stack([u, v], dim=-1)


def rays_at_pixels(
    uv: torch.Tensor, K: torch.Tensor, camera_to_world: torch.Tensor, normalize: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """World rays through pixel coordinates ``uv`` [..., 2] (pixel centres are at ``+0.5``) of OpenCV cameras.

    ``K`` [..., 3, 3] and ``camera_to_world`` [..., 4, 4] broadcast against ``uv``'s leading dimensions (one
    camera per ray, or one per image). Returns origins and directions [..., 3]; ``normalize=False`` gives
    directions whose camera-z component is 1 (so ``t`` along the ray equals camera depth).
    """
    fx, fy, cx, cy = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]
    d_cam = torch.stack([(uv[..., 0] - cx) / fx, (uv[..., 1] - cy) / fy, torch.ones_like(uv[..., 0] - cx)], -1)
    dirs = (camera_to_world[..., :3, :3] @ d_cam[..., None])[..., 0]  # [..., 3]
    if normalize:
        dirs = F.normalize(dirs, dim=-1)
    origins = camera_to_world[..., :3, 3].expand_as(dirs)
    return origins, dirs


def generate_rays(
    K: torch.Tensor, camera_to_world: torch.Tensor, width: int, height: int, normalize: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel rays through pixel centres for OpenCV cameras.

    Args:
        K: [B, 3, 3] intrinsics. camera_to_world: [B, 4, 4] (OpenCV axes; convert Blender files first).
        normalize: unit-length directions if True, else directions with camera-z component 1
            (so that ``t`` along the ray equals camera depth).
    Returns:
        origins [B, H, W, 3] and directions [B, H, W, 3] in world coordinates.
    """
    uv = pixel_centers(height, width, K.dtype, K.device)  # [H, W, 2]
    return rays_at_pixels(uv[None], K[:, None, None], camera_to_world[:, None, None], normalize)


def opengl_to_opencv(camera_to_world: torch.Tensor) -> torch.Tensor:
    """Convert camera-to-world [..., 4, 4] from OpenGL/Blender axes (y up, z back) to OpenCV (y down, z fwd).

    The camera's own y and z axes flip; the world frame is unchanged. The map is an involution.
    """
    return camera_to_world @ _GL_TO_CV.to(camera_to_world)


opencv_to_opengl = opengl_to_opencv


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """World-to-camera [B, 4, 4] (OpenCV) for cameras at ``eye`` [B, 3] looking at ``target`` [B, 3].

    ``up`` [B, 3] (default +y world) ends up pointing towards the top of the image (camera -y).
    """
    if up is None:
        up = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype, device=eye.device).expand_as(eye)
    z = F.normalize(target - eye, dim=-1)
    right = torch.cross(z, up, dim=-1)
    if bool((right.norm(dim=-1) < 1e-8).any()):
        raise InvalidInputError("look_at: 'up' is parallel to the viewing direction")
    x = F.normalize(right, dim=-1)
    y = torch.cross(z, x, dim=-1)  # points down in the image
    R_c2w = torch.stack([x, y, z], dim=-1)  # columns are camera axes in world coords
    return invert_rigid(make_rigid(R_c2w, eye))


def frame_points(
    points: torch.Tensor,
    width: int,
    height: int,
    fov_x: float = math.radians(40.0),
    view_dir: tuple[float, float, float] = (0.0, 0.0, -1.0),
    up: tuple[float, float, float] = (0.0, 1.0, 0.0),
    margin: float = 1.15,
) -> "Cameras":
    """One camera [B=1] that looks along ``view_dir`` at the points [N, 3] and fits them in the image.

    The camera sits on the line through the centre of the points' bounding box, far enough that the bounding
    sphere (times ``margin``) fits both field-of-view angles. The default looks along -Z, i.e. at the front of a
    body in human3d's canonical frame (Y up, facing +Z).
    """
    check_tensor(points, "points", (None, 3))
    lo, hi = points.min(0).values, points.max(0).values
    center = 0.5 * (lo + hi)
    radius = float(0.5 * (hi - lo).norm()) * margin
    K = intrinsics_from_fov(fov_x, width, height, dtype=points.dtype, device=points.device)
    fov_y = 2 * math.atan(0.5 * height / float(K[0, 1, 1]))
    dist = radius / math.sin(0.5 * min(fov_x, fov_y))
    d = F.normalize(torch.as_tensor(view_dir, dtype=points.dtype, device=points.device), dim=0)
    eye = center - d * dist
    up_t = torch.as_tensor(up, dtype=points.dtype, device=points.device)
    return Cameras(K, look_at(eye[None], center[None], up_t[None]), width, height)


@dataclass
class Cameras:
    """A batch of pinhole cameras (OpenCV convention, see module docstring).

    Attributes:
        K: [B, 3, 3] intrinsics in pixels.
        world_to_camera: [B, 4, 4] rigid extrinsics.
        width: image width in pixels (shared by the batch).
        height: image height in pixels.
    """

    K: torch.Tensor
    world_to_camera: torch.Tensor
    width: int
    height: int

    def __post_init__(self):
        check_tensor(self.K, "K", ("B", 3, 3))
        check_tensor(self.world_to_camera, "world_to_camera", (None, 4, 4))
        if self.world_to_camera.shape[0] != self.K.shape[0]:
            raise InvalidInputError(
                f"K and world_to_camera: batch sizes differ ({self.K.shape[0]} vs {self.world_to_camera.shape[0]})"
            )
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise InvalidInputError(f"width/height: expected positive sizes, got {self.width}x{self.height}")

    def __len__(self) -> int:
        return self.K.shape[0]

    def __getitem__(self, idx) -> "Cameras":
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return Cameras(self.K[idx], self.world_to_camera[idx], self.width, self.height)

    @property
    def camera_to_world(self) -> torch.Tensor:  # [B, 4, 4]
        return invert_rigid(self.world_to_camera)

    @property
    def centers(self) -> torch.Tensor:  # [B, 3] camera centres in world coordinates
        return self.camera_to_world[:, :3, 3]

    def to(self, *args, **kwargs) -> "Cameras":
        return Cameras(self.K.to(*args, **kwargs), self.world_to_camera.to(*args, **kwargs), self.width, self.height)

    def project(self, points: torch.Tensor, near: float = 1e-4) -> Projection:
        """World points [B, N, 3] -> :class:`Projection`."""
        return project_points(points, self.K, self.world_to_camera, near)

    def unproject(self, uv: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        return unproject_points(uv, depth, self.K, self.world_to_camera)

    def rays(self, normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """origins, directions [B, H, W, 3] through every pixel centre."""
        return generate_rays(self.K, self.camera_to_world, self.width, self.height, normalize)

    def scaled(self, factor: float) -> "Cameras":
        """Cameras for images resized by ``factor`` (e.g. 0.25 for 4x downscaling); pixel-centre convention kept."""
        K = self.K.clone()
        K[:, :2, :] *= factor
        K[:, 2, 2] = 1.0
        return Cameras(K, self.world_to_camera, round(self.width * factor), round(self.height * factor))

    @staticmethod
    def from_opengl_camera_to_world(K: torch.Tensor, c2w_gl: torch.Tensor, width: int, height: int) -> "Cameras":
        """Cameras from Blender/NeRF-style OpenGL camera-to-world matrices [B, 4, 4]."""
        check_tensor(c2w_gl, "camera_to_world", (None, 4, 4))
        return Cameras(K, invert_rigid(opengl_to_opencv(c2w_gl)), width, height)
