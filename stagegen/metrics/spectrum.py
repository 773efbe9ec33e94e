"""Sharpness that noise cannot win: the distance between radially averaged power spectra.

The gradient-energy ratio (``sharpness_ratio``) has no ceiling: a stage that adds noise scores
above the real images, and more noise scores higher. Here each set's mean power per spatial
frequency ring is compared on a log scale, so missing detail (a blur: too little power at high
frequencies) and invented detail (noise, checkerboards: too much) both move the figure away
from 0, the value of a second set of real images.
"""

from __future__ import annotations

import torch

__all__ = ["radial_power_spectrum", "spectrum_distance"]


def radial_power_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Mean power of float N x C x H x W images per integer radius of spatial frequency (ring 0
    is the mean brightness), averaged over images and channels; one value per ring up to the
    Nyquist frequency of the shorter side."""
    x = images.double()
    h, w = x.shape[-2:]
    power = torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True), norm="ortho").abs().square().mean(dim=(0, 1))
    fy = torch.fft.fftfreq(h, dtype=torch.float64).view(-1, 1) * h
    fx = torch.fft.fftfreq(w, dtype=torch.float64).view(1, -1) * w
    # a ring's radius in cycles per image along the shorter side, so both axes share one scale
    radius = (torch.sqrt((fy * min(h, w) / h) ** 2 + (fx * min(h, w) / w) ** 2)).round().long()
    rings = min(h, w) // 2 + 1
    keep = radius < rings
    total = torch.zeros(rings, dtype=torch.float64).index_add_(0, radius[keep], power[keep])
    count = torch.zeros(rings, dtype=torch.float64).index_add_(0, radius[keep], torch.ones_like(power[keep]))
    return total / count.clamp_min(1)


def spectrum_distance(generated: torch.Tensor, real: torch.Tensor) -> float:
    """Mean absolute difference of log10 ring power between two sets of one resolution, over the
    rings above the mean brightness: 0 for the same spectrum, 1 for a tenfold miss on average."""
    if generated.shape[-2:] != real.shape[-2:]:
        raise ValueError(f"spectra compare images of one size, got {tuple(generated.shape[-2:])} and {tuple(real.shape[-2:])}")
    floor = 1e-12  # a flat image has no power at all; its log stays finite
    a = radial_power_spectrum(generated)[1:].clamp_min(floor).log10()
    b = radial_power_spectrum(real)[1:].clamp_min(floor).log10()
    return float((a - b).abs().mean())
