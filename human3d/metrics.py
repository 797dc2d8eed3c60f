"""Evaluation metrics: images (PSNR, SSIM, LPIPS availability), 3D pose (MPJPE, PA-MPJPE), geometry (Chamfer, IoU).

Conventions: images are channel-last ``[..., H, W, C]`` floats (``data_range`` 1 by default); every function reduces
over the non-batch dimensions and returns one value per leading batch element (a 0-d tensor for unbatched input).
Joints are ``[..., J, 3]`` in metres (multiply by 1000 for the customary millimetres).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from human3d.errors import InvalidInputError, LPIPSUnavailableError

__all__ = [
    "psnr",
    "mse",
    "ssim",
    "lpips",
    "lpips_available",
    "LPIPSUnavailableError",
    "mpjpe",
    "pa_mpjpe",
    "procrustes_align",
    "chamfer_distance",
    "iou",
    "nearest_neighbors",
    "chamfer_l1",
    "normal_consistency",
    "fscore",
    "volumetric_iou",
]


def _pair(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str, min_dim: int):
    for x, n in ((a, name_a), (b, name_b)):
        if not isinstance(x, torch.Tensor):
            raise InvalidInputError(f"{n}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() < min_dim:
            raise InvalidInputError(f"{n}: expected at least {min_dim} dimensions, got shape {tuple(x.shape)}")
    if a.shape != b.shape:
        raise InvalidInputError(f"{name_a} and {name_b}: shapes differ ({tuple(a.shape)} vs {tuple(b.shape)})")
    return a.float(), b.float()


# --------------------------------------------------------------------------------------------- images
def mse(img: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean squared error over ``[H, W, C]`` -> [...]."""
    img, ref = _pair(img, ref, "img", "ref", 3)
    return ((img - ref) ** 2).mean(dim=(-3, -2, -1))


def psnr(img: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: ``10 log10(data_range^2 / MSE)``. Images [..., H, W, C]."""
    m = mse(img, ref)
    return 10.0 * torch.log10(data_range**2 / m.clamp_min(1e-20))


def _gaussian_kernel1d(sigma: float, radius: int, dtype, device) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def ssim(
    img: torch.Tensor,
    ref: torch.Tensor,
    data_range: float = 1.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    reduce: bool = True,
) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) with an 11x11 Gaussian window, sigma 1.5, per image.

    Matches ``skimage.metrics.structural_similarity(img, ref, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range, channel_axis=-1)``: local statistics with a normalised
    separable Gaussian window, SSIM averaged over the region where the window fits inside the image
    (``(win_size - 1) // 2`` pixels cropped at each border) and over channels.

    Args:
        img, ref: [..., H, W, C] with H, W >= ``win_size``.
        reduce: False returns the SSIM map [..., H', W', C] instead of its mean.
    Returns: [...] SSIM per image.
    """
    img, ref = _pair(img, ref, "img", "ref", 3)
    H, W, C = img.shape[-3:]
    if H < win_size or W < win_size:
        raise InvalidInputError(f"img: SSIM needs H, W >= win_size={win_size}, got {H}x{W}")
    batch = img.shape[:-3]
    x = img.reshape(-1, H, W, C).permute(0, 3, 1, 2).reshape(-1, 1, H, W)  # [B*C, 1, H, W]
    y = ref.reshape(-1, H, W, C).permute(0, 3, 1, 2).reshape(-1, 1, H, W)
    r = (win_size - 1) // 2
    k = _gaussian_kernel1d(sigma, r, x.dtype, x.device)
    kx, ky = k.view(1, 1, 1, -1), k.view(1, 1, -1, 1)

    def filt(z):
        return F.conv2d(F.conv2d(z, kx), ky)  # "valid" region only

    stacked = torch.cat([x, y, x * x, y * y, x * y], 0)
    mu_x, mu_y, exx, eyy, exy = filt(stacked).chunk(5, 0)
    vx = exx - mu_x * mu_x
    vy = eyy - mu_y * mu_y
    cxy = exy - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (vx + vy + c2))  # [B*C, 1, h, w]
    h, w = s.shape[-2:]
    s = s.reshape(-1, C, h, w).permute(0, 2, 3, 1).reshape(batch + (h, w, C))
    return s.mean(dim=(-3, -2, -1)) if reduce else s


def lpips_available() -> bool:
    """LPIPS needs ImageNet-pretrained AlexNet/VGG weights plus the LPIPS linear heads. human3d never downloads
    weights at run time and ships none, so this is False; evaluation reports PSNR and SSIM only."""
    return False


def lpips(img: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Not available: raises :class:`LPIPSUnavailableError` (see :func:`lpips_available`)."""
    raise LPIPSUnavailableError(
        "LPIPS is not available: it needs pretrained AlexNet/VGG + LPIPS weights, which human3d does not ship and "
        "cannot download offline. Use psnr() and ssim()."
    )


# --------------------------------------------------------------------------------------------- pose
def mpjpe(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean per-joint position error: mean over joints of ``||pred - target||`` -> [...].

    Args: pred, target [..., J, 3] (same units as the output); mask [..., J] bool/float of joints to count.
    """
    pred, target = _pair(pred, target, "pred", "target", 2)
    d = (pred - target).norm(dim=-1)  # [..., J]
    if mask is None:
        return d.mean(-1)
    m = mask.to(d.dtype)
    return (d * m).sum(-1) / m.sum(-1).clamp_min(1)


def procrustes_align(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Similarity transform (scale, proper rotation, translation) of ``pred`` [..., J, 3] that best fits
    ``target`` in least squares (Umeyama 1991); returns the aligned ``pred``."""
    pred, target = _pair(pred, target, "pred", "target", 2)
    mu_p, mu_t = pred.mean(-2, keepdim=True), target.mean(-2, keepdim=True)
    p, t = pred - mu_p, target - mu_t
    var_p = (p**2).sum(dim=(-2, -1))  # [...]
    cov = p.transpose(-1, -2) @ t  # [..., 3, 3]  sum_j p_j t_j^T
    U, S, Vh = torch.linalg.svd(cov.double())
    d = torch.sign(torch.linalg.det(Vh.transpose(-1, -2) @ U.transpose(-1, -2)))
    D = torch.ones_like(S)
    D[..., -1] = d
    R = (Vh.transpose(-1, -2) * D[..., None, :]) @ U.transpose(-1, -2)  # t ~ s R p
    scale = (S * D).sum(-1) / var_p.double().clamp_min(1e-20)
    aligned = scale[..., None, None] * (p.double() @ R.transpose(-1, -2)) + mu_t.double()
    return aligned.to(pred.dtype)


def pa_mpjpe(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """MPJPE after Procrustes alignment with scale (PA-MPJPE / reconstruction error) -> [...]."""
    return mpjpe(procrustes_align(pred, target), target, mask)


# --------------------------------------------------------------------------------------------- geometry
def chamfer_distance(
    x: torch.Tensor, y: torch.Tensor, squared: bool = True, chunk: int = 4096
) -> torch.Tensor:
    """Symmetric Chamfer distance between point sets x [..., N, D] and y [..., M, D]:

    ``mean_i min_j d(x_i, y_j) + mean_j min_i d(x_i, y_j)`` with ``d`` the squared Euclidean distance
    (``squared=True``, the pytorch3d convention) or the Euclidean distance. Returns [...].
    """
    for a, n in ((x, "x"), (y, "y")):
        if not isinstance(a, torch.Tensor) or a.dim() < 2 or a.shape[-2] == 0:
            raise InvalidInputError(f"{n}: expected a non-empty point set [..., N, D], got {getattr(a, 'shape', a)}")
    if x.shape[:-2] != y.shape[:-2] or x.shape[-1] != y.shape[-1]:
        raise InvalidInputError(f"x and y: incompatible shapes {tuple(x.shape)} and {tuple(y.shape)}")

    def nearest(a, b):  # min over b for each a, chunked over a
        out = [torch.cdist(a[..., i : i + chunk, :], b).amin(-1) for i in range(0, a.shape[-2], chunk)]
        return torch.cat(out, -1)

    dx, dy = nearest(x.float(), y.float()), nearest(y.float(), x.float())
    if squared:
        dx, dy = dx**2, dy**2
    return dx.mean(-1) + dy.mean(-1)


def iou(a: torch.Tensor, b: torch.Tensor, threshold: float = 0.5, dims: int | None = None) -> torch.Tensor:
    """Intersection over union of binary masks / occupancy grids.

    Float inputs are binarised with ``> threshold``. Reduces over the last ``dims`` dimensions (default: all but
    the first when the input has >= 2 dims, i.e. one IoU per batch element). Two empty masks give IoU 1.
    """
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise InvalidInputError("a, b: expected torch.Tensors")
    if a.shape != b.shape:
        raise InvalidInputError(f"a and b: shapes differ ({tuple(a.shape)} vs {tuple(b.shape)})")
    ab = [t if t.dtype == torch.bool else t > threshold for t in (a, b)]
    if dims is None:
        dims = a.dim() - 1 if a.dim() >= 2 else a.dim()
    red = tuple(range(a.dim() - dims, a.dim()))
    inter = (ab[0] & ab[1]).sum(red).float()
    union = (ab[0] | ab[1]).sum(red).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


# --------------------------------------------------------------------------------------------- surfaces
# Surface metrics compare point sets sampled from two surfaces (OccNet's protocol: 100k points each). Distances are
# in the points' units; to compare shapes of different sizes divide by the reference's bounding-box diagonal (as
# ``tools/bench/implicit.py`` reports) or normalise both to the unit sphere first.
def _points(x, name: str):
    import numpy as np

    a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] != 3:
        raise InvalidInputError(f"{name}: expected a non-empty point set [N, 3], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InvalidInputError(f"{name}: contains NaN or inf")
    return a


def nearest_neighbors(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """For each point of x [N, 3] its nearest point in y [M, 3] (k-d tree): Euclidean distances [N] and indices [N]."""
    from scipy.spatial import cKDTree

    a, b = _points(x, "x"), _points(y, "y")
    d, i = cKDTree(b).query(a, k=1, workers=-1)
    return torch.from_numpy(d), torch.from_numpy(i.astype("int64"))


def chamfer_l1(x, y) -> torch.Tensor:
    """Chamfer-L1 (OccNet): ``0.5 (mean_i min_j ||x_i - y_j|| + mean_j min_i ||x_i - y_j||)`` with the Euclidean
    (not squared) distance, in the points' units. x [N, 3], y [M, 3] -> 0-d float64."""
    return 0.5 * (nearest_neighbors(x, y)[0].mean() + nearest_neighbors(y, x)[0].mean())


def normal_consistency(x, nx, y, ny) -> torch.Tensor:
    """Normal consistency (OccNet): the mean absolute cosine between each point's unit normal and the normal of its
    nearest neighbour on the other surface, averaged over both directions; 1 is perfect, orientation is ignored.
    x [N, 3] with normals nx [N, 3], y [M, 3] with ny [M, 3] -> 0-d float64."""
    import numpy as np

    na, nb = _points(nx, "nx"), _points(ny, "ny")
    if len(na) != len(_points(x, "x")) or len(nb) != len(_points(y, "y")):
        raise InvalidInputError("nx, ny: expected one normal per point of x and y")
    na = na / np.maximum(np.linalg.norm(na, axis=1, keepdims=True), 1e-12)
    nb = nb / np.maximum(np.linalg.norm(nb, axis=1, keepdims=True), 1e-12)
    ixy, iyx = nearest_neighbors(x, y)[1].numpy(), nearest_neighbors(y, x)[1].numpy()
    c1 = np.abs((na * nb[ixy]).sum(1)).mean()
    c2 = np.abs((nb * na[iyx]).sum(1)).mean()
    return torch.tensor(0.5 * (c1 + c2), dtype=torch.float64)


def fscore(pred, ref, tau: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """F-score at threshold ``tau`` (Tatarchenko et al. 2019; same units as the points): precision = fraction of
    pred points within ``tau`` of ref, recall = fraction of ref points within ``tau`` of pred,
    F = 2 P R / (P + R) (0 when both are 0). Returns (F, precision, recall) as 0-d float64 tensors."""
    if not tau > 0:
        raise InvalidInputError(f"tau: expected a positive distance, got {tau}")
    p = (nearest_neighbors(pred, ref)[0] < tau).double().mean()
    r = (nearest_neighbors(ref, pred)[0] < tau).double().mean()
    f = torch.where(p + r > 0, 2 * p * r / (p + r).clamp_min(1e-300), torch.zeros_like(p))
    return f, p, r


def volumetric_iou(inside_a: torch.Tensor, inside_b: torch.Tensor) -> torch.Tensor:
    """Volumetric IoU ``|A n B| / |A u B|`` estimated from the same uniform samples of the bounding box, given each
    solid's occupancy at those samples: bool [..., N] (or floats, thresholded at 0.5). The estimate is unbiased for
    both volumes and its standard error shrinks as ``1/sqrt(N)`` (OccNet uses N = 100k). Returns [...]."""
    if not isinstance(inside_a, torch.Tensor) or inside_a.dim() < 1 or inside_a.shape[-1] == 0:
        raise InvalidInputError("inside_a: expected occupancy samples [..., N] as a torch.Tensor")
    return iou(inside_a, inside_b, dims=1)
