"""One training loop for any chain of stages.

Per step: each process takes its shard of the global batch, runs the chain, sums every
stage's loss terms, steps the generator's optimiser(s), updates the EMA, then gives each stage
with an extra module (a discriminator) its own update. Every K steps it writes a checkpoint
(atomically), sample and reconstruction grids, and a metrics line; on SIGINT/SIGTERM it
checkpoints and stops; a run resumed from its directory continues exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..config import PipelineConfig, RunConfig, validate_run_config
from ..devices import resolve_device
from ..images import save_grid
from ..pipeline import Pipeline, to_model_range, to_unit_range
from ..pipeline_file import atomic_write, save_pipeline
from ..prior import fit_prior
from ..stages import LossContext
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .distributed import (
    DistInfo, ResumableSampler, average_gradients, broadcast_flag, convert_sync_batchnorm, init_distributed,
    lr_scale_note, shutdown_distributed,
)
from .ema import EMA
from .lock import run_lock
from .logging import MetricsLog, Progress

CHECKPOINT_FORMAT = "stagegen.checkpoint"
GRID_IMAGES = 8


class TrainingStopped(RuntimeError):
    """Training stopped on purpose (too many non-finite steps); the last checkpoint is intact."""


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


def check_memory(config: PipelineConfig, device: torch.device, ema: bool) -> None:
    """Refuse, before allocating, a pipeline whose weights, gradients and Adam moments (and EMA
    copy) alone exceed the device's memory: a message, not an allocator error minutes later."""
    with torch.device("meta"):
        skeleton = Pipeline(config, for_training=False)
    weights = sum(t.numel() * t.element_size() for t in [*skeleton.parameters(), *skeleton.buffers()])
    needed = weights * (5 if ema else 4)
    if device.type == "cuda":
        available = torch.cuda.get_device_properties(device).total_memory
    else:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available:
        params = sum(p.numel() for p in skeleton.parameters())
        raise ValueError(
            f"this pipeline has {params:,} parameters: training needs at least {needed / 2**30:,.1f} GiB for its weights, "
            f"gradients and optimiser state, and {device} has {available / 2**30:,.1f} GiB; make it smaller "
            "(latent_dim, widths, blocks, image_size)"
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _lr_lambda(schedule: str, warmup: int, total: int):
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    return factor


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
        check_memory(config.pipeline, self.device, t.ema_decay is not None)
        self.pipeline = Pipeline(config.pipeline)
        self.auxiliaries: dict[int, nn.Module] = {}
        for i, stage in enumerate(self.pipeline.stages):
            aux = stage.build_auxiliary()
            if aux is not None:
                self.auxiliaries[i] = aux.to(self.device)
        if self.dist.enabled:
            self.pipeline = convert_sync_batchnorm(self.pipeline, self.device.type)
        self.pipeline.to(self.device).train()
        self.memory_format = torch.channels_last if t.memory_format == "channels_last" else torch.contiguous_format
        self.pipeline.to(memory_format=self.memory_format)
        for aux in self.auxiliaries.values():
            aux.to(memory_format=self.memory_format)
        seed_everything(t.seed + self.dist.rank)

        # the stages train; the prior is fitted after training, by its own fit()
        stages = self.pipeline.stages
        groups = [list(stages.parameters())] if t.optimizer == "shared" else [list(s.parameters()) for s in stages]
        self.optimizers = [torch.optim.Adam(g, lr=t.lr, betas=t.betas, foreach=True) for g in groups if g]
        self.schedulers = [
            torch.optim.lr_scheduler.LambdaLR(o, _lr_lambda(t.lr_schedule, t.warmup_steps, t.steps)) for o in self.optimizers
        ]
        self.aux_optimizers = {i: self.pipeline.stages[i].auxiliary_optimizer(aux) for i, aux in self.auxiliaries.items()}
        self.ema = EMA(self.pipeline, t.ema_decay) if t.ema_decay else None

        self.model: nn.Module = self.pipeline
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.pipeline, device_ids=ids)
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
            dataset, batch_size=t.batch_size, sampler=self.sampler, num_workers=t.num_workers, drop_last=True,
            pin_memory=self.device.type == "cuda", persistent_workers=t.num_workers > 0,
            # its own generator: creating an iterator must not draw from the global RNG, or a
            # resumed run (which creates one more iterator) would get different noise
            generator=torch.Generator().manual_seed(t.seed),
        )
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.nonfinite_total = 0
        self._stop_requested = False
        self._step_diagnostics: dict[str, torch.Tensor] = {}  # what the stages reported in the last step
        n_grid = min(GRID_IMAGES, len(dataset))
        self.grid_inputs = torch.stack([dataset[i] for i in range(n_grid)])
        if resume:
            self._restore(load_checkpoint(self.checkpoint_dir))

    # ------------------------------------------------------------------ paths

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def pipeline_path(self) -> Path:
        return self.run_dir / "pipeline.safetensors"

    # ------------------------------------------------------------------ data

    def _check_dataset(self) -> None:
        first = self.dataset[0]
        c, s = self.config.pipeline.channels, self.config.pipeline.image_size
        if not torch.is_tensor(first) or first.dtype != torch.uint8 or tuple(first.shape) != (c, s, s):
            got = (first.dtype, tuple(first.shape)) if torch.is_tensor(first) else type(first).__name__
            raise ValueError(f"the dataset must give uint8 tensors of shape {(c, s, s)} (channels, size, size); it gave {got}")

    def _batches(self) -> Iterator[torch.Tensor]:
        while True:
            self.sampler.set_position(self.epoch, self.batch_in_epoch)
            for batch in self.loader:
                self.batch_in_epoch += 1
                yield batch
            self.epoch += 1
            self.batch_in_epoch = 0

    def _to_model(self, batch: torch.Tensor) -> torch.Tensor:
        x = to_model_range(batch.to(self.device, non_blocking=True).float().div_(255.0))
        return x.contiguous(memory_format=self.memory_format)

    # ------------------------------------------------------------------ the step

    def _autocast(self):
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _train_step(self, batches: Iterator[torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        t = self.config.train
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        for aux in self.auxiliaries.values():
            aux.requires_grad_(False)  # the generator's loss must not train the discriminator
        summed: dict[str, torch.Tensor] = {}
        self._step_diagnostics = {}
        for micro in range(t.accumulate):
            x = self._to_model(next(batches))
            sync = micro == t.accumulate - 1 or not self.dist.enabled
            with (contextlib.nullcontext() if sync else self.model.no_sync()), self._autocast():
                out = self.model(x)
                diagnostics: dict[str, torch.Tensor] = {}
                terms = self.pipeline.losses(x, out, self.step, self.auxiliaries, diagnostics)
                loss = torch.stack([v.float() for v in terms.values()]).sum()
            (loss / t.accumulate).backward()
            for k, v in terms.items():
                summed[k] = summed.get(k, 0) + v.detach().float() / t.accumulate
            for k, v in diagnostics.items():
                self._step_diagnostics[k] = self._step_diagnostics.get(k, 0) + v / t.accumulate
        total = torch.stack(list(summed.values())).sum()
        params = [p for p in self.pipeline.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, t.grad_clip or float("inf"), foreach=True)
        finite = bool(torch.isfinite(total) & torch.isfinite(grad_norm))  # the step's one host sync
        if not finite:
            bad = [k for k, v in summed.items() if not torch.isfinite(v)] or ["gradient (every loss term was finite)"]
            return summed, bad
        for opt, sched in zip(self.optimizers, self.schedulers):
            opt.step()
            sched.step()
        if self.ema is not None:
            self.ema.update(self.pipeline)
        self._auxiliary_step(x, out, summed)
        return summed, []

    def _auxiliary_step(self, x: torch.Tensor, out, summed: dict[str, torch.Tensor]) -> None:
        if not self.auxiliaries:
            return
        targets = self.pipeline.targets(x)
        for i, aux in self.auxiliaries.items():
            aux.requires_grad_(True)
            opt = self.aux_optimizers[i]
            opt.zero_grad(set_to_none=True)
            stage = self.pipeline.stages[i]
            ctx = LossContext(step=self.step, input=out.images[i - 1].detach() if i else None, auxiliary=aux)
            with self._autocast():
                terms = stage.auxiliary_loss(aux, out.images[i].detach(), targets[i], ctx)
            if not terms:
                continue
            loss = torch.stack([v.float() for v in terms.values()]).sum()
            loss.backward()
            if self.dist.enabled:
                average_gradients(aux.parameters())
            norm = torch.nn.utils.clip_grad_norm_(aux.parameters(), float("inf"), foreach=True)
            if bool(torch.isfinite(loss) & torch.isfinite(norm)):
                opt.step()
            for k, v in terms.items():
                summed[f"{self.pipeline.stage_label(i)}/{k}"] = v.detach().float()

    # ------------------------------------------------------------------ the loop

    def _handle_signal(self, signum, frame) -> None:
        self._stop_requested = True

    def fit(self, stop_after: int | None = None) -> TrainResult:
        """Train to ``train.steps``. With ``stop_after``, stop at that step as an interrupted
        run would (checkpoint, no pipeline file) so a later resume continues the same run."""
        t = self.config.train
        main = self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # temporary files of a write that a killed run never finished (the real files are intact)
            for stale in [*self.run_dir.glob(".*.tmp"), *self.checkpoint_dir.glob(".*.tmp")]:
                stale.unlink(missing_ok=True)
            config_json = json.dumps(self.config.model_dump(mode="json"), indent=2)
            atomic_write(self.run_dir / "config.json", lambda tmp: Path(tmp).write_text(config_json))
            if self.step > 0:
                self._truncate_metrics()
        log = MetricsLog(self.run_dir / "metrics.jsonl" if main else None, self.run_dir / "tensorboard" if main else None)
        if main:
            for line in self.describe(resumed=self.step > 0):
                _say(line)
        progress = Progress(t.steps, self.step, t.progress and main)
        if main and self.dist.enabled:
            progress.write(f"stagegen: {lr_scale_note(self.dist.world_size, t.batch_size, t.accumulate)}")
        previous = {s: signal.signal(s, self._handle_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        result = TrainResult(self.run_dir, None, self.step)
        batches = self._batches()
        window: dict[str, torch.Tensor] = {}
        window_diagnostics: dict[str, torch.Tensor] = {}
        window_steps, window_start = 0, time.perf_counter()
        consecutive_bad = 0
        images_per_step = t.batch_size * t.accumulate * self.dist.world_size
        deadline = time.monotonic() + t.time_budget if t.time_budget else None
        try:
            while self.step < t.steps:
                terms, bad = self._train_step(batches)
                if bad:
                    consecutive_bad += 1
                    self.nonfinite_total += 1
                    result.nonfinite_steps += 1
                    log.write({"step": self.step, "event": "nonfinite", "terms": bad, "in_a_row": consecutive_bad})
                    progress.write(f"step {self.step}: non-finite {', '.join(bad)}; step skipped ({consecutive_bad} in a row)")
                    if consecutive_bad >= t.max_nonfinite:
                        raise TrainingStopped(
                            f"stopped at step {self.step}: {consecutive_bad} steps in a row had a non-finite value in "
                            f"{', '.join(bad)}. {self._checkpoint_note()}"
                        )
                    continue
                consecutive_bad = 0
                self.step += 1
                progress.update()
                for k, v in terms.items():
                    window[k] = window.get(k, 0) + v
                for k, v in self._step_diagnostics.items():
                    window_diagnostics[k] = window_diagnostics.get(k, 0) + v
                window_steps += 1
                # the first step is logged too, so the bar shows every stage's terms from the start
                if self.step % t.log_every == 0 or self.step == t.steps or window_steps == self.step:
                    elapsed = time.perf_counter() - window_start
                    record = self._log_record(window, window_diagnostics, window_steps, elapsed, images_per_step)
                    result.losses.append(record)
                    if main:
                        log.write(record)
                        progress.show(self._progress_values(record))
                    window, window_diagnostics, window_steps, window_start = {}, {}, 0, time.perf_counter()
                if main and t.sample_every and self.step % t.sample_every == 0 and self.step < t.steps:
                    self.write_grids(self.run_dir / "samples" / f"step_{self.step:07d}.png", log)
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
                    progress.write(f"time budget of {t.time_budget:.0f} s reached at step {self.step} of {t.steps}: "
                                   "finishing the run here (continue it with --resume DIR --steps N)")
                    result.stopped_by_budget = True
                    break
            if window_steps:  # steps since the last metrics line (a run the time budget ended)
                record = self._log_record(window, window_diagnostics, window_steps,
                                          time.perf_counter() - window_start, images_per_step)
                result.losses.append(record)
                if main:
                    log.write(record)
            self.save_checkpoint()
            if main:
                progress.close()
                if self.pipeline.prior.needs_fit:
                    record = self.fit_prior()
                    log.write(record)
                    _say(f"fitted the {self.config.pipeline.prior.type} prior to {int(record['prior_fit_images'])} training "
                         f"images' posteriors in {record['seconds']:.1f} s")
                result.pipeline_path = self.save_pipeline()
                self.write_grids(self.run_dir / "samples.png", log, recon_path=self.run_dir / "reconstructions.png")
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            progress.close()
            log.close()
        result.steps = self.step
        return result

    def _truncate_metrics(self) -> None:
        """A run killed after its checkpoint logged steps it will now train again: drop those
        lines, so metrics.jsonl holds each step once."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return
        kept = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                step = json.loads(line).get("step", 0)
            except (json.JSONDecodeError, AttributeError, RecursionError):
                continue  # a line torn by the kill
            if isinstance(step, int) and step <= self.step:
                kept.append(line)
        text = "".join(line + "\n" for line in kept)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    def _checkpoint_note(self) -> str:
        """What a stopped run can be continued from, said truthfully."""
        path = self.checkpoint_dir / "last.pt"
        advice = "lower the learning rate or that term's weight"
        if not path.is_file():
            return f"No checkpoint was written before it stopped, so there is nothing to resume: {advice} and start again."
        try:
            state = load_checkpoint(self.checkpoint_dir)
            finite = all(bool(torch.isfinite(v).all()) for v in state["pipeline"].values() if v.is_floating_point())
        except (ValueError, KeyError, AttributeError):
            return f"The checkpoint {path} cannot be read back, so there is nothing to resume: {advice} and start again."
        if not finite:
            return (f"The checkpoint {path} (step {state.get('step')}) already holds non-finite weights, so resuming it "
                    f"would fail the same way: {advice} and start again.")
        return (f"The last checkpoint ({path}, step {state.get('step')}) is intact and finite: --resume continues "
                f"from it; if the same steps fail again, start a new run and {advice}.")

    def _log_record(self, window, diagnostics, steps, elapsed, images_per_step) -> dict[str, Any]:
        values = {k: float(v / steps) for k, v in window.items()}  # one sync per logging interval
        record: dict[str, Any] = {"step": self.step, "epoch": self.epoch}
        record["loss"] = sum(v for k, v in values.items() if not self._is_auxiliary_term(k))
        record.update(values)
        record.update({k: float(v / steps) for k, v in diagnostics.items()})
        record["lr"] = self.schedulers[0].get_last_lr()[0]
        record["images_per_second"] = images_per_step * steps / max(elapsed, 1e-9)
        record["nonfinite_skipped"] = self.nonfinite_total
        return record

    def _progress_values(self, record: dict[str, Any]) -> dict[str, float]:
        """The bar's postfix: the total, each stage's first loss term (compactly), bits/dim, speed."""
        values = {"loss": record["loss"]}
        for i in range(len(self.pipeline.stages)):
            label = self.pipeline.stage_label(i)
            terms = [k for k in record if k.startswith(label + "/") and not self._is_auxiliary_term(k)]
            if terms:
                values[terms[0].replace("stage", "s", 1)] = record[terms[0]]
        if "stage0/bpd" in record:
            values["bpd"] = record["stage0/bpd"]
        values["img/s"] = record["images_per_second"]
        return values

    def _is_auxiliary_term(self, key: str) -> bool:
        # terms reported by an extra module's own update (the discriminator's) are not the generator's loss
        return key.split("/", 1)[1].startswith("d_") if "/" in key else False

    # ------------------------------------------------------------------ outputs

    def generator_state(self) -> dict[str, torch.Tensor]:
        """What the pipeline file holds: EMA weights when EMA is on."""
        return self.ema.state_dict() if self.ema is not None else self.pipeline.state_dict()

    def save_pipeline(self, path: Path | None = None) -> Path:
        extra = {"train_steps": self.step, "ema": self.ema is not None, "data": self.config.data.name}
        return save_pipeline(self.pipeline, path or self.pipeline_path, state_dict=self.generator_state(), extra=extra)

    @contextlib.contextmanager
    def _generator_weights(self):
        """The weights the pipeline file holds (EMA weights when EMA is on), in eval mode."""
        was_training = self.pipeline.training
        backup = None
        if self.ema is not None:
            backup = {k: v.clone() for k, v in self.pipeline.state_dict().items()}
            self.pipeline.load_state_dict(self.ema.state_dict())
        self.pipeline.eval()
        try:
            yield self.pipeline
        finally:
            if backup is not None:
                self.pipeline.load_state_dict(backup)
            self.pipeline.train(was_training)

    def fit_prior(self) -> dict[str, Any]:
        """Fit the pipeline's prior to the training images' posteriors under the generator
        weights; the fitted state goes into the EMA copy too, so the pipeline file holds it."""
        start = time.perf_counter()
        with self._generator_weights() as pipeline:
            stats = fit_prior(pipeline, self.dataset, self.config.train.prior_fit_images, seed=self.config.train.seed)
            fitted = {f"prior.{k}": v.detach().clone() for k, v in pipeline.prior.state_dict().items()}
        self.pipeline.load_state_dict(fitted, strict=False)
        if self.ema is not None:
            self.ema.load_state_dict(fitted)
        return {"step": self.step, "event": "prior_fit", "prior": self.config.pipeline.prior.type, **stats,
                "seconds": time.perf_counter() - start}

    def grid_latents(self) -> torch.Tensor:
        """The same latents at every grid: from the prior once it is fitted, N(0, I) before."""
        generator = torch.Generator().manual_seed(self.config.train.seed)
        prior = self.pipeline.prior
        if prior.fitted:
            return prior.sample(GRID_IMAGES, generator)
        return torch.randn((GRID_IMAGES, *self.pipeline.trunk.latent_shape), generator=generator)

    @torch.no_grad()
    def write_grids(self, path: Path, log: MetricsLog | None = None, recon_path: Path | None = None) -> None:
        """Samples from a fixed latent batch (one row per stage) and, with recon_path, a
        reconstruction grid (input row, then each stage); EMA weights when EMA is on."""
        with self._generator_weights() as pipeline:
            samples = [to_unit_range(y).float() for y in pipeline.run_chain(self.grid_latents().to(self.device)).images]
            save_grid(samples, path)
            if log is not None:
                from ..images import grid

                log.image("samples", grid(samples), self.step)
            if recon_path is not None:
                x = self._to_model(self.grid_inputs)
                posterior = pipeline.encode(to_unit_range(x))
                latent = pipeline.trunk.reconstruction_latent(posterior)
                stages = [to_unit_range(y).float() for y in pipeline.run_chain(latent).images]
                save_grid([to_unit_range(x).float(), *stages], recon_path)

    def describe(self, resumed: bool = False) -> list[str]:
        """What this run trains, for the first lines of its output."""
        p, t = self.config.pipeline, self.config.train
        params = sum(v.numel() for v in self.pipeline.stages.parameters())
        chain = " -> ".join(f"{spec.type} {r}x{r}" for spec, r in zip(p.stages, self.pipeline.resolutions))
        data = self.config.data
        lines = [
            f"stagegen: training {chain} ({params / 1e6:.2f} M parameters), {p.channels} channel(s), prior {p.prior.type}",
            f"data: {data.name} {data.split} split, {len(self.dataset)} images at {p.image_size}x{p.image_size}"
            + (f" from {data.root}" if data.root else ""),
            f"device: {self.device}" + (f" x {self.dist.world_size} processes" if self.dist.enabled else "")
            + f"; {t.steps} steps of batch {t.batch_size}" + (f", resuming from step {self.step}" if resumed else ""),
        ]
        return lines

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> None:
        rngs = self._gather_rng()
        if not self.dist.is_main:
            return
        state = {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "world_size": self.dist.world_size,
            "pipeline": self.pipeline.state_dict(),
            "auxiliaries": {str(i): a.state_dict() for i, a in self.auxiliaries.items()},
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "aux_optimizers": {str(i): o.state_dict() for i, o in self.aux_optimizers.items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": rngs,
            "nonfinite_total": self.nonfinite_total,
            "pipeline_config": json.dumps(self.config.pipeline.model_dump(mode="json"), sort_keys=True),
        }
        save_checkpoint(state, self.checkpoint_dir)

    def _gather_rng(self) -> list[dict[str, Any]]:
        state = rng_state()
        if not self.dist.enabled:
            return [state]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.dist.world_size
        dist.all_gather_object(gathered, state)  # between our own processes, not from a file
        return gathered

    def _restore(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{self.checkpoint_dir} does not hold a stagegen checkpoint")
        try:
            self._load_state(state)
        except (KeyError, IndexError, TypeError, RuntimeError, AttributeError, json.JSONDecodeError) as exc:
            detail = f"missing {exc}" if isinstance(exc, KeyError) else " ".join(str(exc).split())[:300]
            raise ValueError(f"the checkpoint in {self.checkpoint_dir} does not fit this run ({detail}); it was altered or "
                             "written by another version of the run: restore it, or start a new run") from None

    def _load_state(self, state: dict[str, Any]) -> None:
        # validated again, so fields added since the checkpoint was written take their defaults (a
        # run from before priors existed resumes with the normal prior it was started with)
        saved = PipelineConfig.model_validate(json.loads(state["pipeline_config"])).model_dump(mode="json")
        current = self.config.pipeline.model_dump(mode="json")
        if saved != current:
            raise ValueError(
                "the checkpoint was written for a different pipeline than the one configured now; "
                "resume with the run's own config.json (stagegen train --resume DIR does this)"
            )
        self.pipeline.load_state_dict(state["pipeline"])
        for i, aux in self.auxiliaries.items():
            aux.load_state_dict(state["auxiliaries"][str(i)])
        for opt, s in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(s)
        for sched, s in zip(self.schedulers, state["schedulers"]):
            sched.load_state_dict(s)
        for i, opt in self.aux_optimizers.items():
            opt.load_state_dict(state["aux_optimizers"][str(i)])
        if self.ema is not None:
            if state["ema"] is None:
                raise ValueError("EMA is on now but the checkpoint has no EMA weights; resume with the run's own settings")
            self.ema.load_state_dict(state["ema"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.nonfinite_total = state.get("nonfinite_total", 0)
        rngs = state["rng"]
        if state.get("world_size") == self.dist.world_size and len(rngs) > self.dist.rank:
            set_rng_state(rngs[self.dist.rank])
        else:
            seed_everything(self.config.train.seed + 1000003 * self.step + self.dist.rank)


def _say(line: str) -> None:
    """What the run does (its header, the prior's fit), on stderr whether or not a bar is shown."""
    print(line, file=sys.stderr, flush=True)


def _pipeline_steps(path: Path) -> int | None:
    """The training step a run's pipeline file was written at, if it is there and readable."""
    from ..pipeline_file import read_header

    try:
        return read_header(path).get("extra", {}).get("train_steps") if path.is_file() else None
    except ValueError:
        return None


def _locked(run_dir: str | Path):
    """The run directory's lock, taken by the process that writes there (rank 0 under torchrun)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext()
    return run_lock(run_dir)


def train(config: RunConfig | dict, run_dir: str | Path, dataset: Dataset | None = None) -> TrainResult:
    """Train a pipeline from a config; writes the run directory. The Python face of `stagegen train`."""
    if isinstance(config, dict):
        config = validate_run_config(config)
    with _locked(run_dir):
        return _fit(Trainer(config, run_dir, dataset=dataset))


#: what may change when a run continues: how long, where and how it runs, not what it trains
RESUMABLE_OVERRIDES = ("time_budget", "device", "num_workers", "progress")


def resume(run_dir: str | Path, steps: int | None = None, dataset: Dataset | None = None, **train_overrides) -> TrainResult:
    """Continue the run in ``run_dir`` from its last checkpoint, optionally to a new step count.
    Only :data:`RESUMABLE_OVERRIDES` may be changed; anything else would silently change the run."""
    run_dir = Path(run_dir)
    refused = sorted(set(train_overrides) - set(RESUMABLE_OVERRIDES))
    if refused:
        raise ValueError(f"cannot change {', '.join(refused)} when resuming: the run continues with its own settings "
                         f"(only steps, {', '.join(RESUMABLE_OVERRIDES)} may change); start a new run to change them")
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.json")
    try:
        raw = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{config_path} is not valid JSON ({exc}); restore it from the run's start or start a new run") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("train"), dict):
        raise ValueError(f"{config_path} has no 'train' section; it is not the config.json a run writes (was it edited?)")
    if steps is not None:
        raw["train"]["steps"] = steps
    raw["train"].update(train_overrides)
    config = validate_run_config(raw, where=str(config_path))
    with _locked(run_dir):
        trainer = Trainer(config, run_dir, dataset=dataset, resume=True)
        target = config.train.steps
        if trainer.step > target or (trainer.step == target and _pipeline_steps(trainer.pipeline_path) == target):
            shutdown_distributed(trainer.dist)
            where = "past" if trainer.step > target else "at"
            raise ValueError(f"the run in {run_dir} is already {where} step {target} (its checkpoint is at step {trainer.step}); "
                             f"give --steps larger than {trainer.step} to train further")
        return _fit(trainer)


def _fit(trainer: Trainer) -> TrainResult:
    try:
        return trainer.fit()
    finally:
        shutdown_distributed(trainer.dist)
