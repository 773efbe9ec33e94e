"""Per-image quality measures on float images in [0, 1], N x C x H x W."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..images import resize

PSNR_CAP = 100.0  # dB reported for identical images (the true value is infinite)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for data range 1, capped at PSNR_CAP."""
    mse = (a.float() - b.float()).square().flatten(1).mean(1)
    value = 10 * torch.log10(1.0 / mse.clamp_min(1e-30))
    return value.clamp(max=PSNR_CAP)


def _gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    c, r = x.shape[1], window.numel() // 2
    kx = window.view(1, 1, 1, -1).repeat(c, 1, 1, 1).to(x)
    ky = window.view(1, 1, -1, 1).repeat(c, 1, 1, 1).to(x)
    x = F.pad(x, (r, r, r, r), mode="reflect")
    return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)


def ssim(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004) with a Gaussian window, as scikit-image computes it
    with gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1: the
    map is averaged over channels and over the image minus a border of the window's radius."""
    a, b = a.double(), b.double()
    window = _gaussian_window(sigma)
    r = window.numel() // 2
    if min(a.shape[-2:]) <= 2 * r:
        raise ValueError(f"images of {tuple(a.shape[-2:])} are too small for SSIM's {2 * r + 1}-pixel window")
    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = _blur(a, window), _blur(b, window)
    var_a = _blur(a * a, window) - mu_a**2
    var_b = _blur(b * b, window) - mu_b**2
    cov = _blur(a * b, window) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s[..., r:-r, r:-r].mean(dim=(1, 2, 3)).float()


def gradient_energy(x: torch.Tensor) -> torch.Tensor:
    """Mean squared finite-difference gradient per image (higher = more high-frequency detail)."""
    x = x.float()
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return dx.square().flatten(1).mean(1) + dy.square().flatten(1).mean(1)


def sharpness_ratio(generated: torch.Tensor, real: torch.Tensor) -> float:
    """Mean gradient energy of generated images over that of real ones: 1.0 = as sharp as the data."""
    if generated.shape[-1] != real.shape[-1]:
        real = resize(real.float(), generated.shape[-2:])
    return float(gradient_energy(generated).mean() / gradient_energy(real).mean().clamp_min(1e-12))


def finite_mean(values: torch.Tensor) -> float:
    values = values[torch.isfinite(values)]
    return float(values.mean()) if values.numel() else math.nan
