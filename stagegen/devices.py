"""Device names from users and files, checked before anything is allocated on them."""

from __future__ import annotations

import os

import torch

#: devices stagegen runs on; 'meta' holds no data and others need a build of torch we do not test
SUPPORTED = ("cpu", "cuda", "mps")


def resolve_device(name: str | torch.device, local_rank: int = 0) -> torch.device:
    """'auto' (CUDA when there is one, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps' -> a usable
    torch.device, or a ValueError that says what this machine has."""
    if isinstance(name, torch.device):
        device = name
    else:
        text = str(name).strip()
        if text == "auto":
            return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(text)
        except (RuntimeError, ValueError):
            device = None
        if device is None or device.type not in SUPPORTED:
            raise ValueError(f"unknown device {text!r}: use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(name)!r} asked for, but CUDA is not available on this machine; use --device cpu")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
        if device.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(name)!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device {str(name)!r} asked for, but MPS is not available on this machine; use --device cpu")
    if device.type not in SUPPORTED:
        raise ValueError(f"unsupported device {str(device)!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


def _process_limit() -> int | None:
    """What the address-space limit (ulimit -v) still lets this process map, where one is set."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status") as f:
            mapped = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
        return max(soft - mapped, 0)
    except (ImportError, OSError, StopIteration, ValueError):
        return None


def available_memory(device: torch.device) -> int:
    """Bytes a computation on ``device`` can still allocate: a GPU's free memory; on the CPU, the
    memory the system has available (MemAvailable), within this process's address-space limit."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        pass
    limit = _process_limit()
    return available if limit is None else min(available, limit)


def check_memory(skeleton, device: torch.device, copies: int) -> None:
    """Refuse, before allocating, a network (``skeleton``, built on the meta device) whose
    trained weights times ``copies`` (weights, gradients, two Adam moments, an EMA copy), plus
    its other tensors once (a pipeline's prior), exceed the device's memory: a message, not an
    allocator error minutes later."""

    def size(module) -> int:
        return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])

    trained = size(skeleton.stages) if hasattr(skeleton, "stages") else size(skeleton)
    needed = trained * copies + (size(skeleton) - trained)
    if device.type == "cuda":
        available = torch.cuda.get_device_properties(device).total_memory
    else:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available:
        params = sum(p.numel() for p in skeleton.parameters())
        raise ValueError(
            f"this pipeline has {params:,} parameters: training needs at least {needed / 2**30:,.1f} GiB for its weights, "
            f"gradients and optimiser state, and {device} has {available / 2**30:,.1f} GiB; make it smaller "
            "(latent_dim, widths, blocks, image_size)"
        )
