"""Exponential moving average of the generator's weights, with a warm-up.

A fixed decay averages in the random initialisation for a long time: after t updates with decay
0.999, 0.999^t of every averaged weight is still its starting value (10% after 2,300 steps), so a
short or time-budgeted run's EMA samples look like an untrained network's. As timm and diffusers
do, the decay grows with the number of updates t: ``min(decay, (1 + t) / (10 + t))``, so the
average follows the weights early and settles to ``decay``. A stage that joins late
(``train_from``) counts t from the step it joins: its average starts from its weights then.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["EMA", "warmup_decay"]


def warmup_decay(decay: float, updates: int) -> float:
    """The decay of the average after ``updates`` earlier updates (0 for the first one)."""
    return min(decay, (1 + updates) / (10 + updates))


class EMA:
    """Shadow copies of every floating-point parameter and buffer; integer buffers are copied.

    ``starts`` maps a key prefix (``"stages.2."``) to the step its weights start training; keys
    under no prefix start at step 0. The warm-up of each group counts from its start, so the
    average needs no state beyond the shadow weights and the run's step (a checkpoint holds both).
    """

    def __init__(self, module: nn.Module, decay: float, starts: Mapping[str, int] | None = None):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.starts = dict(starts or {})
        self._group()
        self.integer_keys = [k for k, v in self.shadow.items() if not v.is_floating_point()]

    def _group(self) -> None:
        groups: dict[int, list[str]] = {}
        for key, value in self.shadow.items():
            if value.is_floating_point():
                start = next((s for prefix, s in self.starts.items() if key.startswith(prefix)), 0)
                groups.setdefault(start, []).append(key)
        #: (the step its weights start training, their keys), one per distinct start
        self.groups = sorted(groups.items())

    def move_start(self, prefix: str, step: int) -> None:
        """The weights under ``prefix`` start training at ``step`` instead (a budgeted run moved
        their stage's ``train_from`` before it came)."""
        self.starts[prefix] = step
        self._group()

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        """Average in the weights of ``module`` after the update of ``step`` (0-based)."""
        current = module.state_dict()
        for start, keys in self.groups:
            if step < start:
                continue  # not training yet: its weights (and its shadow) are still their initial values
            weight = 1.0 - warmup_decay(self.decay, step - start)
            torch._foreach_lerp_([self.shadow[k] for k in keys], [current[k].detach() for k in keys], weight)
        for k in self.integer_keys:
            self.shadow[k].copy_(current[k])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.shadow[k].copy_(v)
