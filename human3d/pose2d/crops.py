"""Person-centred crops and their augmentation, as pure batched functions.

Convention: **continuous pixel coordinates** everywhere (pixel ``(row i, column j)`` covers ``[j, j+1) x [i, i+1)``,
its centre is ``(j + 0.5, i + 0.5)``; :mod:`human3d.geometry.cameras`). A crop is described by a ``[B, 2, 3]``
affine matrix ``A`` mapping *crop* coordinates to *image* coordinates, ``p_img = A @ [u_c, v_c, 1]``:

    p_img = centre + (side / S) * R(rotation) @ F @ (p_crop - S/2),   F = diag(-1, 1) when flipped, else I

so the crop's centre ``(S/2, S/2)`` lands on ``centre`` and its ``S`` pixels span ``side`` image pixels. Images are
resampled with ``grid_sample(align_corners=False)``, whose normalised coordinate ``2 u / W - 1`` is exactly this
pixel convention (no half-pixel offset). A horizontally flipped crop also swaps the left/right joints
(:func:`flip_pairs`), so that index ``k`` still names the same body joint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from human3d.body.skeletons import skeleton_names
from human3d.errors import InvalidInputError, check_tensor

__all__ = ["flip_pairs", "flip_permutation", "crop_matrices", "invert_affine", "apply_affine", "warp_images",
           "boxes_from_keypoints", "box_to_centre_side", "half_body_boxes", "UPPER_BODY_COCO17"]  # fmt: skip

#: COCO-17 joints of the upper body (nose .. wrists); the rest (hips .. ankles) are the lower body
UPPER_BODY_COCO17 = tuple(range(11))


def flip_pairs(skeleton: str = "coco17") -> list[tuple[int, int]]:
    """Index pairs ``(left_x, right_x)`` of ``skeleton``'s keypoint names (found by name)."""
    names = skeleton_names(skeleton)
    return [(i, names.index("right_" + n[5:])) for i, n in enumerate(names)
            if n.startswith("left_") and "right_" + n[5:] in names]  # fmt: skip


def flip_permutation(skeleton: str = "coco17") -> torch.Tensor:
    """``perm`` [K] with ``flipped[..., k, :] = keypoints[..., perm[k], :]`` (left <-> right, others fixed)."""
    perm = list(range(len(skeleton_names(skeleton))))
    for a, b in flip_pairs(skeleton):
        perm[a], perm[b] = b, a
    return torch.tensor(perm)


def crop_matrices(centre: torch.Tensor, side: torch.Tensor, size: int, rotation: torch.Tensor | None = None,
                  flip: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Crop -> image affine matrices ``[B, 2, 3]`` (see the module docstring).

    Args:
        centre: ``[B, 2]`` crop centre in image pixels.
        side: ``[B]`` image pixels spanned by the crop's side.
        size: ``S``, the crop's side in pixels.
        rotation: ``[B]`` radians (the crop turned counter-clockwise on screen by this angle's sign convention:
            ``R = [[cos, -sin], [sin, cos]]`` in (u, v) with v down); None: 0.
        flip: ``[B]`` bool, horizontal flip; None: none.
    """
    check_tensor(centre, "centre", (None, 2), dtype_floating=True)
    B = centre.shape[0]
    check_tensor(side, "side", (B,), dtype_floating=True)
    if not (isinstance(size, int) and size > 0):
        raise InvalidInputError(f"size: expected a positive int crop side in pixels, got {size!r}")
    rot = torch.zeros(B, dtype=centre.dtype, device=centre.device) if rotation is None else rotation
    c, s = torch.cos(rot), torch.sin(rot)
    k = side / size  # [B] image pixels per crop pixel
    R = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # [B, 2, 2]
    M = R * k[:, None, None]
    if flip is not None:  # F on the right: negate the column that multiplies the crop's u
        sign = torch.where(flip, -1.0, 1.0).to(M.dtype)  # [B]
        M = torch.cat([M[:, :, :1] * sign[:, None, None], M[:, :, 1:]], -1)
    t = centre - (M @ torch.full((B, 2, 1), size / 2.0, dtype=M.dtype, device=M.device))[..., 0]
    return torch.cat([M, t[..., None]], -1)


def invert_affine(A: torch.Tensor) -> torch.Tensor:
    """Inverse of ``[B, 2, 3]`` affine maps (image -> crop for a crop matrix)."""
    M = torch.linalg.inv(A[:, :, :2])
    return torch.cat([M, -(M @ A[:, :, 2:])], -1)


def apply_affine(A: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """``A`` [B, 2, 3] applied to points ``uv`` [B, K, 2] -> [B, K, 2] (NaN stays NaN)."""
    return uv @ A[:, :, :2].transpose(1, 2) + A[:, None, :, 2]


def warp_images(images: torch.Tensor, A: torch.Tensor, size: int) -> torch.Tensor:
    """Resample ``images`` [B, C, H, W] into ``size x size`` crops [B, C, S, S] (bilinear, zeros outside)."""
    B, _, H, W = images.shape
    ax = torch.arange(size, dtype=A.dtype, device=A.device) + 0.5
    grid = torch.stack(torch.meshgrid(ax, ax, indexing="xy"), -1).view(1, -1, 2).expand(B, -1, -1)  # [B, S*S, 2]
    p = apply_affine(A, grid)  # image pixels
    norm = torch.stack([2 * p[..., 0] / W - 1, 2 * p[..., 1] / H - 1], -1).view(B, size, size, 2)
    return F.grid_sample(images.to(A.dtype), norm, mode="bilinear", padding_mode="zeros", align_corners=False)


def boxes_from_keypoints(kp: torch.Tensor) -> torch.Tensor:
    """Tight boxes ``[B, 4]`` (x, y, w, h) of the labelled keypoints ``kp`` [B, K, 3] (flag > 0); zeros if none."""
    on = kp[..., 2] > 0
    inf = torch.tensor(float("inf"), dtype=kp.dtype)
    lo = torch.where(on[..., None], kp[..., :2], inf).amin(1)
    hi = torch.where(on[..., None], kp[..., :2], -inf).amax(1)
    box = torch.cat([lo, hi - lo], -1)
    return torch.where(on.any(1)[:, None], box, torch.zeros_like(box))


def box_to_centre_side(box: torch.Tensor, padding: float = 1.25) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, 4]`` (x, y, w, h) -> square crop: centre [B, 2], side [B] = ``padding * max(w, h)`` (at least 1 px)."""
    centre = box[:, :2] + 0.5 * box[:, 2:]
    return centre, (padding * box[:, 2:].amax(-1)).clamp(min=1.0)


def half_body_boxes(kp: torch.Tensor, choose_upper: torch.Tensor, min_joints: int = 3,
                    upper=UPPER_BODY_COCO17) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Half-body augmentation (HRNet): the box of the labelled upper- (or lower-) body joints.

    Args:
        kp: ``[B, K, 3]`` keypoints (flag > 0: labelled).
        choose_upper: ``[B]`` bool, which half to take (the other is taken when this one has < ``min_joints``).
    Returns ``(box [B, 4], ok [B])``: ``ok`` where the chosen half has at least ``min_joints`` labelled joints.
    """
    K = kp.shape[1]
    is_up = torch.zeros(K, dtype=torch.bool, device=kp.device)
    is_up[list(upper)] = True
    on = kp[..., 2] > 0
    n_up, n_lo = (on & is_up).sum(1), (on & ~is_up).sum(1)
    take_up = torch.where(choose_upper, n_up >= min_joints, n_lo < min_joints)
    sel = on & torch.where(take_up[:, None], is_up[None], ~is_up[None])
    ok = sel.sum(1) >= min_joints
    part = torch.cat([kp[..., :2], sel[..., None].to(kp.dtype)], -1)
    return boxes_from_keypoints(part), ok

