"""What a pipeline's latents are drawn from and conditioned on: its prior, a prior per label
(:mod:`stagegen.priors.per_label`), attribute directions (:mod:`stagegen.priors.directions`), and
the class labels a label-conditioned trunk (a CVAE) encodes and decodes with. A part of
:class:`~stagegen.pipeline.Pipeline`, kept apart from running the chain."""

from __future__ import annotations

import torch

from ..config.models import ConditionalSpec, PriorSpec
from ..data.labels import label_tensor
from ..plugin.manager import get_prior_type
from ..priors.contract import Prior, PriorContext
from ..priors.directions import NO_ATTRIBUTES, AttributeDirections
from ..priors.per_label import ConditionalPrior
from ..stages.contract import Posterior

__all__ = ["NEEDS_LABELS", "Conditioning"]

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


class Conditioning:
    """The prior, labels and attribute directions of a :class:`~stagegen.pipeline.Pipeline`."""

    def _init_conditioning(self) -> None:
        self.prior: Prior = self._build_prior(self.config.prior)
        #: a prior per label (:mod:`stagegen.priors.per_label`), when one was fitted; built here from a
        #: file's config. Not to be confused with :attr:`label_conditioned`, a trunk that takes labels (a CVAE)
        self.conditional: ConditionalPrior | None = None
        if self.config.conditional is not None:
            spec = self.config.conditional
            self.set_conditional(ConditionalPrior(spec.labels, lambda: self.make_prior(spec.prior)[0]), spec.prior)
        #: a latent direction per binary attribute (:mod:`stagegen.priors.directions`), when fitted
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
            raise TypeError(f"prior type {spec.type!r} built a {type(prior).__name__}, not a stagegen.priors.Prior")
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

    def attribute_shift(self, strengths: dict[str, float]) -> torch.Tensor:
        """The latent offset of attributes at strengths ({"Smiling": 1.5}); refused by name."""
        if self.attributes is None:
            raise ValueError(NO_ATTRIBUTES)
        return self.attributes.shift(strengths)
