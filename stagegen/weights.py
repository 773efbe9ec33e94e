"""Pretrained weights a loss network or a metric needs: where they are looked for, how they are
read (never by unpickling arbitrary objects), and the error when they are not on the machine."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["MAX_WEIGHTS_BYTES", "MissingWeightsError", "load_state_file", "missing_weights", "read_state_bytes"]

#: the largest weights file stagegen reads into memory (VGG-16's is 528 MB; Inception's about 100 MB)
MAX_WEIGHTS_BYTES = 2**30


class MissingWeightsError(RuntimeError):
    """Pretrained weights were asked for but are not on this machine."""


def missing_weights(what: str, file: str, places: str) -> MissingWeightsError:
    """The error for weights of ``what``, expected as ``file`` in ``places``, with the ways out."""
    return MissingWeightsError(
        f"pretrained weights for {what} are not on this machine: expected {file} in {places}, "
        f"or give its location with the stage option weights_path=PATH; "
        f"or set pretrained=false to train with a randomly initialised backbone."
    )


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file, or a .pth read with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"weights_path {path} does not exist or is not a file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    # weights_only: never unpickle arbitrary objects from a weights file
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def read_state_bytes(path: str | Path, what: str, max_bytes: int = MAX_WEIGHTS_BYTES) -> tuple[dict[str, torch.Tensor], bytes]:
    """A PyTorch weights file given by the user, read whole (at most ``max_bytes``) and checked
    to be a state dict of tensors, without unpickling anything else: (the state dict, the
    file's bytes). Anything else is a :class:`MissingWeightsError` saying what the file is."""
    import io

    path = Path(path)
    if not path.is_file():  # a folder, a device (/dev/zero) or a FIFO is not a weights file
        raise MissingWeightsError(f"{what}: {path} is not a file; give the weights file")
    size = path.stat().st_size
    if size > max_bytes:
        raise MissingWeightsError(f"{what}: {path} is {size / 2**20:,.0f} MB, larger than any weights file it takes")
    data = path.read_bytes()
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # an unpickling error's advice (weights_only=False) is exactly what must never be done
        raise MissingWeightsError(
            f"{what}: {path} is not a PyTorch state dict of tensors (it holds other objects, which stagegen never "
            "unpickles, or it is not a PyTorch file); give the network's published weights file"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise MissingWeightsError(
            f"{what}: {path} holds a {type(state).__name__}, not a state dict of named tensors; give the network's "
            "published weights file"
        )
    return state, data
