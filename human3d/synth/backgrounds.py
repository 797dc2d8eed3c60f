"""Backgrounds for synthetic images: random crops of real photos and procedural textures (batched, torch).

Photos come from scikit-image's bundled ``skimage.data`` images (a dependency; shipped inside its wheel, no
download): scenes, objects, textures and microscopy, public domain or permissively licensed (see
``skimage.data``'s documentation). Images showing people (``astronaut``, ``camera``) are left out, so that no
unlabelled person appears in a background.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["PHOTO_NAMES", "photo_bank", "photo_crops", "procedural_textures", "random_backgrounds"]

PHOTO_NAMES = ("brick", "cat", "chelsea", "coffee", "coins", "grass", "gravel", "hubble_deep_field",
               "immunohistochemistry", "moon", "rocket", "clock", "page", "text", "horse", "cell", "colorwheel",
               "retina")  # fmt: skip

_BANK: list[torch.Tensor] = []


def photo_bank() -> list[torch.Tensor]:
    """The photos as float RGB tensors ``[3, h, w]`` in [0, 1] (loaded once per process; ~0.1 s)."""
    if not _BANK:
        import numpy as np
        import skimage.data

        for name in PHOTO_NAMES:
            try:
                im = np.asarray(getattr(skimage.data, name)())
            except Exception:  # noqa: BLE001 - an image missing from this scikit-image version is skipped
                continue
            if im.dtype == bool:
                im = im.astype(np.uint8) * 255
            im = im.astype(np.float32) / (255.0 if im.max() > 1.5 else 1.0)
            if im.ndim == 2:
                im = np.repeat(im[..., None], 3, -1)
            _BANK.append(torch.from_numpy(np.ascontiguousarray(im[..., :3])).permute(2, 0, 1))
    return _BANK


def photo_crops(n: int, height: int, width: int, g: torch.Generator) -> torch.Tensor:
    """``n`` random crops [n, 3, H, W] (random photo, scale, position, horizontal flip, colour tint)."""
    bank = photo_bank()
    out = []
    pick = torch.randint(0, len(bank), (n,), generator=g).tolist()
    for k in pick:  # one crop per image (a loop over images, not pixels)
        im = bank[k]
        h, w = im.shape[-2:]
        s = float(0.3 + 0.7 * torch.rand((), generator=g))  # crop side as a fraction of the largest that fits
        ch = max(8, int(min(h, w * height / width) * s))
        cw = max(8, int(ch * width / height))
        cw = min(cw, w)
        y0 = int(torch.randint(0, h - ch + 1, (), generator=g))
        x0 = int(torch.randint(0, w - cw + 1, (), generator=g))
        crop = im[:, y0 : y0 + ch, x0 : x0 + cw]
        out.append(F.interpolate(crop[None], size=(height, width), mode="bilinear", align_corners=False)[0])
    x = torch.stack(out)  # [n, 3, H, W]
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    tint = 0.75 + 0.5 * torch.rand(n, 3, 1, 1, generator=g)
    return (x * tint).clamp(0, 1)


def procedural_textures(n: int, height: int, width: int, g: torch.Generator) -> torch.Tensor:
    """``n`` procedural backgrounds [n, 3, H, W]: multi-octave value noise mixed with stripes / gradients."""
    x = torch.zeros(n, 3, height, width)
    for octave, amp in ((4, 0.6), (16, 0.3), (64, 0.15)):
        grid = torch.rand(n, 3, octave, octave, generator=g)
        x = x + amp * F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
    x = x / 1.05
    v, u = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    ang = torch.rand(n, generator=g) * math.pi
    freq = 2 + 20 * torch.rand(n, generator=g)
    t = u * torch.cos(ang)[:, None, None] + v * torch.sin(ang)[:, None, None]  # [n, H, W]
    stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * freq[:, None, None] * t)
    col = torch.rand(n, 3, 1, 1, generator=g)
    mix = torch.rand(n, 1, 1, 1, generator=g) * 0.6
    x = (1 - mix) * x + mix * stripes[:, None] * col
    return x.clamp(0, 1)


def random_backgrounds(n: int, height: int, width: int, g: torch.Generator, photo_fraction: float = 0.7) -> torch.Tensor:
    """[n, 3, H, W] in [0, 1]: photo crops with probability ``photo_fraction``, else procedural textures."""
    photo = torch.rand(n, generator=g) < photo_fraction
    out = procedural_textures(n, height, width, g)
    k = int(photo.sum())
    if k:
        out[photo] = photo_crops(k, height, width, g)
    return out
