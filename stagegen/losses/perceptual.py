"""Perceptual distances: deep features of output and target compared, from ``lpips`` (vgg, alex,
squeeze) or a ``timm`` backbone. The networks need pretrained weights, which are looked up in
the caches and never downloaded here; a missing file is named with where to put it."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..optional import require
from ..weights import MissingWeightsError, load_state_file, missing_weights

__all__ = ["LPIPSFeatures", "TimmFeatures", "perceptual_network"]


# torchvision's file names for the LPIPS backbones (the files lpips itself would download)
_LPIPS_BACKBONE_FILES = {
    "vgg": "vgg16-397923af.pth",
    "alex": "alexnet-owt-7be5be79.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


class LPIPSFeatures(nn.Module):
    """LPIPS distance (vgg, alex or squeeze backbone) from the ``lpips`` package."""

    def __init__(self, net: str = "vgg", pretrained: bool = True, weights_path: str | None = None):
        super().__init__()
        lpips = require("lpips", "the LPIPS distance")
        if net not in _LPIPS_BACKBONE_FILES:
            raise ValueError(f"unknown LPIPS backbone {net!r}: use vgg, alex or squeeze")
        hub_file = Path(torch.hub.get_dir()) / "checkpoints" / _LPIPS_BACKBONE_FILES[net]
        if pretrained and weights_path is None and not hub_file.is_file():
            raise missing_weights(f"the LPIPS {net} backbone", _LPIPS_BACKBONE_FILES[net], str(hub_file.parent))
        use_hub = pretrained and weights_path is None
        # The calibrated linear layers ship inside the lpips package; without a pretrained
        # backbone they mean nothing, so a random backbone uses plain feature distances.
        with warnings.catch_warnings():  # lpips calls torchvision's deprecated `pretrained=` argument
            warnings.simplefilter("ignore", UserWarning)
            self.metric = lpips.LPIPS(net=net, pretrained=pretrained, lpips=pretrained, pnet_rand=not use_hub, verbose=False)
        if pretrained and weights_path is not None:
            self._load_backbone(load_state_file(weights_path))
        self.metric.eval().requires_grad_(False)

    def _load_backbone(self, state: dict[str, torch.Tensor]) -> None:
        # lpips splits torchvision's `features` into slices whose children keep their indices
        own = {}
        for slice_name, block in self.metric.net.named_children():
            for index, _ in block.named_children():
                own[f"features.{index}"] = f"{slice_name}.{index}"
        loaded = 0
        net_state = self.metric.net.state_dict()
        for key, value in state.items():
            prefix, _, leaf = key.rpartition(".")
            if prefix in own:
                net_state[f"{own[prefix]}.{leaf}"] = value
                loaded += 1
        if loaded == 0:
            raise MissingWeightsError("weights_path holds no torchvision 'features.*' tensors for this backbone")
        self.metric.net.load_state_dict(net_state)

    def train(self, mode: bool = True):
        return super().train(False)  # the loss network always runs in eval mode

    # The backbones pool five times; smaller images (MNIST, digits) are upsampled to this.
    min_size = 64

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if output.shape[1] == 1:
            output, target = output.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
        if output.shape[-1] < self.min_size:
            size = (self.min_size, self.min_size)
            output = F.interpolate(output, size=size, mode="bilinear", align_corners=False)
            target = F.interpolate(target, size=size, mode="bilinear", align_corners=False)
        return self.metric(output, target, normalize=False).mean()


class TimmFeatures(nn.Module):
    """Perceptual distance: mean l1 between feature maps of a timm backbone (features_only)."""

    def __init__(self, model: str = "resnet18", pretrained: bool = True, weights_path: str | None = None, layers: int = 3):
        super().__init__()
        timm = require("timm", "the timm perceptual distance")
        if pretrained and weights_path is None:
            _require_timm_weights(model)
        kwargs = {}
        if pretrained and weights_path is not None:
            kwargs["pretrained_cfg_overlay"] = {"file": str(weights_path)}
            if not Path(weights_path).is_file():
                raise MissingWeightsError(f"weights_path {weights_path} does not exist or is not a file")
        self.net = timm.create_model(model, pretrained=pretrained, features_only=True, out_indices=tuple(range(layers)), **kwargs)
        cfg = self.net.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, -1, 1, 1), persistent=False)
        self.net.eval().requires_grad_(False)

    def train(self, mode: bool = True):
        return super().train(False)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(((x + 1) / 2 - self.mean) / self.std)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_features = self._features(target)
        losses = [F.l1_loss(a, b) for a, b in zip(self._features(output), target_features)]
        return torch.stack(losses).mean()


def _require_timm_weights(model: str) -> None:
    timm = require("timm", "the timm perceptual distance")

    cfg = timm.models.get_pretrained_cfg(model)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            if isinstance(try_to_load_from_cache(hub_id, filename), str):
                return
        from huggingface_hub.constants import HF_HUB_CACHE

        raise missing_weights(
            f"the timm model {model!r}", f"{hub_id}/model.safetensors", f"the Hugging Face cache {HF_HUB_CACHE}"
        )
    url = getattr(cfg, "url", None) if cfg is not None else None
    if url:
        file = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        if file.is_file():
            return
        raise missing_weights(f"the timm model {model!r}", file.name, str(file.parent))
    raise MissingWeightsError(f"timm knows no pretrained weights for {model!r}; set pretrained=false or weights_path")


def perceptual_network(backbone: str, pretrained: bool, weights_path: str | None = None) -> nn.Module:
    """``lpips-vgg``, ``lpips-alex``, ``lpips-squeeze`` or ``timm:<model name>``."""
    if backbone.startswith("lpips-"):
        return LPIPSFeatures(backbone.removeprefix("lpips-"), pretrained, weights_path)
    if backbone.startswith("timm:"):
        return TimmFeatures(backbone.removeprefix("timm:"), pretrained, weights_path)
    raise ValueError(f"unknown perceptual backbone {backbone!r}: use lpips-vgg, lpips-alex, lpips-squeeze or timm:<model>")
