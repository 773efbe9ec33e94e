"""The adversarial loss's discriminator (kept with the plugin that trains it)."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake logits, one per receptive field (pix2pix). With spectral
    normalisation (Miyato et al. 2018) its layers are 1-Lipschitz and it has no batch norm,
    which keeps real and fake batches from leaking statistics into each other."""

    def __init__(self, channels: int, width: int = 64, layers: int = 3, spectral_norm: bool = False):
        super().__init__()
        wrap = nn.utils.spectral_norm if spectral_norm else (lambda m: m)
        norm = (lambda c: nn.Identity()) if spectral_norm else (lambda c: nn.BatchNorm2d(c))
        blocks: list[nn.Module] = [wrap(nn.Conv2d(channels, width, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
        c = width
        for i in range(1, layers):
            c_next = width * min(2**i, 8)
            blocks += [wrap(nn.Conv2d(c, c_next, 4, 2, 1, bias=spectral_norm)), norm(c_next), nn.LeakyReLU(0.2, inplace=True)]
            c = c_next
        c_next = width * min(2**layers, 8)
        blocks += [wrap(nn.Conv2d(c, c_next, 3, 1, 1, bias=spectral_norm)), norm(c_next), nn.LeakyReLU(0.2, inplace=True)]
        blocks += [wrap(nn.Conv2d(c_next, 1, 3, 1, 1))]
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The logits and every hidden layer's activations (for feature matching)."""
        features = []
        for layer in self.net:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                features.append(x)
        return x, features
