"""What DVR needs from a scene dataset besides images and cameras: object masks (and optional depth maps).

Masks come from the images' alpha channel (Blender RGBA) or from mask files ``DATA/masks/...``: for an image
``DATA/<sub>/<name>.<ext>`` the first that exists of ``DATA/masks/<sub>/<name>.<ext>``, ``.../<sub>/<name>.png``,
``DATA/masks/<name>.<ext>``, ``DATA/masks/<name>.png`` (white = object; resized to the loaded resolution).
Depth maps (optional, for ``loss.depth``): ``DATA/depth/<sub>/<name>.npy``, camera-frame z in world units,
0 where empty (what :func:`human3d.synth.multiview.render_multiview` writes).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from human3d.data.scenes import SceneSplit, read_image
from human3d.errors import DatasetError

__all__ = ["split_masks", "split_depths", "check_cameras", "MASK_HELP"]

MASK_HELP = ("DVR learns from object masks: give RGBA images (alpha = object, as Blender/nerf_synthetic scenes) or "
             "one mask per image in DATA/masks/ (same name, or the name with .png; white = object)")  # fmt: skip


def _candidates(root: Path, image: Path, folder: str, suffixes: tuple[str, ...]) -> list[Path]:
    """Files that may hold ``image``'s mask / depth: ``root/folder/<path relative to root>`` then the bare name,
    each with the image's own suffix (when in ``suffixes``, "" for it) and every one of ``suffixes``."""
    try:
        rel = image.resolve().relative_to(root.resolve())
    except ValueError:
        rel = Path(image.name)
    out = []
    for base in (rel, Path(rel.name)):
        out += [base.with_suffix(x) if x else base for x in suffixes]
    return [root / folder / n for n in dict.fromkeys(out)]


def split_masks(split: SceneSplit, root, require: bool = True) -> torch.Tensor | None:
    """Object masks [N, H, W] float32 in [0, 1] of a split: its alpha channel, else mask files (see the module
    docstring). Raises :class:`DatasetError` saying how to provide masks when there are none (``require``; else
    returns None), when some mask files are missing, or when a view's mask is empty."""
    root = Path(root)
    if split.alphas is not None:
        masks = split.alphas[..., 0].float()
    else:
        found = [next((c for c in _candidates(root, p, "masks", ("", ".png")) if c.is_file()), None) for p in split.image_paths]
        if not any(f is not None for f in found):
            if not require:
                return None
            raise DatasetError(f"dataset '{root}' ({split.split} split): the images have no alpha channel and no "
                               f"mask files were found (e.g. '{_candidates(root, split.image_paths[0], 'masks', ('.png',))[0]}'). "
                               f"{MASK_HELP}")  # fmt: skip
        missing = [str(p) for p, f in zip(split.image_paths, found) if f is None]
        if missing:
            raise DatasetError(f"dataset '{root}': {len(missing)} image(s) of the {split.split} split have no mask "
                               f"file, e.g. '{missing[0]}'. {MASK_HELP}")  # fmt: skip
        arr = []
        for f in found:
            m = read_image(f)
            m = m[..., 3] if m.shape[-1] == 4 else m[..., 0]
            if m.shape != (split.height, split.width):
                m = cv2.resize(m, (split.width, split.height), interpolation=cv2.INTER_AREA)
            arr.append(m)
        masks = torch.from_numpy(np.stack(arr)).float()
    if not torch.isfinite(masks).all():
        raise DatasetError(f"dataset '{root}' ({split.split} split): masks contain NaN or inf")
    empty = [str(split.image_paths[i]) for i in (masks > 0.5).flatten(1).sum(1).eq(0).nonzero()[:, 0].tolist()]
    if empty:
        raise DatasetError(f"dataset '{root}' ({split.split} split): the masks of {len(empty)} view(s) are empty "
                           f"(no pixel with mask/alpha > 0.5), e.g. '{empty[0]}'; DVR needs the object visible in "
                           f"every view: fix those masks or remove the views")  # fmt: skip
    return masks


def split_depths(split: SceneSplit, root) -> torch.Tensor | None:
    """Depth maps [N, H, W] (camera z, 0 = none) of a split from ``DATA/depth/...npy`` or None when there are none;
    resized (nearest) to the loaded resolution."""
    root = Path(root)
    found = [next((c for c in _candidates(root, p, "depth", (".npy",)) if c.is_file()), None) for p in split.image_paths]
    if not all(f is not None for f in found):
        return None
    out = []
    for f in found:
        try:
            d = np.load(f, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as e:
            raise DatasetError(f"depth map '{f}' is unreadable: {e}") from None
        if d.ndim != 2 or not np.isfinite(d).all():
            raise DatasetError(f"depth map '{f}': expected a finite [H, W] array, got shape {d.shape}")
        if d.shape != (split.height, split.width):
            d = cv2.resize(d, (split.width, split.height), interpolation=cv2.INTER_NEAREST)
        out.append(d)
    return torch.from_numpy(np.stack(out))


def check_cameras(split: SceneSplit, root) -> None:
    """Raise :class:`DatasetError` naming the view when a camera has non-finite intrinsics or pose."""
    bad = ~(torch.isfinite(split.cameras.K).flatten(1).all(1) & torch.isfinite(split.cameras.world_to_camera).flatten(1).all(1))
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise DatasetError(f"dataset '{root}' ({split.split} split): camera of view {i} ('{split.image_paths[i]}') "
                           f"has non-finite intrinsics or pose (NaN/inf); fix the camera file")  # fmt: skip
