"""Training checkpoints: everything needed to continue a run exactly where it stopped.

Written atomically (temporary file, fsync, rename), so a run killed at any moment leaves the
previous checkpoint or the new one, never a torn file. Read with ``weights_only=True``: a
checkpoint holds tensors, numbers and strings only, and loading one executes no code.
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from ..files import atomic_write

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
    _check_archive(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint {path} cannot be read ({exc}); it is not a stagegen checkpoint or it was altered") from None


def _check_archive(path: Path) -> None:
    """What torch.save writes: a zip whose entries are stored, not compressed. A compressed
    entry would be inflated before any check (a 1.5 MB file can ask for gigabytes): refused from
    the zip's directory, before a byte of it is read."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ValueError(
            f"checkpoint {path} is not the zip archive torch.save writes ({exc}); it is damaged or not a stagegen checkpoint"
        ) from None
    for entry in entries:
        if entry.compress_type != zipfile.ZIP_STORED:
            raise ValueError(
                f"checkpoint {path}: entry {entry.filename!r} is compressed (torch.save never compresses); refusing to "
                f"inflate it ({entry.file_size:,} bytes from {entry.compress_size:,}): the file was altered or crafted"
            )
    declared = sum(entry.file_size for entry in entries)
    if declared > size:
        raise ValueError(
            f"checkpoint {path}: its entries claim {declared:,} bytes but the file has {size:,}; it was altered or crafted"
        )


def checkpoint_note(directory: Path) -> str:
    """What a run that stopped on non-finite values can be continued from, said truthfully."""
    path = Path(directory) / CHECKPOINT_NAME
    advice = "lower the learning rate or that term's weight"
    if not path.is_file():
        return f"No checkpoint was written before it stopped, so there is nothing to resume: {advice} and start again."
    try:
        state = load_checkpoint(directory)
        bad = nonfinite_parts(state)
    except (ValueError, KeyError, AttributeError, TypeError):
        return f"The checkpoint {path} cannot be read back, so there is nothing to resume: {advice} and start again."
    if bad:
        return (
            f"The checkpoint {path} (step {state.get('step')}) already holds non-finite values ({', '.join(bad)}), so "
            f"resuming it would fail the same way: {advice} and start again."
        )
    return (
        f"The last checkpoint ({path}, step {state.get('step')}) is intact and finite: --resume continues "
        f"from it; if the same steps fail again, start a new run and {advice}."
    )


def _tensors(value: Any):
    """Every tensor inside a checkpoint part (nested dicts and lists, as state_dicts are)."""
    if torch.is_tensor(value):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


def nonfinite_parts(checkpoint: dict[str, Any]) -> list[str]:
    """The parts of a checkpoint (weights, EMA, extra modules, optimiser moments) holding NaN or
    infinite values: resuming from any of them fails the same way again."""
    parts = ("pipeline", "ema", "auxiliaries", "optimizers", "aux_optimizers", "sample_prior")
    return [
        part
        for part in parts
        if any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in _tensors(checkpoint.get(part)))
    ]


#: a counter beyond this was not written by a run (2**53: exact in JSON and floats alike)
MAX_COUNTER = 2**53
#: a learning rate above this diverges on its first step (config files accept at most 1)
MAX_LR = 10.0
#: Adam's (and AMSGrad's) running second moments: squares, never negative
SECOND_MOMENTS = ("exp_avg_sq", "max_exp_avg_sq")


def _altered(where: Path, what: str) -> ValueError:
    return ValueError(f"checkpoint {where}: {what}; the file was altered: restore it, or start a new run")


def _check_optimizer(saved: Any, current: torch.optim.Optimizer, name: str, where: Path) -> None:
    """A saved optimiser state this optimiser can load and step from: its groups hold as many
    parameters as this one's, a finite learning rate, and per-parameter moments of each
    parameter's shape, the second moments never negative."""
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    if not isinstance(groups, list) or not groups or not isinstance(saved.get("state"), dict):
        raise _altered(where, f"{name} has no parameter groups")
    if len(groups) != len(current.param_groups):
        raise _altered(where, f"{name} has {len(groups)} parameter groups where this run has {len(current.param_groups)}")
    shapes: dict[Any, torch.Size] = {}
    for group, mine in zip(groups, current.param_groups):
        lr, ids = group.get("lr") if isinstance(group, dict) else None, group.get("params") if isinstance(group, dict) else None
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (0 <= lr <= MAX_LR):
            raise _altered(where, f"{name} has learning rate {lr!r}, not a number from 0 to {MAX_LR:g}")
        if not isinstance(ids, list) or len(ids) != len(mine["params"]):
            count = len(ids) if isinstance(ids, list) else type(ids).__name__
            raise _altered(where, f"{name} holds {count} parameters in a group of this run's {len(mine['params'])}")
        shapes.update((i, p.shape) for i, p in zip(ids, mine["params"]))
    for i, moments in saved["state"].items():
        if i not in shapes or not isinstance(moments, dict):
            raise _altered(where, f"{name} holds a state for parameter {i!r}, which none of its groups names")
        for key, value in moments.items():
            if not torch.is_tensor(value) or value.dim() == 0:
                continue  # the step count
            if value.shape != shapes[i]:
                raise _altered(
                    where, f"{name}'s {key} of parameter {i} is {tuple(value.shape)}, the parameter {tuple(shapes[i])}"
                )
            if key in SECOND_MOMENTS and bool((value < 0).any()):
                raise _altered(where, f"{name}'s {key} of parameter {i} holds negative values (a running mean of squares)")


def check_fields(checkpoint: dict[str, Any], state, train_config, where: Path) -> None:
    """The fields a resume trusts, checked before any is applied: counters are whole numbers in
    range, the optimisers are the run's (as many, with its learning rate), nothing is NaN."""
    for name in ("step", "epoch", "batch_in_epoch", "nonfinite_total"):
        value = checkpoint.get(name, 0)
        if type(value) is not int or not 0 <= value <= MAX_COUNTER:
            raise ValueError(
                f"checkpoint {where}: {name} is {value!r}, not a whole number from 0 to {MAX_COUNTER}; "
                "the file was altered: restore it, or start a new run"
            )
    for part, current in (("optimizers", state.optimizers), ("schedulers", state.schedulers)):
        saved = checkpoint.get(part)
        if not isinstance(saved, list) or len(saved) != len(current):
            count = len(saved) if isinstance(saved, list) else type(saved).__name__
            raise ValueError(
                f"checkpoint {where}: it holds {count} {part} where this run has {len(current)}; "
                "the file was altered or written for other settings: restore it, or start a new run"
            )
    saved_extra = checkpoint.get("aux_optimizers")
    if not isinstance(saved_extra, dict) or len(saved_extra) != len(state.aux_optimizers):
        count = len(saved_extra) if isinstance(saved_extra, dict) else type(saved_extra).__name__
        raise _altered(where, f"it holds {count} optimisers of extra modules where this run has {len(state.aux_optimizers)}")
    from .state import _auxiliary_keys

    try:
        extra_keys = _auxiliary_keys(list(state.aux_optimizers), list(saved_extra))
    except (KeyError, ValueError):
        raise _altered(where, f"its extra modules' optimisers are {', '.join(map(str, saved_extra))[:200]}") from None
    for key, optimizer in state.aux_optimizers.items():
        _check_optimizer(saved_extra[extra_keys[key]], optimizer, f"the optimiser of {key}", where)
    for i, saved in enumerate(checkpoint["optimizers"]):
        _check_optimizer(saved, state.optimizers[i], f"optimiser {i}", where)
        for group in saved["param_groups"]:
            initial = group.get("initial_lr", train_config.lr)
            if initial != train_config.lr:
                raise ValueError(
                    f"the run's config.json says lr {train_config.lr:g} but its checkpoint {where} trained with "
                    f"{initial!r}; a resume cannot change the learning rate (was config.json edited?): set lr back to "
                    f"{initial!r} there, or start a new run with --lr {train_config.lr:g}"
                )
    # a checkpoint from before priors (0.1: no prior_version) has no sample path; its run starts one afresh
    if state.sample_prior is not None and ("sample_prior" in checkpoint or "prior_version" in checkpoint):
        problem = state.sample_prior.state_problem(checkpoint.get("sample_prior"))
        if problem is not None:
            raise _altered(where, problem)
    bad = nonfinite_parts(checkpoint)
    if bad:
        raise ValueError(
            f"checkpoint {where} holds non-finite values in {', '.join(bad)}; resuming it would fail the same way: "
            "start a new run (with a lower learning rate)"
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
    from ..plugin.manager import get_plugin_manager

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
    from ..pipeline.loading import upgrade_prior_tensors, upgrade_stage_tensors

    versions = {i: str(v) for i, v in enumerate(checkpoint.get("stage_versions") or [])}
    versions = {i: versions.get(i, "") for i in range(len(pipeline_config.stages))}
    where = str(Path(directory) / CHECKPOINT_NAME)
    for part in ("pipeline", "ema"):
        tensors = checkpoint.get(part)
        if tensors is None:
            continue
        _, tensors = upgrade_stage_tensors(pipeline_config, versions, tensors, where)
        _, checkpoint[part] = upgrade_prior_tensors(pipeline_config, str(checkpoint.get("prior_version", "")), tensors, where)


def restore_state(state, checkpoint: dict[str, Any], pipeline_config, directory: Path, train_config) -> list[dict[str, Any]]:
    """Load ``checkpoint`` into a TrainState built for ``pipeline_config``; returns the saved
    generator states. Anything that does not fit is one ValueError saying so."""
    from ..config.models import PipelineConfig

    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{Path(directory) / CHECKPOINT_NAME} does not hold a stagegen checkpoint")
    try:
        # validated again, so fields added since the checkpoint was written take their defaults (a
        # run from before priors existed resumes with the normal prior it was started with)
        try:
            recorded = json.loads(checkpoint["pipeline_config"])
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number is a ValueError too
            raise KeyError(f"a readable pipeline_config ({' '.join(str(exc).split())[:100]})") from None
        saved = PipelineConfig.model_validate(recorded).model_dump(mode="json")
        if saved != pipeline_config.model_dump(mode="json"):
            raise ValueError(
                "the checkpoint was written for a different pipeline than the one configured now; "
                "resume with the run's own config.json (stagegen train --resume DIR does this)"
            )
        check_fields(checkpoint, state, train_config, Path(directory) / CHECKPOINT_NAME)
        _upgrade_checkpoint(checkpoint, pipeline_config, directory)
        state.load_state_dict(checkpoint)
        return checkpoint["rng"]
    except (KeyError, IndexError, TypeError, RuntimeError, AttributeError, ValidationError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else " ".join(str(exc).split())[:300]
        raise ValueError(
            f"the checkpoint in {directory} does not fit this run ({detail}); it was altered or "
            "written by another version of the run: restore it, or start a new run"
        ) from None
