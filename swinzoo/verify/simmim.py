"""SimMIM's masking and loss, written here from the paper's code: the reference side of every SimMIM check.

Independent of swinzoo's model and converter (it imports torch and nothing of swinzoo's but the error type), so
a mistake in swinzoo's SimMIM head cannot be repeated here; tests/test_verify.py checks these imports.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import VerifyError


def simmim_mask(
    count: int, image_size: int, patch_size: int, mask_patch_size: int, mask_ratio: float, seed: int
) -> torch.Tensor:
    """SimMIM's random mask as ``bool_masked_pos`` (count, (image_size / patch_size)^2), reproducibly seeded.

    As the official MaskGenerator: the image is cut into ``mask_patch_size`` squares, ``ceil(ratio * squares)``
    of them are masked (a random permutation per image), and each square covers
    ``(mask_patch_size / patch_size)^2`` model patches.
    """
    if mask_patch_size % patch_size:
        raise VerifyError(f"mask_patch_size {mask_patch_size} is not a multiple of patch_size {patch_size}")
    side = -(-image_size // mask_patch_size)
    scale = mask_patch_size // patch_size
    grid = image_size // patch_size
    squares = side * side
    masked = math.ceil(squares * mask_ratio)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        flat = torch.zeros(squares, dtype=torch.bool)
        flat[torch.randperm(squares, generator=g)[:masked]] = True
        full = flat.view(side, side).repeat_interleave(scale, 0).repeat_interleave(scale, 1)
        out.append(full[:grid, :grid].reshape(-1))
    return torch.stack(out)


def local_norm_targets(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """SimMIM V2's normalised targets, from their definition with box sums over an integral image.

    Each pixel is standardised by the mean and the unbiased variance (clamped at 0, + 1e-6) of the
    ``size x size`` window centred on it, the window cut at the image border. Written independently of
    swinzoo's pooling-based version, in float64.
    """
    if size % 2 == 0:
        raise VerifyError(f"norm target patch size {size} must be odd (a window centred on each pixel)")
    x = pixels.double()
    _, _, h, w = x.shape
    r = size // 2

    def bounds(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.arange(n)
        return (i - r).clamp(0, n), (i + r + 1).clamp(0, n)

    y0, y1 = bounds(h)
    x0, x1 = bounds(w)

    def box(t: torch.Tensor) -> torch.Tensor:
        s = F.pad(t.cumsum(2).cumsum(3), (1, 0, 1, 0))
        return s[:, :, y1][..., x1] - s[:, :, y0][..., x1] - s[:, :, y1][..., x0] + s[:, :, y0][..., x0]

    n = ((y1 - y0)[:, None] * (x1 - x0)[None, :]).double()
    total, squares = box(x), box(x * x)
    mean = total / n
    var = ((squares - total * total / n) / (n - 1)).clamp(min=0.0)
    return ((x - mean) / (var + 1e-6).sqrt()).to(pixels.dtype)


def masked_l1_loss(
    pixels: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor, patch_size: int, target_size: int | None
) -> torch.Tensor:
    """SimMIM's loss: mean L1 over masked pixels, divided by the channels (optionally vs normalised targets)."""
    b, c, h, w = pixels.shape
    grid = mask.view(b, h // patch_size, w // patch_size)
    pixel_mask = grid.repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2).unsqueeze(1).float()
    target = local_norm_targets(pixels, target_size) if target_size else pixels
    per_pixel = (target - reconstruction).abs()
    return (per_pixel * pixel_mask).sum() / (pixel_mask.sum() + 1e-5) / c
