"""Starting and resuming runs: the Python face of `stagegen train`."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import Dataset

from ..config.models import MAX_CONFIG_BYTES, RunConfig, resumable_fields, validate_run_config
from ..files import read_text_file
from .callbacks import Callback
from .distributed import shutdown_distributed
from .lock import run_lock
from .run_dir import check_run_directory, claim_run_directory
from .trainer import Trainer, TrainResult

#: what may change when a run continues besides its step count: how long, where and how it runs,
#: not what it trains (the fields config.py marks resumable)
RESUMABLE_OVERRIDES = tuple(name for name in resumable_fields() if name != "steps")


def _pipeline_steps(path: Path) -> int | None:
    """The training step a run's pipeline file was written at, if it is there and readable."""
    from ..pipeline.file import read_header

    try:
        return read_header(path).document.extra.get("train_steps") if path.is_file() else None
    except ValueError:
        return None


def _locked(run_dir: str | Path):
    """The run directory's lock, taken by the process that writes there (rank 0 under torchrun)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext()
    return run_lock(run_dir)


def train(
    config: RunConfig | dict,
    run_dir: str | Path,
    dataset: Dataset | None = None,
    callbacks: Sequence[Callback] = (),
    overwrite: bool = False,
    started: float | None = None,
) -> TrainResult:
    """Train a pipeline from a config; writes the run directory, which must be new or empty
    (``overwrite``: a previous run's files there are deleted first; :func:`resume` continues
    one). The Python face of `stagegen train`. ``callbacks`` hear the run's events after the
    default ones (stagegen.train.callbacks). ``started``: the ``time.monotonic()`` the time
    budget counts from (default: now; the CLI passes the command's start)."""
    started = time.monotonic() if started is None else started
    if isinstance(config, dict):
        config = validate_run_config(config)
    with _locked(run_dir):
        if int(os.environ.get("RANK", "0")) == 0:  # the process that writes there
            claim_run_directory(run_dir, overwrite)
        return _fit(Trainer(config, run_dir, dataset=dataset, extra_callbacks=callbacks, started=started))


def resume(
    run_dir: str | Path,
    steps: int | None = None,
    dataset: Dataset | None = None,
    callbacks: Sequence[Callback] = (),
    started: float | None = None,
    **train_overrides,
) -> TrainResult:
    """Continue the run in ``run_dir`` from its last checkpoint, optionally to a new step count.
    Only :data:`RESUMABLE_OVERRIDES` may be changed; anything else would silently change the run.
    ``started``: as for :func:`train`."""
    started = time.monotonic() if started is None else started
    run_dir = Path(run_dir)
    refused = sorted(set(train_overrides) - set(RESUMABLE_OVERRIDES))
    if refused:
        raise ValueError(
            f"cannot change {', '.join(refused)} when resuming: the run continues with its own settings "
            f"(only steps, {', '.join(RESUMABLE_OVERRIDES)} may change); start a new run to change them"
        )
    config_path = run_dir / "config.json"
    check_run_directory(run_dir)
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.json")
    text = read_text_file(config_path, "the run's config", MAX_CONFIG_BYTES)
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON or a 5,000-digit number
        detail = " ".join(str(exc).split())[:200]
        raise ValueError(
            f"{config_path} is not valid JSON ({detail}); restore it from the run's start or start a new run"
        ) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("train"), dict):
        raise ValueError(f"{config_path} has no 'train' section; it is not the config.json a run writes (was it edited?)")
    if steps is not None:
        raw["train"]["steps"] = steps
    raw["train"].update(train_overrides)
    config = validate_run_config(raw, where=str(config_path))
    with _locked(run_dir):
        trainer = Trainer(config, run_dir, dataset=dataset, resume=True, extra_callbacks=callbacks, started=started)
        target = config.train.steps
        if trainer.step > target or (trainer.step == target and _pipeline_steps(trainer.pipeline_path) == target):
            shutdown_distributed(trainer.dist)
            where = "past" if trainer.step > target else "at"
            raise ValueError(
                f"the run in {run_dir} is already {where} step {target} (its checkpoint is at step {trainer.step}); "
                f"give --steps larger than {trainer.step} to train further"
            )
        return _fit(trainer)


def _fit(trainer: Trainer) -> TrainResult:
    try:
        return trainer.fit()
    finally:
        shutdown_distributed(trainer.dist)
