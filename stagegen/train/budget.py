"""What a time budget must leave room for, and how a budgeted run's schedule fits in it.

``train.time_budget`` is the whole run's time, counted from when the command started: once a
few steps are timed, training stops early enough to leave room for the work after it (encoding
the training images, fitting the prior and the priors per label, writing the pipeline, grids
and report). That work is estimated here from probes timed on this machine, not from constants:
a few hundred training images encoded, and the prior's own estimate of its fit
(:meth:`stagegen.priors.Prior.fit_seconds`). A refiner that joins at ``train_from`` is moved
earlier in proportion when the budget would end the run before it joins
(``train.budget_schedule``), so every stage trains.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..priors.contract import LatentSet, encode_dataset

#: training images encoded to time the encoder and give the prior's estimate real posteriors
PROBE_IMAGES = 512
#: writing the checkpoint, the pipeline file and the final grids, and then the report
#: (measured at 1 to 3 s together for the presets on the 2-core CPU; a margin above that)
OUTPUT_SECONDS = 2.0
REPORT_SECONDS = 4.0


@dataclass
class EndPhase:
    """Seconds the work after training is expected to take."""

    images: int  # training images the prior is fitted to
    encode: float
    fit: float
    label_fits: float
    outputs: float = OUTPUT_SECONDS + REPORT_SECONDS

    @property
    def total(self) -> float:
        return self.encode + self.fit + self.label_fits + self.outputs

    def describe(self) -> str:
        parts = []
        if self.fit or self.encode:
            parts.append(f"encoding {self.images:,} images and fitting the prior ~{self.encode + self.fit:.0f} s")
        if self.label_fits:
            parts.append(f"the priors per label ~{self.label_fits:.0f} s")
        parts.append(f"writing the pipeline, grids and report ~{self.outputs:.0f} s")
        return ", ".join(parts)

    def fit_note(self) -> str:
        """The prior fit's expected length, for the line said before it starts."""
        note = f"about {_seconds(self.encode + self.fit)} on this machine"
        return note + (f", then a prior per label, about {_seconds(self.label_fits)}" if self.label_fits else "")

    def record(self) -> dict[str, float]:
        return {
            "end_encode_seconds": self.encode,
            "end_fit_seconds": self.fit,
            "end_label_fit_seconds": self.label_fits,
            "end_output_seconds": self.outputs,
        }


def estimate_end_phase(trainer) -> EndPhase:
    """The cost of what follows training in ``trainer``'s run, from probes timed now."""
    t = trainer.config.train
    labels = None if trainer.labels is None else trainer.labels.index
    end = estimate_prior_fit(trainer.pipeline, trainer.dataset, t.prior_fit_images, t.conditional_prior, labels)
    end.outputs = OUTPUT_SECONDS + (REPORT_SECONDS if t.report else 0.0)
    return end


def estimate_prior_fit(pipeline, dataset, max_images: int | None, per_label: bool, labels=None) -> EndPhase:
    """The cost of fitting ``pipeline``'s prior to ``dataset`` (up to ``max_images``) and, with
    ``per_label`` where the dataset declares labels, a prior per label: a few hundred images
    encoded and timed, and the prior's own estimate of its fit. ``labels``: one class index per
    image, for a label-conditioned trunk."""
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    if not pipeline.prior.needs_fit or n == 0:
        return EndPhase(n, 0.0, 0.0, 0.0)
    m = min(n, PROBE_IMAGES)
    images = torch.stack([dataset[i] for i in range(m)])
    start = time.perf_counter()
    probe = encode_dataset(pipeline, images, labels=None if labels is None else labels[:m])
    encode = (time.perf_counter() - start) * n / m
    fit = pipeline.prior.fit_seconds(n, LatentSet(probe.mean, probe.std))
    # the same posteriors split by label: about the same work again
    label_fits = fit if per_label and _declares_labels(dataset) else 0.0
    return EndPhase(n, encode, fit, label_fits)


def _declares_labels(dataset) -> bool:
    from ..data.labels import labels_of

    return labels_of(dataset) is not None


def _seconds(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{max(seconds, 1):.0f} s"


def scaled_train_from(train_from: int, step: int, steps: int, reach: int) -> int:
    """Where a stage that joins at ``train_from`` of a run to ``steps`` joins when the run, now at
    ``step``, reaches only ``reach``: at the same fraction of what remains, so it trains for the
    same share of the run it was given (and at least one step)."""
    if train_from <= step or reach >= train_from or reach <= step + 1:
        return train_from  # it joins within the budget, has joined, or nothing more trains
    share = (train_from - step) / max(steps - step, 1)
    return max(step + 1, min(reach - 1, step + math.floor(share * (reach - step))))
