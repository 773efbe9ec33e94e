"""What sampling will allocate, known before it allocates.

A pipeline file's weights are bounded when it is loaded, but the memory sampling needs grows
with the resolution and the number of images: a 25 KB file of width-1 layers at 4096 x 4096
asks for gigabytes per image. The activations of one image are bounded from the stages' widths
and resolutions; with the outputs that are kept, that bounds what ``decode`` will ask for, and a
request that cannot fit is refused in one line.
"""

from __future__ import annotations

import torch
from torch import nn

from ..devices import available_memory

__all__ = ["activation_bytes_per_image", "check_batch_memory", "check_sampling_memory"]

BYTES_PER_VALUE = 4  # float32 activations and outputs


def activation_bytes_per_image(pipeline) -> int:
    """A bound on the activations one latent takes through the chain at once: three feature maps
    (a layer's input, its output and one temporary) of the widest layer of a stage, at that
    stage's output resolution (a stage's features are no larger than its output; a plugin that
    upsamples inside sees this bound too). Widths are read from the weights' shapes: nothing runs."""
    widest = 0
    for module, resolution in zip(pipeline.stages, pipeline.resolutions):
        widths = [max(p.shape[0], p.shape[1]) for p in module.parameters() if p.dim() == 4]  # conv kernels
        width = max([pipeline.config.channels, *widths])
        widest = max(widest, width * resolution**2)
    return 3 * widest * BYTES_PER_VALUE


def check_sampling_memory(pipeline: nn.Module, n: int, kept_stages: list[int], chunk: int) -> None:
    """Refuse to decode ``n`` latents, in passes of ``chunk``, keeping the outputs of the stages
    ``kept_stages``, when that would not fit in the memory the device has available."""
    channels = pipeline.config.channels
    kept = sum(channels * pipeline.resolutions[i] ** 2 * BYTES_PER_VALUE for i in kept_stages)
    latent = int(torch.Size(pipeline.trunk.latent_shape).numel()) * BYTES_PER_VALUE
    # each kept output twice (the passes' parts, then their concatenation), plus one pass's activations
    needed = n * (2 * kept + latent) + min(n, chunk) * activation_bytes_per_image(pipeline)
    available = available_memory(pipeline.device)
    if needed > available:
        size = pipeline.resolutions[-1]
        per_image = needed / n
        fits = max(int(available // per_image), 0)
        raise ValueError(
            f"decoding {n:,} images of {size}x{size} through {len(pipeline.specs)} stage(s) needs about "
            f"{needed / 2**30:,.1f} GiB of memory and {pipeline.device} has {available / 2**30:,.1f} GiB available; "
            f"ask for fewer images (about {fits:,} fit), or run where there is more memory"
        )


def check_batch_memory(pipeline, device: torch.device, batches: dict[str, int]) -> None:
    """Refuse a training batch (``batches``: option name -> images per pass) whose activations
    alone, by the same lower bound sampling uses, exceed what ``device`` has available: a
    sample path of 10^9 latents is a message, not an allocator error (training keeps more than
    this bound, so no batch that trains is refused)."""
    per_image = activation_bytes_per_image(pipeline)
    available = available_memory(device)
    for option, n in batches.items():
        if n * per_image > available:
            raise ValueError(
                f"train.{option}={n:,}: one pass of that many images needs more than {n * per_image / 2**30:,.1f} GiB of "
                f"activations and {device} has {available / 2**30:,.1f} GiB available; lower it "
                f"(at most about {available // per_image:,} could fit)"
            )
