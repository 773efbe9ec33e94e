"""The chain as one module: trunk, then refiners; sampling, reconstruction, losses.

Images cross the public API as float tensors in [0, 1], N x C x H x W. Inside, the networks
work in [-1, 1] (tanh outputs); the mapping is recorded in the config (``normalization``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import PipelineConfig, PriorSpec, StageSpec
from .loading import load_pipeline
from .pipeline_file import save_pipeline
from .plugins import get_prior_type, get_stage_type
from .prior import Prior, PriorContext
from .stages import BuildContext, LossContext, Posterior, Refiner, Trunk

#: the label segment of terms from an extra module's own update (see Pipeline.term_label)
AUXILIARY = "aux"


@dataclass
class ChainOutput:
    """Every stage's image (in [-1, 1]) plus the posterior and latent used."""

    images: list[torch.Tensor]
    posterior: Posterior | None
    latent: torch.Tensor


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    return x * 2.0 - 1.0


def to_unit_range(y: torch.Tensor) -> torch.Tensor:
    return ((y + 1.0) * 0.5).clamp(0.0, 1.0)


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """A stage's target: the input resized to that stage's resolution (antialiased area)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if size < x.shape[-1]:
        return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class Pipeline(nn.Module):
    """A trunk followed by 0..N refiners, built from a validated :class:`PipelineConfig`."""

    def __init__(self, config: PipelineConfig, for_training: bool = True):
        super().__init__()
        specs = config.stages
        types = [get_stage_type(s.type) for s in specs]
        if types[0].kind != "trunk":
            raise ValueError(f"the first stage must be a trunk; {specs[0].type!r} is a {types[0].kind}")
        for spec, stage_type in zip(specs[1:], types[1:]):
            if stage_type.kind != "refiner":
                raise ValueError(f"only the first stage may be a trunk; {spec.type!r} is a {stage_type.kind}")
        options = [t.validate_options(s.options) for t, s in zip(types, specs)]
        if specs[0].detach_input:
            raise ValueError("detach_input applies to refiners only, not to the trunk")

        # Resolutions: the trunk works at image_size / (product of refiner scales).
        scales = []
        for i, (spec, stage_type, opts) in enumerate(zip(specs[1:], types[1:], options[1:]), start=1):
            try:
                scales.append(stage_type.scale_of(opts))
            except ValueError as exc:
                raise ValueError(f"stage {i} ({spec.type}): {exc}") from None
        total = math.prod(scales)
        if config.image_size % total:
            raise ValueError(f"image_size {config.image_size} is not divisible by the refiners' total scale {total}")
        resolutions = [config.image_size // total]
        for s in scales:
            resolutions.append(resolutions[-1] * s)

        stages: list[nn.Module] = []
        for i, (stage_type, opts) in enumerate(zip(types, options)):
            ctx = BuildContext(config.channels, resolutions[i - 1] if i else 0, resolutions[i], i, for_training)
            stage = stage_type.build(opts, ctx)
            expected = Trunk if stage_type.kind == "trunk" else Refiner
            if not isinstance(stage, expected):
                raise TypeError(f"stage type {stage_type.name!r} built a {type(stage).__name__}, not a {expected.__name__}")
            stages.append(stage)

        # The stored config holds every option with its validated value, defaults included.
        self.config = config.model_copy(
            update={"stages": [s.model_copy(update={"options": o.model_dump(mode="json")}) for s, o in zip(specs, options)]}
        )
        self.stage_types = types
        self.resolutions = resolutions
        self.stages = nn.ModuleList(stages)
        self.prior: Prior = self._build_prior(self.config.prior)

    def _build_prior(self, spec: PriorSpec) -> Prior:
        prior_type = get_prior_type(spec.type)
        options = prior_type.validate_options(spec.options)
        prior = prior_type.build(options, PriorContext(tuple(self.trunk.latent_shape)))
        if not isinstance(prior, Prior):
            raise TypeError(f"prior type {spec.type!r} built a {type(prior).__name__}, not a stagegen.prior.Prior")
        self.config = self.config.model_copy(update={"prior": PriorSpec(type=spec.type, options=options.model_dump(mode="json"))})
        return prior

    def set_prior(self, spec: PriorSpec | dict) -> Prior:
        """Replace the prior (unfitted) by a new one of the given type and options."""
        spec = PriorSpec.model_validate(spec) if isinstance(spec, dict) else spec
        device = self.device
        self.prior = self._build_prior(spec).to(device)
        return self.prior

    # ------------------------------------------------------------------ structure

    @property
    def trunk(self) -> Trunk:
        return self.stages[0]

    @property
    def refiners(self) -> list[Refiner]:
        return list(self.stages[1:])

    @property
    def specs(self) -> list[StageSpec]:
        return self.config.stages

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def stage_label(self, index: int) -> str:
        return f"stage{index}"

    def term_label(self, index: int, name: str, auxiliary: bool = False) -> str:
        """How a stage's loss term is logged: ``stage1/l1``; an extra module's (a discriminator's)
        under ``stage3/aux/d_loss``, so it is never summed into the generator's loss."""
        return f"{self.stage_label(index)}/{AUXILIARY + '/' if auxiliary else ''}{name}"

    @staticmethod
    def is_auxiliary_label(label: str) -> bool:
        return label.split("/")[1:2] == [AUXILIARY]

    def loss_context(
        self, index: int, out: ChainOutput, step: int, auxiliary: nn.Module | None = None, detach: bool = False
    ) -> LossContext:
        """What stage ``index`` sees beside its output and target when its loss is computed
        (``detach``: for an extra module's own update, which must not reach the generator)."""
        previous = out.images[index - 1] if index else None
        return LossContext(
            step=step,
            input=previous.detach() if (detach and previous is not None) else previous,
            posterior=out.posterior if index == 0 and not detach else None,
            auxiliary=auxiliary,
        )

    # ------------------------------------------------------------------ the chain

    def run_chain(self, z: torch.Tensor, posterior: Posterior | None = None, stop_gradients: bool = True) -> ChainOutput:
        """Decode z and refine it through every stage; honours each refiner's detach_input."""
        images = [self.trunk.decode(z)]
        for spec, refiner in zip(self.specs[1:], self.stages[1:]):
            prev = images[-1].detach() if (spec.detach_input and stop_gradients) else images[-1]
            images.append(refiner(prev))
        return ChainOutput(images, posterior, z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> ChainOutput:
        """x in [-1, 1] -> every stage's output (training-time reparameterised forward)."""
        posterior = self.trunk.encode(resize_to(x, self.resolutions[0]) if self._trunk_sees_small() else x)
        return self.run_chain(posterior.sample(generator), posterior)

    def _trunk_sees_small(self) -> bool:
        # The encoder reads the image at the trunk's own resolution (a ladder's trunk is small).
        return self.resolutions[0] != self.config.image_size

    def targets(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [resize_to(x, r) for r in self.resolutions]

    def losses(
        self,
        x: torch.Tensor,
        out: ChainOutput,
        step: int = 0,
        auxiliaries: dict[int, nn.Module] | None = None,
        diagnostics: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Every stage's named, weighted loss terms: ``{"stage0/l2": ..., "stage1/l1": ...}``.
        Numbers the stages report beside their loss (``ctx.report``) go into ``diagnostics``."""
        auxiliaries = auxiliaries or {}
        terms: dict[str, torch.Tensor] = {}
        targets = self.targets(x)
        for i, (stage, spec) in enumerate(zip(self.stages, self.specs)):
            if out.images[i].shape[-2:] != targets[i].shape[-2:]:
                raise ValueError(
                    f"stage {i} ({spec.type}) produced {tuple(out.images[i].shape[-2:])} images but its resolution is "
                    f"{self.resolutions[i]}: a refiner that changes resolution must declare it (StageType's scale)"
                )
            ctx = self.loss_context(i, out, step, auxiliaries.get(i))
            for name, value in stage.loss(out.images[i], targets[i], ctx).items():
                terms[self.term_label(i, name)] = spec.loss_weight * value
            if diagnostics is not None:
                diagnostics.update({self.term_label(i, name): v for name, v in ctx.diagnostics.items()})
        return terms

    # ------------------------------------------------------------------ public API ([0, 1] images)

    def _generator(self, seed: int | None) -> torch.Generator:
        g = torch.Generator()  # on CPU: the same seed gives the same latents on any device
        if seed is None:
            g.seed()
        else:
            g.manual_seed(seed)
        return g

    @torch.inference_mode()
    def sample(
        self, n: int, seed: int | None = None, temperature: float = 1.0, return_stages: bool = False
    ) -> torch.Tensor | list[torch.Tensor]:
        """n images from latents of the pipeline's prior (N(0, I) unless a fitted one is stored),
        its spread scaled by ``temperature``; with return_stages, one tensor per stage."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"the number of samples must be a positive integer, got {n!r}")
        z = self.prior.sample(n, self._generator(seed), temperature)
        return self.decode(z.to(self.device), return_stages=return_stages)

    #: latents decoded per pass at inference on a CPU: a large batch's activations overflow the
    #: caches (msvae-mnist: 136 images/s at batch 256 in one pass, 365 in passes of 32)
    cpu_chunk_size: int = 32

    @torch.inference_mode()
    def decode(self, z: torch.Tensor, return_stages: bool = False) -> torch.Tensor | list[torch.Tensor]:
        z = z.to(self.device)
        chunk = self.cpu_chunk_size if self.device.type == "cpu" else max(len(z), 1)
        parts = [self.run_chain(z[i : i + chunk]).images for i in range(0, len(z), chunk)]
        images = [to_unit_range(torch.cat(stage)).float() for stage in zip(*parts)]
        return images if return_stages else images[-1]

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> Posterior:
        """q(z|x) for images in [0, 1]."""
        x = self._check_images(x)
        x = to_model_range(x)
        if self._trunk_sees_small():
            x = resize_to(x, self.resolutions[0])
        return self.trunk.encode(x)

    @torch.inference_mode()
    def reconstruct(self, x: torch.Tensor, return_stages: bool = False, sample_posterior: bool = False, seed: int | None = None):
        """Encode images in [0, 1] and decode them through every stage (posterior mean by default)."""
        posterior = self.encode(x)
        z = posterior.sample(self._generator(seed)) if sample_posterior else self.trunk.reconstruction_latent(posterior)
        return self.decode(z, return_stages=return_stages)

    @torch.inference_mode()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 8, return_stages: bool = False):
        """Decode ``steps`` latents spherically interpolated between two latents of the trunk's
        latent shape (linearly where they are (anti)parallel, where slerp is undefined)."""
        shape = tuple(self.trunk.latent_shape)
        if tuple(a.shape) != shape or tuple(b.shape) != shape:
            raise ValueError(f"interpolate takes two latents of shape {shape}, got {tuple(a.shape)} and {tuple(b.shape)}")
        if steps < 2:
            raise ValueError(f"steps must be at least 2 (the two ends), got {steps}")
        a, b = a.flatten().float(), b.flatten().float()
        t = torch.linspace(0, 1, steps, device=a.device).unsqueeze(1)
        cos = (a / a.norm().clamp_min(1e-12) * b / b.norm().clamp_min(1e-12)).sum().clamp(-1, 1)
        omega = torch.arccos(cos)
        if torch.sin(omega).abs() < 1e-4:
            z = (1 - t) * a + t * b
        else:
            z = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
        return self.decode(z.reshape(steps, *shape), return_stages=return_stages)

    def _check_images(self, x: torch.Tensor) -> torch.Tensor:
        c, s = self.config.channels, self.config.image_size
        if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != c or x.shape[2] != s or x.shape[3] != s:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"expected images as a float tensor N x {c} x {s} x {s} in [0, 1], got {shape}")
        if not x.is_floating_point():
            raise ValueError(f"expected float images in [0, 1], got dtype {x.dtype}; divide uint8 images by 255")
        return x.to(self.device, torch.float32)

    # ------------------------------------------------------------------ files

    def save(self, path: str | Path) -> Path:
        """Write this pipeline (config, prior and weights) to a ``.safetensors`` file, atomically."""
        return save_pipeline(self, path)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", channels_last: bool = True) -> Pipeline:
        """Read a pipeline file (see :func:`stagegen.loading.load_pipeline` for the checks)."""
        return load_pipeline(path, lambda config: cls(config, for_training=False), device=device, channels_last=channels_last)
