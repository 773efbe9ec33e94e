"""Training checkpoints: everything needed to continue a run exactly where it stopped.

Written atomically (temporary file, fsync, rename), so a run killed at any moment leaves the
previous checkpoint or the new one, never a torn file. Read with ``weights_only=True``: a
checkpoint holds tensors, numbers and strings only, and loading one executes no code.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_write

CHECKPOINT_NAME = "last.pt"
CHECKPOINT_FORMAT = "stagegen.checkpoint"


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
        (
            "MT19937",
            state["numpy"].numpy().astype(np.uint32),
            state["numpy_pos"],
            state["numpy_gauss"][0],
            state["numpy_gauss"][1],
        )
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
        raise FileNotFoundError(
            f"no checkpoint at {path}: the run stopped before its first checkpoint, or this is not a run directory"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint {path} cannot be read ({exc}); it is not a stagegen checkpoint or it was altered") from None


def checkpoint_note(directory: Path) -> str:
    """What a run that stopped on non-finite values can be continued from, said truthfully."""
    path = Path(directory) / CHECKPOINT_NAME
    advice = "lower the learning rate or that term's weight"
    if not path.is_file():
        return f"No checkpoint was written before it stopped, so there is nothing to resume: {advice} and start again."
    try:
        state = load_checkpoint(directory)
        finite = all(bool(torch.isfinite(v).all()) for v in state["pipeline"].values() if v.is_floating_point())
    except (ValueError, KeyError, AttributeError, TypeError):
        return f"The checkpoint {path} cannot be read back, so there is nothing to resume: {advice} and start again."
    if not finite:
        return (
            f"The checkpoint {path} (step {state.get('step')}) already holds non-finite weights, so resuming it "
            f"would fail the same way: {advice} and start again."
        )
    return (
        f"The last checkpoint ({path}, step {state.get('step')}) is intact and finite: --resume continues "
        f"from it; if the same steps fail again, start a new run and {advice}."
    )


def gather_rng(dist) -> list[dict[str, Any]]:
    """Every process's random generator states, in rank order (on every rank)."""
    state = rng_state()
    if not dist.enabled:
        return [state]
    import torch.distributed as torch_dist

    gathered: list[Any] = [None] * dist.world_size
    torch_dist.all_gather_object(gathered, state)  # between our own processes, not from a file
    return gathered


def checkpoint_document(state, rngs: list[dict[str, Any]], world_size: int, pipeline_config) -> dict[str, Any]:
    """What ``last.pt`` holds: a TrainState's state_dict, the generators, and the pipeline config
    it belongs to (as JSON text: weights_only loading accepts no pydantic objects)."""
    from ..plugins import get_plugin_manager

    registry = get_plugin_manager().stages
    return {
        "format": CHECKPOINT_FORMAT,
        **state.state_dict(),
        "world_size": world_size,
        "rng": rngs,
        "pipeline_config": json.dumps(pipeline_config.model_dump(mode="json"), sort_keys=True),
        # which version of each stage's (and the prior's) plugin wrote the tensors, for their upgrade hooks on resume
        "stage_versions": [registry.provider(spec.type).version for spec in pipeline_config.stages],
        "prior_version": get_plugin_manager().priors.provider(pipeline_config.prior.type).version,
    }


def _upgrade_checkpoint(checkpoint: dict[str, Any], pipeline_config, directory: Path) -> None:
    """Stage and prior tensors written by another version of their plugin, through its upgrade
    hook (a checkpoint from before versions were recorded counts as written by an unknown version)."""
    from ..loading import upgrade_prior_tensors, upgrade_stage_tensors

    versions = {i: str(v) for i, v in enumerate(checkpoint.get("stage_versions") or [])}
    versions = {i: versions.get(i, "") for i in range(len(pipeline_config.stages))}
    where = str(Path(directory) / CHECKPOINT_NAME)
    for part in ("pipeline", "ema"):
        tensors = checkpoint.get(part)
        if tensors is None:
            continue
        _, tensors = upgrade_stage_tensors(pipeline_config, versions, tensors, where)
        _, checkpoint[part] = upgrade_prior_tensors(pipeline_config, str(checkpoint.get("prior_version", "")), tensors, where)


def restore_state(state, checkpoint: dict[str, Any], pipeline_config, directory: Path) -> list[dict[str, Any]]:
    """Load ``checkpoint`` into a TrainState built for ``pipeline_config``; returns the saved
    generator states. Anything that does not fit is one ValueError saying so."""
    from ..config import PipelineConfig

    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{Path(directory) / CHECKPOINT_NAME} does not hold a stagegen checkpoint")
    try:
        # validated again, so fields added since the checkpoint was written take their defaults (a
        # run from before priors existed resumes with the normal prior it was started with)
        saved = PipelineConfig.model_validate(json.loads(checkpoint["pipeline_config"])).model_dump(mode="json")
        if saved != pipeline_config.model_dump(mode="json"):
            raise ValueError(
                "the checkpoint was written for a different pipeline than the one configured now; "
                "resume with the run's own config.json (stagegen train --resume DIR does this)"
            )
        _upgrade_checkpoint(checkpoint, pipeline_config, directory)
        state.load_state_dict(checkpoint)
        return checkpoint["rng"]
    except (KeyError, IndexError, TypeError, RuntimeError, AttributeError, json.JSONDecodeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else " ".join(str(exc).split())[:300]
        raise ValueError(
            f"the checkpoint in {directory} does not fit this run ({detail}); it was altered or "
            "written by another version of the run: restore it, or start a new run"
        ) from None
