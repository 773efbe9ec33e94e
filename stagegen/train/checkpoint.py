"""Training checkpoints: everything needed to continue a run exactly where it stopped.

Written atomically (temporary file, fsync, rename), so a run killed at any moment leaves the
previous checkpoint or the new one, never a torn file. Read with ``weights_only=True``: a
checkpoint holds tensors, numbers and strings only, and loading one executes no code.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..pipeline_file import atomic_write

CHECKPOINT_NAME = "last.pt"


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_gauss": [int(np_state[3]), float(np_state[4])],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(
        ("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], state["numpy_gauss"][0], state["numpy_gauss"][1])
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict[str, Any], directory: Path) -> Path:
    path = Path(directory) / CHECKPOINT_NAME
    buffer = io.BytesIO()
    torch.save(state, buffer)  # serialised in memory, then written by Python: a full disk is an OSError

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())

    atomic_write(path, write)
    return path


def load_checkpoint(directory: Path) -> dict[str, Any]:
    path = Path(directory) / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: the run stopped before its first checkpoint, or this is not a run directory")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint {path} cannot be read ({exc}); it is not a stagegen checkpoint or it was altered") from None
