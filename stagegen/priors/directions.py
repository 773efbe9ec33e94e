"""Attribute directions in latent space: "this face, smiling", "faces with glasses".

For each binary attribute of the training images (CelebA's 40), the direction is the mean
posterior of the images that have it minus the mean of those that do not (the attribute vector
of Larsen et al. 2016 and White 2016), fitted after training like the priors, from the trunk's
posteriors. Adding ``s`` times it to a latent moves the image toward the attribute (``s`` < 0:
away); every stage then draws the moved latent. Stored in the pipeline file as
``attributes.directions`` (one row per attribute) with the image counts it came from.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..data.attributes import Attributes
from ..text import safe_name, shown_names
from .contract import LatentSet, encode_dataset

__all__ = ["AttributeDirections", "fit_attribute_directions", "parse_strengths", "NO_ATTRIBUTES"]

NO_ATTRIBUTES = (
    "this pipeline has no attribute directions: fit them from images with attributes (CelebA with "
    "list_attr_celeba.txt beside its images) with `stagegen fit-prior PIPELINE --conditional -o NEW.safetensors`"
)


class AttributeDirections(nn.Module):
    """One latent direction per attribute, and how many images with and without it made it."""

    def __init__(self, names: Sequence[str], latent_shape: Sequence[int]):
        super().__init__()
        self.names = tuple(names)
        self.latent_shape = tuple(latent_shape)
        dim = int(torch.tensor(self.latent_shape).prod())
        self.register_buffer("directions", torch.zeros(len(self.names), dim))
        self.register_buffer("counts", torch.zeros(len(self.names), 2, dtype=torch.int64))  # [without, with]

    def check_state(self) -> str | None:
        if not bool(torch.isfinite(self.directions).all()):
            return "attributes.directions holds NaN or infinite values"
        if bool((self.counts < 0).any()):
            return "attributes.counts holds a negative count"
        return None

    def shift(self, strengths: dict[str, float]) -> torch.Tensor:
        """The sum of each named attribute's direction times its strength, of the latent shape."""
        total = torch.zeros_like(self.directions[0])
        for name, strength in strengths.items():
            if name not in self.names:
                raise ValueError(
                    f"unknown attribute {safe_name(repr(name)[:60])}; this pipeline's attributes are {shown_names(self.names)}"
                )
            if not abs(float(strength)) <= MAX_STRENGTH:  # NaN fails too
                raise ValueError(f"the strength of {name} is {strength}; give one from -{MAX_STRENGTH:g} to {MAX_STRENGTH:g}")
            i = self.names.index(name)
            without, with_it = self.counts[i].tolist()
            if not (without and with_it):
                raise ValueError(
                    f"attribute {name!r} has no direction: its fit saw {with_it} image(s) with it and {without} without"
                )
            total = total + strength * self.directions[i]
        return total.reshape(self.latent_shape)


#: strength 1 moves a latent by the mean difference between images with and without the
#: attribute; far beyond a few of those the decoder sees latents unlike any it was trained on
MAX_STRENGTH = 20.0


def parse_strengths(text: str) -> dict[str, float]:
    """``"Eyeglasses,Smiling=-1.5"`` -> {"Eyeglasses": 1.0, "Smiling": -1.5}."""
    strengths: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, value = part.partition("=")
        try:
            strengths[name.strip()] = float(value) if value else 1.0
        except ValueError:
            raise ValueError(f"{part!r}: give an attribute and an optional strength, as Smiling or Smiling=+1.5") from None
        if not abs(strengths[name.strip()]) <= MAX_STRENGTH:  # NaN fails too
            raise ValueError(
                f"{safe_name(part[:80])}: the strength must be a number from -{MAX_STRENGTH:g} to {MAX_STRENGTH:g} "
                "(1 is the mean difference between images with and without it)"
            )
    if not strengths:
        raise ValueError("no attribute given; name one, as Smiling or Smiling=+1.5")
    return strengths


class _Rows:
    """The images of ``dataset`` at ``rows``, as a dataset."""

    def __init__(self, dataset, rows: torch.Tensor):
        self.dataset, self.rows = dataset, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.dataset[int(self.rows[i])]


def fit_attribute_directions(
    pipeline, images, attributes: Attributes, max_images: int | None = 20_000, seed: int = 0, latents: LatentSet | None = None
) -> tuple[AttributeDirections, dict[str, float]]:
    """The directions of every attribute from the posterior means of the images with a row in
    the attribute file (``latents``: those of ``images``, when already encoded with the same
    ``max_images`` and ``seed``; only the rows with attributes are used)."""
    known = attributes.known.nonzero().flatten()
    if len(known) < 2:
        raise ValueError(f"only {len(known)} of the {len(attributes)} images have attributes; " + (attributes.note or ""))
    if latents is None:
        latents = encode_dataset(pipeline, _Rows(images, known), max_images, seed)
        rows = known[latents.index]
    else:
        rows = latents.index
        keep = attributes.known[rows]
        latents, rows = LatentSet(latents.mean[keep], latents.std[keep], latents.index[keep]), rows[keep]
    values = attributes.values[rows].double()
    means = latents.mean.double()
    directions = AttributeDirections(attributes.names, pipeline.trunk.latent_shape)
    with_it = values.sum(0)
    without = len(values) - with_it
    mean_with = (values.T @ means) / with_it.clamp_min(1)[:, None]
    mean_without = ((1 - values).T @ means) / without.clamp_min(1)[:, None]
    usable = (with_it > 0) & (without > 0)
    directions.directions.copy_(torch.where(usable[:, None], mean_with - mean_without, 0).float())
    directions.counts.copy_(torch.stack([without, with_it], 1).long())
    return directions, {"attribute_images": float(len(values)), "attributes_usable": float(usable.sum())}
