"""The six jobs every run has, each a :class:`~stagegen.train.callbacks.Callback` hearing the
run's events: the metrics log and progress bar, sample grids, checkpoints, the time budget, the
prior fit and the run's report."""

from __future__ import annotations

import sys
import time

from .callbacks import Callback
from .checkpoint import CHECKPOINT_NAME
from .distributed import broadcast_flag, broadcast_ints, lr_scale_note
from .logging import MetricsLog, MetricsWindow, Progress
from .outputs import fit_run_prior, write_grids
from .signals import FINAL_PRIOR_FIT

__all__ = ["Checkpoints", "Grids", "MetricsLogger", "PriorFit", "Report", "TimeBudget", "default_callbacks"]


BPD_NOTE = (
    "note: {keys} is the training batches' negative ELBO (one posterior sample each, the decoder's sigma as trained "
    "or fitted to the batch) in bits per dimension of 8-bit data at the training resolution, with no dequantisation "
    "and no importance sampling: a number to watch fall, not the test-set bits per dimension papers report"
)


def say(line: str) -> None:
    """What the run does (its header, the prior's fit), on stderr whether or not a bar is shown."""
    print(line, file=sys.stderr, flush=True)


class MetricsLogger(Callback):
    """metrics.jsonl (one line every ``log_every`` steps and one after the first), TensorBoard
    when installed, the progress bar, and the run's header on stderr. Rank 0 writes."""

    def on_run_start(self, trainer):
        t, main = trainer.config.train, trainer.dist.is_main
        run_dir = trainer.run_dir
        self.log = MetricsLog(run_dir / "metrics.jsonl" if main else None, run_dir / "tensorboard" if main else None)
        if main:
            for line in trainer.describe(resumed=trainer.step > 0):
                say(line)
        self.progress = Progress(t.steps, trainer.step, t.progress and main, lines=main)
        self.bpd_said = False
        if main and trainer.dist.enabled:
            self.progress.write(f"stagegen: {lr_scale_note(trainer.dist.world_size, t.batch_size, t.accumulate)}")
        self.window = MetricsWindow(t.batch_size * t.accumulate * trainer.dist.world_size)
        # the bar's values change at least twenty times a run (each costs a host sync, so a long
        # run keeps to its metrics lines); on a GPU only at metrics lines, where reading the values
        # makes the host wait for the queued steps (a short GPU run is over in seconds anyway)
        self.show_every = max(1, min(t.log_every, t.steps // 20)) if trainer.device.type == "cpu" else t.log_every

    def _close_window(self, trainer, show: bool) -> None:
        record, values = self.window.close(trainer.state)
        trainer.result.losses.append(record)
        self.log.write(record)
        if trainer.dist.is_main and not self.bpd_said:
            bpd = [key for key in record if key.endswith("/bpd")]
            if bpd:  # said once, because the name invites a comparison the number cannot bear
                self.bpd_said = True
                self.progress.write(BPD_NOTE.format(keys=", ".join(bpd)))
        if show:
            self.progress.show(values)

    def on_step_end(self, trainer, outcome):
        t = trainer.config.train
        self.progress.update()
        self.window.add(outcome)
        if outcome.prior_refit is not None:
            self.log.write({"event": "sample_prior_fit", **outcome.prior_refit})
        # the first step is logged too, so the bar shows every stage's terms from the start
        if trainer.step % t.log_every == 0 or trainer.step == t.steps or self.window.steps == trainer.step:
            self._close_window(trainer, show=True)
        elif self.progress.bar is not None and trainer.step % self.show_every == 0:
            self.progress.show(self.window.peek())  # a short run's bar moves between metrics lines too

    def on_nonfinite_step(self, trainer, outcome):
        bad, in_a_row = outcome.nonfinite, trainer.nonfinite_in_a_row
        self.log.write({"step": trainer.step, "event": "nonfinite", "terms": bad, "in_a_row": in_a_row})
        self.progress.write(f"step {trainer.step}: non-finite {', '.join(bad)}; step skipped ({in_a_row} in a row)")

    def on_budget_plan(self, trainer, record):
        self.log.write(record)

    def on_grid(self, trainer, path, images):
        self.log.image("samples", images, trainer.step)

    def on_time_budget(self, trainer):
        t = trainer.config.train
        self.progress.write(
            f"time budget: training stops at step {trainer.step} of {t.steps}, leaving the rest of the {t.time_budget:.0f} s "
            f"for the prior fit and the outputs (continue it later with: stagegen train --resume {trainer.run_dir} --steps N)"
        )

    def on_train_end(self, trainer):
        if self.window.steps:  # steps since the last metrics line (a run the time budget ended)
            self._close_window(trainer, show=False)
        self.progress.close()

    def on_prior_fit(self, trainer, record):
        self.log.write(record)
        say(
            f"fitted the {trainer.config.pipeline.prior.type} prior to {int(record['prior_fit_images'])} training "
            f"images' posteriors in {record['seconds']:.1f} s"
        )
        if "conditional_labels" in record:
            labels = trainer.pipeline.labels
            say(
                f"fitted a {trainer.pipeline.config.conditional.prior.type} prior per label to the same posteriors in "
                f"{record['conditional_seconds']:.1f} s ({len(labels)} labels: {', '.join(labels[:10])}"
                f"{', ...' if len(labels) > 10 else ''}; the fewest images of one label: "
                f"{int(record['conditional_fewest_images'])}); sample one with --label"
            )
        elif "conditional_error" in record:
            say(f"stagegen: no prior per label was fitted ({record['conditional_error']}); the unconditional prior stands")
        if "attribute_images" in record:
            names = trainer.pipeline.attribute_names
            say(
                f"fitted the latent directions of {int(record['attributes_usable'])} of {len(names)} attributes to "
                f"{int(record['attribute_images'])} images' posteriors in {record['attributes_seconds']:.1f} s"
                + (f" ({record['attributes_note']})" if record.get("attributes_note") else "")
                + "; edit with `stagegen edit`"
            )
        elif "attributes_error" in record:
            say(f"stagegen: no attribute directions were fitted ({record['attributes_error']})")

    def on_teardown(self, trainer):
        if hasattr(self, "log"):
            self.progress.close()
            self.log.close()


class Grids(Callback):
    """Sample grids from a fixed latent batch every ``sample_every`` steps (samples/step_N.png)
    with reconstructions of fixed inputs beside them (samples/recon_N.png), and samples.png and
    reconstructions.png at the end. Rank 0 writes."""

    def _write(self, trainer, path, recon_path=None):
        grid = write_grids(
            trainer.state, path, trainer.config.train.seed, trainer.grid_inputs, trainer.prepare, recon_path, trainer.grid_labels
        )
        trainer.emit("grid", path, grid)

    def on_step_end(self, trainer, outcome):
        t = trainer.config.train
        if trainer.dist.is_main and t.sample_every and trainer.step % t.sample_every == 0 and trainer.step < t.steps:
            sampler = trainer.state.sample_prior
            if sampler is not None and not sampler.for_losses:
                sampler.refit()  # the grid's prior, fitted to the latest posteriors (its label says so)
            self._write_step(trainer)

    def _write_step(self, trainer):
        samples = trainer.run_dir / "samples"
        self._write(trainer, samples / f"step_{trainer.step:07d}.png", recon_path=samples / f"recon_{trainer.step:07d}.png")

    def on_run_end(self, trainer, result):
        if trainer.dist.is_main:
            self._write(trainer, trainer.run_dir / "samples.png", recon_path=trainer.run_dir / "reconstructions.png")
            if trainer.config.train.sample_every:  # the series ends where the run ends, from the fitted prior
                self._write_step(trainer)


class Checkpoints(Callback):
    """checkpoints/last.pt every ``checkpoint_every`` steps and at the end (written by rank 0
    with every rank's random generators, atomically)."""

    def _save(self, trainer):
        trainer.save_checkpoint()
        trainer.emit("checkpoint", trainer.checkpoint_dir / CHECKPOINT_NAME)

    def on_step_end(self, trainer, outcome):
        t = trainer.config.train
        if t.checkpoint_every and trainer.step % t.checkpoint_every == 0 and trainer.step < t.steps:
            self._save(trainer)

    def on_train_end(self, trainer):
        self._save(trainer)


class TimeBudget(Callback):
    """Ends the run so that the whole of it, counted from its start, fits ``time_budget``
    seconds (stagegen.train.budget): after a few timed steps it estimates the work after
    training and stops training early enough to leave room for it. Every rank stops at the same
    step (a collective: their clocks differ). A refiner whose ``train_from`` the budget would not
    reach joins earlier (``budget_schedule: scale``) or is named as one that will not train."""

    #: steps timed before the run's reach within the budget is estimated
    ESTIMATE_AFTER = 10

    def on_run_start(self, trainer):
        budget = trainer.config.train.time_budget
        self.start, self.first_step = time.monotonic(), trainer.step
        # until the end phase is estimated, the budget's own end (the estimate moves it earlier)
        self.deadline = trainer.started + budget if budget else None

    def _late_stages(self, trainer, reached: int) -> list[str]:
        return [
            f"stage {i} ({spec.type}, joins at step {spec.train_from:,})"
            for i, spec in enumerate(trainer.config.pipeline.stages)
            if spec.train_from >= reached
        ]

    def on_step_end(self, trainer, outcome):
        if self.deadline is None:
            return
        if trainer.step - self.first_step == self.ESTIMATE_AFTER:
            self._plan(trainer)
        if broadcast_flag(time.monotonic() >= self.deadline, trainer.dist, trainer.device):
            trainer.result.stopped_by_budget = True
            trainer.emit("time_budget")
            trainer.request_stop("time budget")

    def _plan(self, trainer) -> None:
        """Rank 0 times the end phase and sets the deadline of training (its clock stops every
        rank); every rank takes its schedule."""
        from .budget import estimate_end_phase, scaled_train_from

        t, stages = trainer.config.train, trainer.config.pipeline.stages
        schedule = [spec.train_from for spec in stages]
        if trainer.dist.is_main:
            rate = self.ESTIMATE_AFTER / max(time.monotonic() - self.start, 1e-9)
            end = estimate_end_phase(trainer)
            budget_end = trainer.started + t.time_budget
            self.deadline = budget_end - end.total
            left = max(self.deadline - time.monotonic(), 0.0)
            reach = min(t.steps, trainer.step + int(rate * left))
            say(
                f"time budget: {t.time_budget:.0f} s for the whole run; training stops about {end.total:.0f} s before its "
                f"end to leave time for {end.describe()} (estimated on this machine); at {rate:.3g} steps/s it "
                f"reaches about step {reach:,} of {t.steps:,}"
            )
            trainer.emit(
                "budget_plan",
                {"step": trainer.step, "event": "budget_plan", "steps_per_second": rate, "reach": reach, **end.record()},
            )
            if t.budget_schedule == "scale":
                schedule = [scaled_train_from(f, trainer.step, t.steps, reach) for f in schedule]
        schedule = broadcast_ints(schedule, trainer.dist, trainer.device)
        moved = [(i, spec.train_from, new) for i, (spec, new) in enumerate(zip(stages, schedule)) if new != spec.train_from]
        for i, _, new in moved:
            trainer.move_train_from(i, new)
        if trainer.dist.is_main:
            if moved:
                say(
                    "time budget: "
                    + "; ".join(f"stage {i} ({stages[i].type}) joins at step {new:,} instead of {old:,}" for i, old, new in moved)
                    + ", the same share of the steps the budget reaches, so every stage trains "
                    "(-O train.budget_schedule=keep keeps train_from as configured)"
                )
            late = self._late_stages(trainer, reach)
            if late:
                say(
                    f"time budget: {', '.join(late)} will not train within it; give a longer --time-budget, or an "
                    "earlier train_from (-O STAGE.train_from=N)"
                )

    def on_train_end(self, trainer):
        late = self._late_stages(trainer, trainer.step) if trainer.result.stopped_by_budget else []
        if late and trainer.dist.is_main:
            say(
                f"stagegen: {', '.join(late)} never trained: the time budget ended the run at step {trainer.step:,}, "
                "so the grids' rows of such a stage come from an untrained network"
            )


class PriorFit(Callback):
    """Fits the pipeline's prior (when it needs fitting) to the training images' posteriors
    under the final generator weights, before the pipeline file is written. Rank 0. A fit that
    fails or gives an unusable prior leaves the prior unfitted: the pipeline is written with it
    (sampling then says to fit one) and ``result.prior_error`` says what happened."""

    def on_train_end(self, trainer):
        from ..priors.contract import PriorFitError

        t = trainer.config.train
        if trainer.dist.is_main and trainer.pipeline.prior.needs_fit:
            from .budget import estimate_end_phase

            n = min(len(trainer.dataset), t.prior_fit_images)
            expected = estimate_end_phase(trainer).fit_note()
            say(f"fitting the {trainer.config.pipeline.prior.type} prior to {n} training images' posteriors ({expected}) ...")
            try:
                with trainer.signals.abandon_on_signal(FINAL_PRIOR_FIT):  # the final checkpoint is written: nothing is lost
                    record = fit_run_prior(trainer.state, trainer.dataset, t.prior_fit_images, t.seed, t.conditional_prior)
            except PriorFitError as exc:
                trainer.result.prior_error = str(exc)
                say(f"stagegen: {exc}; the pipeline is written with its prior unfitted")
                return
            trainer.emit("prior_fit", record)


class Report(Callback):
    """report.html at the end (``train.report``), after the final grids. Rank 0. The pipeline
    and the grids are written before it, so a report that cannot be made costs nothing else:
    the run says so and how to make it later."""

    def on_run_end(self, trainer, result):
        if not (trainer.dist.is_main and trainer.config.train.report):
            return
        from ..report import write_report

        try:
            result.report_path = write_report(trainer.run_dir)
        except (OSError, ValueError, RuntimeError) as exc:
            say(f"stagegen: the run report was not written ({exc}); make it with: stagegen report {trainer.run_dir}")


def default_callbacks() -> list[Callback]:
    """The jobs every run has, in the order they hear each event."""
    return [MetricsLogger(), Grids(), Checkpoints(), TimeBudget(), PriorFit(), Report()]
