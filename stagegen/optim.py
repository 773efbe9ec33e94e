"""The optimisers a run uses, and a step that a non-finite loss skips without asking the host.

Adam's fused kernels (one launch for every parameter, on the GPU and, from torch 2.4, on the
CPU) are the fastest update torch has, and they take a ``found_inf`` flag on the device (what
``torch.amp.GradScaler`` passes them): set, the kernel leaves weights and moments untouched. A
step skipped that way needs no read of the loss on the host, which on a GPU waits for the whole
queue of work to finish.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["adam", "step_unless_nonfinite"]


def adam(params: Iterable[torch.nn.Parameter], **options) -> torch.optim.Adam:
    """``torch.optim.Adam`` with the fused kernels where this torch has them for the parameters'
    device, else the multi-tensor (foreach) ones."""
    params = list(params)
    try:
        return torch.optim.Adam(params, fused=True, **options)
    except (RuntimeError, ValueError, TypeError):  # torch < 2.4 on the CPU; a device without fused kernels
        return torch.optim.Adam(params, foreach=True, **options)


def _skips_on_device(optimizer: torch.optim.Optimizer) -> bool:
    return isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)) and all(
        group.get("fused") for group in optimizer.param_groups
    )


def step_unless_nonfinite(optimizer: torch.optim.Optimizer, finite: torch.Tensor) -> None:
    """``optimizer.step()`` when ``finite`` (a boolean tensor) is true. A fused optimiser decides
    on the device; any other reads ``finite`` on the host (a wait on a GPU)."""
    if _skips_on_device(optimizer):
        optimizer.found_inf = (~finite).float()
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf
    elif bool(finite):
        optimizer.step()
