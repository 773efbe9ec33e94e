"""Exponential moving average of the generator's weights."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """Shadow copies of every floating-point parameter and buffer; integer buffers are copied."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        current = module.state_dict()
        floats = [k for k, v in self.shadow.items() if v.is_floating_point()]
        torch._foreach_lerp_([self.shadow[k] for k in floats], [current[k].detach() for k in floats], 1.0 - self.decay)
        for k, v in self.shadow.items():
            if not v.is_floating_point():
                v.copy_(current[k])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.shadow[k].copy_(v)
