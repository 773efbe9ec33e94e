"""Network pieces shared by the trunk and the built-in refiners. A public API for plugins: the
names in ``__all__`` are kept stable (docs/plugins.md, "What a plugin may use")."""

from __future__ import annotations

from torch import nn

__all__ = ["PixelShuffleUpsampler", "ResidualBlock", "conv_bn_act"]


def conv_bn_act(cin: int, cout: int, kernel: int = 3, stride: int = 1, slope: float = 0.3) -> nn.Sequential:
    """Conv (no bias), batch norm, leaky ReLU: the authors' basic block."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(slope, inplace=True),
    )


class ResidualBlock(nn.Module):
    """conv-BN-lrelu-conv-BN, add the input, ReLU: the block of the paper's refiner. With
    ``prelu`` the inner activation is a PReLU per channel, and without ``post_activation`` the
    sum is returned as it is: SRResNet's block."""

    def __init__(self, width: int, slope: float = 0.3, post_activation: bool = True, prelu: bool = False):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.PReLU(width) if prelu else nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
        )
        self.post = nn.ReLU(inplace=True) if post_activation else nn.Identity()

    def forward(self, x):
        return self.post(x + self.body(x))


class PixelShuffleUpsampler(nn.Sequential):
    """x2 steps of conv + PixelShuffle (the SRResNet upsampler); scale must be a power of 2."""

    def __init__(self, width: int, scale: int, slope: float = 0.3):
        if scale < 1 or scale & (scale - 1):
            raise ValueError(f"scale must be 1, 2, 4, ... (a power of two), got {scale}")
        layers: list[nn.Module] = []
        for _ in range(scale.bit_length() - 1):
            layers += [nn.Conv2d(width, width * 4, 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(slope, inplace=True)]
        super().__init__(*layers)
