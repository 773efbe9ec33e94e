"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al., 2018).

Each pyramid level gives random 7x7 patches of both image sets; patches are normalised per
channel over both sets; the distance is the mean, over random unit directions, of the 1-D
Wasserstein distance of the projected patches. Small = the two sets have the same detail at
that scale. Level 0 is the finest (full resolution)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_KERNEL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _gauss(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = (_KERNEL[:, None] * _KERNEL[None, :]).to(x).expand(c, 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, groups=c)


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    pyramid = []
    current = x.float()
    for _ in range(levels - 1):
        down = _gauss(current)[..., ::2, ::2]
        up = F.interpolate(down, size=current.shape[-2:], mode="bilinear", align_corners=False)
        pyramid.append(current - up)
        current = down
    pyramid.append(current)
    return pyramid


def _positions(level: torch.Tensor, per_image: int, size: int, generator: torch.Generator):
    n, _, h, w = level.shape
    size = min(size, h, w)
    ys = torch.randint(0, h - size + 1, (n, per_image), generator=generator)
    xs = torch.randint(0, w - size + 1, (n, per_image), generator=generator)
    return ys, xs, size


def _patches(level: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, size: int) -> torch.Tensor:
    """The size x size patches at (ys, xs) of each image, one flattened (channel-major) per row."""
    n, per_image = ys.shape
    offsets = torch.arange(size)
    rows = (ys[:, :, None] + offsets)[:, :, :, None]  # n x p x size x 1
    cols = (xs[:, :, None] + offsets)[:, :, None, :]  # n x p x 1 x size
    images = torch.arange(n)[:, None, None, None]
    # advanced indices around the channel slice: the result is n x p x size x size x C
    patches = level[images, :, rows, cols]
    return patches.permute(0, 1, 4, 2, 3).reshape(n * per_image, -1)


def _sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: int, generator: torch.Generator) -> float:
    proj = torch.randn(a.shape[1], directions, generator=generator)
    proj = proj / proj.norm(dim=0, keepdim=True)
    # one direction per row, so each sort runs along contiguous memory (twice as fast as by column)
    pa, pb = (proj.T @ a.T).sort(dim=1).values, (proj.T @ b.T).sort(dim=1).values
    return float((pa - pb).abs().mean())


def swd(
    a: torch.Tensor,
    b: torch.Tensor,
    levels: int | None = None,
    patches_per_image: int = 16,
    patch_size: int = 7,
    directions: int = 256,
    repeats: int = 4,
    seed: int = 0,
) -> list[float]:
    """Per-level SWD between image sets a and b (N x C x H x W in [0, 1]; same N, same size)."""
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"SWD compares sets of the same image shape, got {tuple(a.shape[1:])} and {tuple(b.shape[1:])}")
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    if levels is None:  # down to about 8 pixels
        levels, size = 1, a.shape[-1]
        while size // 2 >= 8:
            size //= 2
            levels += 1
    g = torch.Generator().manual_seed(seed)
    result = []
    for la, lb in zip(laplacian_pyramid(a, levels), laplacian_pyramid(b, levels)):
        # the same random positions in both sets: content-independent, and identical sets give 0
        ys, xs, size = _positions(la, patches_per_image, patch_size, g)
        pa, pb = _patches(la, ys, xs, size), _patches(lb, ys, xs, size)
        both = torch.cat([pa, pb])
        c = la.shape[1]
        # normalise per channel over both sets (patch vectors are channel-major)
        view = both.view(both.shape[0], c, -1)
        mean, std = view.mean(dim=(0, 2), keepdim=True), view.std(dim=(0, 2), keepdim=True).clamp_min(1e-8)
        both = ((view - mean) / std).view_as(both)
        pa, pb = both[: len(pa)], both[len(pa) :]
        result.append(sum(_sliced_wasserstein(pa, pb, directions, g) for _ in range(repeats)) / repeats)
    return result
