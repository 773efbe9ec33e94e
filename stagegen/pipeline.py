"""The chain as one module: trunk, then refiners; sampling, reconstruction, losses.

Images cross the public API as float tensors in [0, 1], N x C x H x W. Inside, the networks
work in [-1, 1] (tanh outputs); the mapping is recorded in the config (``normalization``).
Built for training, each stage also gets its losses (:mod:`.composition`), kept outside the
module tree so that they are never saved with the generator. A label-conditioned trunk (a
CVAE) takes each image's class wherever the chain encodes or decodes: the ``labels``
arguments, which every other trunk ignores.

(Over 300 lines for one reason: building the chain, its training forward with the sample path,
and the public API are one ``nn.Module``, the one object DistributedDataParallel and
torch.compile wrap; what a loss term is lives in :mod:`.composition`, the step in :mod:`.train`.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .augment import augment_input
from .composition import BoundLoss, build_losses, resolve_spec, stage_terms, validated_losses
from .conditional import NO_CONDITIONAL_PRIOR, ConditionalPrior
from .config import ConditionalSpec, PipelineConfig, PriorSpec, StageSpec
from .data.labels import label_tensor, resolve_label
from .directions import NO_ATTRIBUTES, AttributeDirections
from .images import resize
from .loading import load_pipeline
from .pipeline_file import save_pipeline
from .plugins import get_prior_type, get_stage_type
from .prior import Prior, PriorContext
from .stages import BuildContext, LossContext, Posterior, Refiner, Trunk

NEEDS_LABELS = (
    "this pipeline's trunk is conditioned on class labels (a CVAE): give each image's label "
    "(labels=..., a name or index for all of them, or one per image)"
)


def _check_labels_agree(trunk_labels, prior_labels) -> None:
    """A label's index picks its prior and the trunk's embedding alike: both must name the same classes."""
    if trunk_labels is not None and prior_labels is not None and tuple(trunk_labels) != tuple(prior_labels):
        raise ValueError(
            f"the prior per label is fitted to the labels {', '.join(prior_labels[:10])}, and the trunk is conditioned "
            f"on {', '.join(trunk_labels[:10])}: they must be the same classes in the same order"
        )


def term_label(stage: int, name: str, auxiliary: bool = False) -> str:
    """How a stage's loss term is logged: ``stage1/l1``; an extra module's (a discriminator's)
    under ``stage3/aux/d_loss``, apart from the generator's loss. The one place labels are made."""
    return f"stage{stage}/{'aux/' if auxiliary else ''}{name}"


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


class Pipeline(nn.Module):
    """A trunk followed by 0..N refiners, built from a validated :class:`PipelineConfig`."""

    def __init__(self, config: PipelineConfig, for_training: bool = True):
        super().__init__()
        specs = config.stages
        types = [get_stage_type(s.type) for s in specs]
        # a renamed type is stored under its current name
        specs = [resolve_spec(spec, t).model_copy(update={"type": t.name}) for spec, t in zip(specs, types)]
        if types[0].kind != "trunk":
            raise ValueError(f"the first stage must be a trunk; {specs[0].type!r} is a {types[0].kind}")
        for spec, stage_type in zip(specs[1:], types[1:]):
            if stage_type.kind != "refiner":
                raise ValueError(f"only the first stage may be a trunk; {spec.type!r} is a {stage_type.kind}")
        options = [t.validate_options(s.options) for t, s in zip(types, specs)]
        if specs[0].detach_input or specs[0].augment.noise or specs[0].augment.blur or specs[0].train_from:
            raise ValueError("detach_input, augment and train_from apply to refiners only, not to the trunk")

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
        #: each stage's losses; a plain list, so they are neither trained nor saved with the generator.
        #: A pipeline loaded for sampling has none (its losses' plugins need not be installed).
        self.stage_losses: list[list[BoundLoss]] = []
        for i, (stage_type, opts, spec) in enumerate(zip(types, options, specs)):
            ctx = BuildContext(config.channels, resolutions[i - 1] if i else 0, resolutions[i], i, for_training)
            stage = stage_type.build(opts, ctx)
            expected = Trunk if stage_type.kind == "trunk" else Refiner
            if not isinstance(stage, expected):
                raise TypeError(f"stage type {stage_type.name!r} built a {type(stage).__name__}, not a {expected.__name__}")
            stages.append(stage)
            self.stage_losses.append(build_losses(spec, ctx) if for_training else [])

        # The stored config holds every option with its validated value, defaults included.
        stored = []
        for spec, opts in zip(specs, options):
            update: dict = {"options": opts.model_dump(mode="json")}
            if for_training:
                update["losses"] = validated_losses(spec)
            stored.append(StageSpec.model_validate({**spec.model_dump(mode="json"), **update}))
        self.config = config.model_copy(update={"stages": stored})
        self.stage_types = types
        self.resolutions = resolutions
        self.stages = nn.ModuleList(stages)
        self.prior: Prior = self._build_prior(self.config.prior)
        #: a prior per label (:mod:`.conditional`), when one was fitted; built here from a file's config
        self.conditional: ConditionalPrior | None = None
        if self.config.conditional is not None:
            spec = self.config.conditional
            self.set_conditional(ConditionalPrior(spec.labels, lambda: self.make_prior(spec.prior)[0]), spec.prior)
        #: a latent direction per binary attribute (:mod:`.directions`), when fitted
        self.attributes: AttributeDirections | None = None
        if self.config.attributes is not None:
            self.set_attributes(AttributeDirections(self.config.attributes, self.trunk.latent_shape))
        if self.label_conditioned:
            names = self.config.trunk_labels or [str(i) for i in range(self.trunk.label_count)]
            self.set_trunk_labels(names)
        elif self.config.trunk_labels is not None:
            raise ValueError("the config names trunk_labels, but its trunk is not conditioned on labels")

    def make_prior(self, spec: PriorSpec) -> tuple[Prior, PriorSpec]:
        """A new (unfitted) prior over this trunk's latents, and its spec with every option's
        validated value (a renamed type under its current name)."""
        prior_type = get_prior_type(spec.type)
        options = prior_type.validate_options(spec.options)
        prior = prior_type.build(options, PriorContext(tuple(self.trunk.latent_shape)))
        if not isinstance(prior, Prior):
            raise TypeError(f"prior type {spec.type!r} built a {type(prior).__name__}, not a stagegen.prior.Prior")
        return prior, PriorSpec(type=prior_type.name, options=options.model_dump(mode="json"))

    def _build_prior(self, spec: PriorSpec) -> Prior:
        prior, current = self.make_prior(spec)
        self.config = self.config.model_copy(update={"prior": current})
        return prior

    def set_prior(self, spec: PriorSpec | dict) -> Prior:
        """Replace the prior (unfitted) by a new one of the given type and options."""
        spec = PriorSpec.model_validate(spec) if isinstance(spec, dict) else spec
        device = self.device
        self.prior = self._build_prior(spec).to(device)
        return self.prior

    def set_conditional(self, conditional: ConditionalPrior | None, spec: PriorSpec | None = None) -> None:
        """Give the pipeline a prior per label (``spec``: their type and options), or take it away."""
        if conditional is None:
            self.conditional = None
            self.config = self.config.model_copy(update={"conditional": None})
            return
        _check_labels_agree(self.config.trunk_labels, conditional.labels)
        self.conditional = conditional
        update = ConditionalSpec(labels=list(conditional.labels), prior=spec)
        self.config = self.config.model_copy(update={"conditional": update})

    def set_attributes(self, directions: AttributeDirections | None) -> None:
        """Give the pipeline attribute directions (or take them away)."""
        self.attributes = directions
        names = list(directions.names) if directions is not None else None
        self.config = self.config.model_copy(update={"attributes": names})

    @property
    def label_conditioned(self) -> bool:
        """Whether the trunk is conditioned on class labels (a CVAE): encoding and decoding then
        take each image's label, and sampling a label decodes with it."""
        return self.trunk.label_count > 0

    def set_trunk_labels(self, names: list[str] | tuple[str, ...]) -> None:
        """Name the classes of a label-conditioned trunk (the training data's, in label order)."""
        count = self.trunk.label_count
        if len(names) != count:
            raise ValueError(
                f"the trunk is conditioned on {count} classes, but {len(names)} label names were given ({', '.join(names[:10])})"
            )
        _check_labels_agree(names, self.conditional.labels if self.conditional is not None else None)
        self.config = self.config.model_copy(update={"trunk_labels": list(names)})

    def label_indices(self, labels, n: int) -> torch.Tensor | None:
        """``labels`` as ``n`` class indices (int64, on the pipeline's device) for a
        label-conditioned trunk: one label (a name or index) for every image, or one per image
        (a sequence, or an int64 tensor). None for any other trunk, which ignores labels."""
        if not self.label_conditioned:
            return None
        if labels is None:
            raise ValueError(NEEDS_LABELS)
        return label_tensor(self.config.trunk_labels, labels, n).to(self.device)

    def _trunk_encode(self, x: torch.Tensor, labels: torch.Tensor | None) -> Posterior:
        return self._with_labels(self.trunk.encode, x, labels)

    def _trunk_decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self._with_labels(self.trunk.decode, z, labels)

    def _with_labels(self, method, tensor: torch.Tensor, labels: torch.Tensor | None):
        # only a label-conditioned trunk's methods take labels (third-party trunks keep one argument)
        if not self.label_conditioned:
            return method(tensor)
        if labels is None:
            raise ValueError(NEEDS_LABELS)
        return method(tensor, labels)

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """The attributes ``sample(attributes=...)`` and ``edit`` take; empty without directions."""
        return self.attributes.names if self.attributes is not None else ()

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels ``sample(label=...)`` takes: a label-conditioned trunk's classes, else
        those of the prior per label; empty when the pipeline has neither."""
        if self.label_conditioned:
            return tuple(self.config.trunk_labels)
        return self.conditional.labels if self.conditional is not None else ()

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
        for bound in (b for stage in self.stage_losses for b in stage):
            bound.loss._apply(fn, recurse)
        return self

    def loss_context(
        self, index: int, out: ChainOutput, step: int, auxiliary: nn.Module | None = None, detach: bool = False
    ) -> LossContext:
        """What stage ``index`` sees beside its output and target when its loss is computed
        (``detach``: for an extra module's own update, which must not reach the generator)."""
        previous = out.images[index - 1] if index else None
        samples = out.samples[index] if (out.samples is not None and index > 0) else None
        return LossContext(
            step=step,
            input=previous.detach() if (detach and previous is not None) else previous,
            posterior=out.posterior if index == 0 and not detach else None,
            auxiliary=auxiliary,
            samples=samples.detach() if (detach and samples is not None) else samples,
            last_layer=None if detach else getattr(self.stages[index], "last_layer", None),
        )

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

    @property
    def uses_samples(self) -> bool:
        """Whether some refiner's loss judges the sample path's outputs (the trainer then runs it)."""
        return any(b.loss.uses_samples for stage in self.stage_losses[1:] for b in stage)

    def wants_samples(self, step: int) -> bool:
        """Whether some refiner that trains at this step has a loss that judges the sample path's outputs."""
        active = self.stage_losses[1 : self.active_stages(step)]
        return any(b.loss.wants_samples(step) for stage in active for b in stage)

    def loss_terms(
        self,
        x: torch.Tensor,
        out: ChainOutput,
        step: int = 0,
        auxiliaries: dict[str, nn.Module] | None = None,
        diagnostics: dict[tuple[int, str], torch.Tensor] | None = None,
        headlines: set[tuple[int, str]] | None = None,
    ) -> dict[tuple[int, str], torch.Tensor]:
        """Every stage's named, weighted loss terms by ``(stage, name)``. Numbers the stages
        report beside their loss (``ctx.report``) go into ``diagnostics``, those to show in a
        progress bar into ``headlines``. ``auxiliaries``: the extra modules that train beside
        the generator, by their keys: ``"<stage>"`` for a stage's own, ``"<stage>/<loss>"`` for
        a loss's (a discriminator)."""
        auxiliaries = auxiliaries or {}
        terms: dict[tuple[int, str], torch.Tensor] = {}
        targets = self.targets(x)
        for i, (stage, spec) in enumerate(zip(self.stages[: len(out.images)], self.specs)):
            if out.images[i].shape[-2:] != targets[i].shape[-2:]:
                raise ValueError(
                    f"stage {i} ({spec.type}) produced {tuple(out.images[i].shape[-2:])} images but its resolution is "
                    f"{self.resolutions[i]}: a refiner that changes resolution must declare it (StageType's scale)"
                )
            ctx = self.loss_context(i, out, step, auxiliaries.get(str(i)))
            own = {key.split("/", 1)[1]: aux for key, aux in auxiliaries.items() if key.startswith(f"{i}/")}
            for name, value in stage_terms(stage, self.stage_losses[i], out.images[i], targets[i], ctx, own).items():
                terms[i, name] = spec.loss_weight * value
            if diagnostics is not None:
                diagnostics.update({(i, name): v for name, v in ctx.diagnostics.items()})
            if headlines is not None:
                headlines.update((i, name) for name in ctx.headlines)
        return terms

    def losses(
        self,
        x: torch.Tensor,
        out: ChainOutput,
        step: int = 0,
        auxiliaries: dict[str, nn.Module] | None = None,
        diagnostics: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """:meth:`loss_terms` under their log labels: ``{"stage0/l2": ..., "stage1/l1": ...}``."""
        reported: dict[tuple[int, str], torch.Tensor] = {}
        terms = self.loss_terms(x, out, step, auxiliaries, reported)
        if diagnostics is not None:
            diagnostics.update({term_label(i, name): v for (i, name), v in reported.items()})
        return {term_label(i, name): v for (i, name), v in terms.items()}

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

    def attribute_shift(self, strengths: dict[str, float]) -> torch.Tensor:
        """The latent offset of attributes at strengths ({"Smiling": 1.5}); refused by name."""
        if self.attributes is None:
            raise ValueError(NO_ATTRIBUTES)
        return self.attributes.shift(strengths)

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
        """Read a pipeline file (see :func:`stagegen.loading.load_pipeline` for the checks)."""
        return load_pipeline(path, lambda config: cls(config, for_training=False), device=device, channels_last=channels_last)
