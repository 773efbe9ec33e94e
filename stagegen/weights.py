"""Pretrained weights a loss network or a metric needs: where they are looked for, how they are
read (never by unpickling arbitrary objects), and the error when they are not on the machine."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["MissingWeightsError", "load_state_file", "missing_weights"]


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
