"""Conditioning augmentation: corrupt a refiner's input in training (Ho et al. 2021, cascaded
generators), so the refiner learns to correct the kind of errors its input stage makes on
latents it never saw, instead of trusting every pixel of a reconstruction."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config.models import AugmentSpec

__all__ = ["augment_input", "gaussian_blur"]


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, max_sigma: float | None = None) -> torch.Tensor:
    """Blur each image of ``x`` (N x C x H x W) with its own Gaussian ``sigma`` (N,), in pixels;
    sigma 0 leaves an image unchanged. Separable, reflect-padded. The kernel reaches 3 sigma of
    the largest blur: ``max_sigma`` when the caller knows a bound (reading ``sigma.max()`` on the
    host would make a GPU wait), else the largest of ``sigma``."""
    n, c, h, w = x.shape
    largest = float(sigma.max()) if max_sigma is None else max_sigma
    radius = max(1, min(math.ceil(3 * largest), (min(h, w) - 1)))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    s = sigma.to(x.device, torch.float32).clamp_min(1e-3).view(n, 1)
    kernel = torch.exp(-0.5 * (offsets.view(1, -1) / s) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).to(x.dtype)  # N x K
    kernel = kernel.repeat_interleave(c, 0)  # one kernel per (image, channel) group
    y = x.reshape(1, n * c, h, w)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, kernel.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(y, kernel.view(n * c, 1, -1, 1), groups=n * c)
    layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return y.reshape(n, c, h, w).contiguous(memory_format=layout)


def augment_input(image: torch.Tensor, spec: AugmentSpec, generator: torch.Generator | None = None) -> torch.Tensor:
    """``image`` (a refiner's input in [-1, 1]) blurred and noised by per-image random amounts
    up to ``spec.blur`` and ``spec.noise``; unchanged when both are 0."""
    if not spec.noise and not spec.blur:
        return image
    n = image.shape[0]
    # drawn on the image's device (with the default generator there, unless one is given), so
    # that no amount crosses from the host in a step
    device = image.device if generator is None else generator.device
    if spec.blur:
        sigma = torch.rand(n, generator=generator, device=device) * spec.blur
        image = gaussian_blur(image, sigma, max_sigma=spec.blur)
    if spec.noise:
        std = (torch.rand(n, generator=generator, device=device) * spec.noise).to(image.device, image.dtype).view(n, 1, 1, 1)
        image = image + std * torch.randn_like(image)
    return image
