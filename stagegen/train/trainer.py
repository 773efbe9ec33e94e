"""The training loop: when to step, log, sample, checkpoint and stop, for any chain of stages.

(Over 300 lines for one reason: ``fit`` is kept whole, so the order of events in a run reads
top to bottom in one place.)

What one step does lives in :mod:`.step` (over a :class:`.state.TrainState`); what a run leaves
behind in :mod:`.outputs`; starting and resuming runs in :mod:`.run`. Here: the device and
processes, the data order, the metrics, the signals, and the checkpoints every K steps (written
atomically) from which a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..config import RunConfig
from ..devices import check_memory, resolve_device
from ..io import atomic_write
from ..pipeline import Pipeline, to_model_range
from .checkpoint import (
    checkpoint_document,
    checkpoint_note,
    gather_rng,
    load_checkpoint,
    restore_state,
    save_checkpoint,
    set_rng_state,
)
from .distributed import DistInfo, ResumableSampler, broadcast_flag, convert_sync_batchnorm, init_distributed, lr_scale_note
from .logging import MetricsLog, MetricsWindow, Progress, truncate_metrics
from .outputs import GRID_IMAGES, fit_run_prior, save_run_pipeline, write_grids
from .state import TrainState
from .step import StepOutcome, train_step


class TrainingStopped(RuntimeError):
    """Training stopped on purpose (too many non-finite steps); the message says what is left."""


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM: a checkpoint was written and the run can be resumed."""


@dataclass
class TrainResult:
    run_dir: Path
    pipeline_path: Path | None
    steps: int
    losses: list[dict[str, float]] = field(default_factory=list)  # the metrics lines of this call
    nonfinite_steps: int = 0
    stopped_by_budget: bool = False  # the time budget ended the run before train.steps


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, config: RunConfig, run_dir: str | Path, dataset: Dataset | None = None, resume: bool = False):
        self.config = config
        self.run_dir = Path(run_dir)
        t = config.train
        self.device = resolve_device(t.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device(f"cuda:{self.dist.local_rank}")
            torch.cuda.set_device(self.device)
        self.bf16 = t.precision == "bf16" or (t.precision == "auto" and self.device.type == "cuda")

        # Same initial weights on every rank: build under the run seed, then give each rank
        # its own noise stream.
        seed_everything(t.seed)
        with torch.device("meta"):  # shapes only: a pipeline too big for the machine is refused before allocating
            check_memory(Pipeline(config.pipeline, for_training=False), self.device, copies=5 if t.ema_decay else 4)
        pipeline = Pipeline(config.pipeline)
        auxiliaries: dict[int, nn.Module] = {}
        for i, stage in enumerate(pipeline.stages):
            aux = stage.build_auxiliary()
            if aux is not None:
                auxiliaries[i] = aux.to(self.device)
        if self.dist.enabled:
            pipeline = convert_sync_batchnorm(pipeline, self.device.type)
        pipeline.to(self.device).train()
        self.memory_format = torch.channels_last if t.memory_format == "channels_last" else torch.contiguous_format
        pipeline.to(memory_format=self.memory_format)
        for aux in auxiliaries.values():
            aux.to(memory_format=self.memory_format)
        seed_everything(t.seed + self.dist.rank)
        self.state = TrainState.create(pipeline, auxiliaries, t)

        self.model: nn.Module = pipeline
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(pipeline, device_ids=ids)
        if t.compile:
            self.model = torch.compile(self.model)

        if dataset is None:
            from ..data import open_dataset

            d = config.data
            dataset = open_dataset(
                d.name, d.root, d.split, config.pipeline.image_size, config.pipeline.channels, d.options, d.cache_dir
            )
        self.dataset = dataset
        self._check_dataset()
        self.sampler = ResumableSampler(len(dataset), t.batch_size, t.seed, self.dist.rank, self.dist.world_size)
        self.loader = DataLoader(
            dataset,
            batch_size=t.batch_size,
            sampler=self.sampler,
            num_workers=t.num_workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            persistent_workers=t.num_workers > 0,
            # its own generator: creating an iterator must not draw from the global RNG, or a
            # resumed run (which creates one more iterator) would get different noise
            generator=torch.Generator().manual_seed(t.seed),
        )
        self._stop_requested = False
        self.grid_inputs = torch.stack([dataset[i] for i in range(min(GRID_IMAGES, len(dataset)))])
        if resume:
            self._restore(load_checkpoint(self.checkpoint_dir))

    # ------------------------------------------------------------------ the state, by name

    @property
    def pipeline(self) -> Pipeline:
        return self.state.pipeline

    @property
    def ema(self):
        return self.state.ema

    @property
    def auxiliaries(self) -> dict[int, nn.Module]:
        return self.state.auxiliaries

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return self.state.optimizers

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def nonfinite_total(self) -> int:
        return self.state.nonfinite_total

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def pipeline_path(self) -> Path:
        return self.run_dir / "pipeline.safetensors"

    # ------------------------------------------------------------------ data and steps

    def _check_dataset(self) -> None:
        first = self.dataset[0]
        c, s = self.config.pipeline.channels, self.config.pipeline.image_size
        if not torch.is_tensor(first) or first.dtype != torch.uint8 or tuple(first.shape) != (c, s, s):
            got = (first.dtype, tuple(first.shape)) if torch.is_tensor(first) else type(first).__name__
            raise ValueError(f"the dataset must give uint8 tensors of shape {(c, s, s)} (channels, size, size); it gave {got}")

    def batches(self) -> Iterator[torch.Tensor]:
        """The training batches from where the run stands, epoch after epoch."""
        while True:
            self.sampler.set_position(self.state.epoch, self.state.batch_in_epoch)
            for batch in self.loader:
                self.state.batch_in_epoch += 1
                yield batch
            self.state.epoch += 1
            self.state.batch_in_epoch = 0

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """A uint8 batch -> the model's input: [-1, 1] floats on the device, in the run's layout."""
        x = to_model_range(batch.to(self.device, non_blocking=True).float().div_(255.0))
        return x.contiguous(memory_format=self.memory_format)

    def _autocast(self):
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, batches: Iterator[torch.Tensor]) -> StepOutcome:
        """One step of :func:`stagegen.train.step.train_step` as this run takes it."""
        return train_step(
            self.state,
            batches,
            self.config.train,
            model=self.model,
            prepare=self.prepare,
            autocast=self._autocast,
            distributed=self.dist.enabled,
        )

    # ------------------------------------------------------------------ the loop

    def _handle_signal(self, signum, frame) -> None:
        self._stop_requested = True

    def _start_files(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # temporary files of a write that a killed run never finished (the real files are intact)
        for stale in [*self.run_dir.glob(".*.tmp"), *self.checkpoint_dir.glob(".*.tmp")]:
            stale.unlink(missing_ok=True)
        config_json = json.dumps(self.config.model_dump(mode="json"), indent=2)
        atomic_write(self.run_dir / "config.json", lambda tmp: Path(tmp).write_text(config_json))
        if self.step > 0:
            truncate_metrics(self.run_dir / "metrics.jsonl", self.step)

    def fit(self, stop_after: int | None = None) -> TrainResult:
        """Train to ``train.steps``. With ``stop_after``, stop at that step as an interrupted
        run would (checkpoint, no pipeline file) so a later resume continues the same run."""
        t, state = self.config.train, self.state
        main = self.dist.is_main
        if main:
            self._start_files()
        log = MetricsLog(self.run_dir / "metrics.jsonl" if main else None, self.run_dir / "tensorboard" if main else None)
        if main:
            for line in self.describe(resumed=self.step > 0):
                _say(line)
        progress = Progress(t.steps, self.step, t.progress and main)
        if main and self.dist.enabled:
            progress.write(f"stagegen: {lr_scale_note(self.dist.world_size, t.batch_size, t.accumulate)}")
        previous = {s: signal.signal(s, self._handle_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        result = TrainResult(self.run_dir, None, self.step)
        batches = self.batches()
        window = MetricsWindow(t.batch_size * t.accumulate * self.dist.world_size)
        consecutive_bad = 0
        deadline = time.monotonic() + t.time_budget if t.time_budget else None
        try:
            while self.step < t.steps:
                outcome = self.train_step(batches)
                if outcome.nonfinite:
                    consecutive_bad += 1
                    state.nonfinite_total += 1
                    result.nonfinite_steps += 1
                    bad = outcome.nonfinite
                    log.write({"step": self.step, "event": "nonfinite", "terms": bad, "in_a_row": consecutive_bad})
                    progress.write(f"step {self.step}: non-finite {', '.join(bad)}; step skipped ({consecutive_bad} in a row)")
                    if consecutive_bad >= t.max_nonfinite:
                        raise TrainingStopped(
                            f"stopped at step {self.step}: {consecutive_bad} steps in a row had a non-finite value in "
                            f"{', '.join(bad)}. {checkpoint_note(self.checkpoint_dir)}"
                        )
                    continue
                consecutive_bad = 0
                progress.update()
                window.add(outcome)
                # the first step is logged too, so the bar shows every stage's terms from the start
                if self.step % t.log_every == 0 or self.step == t.steps or window.steps == self.step:
                    self._log(window.close(state), result, log, progress if main else None)
                if main and t.sample_every and self.step % t.sample_every == 0 and self.step < t.steps:
                    self._grids(self.run_dir / "samples" / f"step_{self.step:07d}.png", log)
                if t.checkpoint_every and self.step % t.checkpoint_every == 0 and self.step < t.steps:
                    self.save_checkpoint()
                if stop_after is not None and self.step >= stop_after:
                    self.save_checkpoint()
                    result.steps = self.step
                    return result
                if broadcast_flag(self._stop_requested, self.dist, self.device):
                    self.save_checkpoint()
                    raise TrainingInterrupted(
                        f"interrupted at step {self.step}; checkpoint written to {self.checkpoint_dir}. "
                        f"Continue with: stagegen train --resume {self.run_dir}"
                    )
                # every rank must stop at the same step: the clocks differ, so they agree through a collective
                if deadline is not None and broadcast_flag(time.monotonic() >= deadline, self.dist, self.device):
                    progress.write(
                        f"time budget of {t.time_budget:.0f} s reached at step {self.step} of {t.steps}: "
                        "finishing the run here (continue it with --resume DIR --steps N)"
                    )
                    result.stopped_by_budget = True
                    break
            if window.steps:  # steps since the last metrics line (a run the time budget ended)
                self._log(window.close(state), result, log, None)
            self.save_checkpoint()
            if main:
                progress.close()
                if self.pipeline.prior.needs_fit:
                    record = fit_run_prior(state, self.dataset, t.prior_fit_images, t.seed)
                    log.write(record)
                    _say(
                        f"fitted the {self.config.pipeline.prior.type} prior to {int(record['prior_fit_images'])} training "
                        f"images' posteriors in {record['seconds']:.1f} s"
                    )
                result.pipeline_path = save_run_pipeline(state, self.pipeline_path, self.config.data.name)
                self._grids(self.run_dir / "samples.png", log, recon_path=self.run_dir / "reconstructions.png")
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            progress.close()
            log.close()
        result.steps = self.step
        return result

    def _log(self, record: dict[str, Any], result: TrainResult, log: MetricsLog, progress: Progress | None) -> None:
        result.losses.append(record)
        if self.dist.is_main:
            log.write(record)
            if progress is not None:
                progress.show(self._progress_values(record))

    def _grids(self, path: Path, log: MetricsLog, recon_path: Path | None = None) -> None:
        write_grids(self.state, path, self.config.train.seed, self.grid_inputs, self.prepare, log, recon_path)

    def _progress_values(self, record: dict[str, Any]) -> dict[str, float]:
        """The bar's postfix: the total, each stage's first loss term (compactly), bits/dim, speed."""
        values = {"loss": record["loss"]}
        for i in range(len(self.pipeline.stages)):
            label = self.pipeline.stage_label(i)
            terms = [k for k in record if k.startswith(label + "/") and not self.pipeline.is_auxiliary_label(k)]
            if terms:
                values[terms[0].replace("stage", "s", 1)] = record[terms[0]]
        if "stage0/bpd" in record:
            values["bpd"] = record["stage0/bpd"]
        values["img/s"] = record["images_per_second"]
        return values

    def describe(self, resumed: bool = False) -> list[str]:
        """What this run trains, for the first lines of its output."""
        p, t = self.config.pipeline, self.config.train
        params = sum(v.numel() for v in self.pipeline.stages.parameters())
        chain = " -> ".join(f"{spec.type} {r}x{r}" for spec, r in zip(p.stages, self.pipeline.resolutions))
        data = self.config.data
        return [
            f"stagegen: training {chain} ({params / 1e6:.2f} M parameters), {p.channels} channel(s), prior {p.prior.type}",
            f"data: {data.name} {data.split} split, {len(self.dataset)} images at {p.image_size}x{p.image_size}"
            + (f" from {data.root}" if data.root else ""),
            f"device: {self.device}"
            + (f" x {self.dist.world_size} processes" if self.dist.enabled else "")
            + f"; {t.steps} steps of batch {t.batch_size}"
            + (f", resuming from step {self.step}" if resumed else ""),
        ]

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> None:
        """The state plus every process's random generators (gathered to rank 0, which writes)."""
        rngs = gather_rng(self.dist)
        if self.dist.is_main:
            save_checkpoint(
                checkpoint_document(self.state, rngs, self.dist.world_size, self.config.pipeline), self.checkpoint_dir
            )

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        rngs = restore_state(self.state, checkpoint, self.config.pipeline, self.checkpoint_dir)
        if checkpoint.get("world_size") == self.dist.world_size and len(rngs) > self.dist.rank:
            set_rng_state(rngs[self.dist.rank])
        else:
            seed_everything(self.config.train.seed + 1000003 * self.step + self.dist.rank)


def _say(line: str) -> None:
    """What the run does (its header, the prior's fit), on stderr whether or not a bar is shown."""
    print(line, file=sys.stderr, flush=True)
