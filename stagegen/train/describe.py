"""The first lines of a run's output: what it trains, on what, where, and what it plans."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .jobs import TimeBudget

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["describe_run"]


def describe_run(trainer: Trainer, resumed: bool = False) -> list[str]:
    """What the run trains: its chain with each stage's losses, the data, the device and steps,
    the time budget, stages left for later and the sample path."""
    p, t = trainer.config.pipeline, trainer.config.train
    params = sum(v.numel() for v in trainer.pipeline.stages.parameters())

    def stage(spec, resolution, losses):
        names = ", ".join(f"{b.label}" + (f" x {b.weight:g}" if b.weight != 1 else "") for b in losses)
        return f"{spec.type} {resolution}x{resolution}" + (f" [{names}]" if names else "")

    chain = " -> ".join(stage(*row) for row in zip(p.stages, trainer.pipeline.resolutions, trainer.pipeline.objective.losses))
    data = trainer.config.data
    lines = [
        f"stagegen: training {chain} ({params / 1e6:.2f} M parameters), {p.channels} channel(s), prior {p.prior.type}",
        f"data: {data.name} {data.split} split, {len(trainer.dataset)} images at {p.image_size}x{p.image_size}"
        + (f" from {data.root}" if data.root else ""),
        f"device: {trainer.device}"
        + (f" x {trainer.dist.world_size} processes" if trainer.dist.enabled else "")
        + f"; {t.steps} steps of batch {t.batch_size}"
        + (f", resuming from step {trainer.step}" if resumed else ""),
    ]
    if t.time_budget:
        lines.append(
            f"time budget: {t.time_budget:.0f} s for the whole run (set-up, training, the prior fit and the outputs); "
            f"after {TimeBudget.ESTIMATE_AFTER} steps it times them and plans where training stops"
        )
    late = [
        f"stage {k} ({spec.type}) joins at step {spec.train_from:,}"
        for k, spec in enumerate(p.stages)
        if spec.train_from >= t.steps
    ]
    if late:  # allowed (a later --resume with more steps trains them), never silent
        lines.append(f"not trained in this run's {t.steps:,} steps: {'; '.join(late)}; lower train_from or raise --steps")
    if trainer.state.sample_prior is not None and trainer.state.sample_prior.for_losses:
        fit = (
            f"refitted every {t.sample_prior_refit_every} steps to the latest {t.sample_prior_latents} posterior means"
            if trainer.state.sample_prior.prior.needs_fit
            else "used as it is"
        )
        every = "every step" if t.sample_path_every == 1 else f"every {t.sample_path_every} steps"
        lines.append(
            f"sample path: {every}, {t.sample_path_batch or t.batch_size} latents from a {p.prior.type} prior ({fit}), "
            "judged by the losses that read samples"
        )
    return lines
