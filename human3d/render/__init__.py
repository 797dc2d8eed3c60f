"""Mesh rendering in pure torch (no pytorch3d): hard z-buffer rasterizer, soft silhouettes, overlays.

* :func:`rasterize_mesh` -> :class:`Fragments` (depth, mask, face ids, perspective-correct barycentrics), plus
  :func:`interpolate_face_attributes`, :func:`pixel_normals`, :func:`shade_lambert`.
* :func:`render_soft_silhouette` -> :class:`SoftRender` (SoftRas-style differentiable silhouette and depth).
* :mod:`human3d.render.overlay`: :func:`render_overlay`, :func:`draw_keypoints`, :func:`save_png` (RGB images).

Cameras are :class:`human3d.geometry.Cameras` (OpenCV: x right, y down, z forward; pixel centres at +0.5).
"""

from human3d.render.overlay import draw_keypoints, render_mesh_rgba, render_overlay, save_png
from human3d.render.rasterizer import (
    Fragments,
    face_normals,
    headlight_direction,
    interpolate_face_attributes,
    interpolate_vertex_attributes,
    pixel_normals,
    rasterize_mesh,
    shade_lambert,
    vertex_normals,
)
from human3d.render.soft import SoftRender, render_soft_silhouette, truncation_radius

__all__ = [
    "Fragments",
    "rasterize_mesh",
    "interpolate_face_attributes",
    "interpolate_vertex_attributes",
    "face_normals",
    "vertex_normals",
    "pixel_normals",
    "headlight_direction",
    "shade_lambert",
    "SoftRender",
    "render_soft_silhouette",
    "truncation_radius",
    "render_overlay",
    "render_mesh_rgba",
    "draw_keypoints",
    "save_png",
]
