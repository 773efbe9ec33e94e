"""What a metric plugin provides: a registered name, what it needs, and a per-stage computation.

``evaluate`` reconstructs held-out images and draws prior samples once, then gives every
requested metric a :class:`MetricContext` per stage; each fills its columns of that stage's row.
Built-in metrics register through the ``register_metrics`` hook like any plugin's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

__all__ = ["MetricContext", "MetricType", "Need"]

#: what a metric reads: reconstructions of the real images, prior samples, or a resource the
#: caller may supply (FID features, a digit classifier, an LPIPS network). A metric whose
#: resource was not supplied is left out of the report, not failed.
Need = Literal["reconstructions", "samples", "fid_features", "classifier", "lpips"]


@dataclass
class MetricContext:
    """Everything one stage's metrics may read. Images are float N x C x H x W in [0, 1]."""

    stage: int
    resolution: int
    real: torch.Tensor  # the real images at this stage's resolution
    reconstructions: torch.Tensor | None = None
    samples: torch.Tensor | None = None
    seed: int = 0
    fid_features: Any = None  # a FeatureExtractor: images -> feature matrix
    real_features: torch.Tensor | None = None  # fid_features of the real images at full resolution
    classifier: Any = None  # a metrics.classifiers.Classifier
    lpips: Any = None  # an LPIPS network over [-1, 1] images
    cache: dict[str, Any] = field(default_factory=dict)  # shared by the metrics of one evaluation
    final_real: torch.Tensor | None = None  # the real images at the pipeline's (last stage's) resolution


@dataclass(frozen=True, kw_only=True)
class MetricType:
    """A registered metric. ``compute(ctx)`` returns this stage's values, by column name
    (``recon_psnr``, ``sample_fid``, ...); ``summary(real, resources)`` optionally adds values
    about the real images to the report once (the real images' own recognisability)."""

    name: str
    needs: tuple[Need, ...]
    compute: Callable[[MetricContext], dict[str, Any]]
    description: str = ""
    default: bool = True  # part of the default --metrics list
    summary: Callable[[torch.Tensor, dict[str, Any]], dict[str, Any]] | None = None

    def __post_init__(self):
        unknown = set(self.needs) - set(Need.__args__)
        if unknown:
            raise ValueError(f"metric {self.name!r} needs {sorted(unknown)}; a metric may need {', '.join(Need.__args__)}")
