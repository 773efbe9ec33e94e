"""Quality measures that need no downloaded weights (PSNR, SSIM, sharpness, SWD, FID with
stagegen's own MNIST classifier), plus FID-Inception and LPIPS where their weights exist."""

from .evaluate import evaluate, format_table, generate, metric_names, reconstruct_all
from .fid import feature_extractor, frechet_distance
from .image import gradient_energy, psnr, sharpness_ratio, ssim
from .registry import MetricContext, MetricType
from .swd import laplacian_pyramid, swd

__all__ = [
    "MetricContext",
    "MetricType",
    "evaluate",
    "metric_names",
    "format_table",
    "generate",
    "reconstruct_all",
    "feature_extractor",
    "frechet_distance",
    "gradient_energy",
    "psnr",
    "sharpness_ratio",
    "ssim",
    "laplacian_pyramid",
    "swd",
]
