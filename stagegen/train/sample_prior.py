"""The prior the sample path draws from during training, kept matched to the trunk.

The sample path runs the chain from latents drawn from a prior, so that losses which judge
images without a target (the adversarial loss) train the refiners on what people sample. The
pipeline's own prior is fitted once, after training; the sample path cannot wait for that, and
N(0, I) would show the refiners decodes from regions a trained posterior leaves empty. So the
sample path uses a second prior of the pipeline's prior type and options, refitted every
``sample_prior_refit_every`` steps to the posterior means of the latest
``sample_prior_latents`` training images: a prior that needs no fitting (``normal``) is used as
it is. Its latents, its fitted state and its random generator are part of the checkpoint.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch

from ..config.models import TrainConfig
from ..pipeline.chain import Pipeline
from ..plugin.manager import get_prior_type
from ..priors.contract import LatentSet, PriorContext

__all__ = ["SamplePrior"]

#: latents the first fit waits for (or the whole buffer, if smaller)
FIRST_FIT_LATENTS = 1024


class SamplePrior:
    """``for_losses``: the sample path draws from it every few steps (refitted on schedule);
    otherwise it serves the training grids only, refitted when one is drawn (:meth:`refit`)."""

    def __init__(self, pipeline: Pipeline, config: TrainConfig, for_losses: bool = True):
        self.for_losses = for_losses
        spec = pipeline.config.prior
        prior_type = get_prior_type(spec.type)
        self.spec_type, self.prior_options = spec.type, prior_type.validate_options(spec.options)
        self.prior = prior_type.build(self.prior_options, PriorContext(tuple(pipeline.trunk.latent_shape)))
        self.refit_every = config.sample_prior_refit_every
        self.temperature = config.sample_path_temperature
        # Everything a step touches lives on the generator's device: the posteriors are kept there and
        # the latents drawn there, so neither costs the step a copy to or from the host (a wait on a
        # GPU). Only a refit, every few hundred steps, moves the kept posteriors to the CPU.
        self.device = pipeline.device
        self.prior.to(self.device)
        dim = self.prior.latent_dim
        self.means = torch.zeros(config.sample_prior_latents, dim, device=self.device)
        self.stds = torch.zeros(config.sample_prior_latents, dim, device=self.device)
        self.seen = 0  # posteriors observed in all (the buffer holds the latest of them)
        self.fits = 0
        self.fit_seconds = 0.0
        self.seed = config.seed + 7919
        self.draw_device = self.device if self.prior.draws_on_device else torch.device("cpu")
        self.generator = torch.Generator(self.draw_device).manual_seed(self.seed)
        #: wraps each refit; the trainer makes a signal abandon it (a refit can take minutes)
        self.interruptible = contextlib.nullcontext

    @property
    def ready(self) -> bool:
        return not self.prior.needs_fit or self.fits > 0

    @property
    def filled(self) -> int:
        return min(self.seen, len(self.means))

    def grid_is_near(self, step: int, config: TrainConfig) -> bool:
        """Whether the posteriors of ``step`` are among those the next grid's refit keeps: a
        grid-only prior observes just the steps that fill its buffer before a grid (a copy to the
        host every step would cost every step)."""
        batch = config.batch_size * config.accumulate
        steps_kept = -(-len(self.means) // batch)
        return bool(config.sample_every) and (-step) % config.sample_every < steps_kept

    def observe(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Remember a batch's posteriors (the newest replace the oldest)."""
        if not self.prior.needs_fit:
            return
        mean, std = mean.detach().flatten(1).float(), std.detach().flatten(1).float()
        capacity = len(self.means)
        for row in range(0, len(mean), capacity):  # a batch larger than the buffer keeps its last rows
            part = slice(row, min(row + capacity, len(mean)))
            n = part.stop - part.start
            at = (self.seen + torch.arange(n, device=self.means.device)) % capacity
            self.means[at], self.stds[at] = mean[part], std[part]
            self.seen += n

    def maybe_refit(self, step: int) -> dict[str, float] | None:
        """Refit on schedule (and as soon as enough latents are in, the first time); returns the
        fit's statistics when it fitted."""
        if not self.prior.needs_fit or self.filled < min(FIRST_FIT_LATENTS, len(self.means)):
            return None
        if self.fits and step % self.refit_every:
            return None
        return self.refit()

    #: the fewest posteriors a grid's refit uses (a grid early in a run waits for them)
    MIN_GRID_LATENTS = 256

    def refit(self) -> dict[str, float] | None:
        """Fit to the posteriors kept now (None, and no fit, while fewer than a grid needs)."""
        if not self.prior.needs_fit or self.filled < min(self.MIN_GRID_LATENTS, len(self.means)):
            return None
        start = time.perf_counter()
        n = self.filled
        seed = int(torch.randint(2**62, (1,), generator=self.generator, device=self.draw_device))
        self.prior.cpu()  # priors fit on the CPU (stagegen.priors.contract.fit_prior does the same)
        try:
            with (
                self.interruptible(),
                torch.random.fork_rng(devices=[]),
            ):  # a prior that trains (latent-vae) draws from torch's own generator
                torch.manual_seed(seed)
                latents = LatentSet(self.means[:n].cpu(), self.stds[:n].cpu())
                stats = self.prior.fit(latents, torch.Generator().manual_seed(seed))
        finally:
            self.prior.to(self.device)
        self.prior.requires_grad_(False)
        self.fits += 1
        self.fit_seconds += time.perf_counter() - start
        return {"sample_prior_latents": float(n), **stats}

    def sample(self, n: int) -> torch.Tensor:
        """n latents on the run's device. The prior is known to be usable (:attr:`ready`), so
        :meth:`Prior.sample`'s check, which reads the prior's state on the host, is skipped."""
        if not self.ready:
            raise RuntimeError("the sample path's prior is not fitted yet")
        flat = self.prior.sample_flat(n, self.generator, self.temperature)
        # a prior that draws on the CPU only (not draws_on_device) is given a CPU generator
        return flat.to(self.device, non_blocking=True).reshape(n, *self.prior.latent_shape)

    def state_dict(self) -> dict[str, Any]:
        return {
            "prior": self.prior.state_dict(),
            "means": self.means,
            "stds": self.stds,
            "seen": self.seen,
            "fits": self.fits,
            "generator": self.generator.get_state(),
            "generator_device": self.draw_device.type,
        }

    def state_problem(self, state: Any) -> str | None:
        """What makes ``state`` (a checkpoint's) unusable by this sample path, or None: checked
        before anything is loaded, so that a resume never trains from a prior it cannot draw from."""
        if not isinstance(state, dict):
            return f"sample_prior is {type(state).__name__}, where this run keeps its sample path's prior"
        for name in ("seen", "fits"):
            if type(state.get(name)) is not int or not 0 <= state[name] <= 2**53:
                return f"sample_prior.{name} is {state.get(name)!r}, not a whole number from 0"
        for name in ("means", "stds"):
            value = state.get(name)
            if not torch.is_tensor(value) or value.shape != self.means.shape or not value.is_floating_point():
                shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
                return f"sample_prior.{name} is {shape}, where this run keeps {tuple(self.means.shape)} posteriors"
            if not bool(torch.isfinite(value).all()):
                return f"sample_prior.{name} holds NaN or infinite values"
        if bool((state["stds"] < 0).any()):
            return "sample_prior.stds holds a negative standard deviation"
        probe = get_prior_type(self.spec_type).build(self.prior_options, PriorContext(tuple(self.prior.latent_shape)))
        try:
            probe.load_state_dict(state.get("prior"))
        except (RuntimeError, TypeError, AttributeError, KeyError) as exc:
            return f"sample_prior.prior does not fit the {self.spec_type} prior ({' '.join(str(exc).split())[:200]})"
        probe.fit_done = state["fits"] > 0  # a fitted prior's state must be a usable distribution
        problem = probe.check_state()
        if problem is None and state["fits"] and not probe.fitted:
            problem = f"prior was fitted {state['fits']} time(s), and its state is that of an unfitted one"
        return f"the sample path's {problem}" if problem else None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prior.load_state_dict(state["prior"])
        if state["means"].shape != self.means.shape:
            raise ValueError(
                f"the checkpoint's sample-path prior holds {tuple(state['means'].shape)} latents, this run "
                f"{tuple(self.means.shape)}; resume with the run's own settings"
            )
        self.means.copy_(state["means"])
        self.stds.copy_(state["stds"])
        self.seen, self.fits = int(state["seen"]), int(state["fits"])
        self.prior.fit_done = self.fits > 0
        if state.get("generator_device", "cpu") == self.draw_device.type:
            self.generator.set_state(state["generator"])
        else:  # resumed on another kind of device, whose generator has another state: a seeded new stream
            self.generator.manual_seed(self.seed + 1000003 * self.seen)
