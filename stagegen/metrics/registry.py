"""What a metric plugin provides: a registered name, what it needs, and a per-stage computation.

``evaluate`` reconstructs held-out images and draws prior samples once, then gives every
requested metric a :class:`MetricContext` per stage; each fills its columns of that stage's row.
Built-in metrics register through the ``register_metrics`` hook like any plugin's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["MetricContext", "MetricType"]


@dataclass
class MetricContext:
    """Everything one stage's metrics may read. Images are float N x C x H x W in [0, 1]."""

    stage: int
    resolution: int
    real: torch.Tensor  # the real images at this stage's resolution
    reconstructions: torch.Tensor | None = None
    samples: torch.Tensor | None = None
    seed: int = 0
    #: the resources the metrics need, by name (``classifier``, ``fid_features``, ``lpips``, or a plugin's)
    resources: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)  # shared by the metrics of one evaluation
    final_real: torch.Tensor | None = None  # the real images at the pipeline's (last stage's) resolution
    #: with a conditional prior: each label's name and this stage's samples drawn from its prior
    label_samples: list[tuple[str, torch.Tensor]] | None = None


@dataclass(frozen=True, kw_only=True)
class MetricType:
    """A registered metric. ``compute(ctx)`` returns this stage's values, by column name
    (``recon_psnr``, ``sample_fid``, ...); ``summary(real, resources)`` optionally adds values
    about the real images to the report once (the real images' own recognisability)."""

    name: str
    #: ``reconstructions``, ``samples``, and the names of the resources it reads (registered
    #: through ``register_metric_resources``); one left unprovided leaves the metric out
    needs: tuple[str, ...]
    compute: Callable[[MetricContext], dict[str, Any]]
    description: str = ""
    default: bool = True  # part of the default --metrics list
    #: optional packages it imports (``torch_fidelity``): one that cannot be imported here leaves
    #: the metric out, with the reason, before any work is done
    imports: tuple[str, ...] = ()
    summary: Callable[[torch.Tensor, dict[str, Any]], dict[str, Any]] | None = None
    #: which way is better for each column it writes, shown beside the values: "higher", "lower",
    #: or the value a perfect model scores ("0.5" for a two-sample test's accuracy)
    better: dict[str, str] = field(default_factory=dict)
