"""The chain as one module: trunk, then refiners; sampling, reconstruction, editing.

Images cross the public API as float tensors in [0, 1], N x C x H x W. Inside, the networks
work in [-1, 1] (tanh outputs); the mapping is recorded in the config (``normalization``).
How the stages are built is :mod:`.build`; what they are trained on, :mod:`stagegen.losses.objective`
(``pipe.objective``, kept outside the module tree so it is never saved with the generator). A
label-conditioned trunk (a CVAE) takes each image's class wherever the chain encodes or decodes:
the ``labels`` arguments, which every other trunk ignores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..augment import augment_input
from ..config.models import PipelineConfig, StageSpec
from ..data.labels import resolve_label
from ..images import resize
from ..losses.objective import Objective
from ..priors.per_label import NO_CONDITIONAL_PRIOR
from ..stages.contract import Posterior, Refiner, Trunk
from .build import build_chain
from .conditioning import Conditioning
from .deprecated import ObjectiveMethods
from .file import save_pipeline
from .loading import load_pipeline


@dataclass
class ChainOutput:
    """Every stage's image (in [-1, 1]) plus the posterior and latent used; in training, with
    a sample path, every stage's image from latents drawn from the prior too."""

    images: list[torch.Tensor]
    posterior: Posterior | None
    latent: torch.Tensor
    samples: list[torch.Tensor] | None = None


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    return x * 2.0 - 1.0


def to_unit_range(y: torch.Tensor) -> torch.Tensor:
    return ((y + 1.0) * 0.5).clamp(0.0, 1.0)


class Pipeline(Conditioning, ObjectiveMethods, nn.Module):
    """A trunk followed by 0..N refiners, built from a validated :class:`PipelineConfig`."""

    def __init__(self, config: PipelineConfig, for_training: bool = True):
        super().__init__()
        built = build_chain(config, for_training)
        #: the chain's PipelineConfig, every option validated: a run's config.json nests it under "pipeline"
        self.config = built.config
        self.stage_types = built.stage_types
        self.resolutions = built.resolutions
        self.stages = nn.ModuleList(built.stages)
        #: what the chain is trained on (:mod:`stagegen.losses.objective`); None when loaded for sampling
        self.objective: Objective | None = None if built.losses is None else Objective(self, built.losses)
        self._init_conditioning()

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

    def _apply(self, fn, recurse=True):
        # .to(device), .float(), ...: the losses (kept outside the module tree) follow the generator
        super()._apply(fn, recurse)
        for loss in self.objective.modules() if self.objective is not None else ():
            loss._apply(fn, recurse)
        return self

    # ------------------------------------------------------------------ the chain

    def active_stages(self, step: int | None) -> int:
        """How many stages train at ``step``: up to the first refiner whose ``train_from`` is later."""
        if step is None:
            return len(self.stages)
        return next((i for i, spec in enumerate(self.specs) if spec.train_from > step), len(self.stages))

    def run_chain(
        self,
        z: torch.Tensor,
        posterior: Posterior | None = None,
        stop_gradients: bool = True,
        stages: int | None = None,
        labels: torch.Tensor | None = None,
    ) -> ChainOutput:
        """Decode z (with ``labels``, class indices, for a label-conditioned trunk) and refine it
        through every stage (the first ``stages`` of them); honours each refiner's detach_input
        and, in training, its input augmentation."""
        images = [self._trunk_decode(z, labels)]
        for spec, refiner in zip(self.specs[1:stages], self.stages[1:stages]):
            prev = images[-1].detach() if (spec.detach_input and stop_gradients) else images[-1]
            if self.training:
                prev = augment_input(prev, spec.augment)
            images.append(refiner(prev))
        return ChainOutput(images, posterior, z)

    def sample_path(self, z: torch.Tensor, stages: int | None = None, labels: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every stage's image from prior latents as sampling makes them: the trunk decodes in
        eval mode without gradient (the sample path trains the refiners, not the trunk), the
        refiners run as in training, without input augmentation (these are the real inputs)."""
        was_training = self.trunk.training
        self.trunk.eval()
        try:
            with torch.no_grad():
                images = [self._trunk_decode(z, labels)]
        finally:
            self.trunk.train(was_training)
        for spec, refiner in zip(self.specs[1:stages], self.stages[1:stages]):
            prev = images[-1].detach() if spec.detach_input else images[-1]
            images.append(refiner(prev))
        return images

    def forward(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        prior_latents: torch.Tensor | None = None,
        stages: int | None = None,
        labels: torch.Tensor | None = None,
    ) -> ChainOutput:
        """x in [-1, 1] -> every stage's output (training-time reparameterised forward); with
        ``prior_latents``, the sample path's outputs too (one forward, so DistributedDataParallel
        sees every parameter the step's loss uses). With ``stages``, only the first ones run (the
        trainer passes :meth:`active_stages`: refiners that join later are left out). ``labels``:
        the images' class indices, which a label-conditioned trunk needs (the sample path then
        draws its labels uniformly)."""
        posterior = self._trunk_encode(resize(x, self.resolutions[0]) if self._trunk_sees_small() else x, labels)
        out = self.run_chain(posterior.sample(generator), posterior, stages=stages, labels=labels)
        if prior_latents is not None:
            prior_labels = None
            if self.label_conditioned:
                prior_labels = torch.randint(self.trunk.label_count, (len(prior_latents),), device=prior_latents.device)
            out.samples = self.sample_path(prior_latents, stages, prior_labels)
        return out

    def _trunk_sees_small(self) -> bool:
        # The encoder reads the image at the trunk's own resolution (a ladder's trunk is small).
        return self.resolutions[0] != self.config.image_size

    def targets(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [resize(x, r) for r in self.resolutions]

    # ------------------------------------------------------------------ public API ([0, 1] images)

    def row_labels(self, first_suffix: str = "") -> list[str]:
        """A grid's label for each stage's row: index, type and resolution (``first_suffix``
        added to the first: which prior drew the latents)."""
        labels = [f"{i} {spec.type} {res}px" for i, (spec, res) in enumerate(zip(self.specs, self.resolutions))]
        labels[0] += first_suffix
        return labels

    def _generator(self, seed: int | None) -> torch.Generator:
        g = torch.Generator()  # on CPU: the same seed gives the same latents on any device
        if seed is None:
            g.seed()
        else:
            g.manual_seed(seed)
        return g

    @torch.inference_mode()
    def sample(
        self,
        n: int,
        seed: int | None = None,
        temperature: float = 1.0,
        return_stages: bool = False,
        label: int | str | None = None,
        attributes: dict[str, float] | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """n images from latents of the pipeline's prior (N(0, I) unless a fitted one is stored),
        its spread scaled by ``temperature``; with return_stages, one tensor per stage. With
        ``label`` (a name from :attr:`labels`, or its index), images of that label: from that
        label's prior when the pipeline has a prior per label, decoded with the label when the
        trunk is label-conditioned (which, without ``label``, decodes each sample with a label
        drawn uniformly). With ``attributes`` ({"Eyeglasses": 1.0}), latents moved along those
        attributes' directions."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"the number of samples must be a positive integer, got {n!r}")
        if label is not None and not self.labels:
            raise ValueError(NO_CONDITIONAL_PRIOR)
        if label is not None:
            label = resolve_label(self.labels, label)  # an unknown label is refused before any work
        shift = self.attribute_shift(attributes) if attributes else None
        self.check_decode_memory(n, return_stages)  # before the latents: n itself may be too many
        generator = self._generator(seed)
        if label is None or self.conditional is None:
            z = self.prior.sample(n, generator, temperature)
        else:
            z = self.conditional.sample(n, label, generator, temperature)
        if shift is not None:
            z = z + shift.to(z.device)
        labels = None
        if self.label_conditioned:  # drawn after z: a seed gives the same latents with or without a label
            labels = torch.randint(self.trunk.label_count, (n,), generator=generator) if label is None else label
        return self.decode(z.to(self.device), return_stages=return_stages, labels=labels)

    #: latents decoded per pass at inference on a CPU: a large batch's activations overflow the
    #: caches (msvae-mnist: 136 images/s at batch 256 in one pass, 365 in passes of 32)
    cpu_chunk_size: int = 32

    def _decode_chunk(self, n: int) -> int:
        return self.cpu_chunk_size if self.device.type == "cpu" else max(n, 1)

    def check_decode_memory(self, n: int, return_stages: bool = False) -> None:
        """Refuse (ValueError) to decode ``n`` latents when it cannot fit in the device's memory."""
        from .memory import check_sampling_memory

        kept = list(range(len(self.specs))) if return_stages else [len(self.specs) - 1]
        check_sampling_memory(self, n, kept, self._decode_chunk(n))

    @torch.inference_mode()
    def decode(self, z: torch.Tensor, return_stages: bool = False, labels=None) -> torch.Tensor | list[torch.Tensor]:
        """Latents -> images in [0, 1] (the last stage's, or every stage's), in passes of
        ``cpu_chunk_size`` on a CPU; refused first when it cannot fit in memory. ``labels``
        (see :meth:`label_indices`): what a label-conditioned trunk decodes with."""
        self.check_decode_memory(len(z), return_stages)
        y = self.label_indices(labels, len(z))
        z = z.to(self.device)
        chunk = self._decode_chunk(len(z))
        parts = []
        for i in range(0, len(z), chunk):
            images = self.run_chain(z[i : i + chunk], labels=None if y is None else y[i : i + chunk]).images
            parts.append(images if return_stages else images[-1:])  # keep only what is returned
        images = [to_unit_range(torch.cat(stage)).float() for stage in zip(*parts)]
        return images if return_stages else images[-1]

    @torch.inference_mode()
    def edit(self, x: torch.Tensor, strengths: dict[str, float], steps: int = 6, labels=None) -> list[torch.Tensor]:
        """Each image of ``x`` (in [0, 1]) moved along attribute directions, from its own
        reconstruction (strength 0) to the given strengths in ``steps`` equal steps: one tensor
        per stage, N * steps images each (an image's steps together). ``labels``: the images'
        classes, which a label-conditioned trunk needs."""
        if steps < 2:
            raise ValueError(f"steps must be at least 2 (the image and its full edit), got {steps}")
        shift = self.attribute_shift(strengths).to(self.device)
        y = self.label_indices(labels, len(x))
        z = self.trunk.reconstruction_latent(self.encode(x, y))
        t = torch.linspace(0, 1, steps, device=self.device).reshape(1, steps, *([1] * shift.dim()))
        moved = (z.unsqueeze(1) + t * shift).reshape(len(z) * steps, *shift.shape)
        return self.decode(moved, return_stages=True, labels=None if y is None else y.repeat_interleave(steps))

    @torch.inference_mode()
    def encode(self, x: torch.Tensor, labels=None) -> Posterior:
        """q(z|x) for images in [0, 1] (q(z|x, y) with the images' ``labels`` for a label-conditioned trunk)."""
        x = self._check_images(x)
        y = self.label_indices(labels, len(x))
        x = to_model_range(x)
        if self._trunk_sees_small():
            x = resize(x, self.resolutions[0])
        return self._trunk_encode(x, y)

    @torch.inference_mode()
    def reconstruct(
        self,
        x: torch.Tensor,
        return_stages: bool = False,
        sample_posterior: bool = False,
        seed: int | None = None,
        labels=None,
    ):
        """Encode images in [0, 1] and decode them through every stage (posterior mean by
        default); ``labels``: the images' classes, which a label-conditioned trunk needs."""
        y = self.label_indices(labels, len(x)) if torch.is_tensor(x) else None
        posterior = self.encode(x, y)
        z = posterior.sample(self._generator(seed)) if sample_posterior else self.trunk.reconstruction_latent(posterior)
        return self.decode(z, return_stages=return_stages, labels=y)

    @torch.inference_mode()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 8, return_stages: bool = False, label=None):
        """Decode ``steps`` latents spherically interpolated between two latents of the trunk's
        latent shape (linearly where they are (anti)parallel, where slerp is undefined);
        ``label``: the one class a label-conditioned trunk decodes the whole strip with."""
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
        return self.decode(z.reshape(steps, *shape), return_stages=return_stages, labels=label)

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
        """Read a pipeline file (see :func:`stagegen.pipeline.loading.load_pipeline` for the checks)."""
        return load_pipeline(path, lambda config: cls(config, for_training=False), device=device, channels_last=channels_last)
