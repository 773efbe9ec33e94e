"""The training loop: the steps of a run and the events it emits, for any chain of stages.

What one step does lives in :mod:`.step` (over a :class:`.state.TrainState`); what a run does
besides stepping (the metrics log, grids, checkpoints, the time budget, the prior fit) in the
callbacks of :mod:`.callbacks`, which hear the run's events; what a run leaves behind in
:mod:`.outputs`; starting and resuming runs in :mod:`.run`. Here: the device and processes,
the data order, the signals, non-finite steps, and the checkpoint a stopped or interrupted run
leaves, from which a resumed run continues exactly where it stopped.
What a run says first is :mod:`.describe`; the jobs that hear its events, :mod:`.jobs`.

(Over 300 lines because those concerns share the loop's state: the process group, the data
order and the signal handlers are set up and torn down around the same steps.)
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..config.models import RunConfig
from ..devices import check_memory, resolve_device
from ..files import atomic_write
from ..pipeline.chain import Pipeline, to_model_range
from ..pipeline.memory import check_batch_memory
from ..priors.contract import check_fit_memory_of_run
from .auxiliary import build_auxiliaries
from .batches import batch_source, check_dataset, trunk_labels
from .callbacks import Callback, callback_states, load_callback_states, plugin_callbacks
from .checkpoint import (
    CHECKPOINT_NAME,
    checkpoint_document,
    checkpoint_note,
    gather_rng,
    load_checkpoint,
    restore_state,
    save_checkpoint,
    set_rng_state,
)
from .describe import describe_run
from .distributed import DistInfo, ResumableSampler, broadcast_flag, convert_sync_batchnorm, init_distributed
from .jobs import default_callbacks
from .logging import truncate_metrics
from .outputs import GRID_IMAGES, save_run_pipeline
from .run_dir import check_run_directory
from .signals import FINAL_PRIOR_FIT, StopSignals, TrainingInterrupted
from .state import TrainState
from .step import StepOutcome, train_step


class TrainingStopped(RuntimeError):
    """Training stopped on purpose (too many non-finite steps); the message says what is left."""


@dataclass
class TrainResult:
    run_dir: Path
    pipeline_path: Path | None
    steps: int
    losses: list[dict[str, float]] = field(default_factory=list)  # the metrics lines of this call
    nonfinite_steps: int = 0
    stopped_by_budget: bool = False  # the time budget ended the run before train.steps
    prior_error: str | None = None  # the final prior fit failed: the pipeline's prior is unfitted
    report_path: Path | None = None  # report.html, when written


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Runs the steps of a run and emits its events to ``callbacks``: the default ones (metrics
    log, grids, checkpoints, time budget, prior fit), those plugins register through the
    ``register_callbacks`` hook, then ``extra_callbacks``."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path,
        dataset: Dataset | None = None,
        resume: bool = False,
        extra_callbacks: Sequence[Callback] = (),
        started: float | None = None,
    ):
        #: when the run started (``time.monotonic()``; the command's start, where it says): the
        #: time budget counts from here, set-up and data loading included
        self.started = time.monotonic() if started is None else started
        self.config = config
        self.run_dir = Path(run_dir)
        check_run_directory(self.run_dir)  # before anything there is read or written
        t = config.train
        self.device = resolve_device(t.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device(f"cuda:{self.dist.local_rank}")
            torch.cuda.set_device(self.device)
        self.bf16 = t.precision == "bf16" or (t.precision == "auto" and self.device.type == "cuda")
        if self.device.type == "cuda" and not torch.backends.cudnn.deterministic:
            # every step has the same shapes: cuDNN times its convolution algorithms once per shape
            # and keeps the fastest (a run that asked for deterministic kernels keeps them)
            torch.backends.cudnn.benchmark = True

        # Same initial weights on every rank: build under the run seed, then give each rank
        # its own noise stream.
        seed_everything(t.seed)
        pipeline, auxiliaries = self._build_models(config)
        seed_everything(t.seed + self.dist.rank)
        self.state = TrainState.create(pipeline, auxiliaries, t)

        self.model: nn.Module = pipeline
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # a stage that joins later (train_from) leaves its parameters unused until then
            late = any(spec.train_from for spec in pipeline.specs)
            self.model = nn.parallel.DistributedDataParallel(pipeline, device_ids=ids, find_unused_parameters=late)
        if t.compile:
            self.model = torch.compile(self.model)

        self._open_data(dataset)
        self.signals = StopSignals(self._abandoned)
        self.last_checkpoint_step: int | None = None
        self.grid_inputs = torch.stack([self.dataset[i] for i in range(min(GRID_IMAGES, len(self.dataset)))])
        self.grid_labels = None if self.labels is None else self.labels.index[: len(self.grid_inputs)]
        self.callbacks: list[Callback] = [*default_callbacks(), *plugin_callbacks(config), *extra_callbacks]
        self._events: list[tuple[str, tuple]] = []
        self._dispatching = False
        if resume:
            self._restore(load_checkpoint(self.checkpoint_dir))
            self.last_checkpoint_step = self.step
        if self.state.sample_prior is not None:  # a refit can take long; a signal abandons it
            self.state.sample_prior.interruptible = lambda: self.signals.abandon_on_signal("refitting the sample path's prior")

    def _build_models(self, config: RunConfig) -> tuple[Pipeline, dict[str, nn.Module]]:
        """The pipeline and its extra modules on the run's device, refused first (on the meta
        device, shapes only) when they, a batch or the prior's fit cannot fit in memory."""
        t = config.train
        try:
            with torch.device("meta"):  # shapes only: a pipeline too big for the machine is refused before allocating
                skeleton = Pipeline(config.pipeline, for_training=False)
        except (RuntimeError, NotImplementedError):
            skeleton = None  # a plugin whose constructor computes with its tensors cannot be built on meta
        copies = 5 if t.ema_decay else 4
        if skeleton is not None:
            check_memory(skeleton, self.device, copies)
            batches = {"batch_size": t.batch_size, "sample_path_batch": t.sample_path_batch or t.batch_size}
            check_batch_memory(skeleton, self.device, batches)
            check_fit_memory_of_run(skeleton.prior, config.pipeline.prior.type, config.train)
        pipeline = Pipeline(config.pipeline)
        if skeleton is None:
            check_memory(pipeline, self.device, copies)  # the same check, after allocating (as loading does)
        auxiliaries = {key: aux.to(self.device) for key, aux in build_auxiliaries(pipeline).items()}
        if self.dist.enabled:
            pipeline = convert_sync_batchnorm(pipeline, self.device.type)
        pipeline.to(self.device).train()
        self.memory_format = torch.channels_last if t.memory_format == "channels_last" else torch.contiguous_format
        pipeline.to(memory_format=self.memory_format)
        for aux in auxiliaries.values():
            aux.to(memory_format=self.memory_format)
        return pipeline, auxiliaries

    def _open_data(self, dataset: Dataset | None) -> None:
        """The training images (the config's dataset unless one is given), their labels for a
        label-conditioned trunk, and the batches in the resumable sampler's order."""
        config, t = self.config, self.config.train
        if dataset is None:
            from ..data import open_dataset

            d = config.data
            dataset = open_dataset(
                d.name, d.root, d.split, config.pipeline.image_size, config.pipeline.channels, d.options, d.cache_dir
            )
        self.dataset = dataset
        check_dataset(self.dataset, config.pipeline.channels, config.pipeline.image_size)
        #: the training images' labels when the trunk is conditioned on them (its batches then carry them)
        self.labels, self.config = trunk_labels(self.pipeline, self.dataset, self.config)
        self.sampler = ResumableSampler(len(dataset), t.batch_size, t.seed, self.dist.rank, self.dist.world_size)
        #: the batches, in the sampler's order: gathered where the images lie, or a DataLoader
        self.loader = batch_source(dataset, self.labels, self.sampler, t.batch_size, self.device, t.num_workers, t.seed)

    # ------------------------------------------------------------------ the state, by name

    @property
    def pipeline(self) -> Pipeline:
        return self.state.pipeline

    @property
    def ema(self):
        return self.state.ema

    @property
    def auxiliaries(self) -> dict[str, nn.Module]:
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

    def _abandoned(self, phase: str) -> str:
        """What a run a signal ended in the middle of ``phase`` leaves, and how to go on."""
        kept = (
            f"the last checkpoint ({self.checkpoint_dir}, step {self.last_checkpoint_step}) is kept; continue with: "
            f"stagegen train --resume {self.run_dir}"
            if self.last_checkpoint_step is not None
            else "no checkpoint was written before it, so nothing is left to resume"
        )
        if phase == FINAL_PRIOR_FIT and self.last_checkpoint_step == self.step:
            kept += " (it fits the prior and writes the pipeline)"
        return f"interrupted at step {self.step} while {phase}; {kept}"

    def _start_files(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        check_run_directory(self.run_dir)
        # temporary files of a write that a killed run never finished (the real files are intact)
        for stale in [*self.run_dir.glob(".*.tmp"), *self.checkpoint_dir.glob(".*.tmp")]:
            stale.unlink(missing_ok=True)
        self._write_config()
        if self.step > 0:
            truncate_metrics(self.run_dir / "metrics.jsonl", self.step)

    def _write_config(self) -> None:
        config_json = json.dumps(self.config.model_dump(mode="json"), indent=2)
        atomic_write(self.run_dir / "config.json", lambda tmp: Path(tmp).write_text(config_json))

    def fit(self, stop_after: int | None = None) -> TrainResult:
        """Train to ``train.steps``, emitting the run's events to its callbacks. With
        ``stop_after``, stop at that step as an interrupted run would (checkpoint, no pipeline
        file) so a later resume continues the same run."""
        t, state = self.config.train, self.state
        if self.dist.is_main:
            self._start_files()
        self.signals.install()
        self.result = TrainResult(self.run_dir, None, self.step)
        self.stop_reason = None
        self.nonfinite_in_a_row = 0
        batches = self.batches()
        try:
            self.emit("run_start")
            while self.step < t.steps:
                outcome = self.train_step(batches)
                if outcome.nonfinite:
                    self._nonfinite(outcome)
                    continue
                self.nonfinite_in_a_row = 0
                self.emit("step_end", outcome)
                if stop_after is not None and self.step >= stop_after:
                    self.save_checkpoint()
                    self.result.steps = self.step
                    return self.result
                if broadcast_flag(self.signals.requested, self.dist, self.device):
                    self.save_checkpoint()
                    raise TrainingInterrupted(
                        f"interrupted at step {self.step}; checkpoint written to {self.checkpoint_dir}. "
                        f"Continue with: stagegen train --resume {self.run_dir}"
                    )
                if self.stop_reason is not None:
                    break
            self.emit("train_end")
            if self.dist.is_main:
                data = self.config.data
                self.result.pipeline_path = save_run_pipeline(state, self.pipeline_path, data.name, data.root)
            self.emit("run_end", self.result)
        finally:
            self.signals.restore()
            self.emit("teardown")
        self.result.steps = self.step
        return self.result

    def emit(self, event: str, *args) -> None:
        """Call ``on_<event>`` of every callback, in order (docs: stagegen.train.callbacks). An
        event a callback emits while handling another (a checkpoint written at ``train_end``)
        is delivered once every callback has heard the first, so each hears events in order."""
        self._events.append((event, args))
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._events:
                name, event_args = self._events.pop(0)
                for callback in self.callbacks:
                    getattr(callback, f"on_{name}")(self, *event_args)
        finally:
            self._dispatching = False
            self._events.clear()

    def move_train_from(self, index: int, step: int) -> None:
        """Stage ``index`` joins at ``step`` from now on (a budgeted run's schedule, before the
        stage joined): in the config, config.json and every checkpoint after, the pipeline and
        the EMA's warm-up, so a resumed run and the pipeline file agree with what was trained."""
        stages = self.config.pipeline.stages
        stages[index] = stages[index].model_copy(update={"train_from": step})
        self.pipeline.specs[index] = self.pipeline.specs[index].model_copy(update={"train_from": step})
        if self.state.ema is not None:
            self.state.ema.move_start(f"stages.{index}.", step)
        if self.dist.is_main:
            self._write_config()
            if (self.checkpoint_dir / CHECKPOINT_NAME).is_file():  # one written before now names the old schedule
                self.save_checkpoint()

    def request_stop(self, reason: str) -> None:
        """End the run after the current step, as a finished run (checkpoint, prior, pipeline)."""
        self.stop_reason = reason

    def _nonfinite(self, outcome: StepOutcome) -> None:
        self.nonfinite_in_a_row += 1
        self.state.nonfinite_total += 1
        self.result.nonfinite_steps += 1
        self.emit("nonfinite_step", outcome)
        if self.nonfinite_in_a_row >= self.config.train.max_nonfinite:
            raise TrainingStopped(
                f"stopped at step {self.step}: {self.nonfinite_in_a_row} steps in a row had a non-finite value in "
                f"{', '.join(outcome.nonfinite)}. {checkpoint_note(self.checkpoint_dir)}"
            )

    def describe(self, resumed: bool = False) -> list[str]:
        """What this run trains, for the first lines of its output."""
        return describe_run(self, resumed)

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> None:
        """The state plus every process's random generators (gathered to rank 0, which writes)."""
        rngs = gather_rng(self.dist)
        if self.dist.is_main:
            document = checkpoint_document(self.state, rngs, self.dist.world_size, self.config.pipeline)
            document["callbacks"] = callback_states(self.callbacks)
            save_checkpoint(document, self.checkpoint_dir)
        self.last_checkpoint_step = self.step

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        rngs = restore_state(self.state, checkpoint, self.config.pipeline, self.checkpoint_dir, self.config.train)
        load_callback_states(self.callbacks, checkpoint.get("callbacks") or {})  # none before callbacks kept state
        if checkpoint.get("world_size") == self.dist.world_size and len(rngs) > self.dist.rank:
            set_rng_state(rngs[self.dist.rank])
        else:
            seed_everything(self.config.train.seed + 1000003 * self.step + self.dist.rank)
