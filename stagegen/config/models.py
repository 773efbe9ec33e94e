"""Validated configuration: the pipeline (what is built and saved), training and data.

Everything a run needs is one :class:`RunConfig`; the pipeline part of it is stored inside
every pipeline file, so a file alone says how to rebuild its network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from ..text import MAX_ATTRIBUTES, MAX_LABELS, check_names
from .options import StrictModel as _Strict
from .options import describe_validation_error


class LossSpec(_Strict):
    """One loss term of a stage: a registered loss type, its weight and its options."""

    type: str = Field(description="registered loss type, e.g. 'l1', 'perceptual', 'adversarial'")
    name: str | None = Field(
        None, min_length=1, max_length=64, description="the name its terms are logged under (default: the type)"
    )
    weight: float = Field(1.0, ge=0, le=1e6, description="multiplies the loss's terms")
    options: dict[str, Any] = Field(default_factory=dict, description="options of that loss type")

    @property
    def label(self) -> str:
        return self.name or self.type


class AugmentSpec(_Strict):
    """Conditioning augmentation of a refiner's input in training (cascaded generators): the
    previous stage's output is corrupted a little, so the refiner tolerates the errors that
    stage makes on latents it was never trained on."""

    noise: float = Field(0.0, ge=0, le=1, description="Gaussian noise on the input; its std is drawn per image from U(0, noise)")
    blur: float = Field(
        0.0, ge=0, le=8, description="Gaussian blur of the input; its sigma is drawn per image from U(0, blur), in pixels"
    )


class StageSpec(_Strict):
    """One stage of the chain: which registered type, its options, its losses, and how it trains."""

    type: str = Field(description="registered stage type or network, e.g. 'vae', 'resnet-l1' or 'resnet'")
    options: dict[str, Any] = Field(default_factory=dict, description="options of that stage type (its network's)")
    losses: list[LossSpec] | None = Field(
        None, max_length=32, description="the stage's loss terms; None: the stage type's defaults"
    )
    loss_weight: float = Field(1.0, ge=0, description="multiplies every loss term of this stage")
    detach_input: bool = Field(
        False,
        description="refiners only: train on a detached input, so this stage's loss does not "
        "reach earlier stages (default: joint training, as in the paper)",
    )
    augment: AugmentSpec = Field(default_factory=AugmentSpec, description="refiners only: input corruption in training")
    train_from: int = Field(
        0,
        ge=0,
        description="refiners only: the step at which this stage joins training; before it the chain is trained without "
        "it (and the stages after it), so the earlier stages train alone, faster (progressive training)",
    )


class PriorSpec(_Strict):
    """Where sampling draws latents from: a registered prior type and its options."""

    type: str = Field("normal", description="registered prior type: 'normal' (N(0, I)), 'gmm', 'latent-vae', ...")
    options: dict[str, Any] = Field(default_factory=dict, description="options of that prior type")


class ConditionalSpec(_Strict):
    """A prior per label, fitted after training (:mod:`stagegen.priors.per_label`): written by the
    fit, not by hand; a pipeline file with one samples labels as well as unconditionally."""

    labels: list[str] = Field(min_length=2, max_length=MAX_LABELS, description="the class names, in label order")
    prior: PriorSpec = Field(description="the type and options of every label's prior")

    @field_validator("labels")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        return check_names(v, "the labels", MAX_LABELS)


#: a longer chain is no model anyone trains (a x2 ladder from 4 to 4096 pixels has 11 stages);
#: the bound refuses a file listing thousands before any is built
MAX_STAGES = 32


class PipelineConfig(_Strict):
    """The generator: image format and the chain of stages (the first is the trunk)."""

    image_size: int = Field(16, ge=4, le=4096, description="final output resolution (square images)")
    channels: int = Field(1, description="1 (grayscale) or 3 (RGB)")
    stages: list[StageSpec] = Field(
        min_length=1, max_length=MAX_STAGES, description=f"the trunk, then its refiners (at most {MAX_STAGES} in all)"
    )
    prior: PriorSpec = Field(default_factory=PriorSpec, description="the latent prior sampling uses; fitted after training")
    conditional: ConditionalSpec | None = Field(
        None, description="a prior per label, fitted after training from labelled data (set by the fit, not by hand)"
    )
    trunk_labels: list[str] | None = Field(
        None,
        min_length=2,
        max_length=MAX_LABELS,
        description="the class names a label-conditioned trunk (a CVAE) was trained on, in label order (set by training)",
    )
    attributes: list[str] | None = Field(
        None,
        max_length=MAX_ATTRIBUTES,
        description="binary attributes with a latent direction each, fitted after training (set by the fit, not by hand)",
    )
    normalization: Literal["minus_one_one"] = Field(
        "minus_one_one", description="how [0, 1] images are mapped for the networks: x * 2 - 1"
    )

    @field_validator("trunk_labels")
    @classmethod
    def _label_names(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else check_names(v, "the trunk's labels", MAX_LABELS)

    @field_validator("attributes")
    @classmethod
    def _attribute_names(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else check_names(v, "the attributes", MAX_ATTRIBUTES)

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: int) -> int:
        if v not in (1, 3):
            raise ValueError("channels must be 1 (grayscale) or 3 (RGB)")
        return v

    @property
    def stage_names(self) -> list[str]:
        return [s.type for s in self.stages]


#: marks a training field a resumed run may change (how long, where and how it runs, not what it
#: trains): the CLI's resume check, `stagegen.train.resume` and their messages read it
RESUMABLE = {"resumable": True}


def resumable_fields() -> list[str]:
    """The TrainConfig fields a resumed run may change."""
    return [name for name, f in TrainConfig.model_fields.items() if (f.json_schema_extra or {}).get("resumable")]


class TrainConfig(_Strict):
    steps: int = Field(1500, ge=1, description="optimiser steps", json_schema_extra=RESUMABLE)
    batch_size: int = Field(64, ge=1, description="images per step and process")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    betas: tuple[float, float] = Field((0.5, 0.999), description="Adam betas (the authors use beta1 = 0.5)")
    optimizer: Literal["shared", "per-stage"] = Field(
        "shared", description="one Adam for every stage (the paper) or one per stage"
    )
    lr_schedule: Literal["constant", "cosine"] = Field("constant", description="learning-rate schedule")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up steps")
    grad_clip: float | None = Field(None, gt=0, description="clip the global gradient norm to this")
    accumulate: int = Field(1, ge=1, description="gradient accumulation: micro-batches per step")
    ema_decay: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="decay of an exponential moving average of the generator's weights, e.g. 0.999; the pipeline file "
        "holds the averaged weights",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 autocast on CUDA, fp32 on CPU")
    seed: int = Field(
        0, ge=0, le=2**63 - 1, description="seeds every random number generator (a CPU run is repeatable bit for bit)"
    )
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:1', ...", json_schema_extra=RESUMABLE)
    log_every: int = Field(50, ge=1, description="steps between metrics.jsonl lines")
    sample_every: int = Field(500, ge=0, description="steps between sample grids (0: only at the end)")
    checkpoint_every: int = Field(500, ge=0, description="steps between checkpoints (0: only at the end)")
    max_nonfinite: int = Field(20, ge=1, description="stop after this many non-finite steps in a row")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes", json_schema_extra=RESUMABLE)
    compile: bool = Field(False, description="torch.compile the pipeline")
    memory_format: Literal["channels_last", "contiguous"] = Field(
        "channels_last",
        description="layout of images and conv weights in training; channels_last is faster with oneDNN (CPU) and cuDNN",
    )
    progress: bool = Field(True, description="show a progress bar", json_schema_extra=RESUMABLE)
    report: bool = Field(
        True,
        description="write report.html at the end: the run as one HTML page (curves, grids, prior, interpolations)",
    )
    time_budget: float | None = Field(
        None,
        gt=0,
        description="seconds the whole run may take, counted from its start: training stops early enough to leave "
        "time, estimated on this machine, for the prior fit, the pipeline, grids and report; on the command line "
        "also 90s, 2m, 1.5h",
        json_schema_extra=RESUMABLE,
    )
    budget_schedule: Literal["scale", "keep"] = Field(
        "scale",
        description="with a time budget, a refiner whose train_from the budget would not reach joins earlier, at the "
        "same share of the steps the run is estimated to reach (scale), so every stage trains; keep: as configured",
        json_schema_extra=RESUMABLE,
    )
    prior_fit_images: int = Field(
        20_000, ge=1, description="training images whose posteriors the prior is fitted to (a seeded subset)"
    )
    conditional_prior: bool = Field(
        True,
        description="when the training data declares labels (digits, MNIST, class folders), also fit a prior per label "
        "to the same posteriors, so that `sample --label` works; where it declares attributes (CelebA with its "
        "attribute list), their latent directions, for `sample --attribute` and `edit`",
    )
    sample_path_every: int = Field(
        1,
        ge=0,
        description="steps between passes of the sample path (the chain run from prior latents, judged by the losses "
        "that read samples, such as adversarial); 0: never. Only runs when some loss reads samples",
    )
    sample_path_batch: int | None = Field(None, ge=1, description="latents per sample-path pass (default: batch_size)")
    sample_path_temperature: float = Field(1.0, ge=0, le=10, description="temperature of the sample path's latents")
    sample_prior_refit_every: int = Field(
        250, ge=1, description="steps between refits of the sample path's prior to the latest posterior means"
    )
    sample_prior_latents: int = Field(
        4096, ge=64, le=1_000_000, description="recent posterior means the sample path's prior is fitted to"
    )


class DataConfig(_Strict):
    name: str = Field("digits", description="registered dataset name (`stagegen datasets`); default: the embedded digits")
    root: str | None = Field(None, description="where the dataset's files are")
    split: str = Field("train", description="the split to train on: train, val or test")
    options: dict[str, Any] = Field(default_factory=dict, description="options of that dataset")
    cache_dir: str | None = Field(None, description="decoded-image cache folder (None: no cache)")


class RunConfig(_Strict):
    pipeline: PipelineConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    data: DataConfig = Field(default_factory=DataConfig)


def validate_run_config(raw: dict[str, Any], where: str = "configuration") -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(where, exc)) from None


#: a config is a few KB; a bound keeps /dev/zero or a huge file from being read into memory
MAX_CONFIG_BYTES = 16 * 2**20


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON or TOML file with any of the sections pipeline / train / data."""
    from ..files import read_text_file

    path = Path(path)
    text = read_text_file(path, "config file", MAX_CONFIG_BYTES)
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # a syntax error, a 5,000-digit number, nesting too deep
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise ValueError(f"config file {path} is not valid {kind}: {' '.join(str(exc).split())[:300]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a table/object with sections pipeline, train, data")
    unknown = set(data) - {"pipeline", "train", "data"}
    if unknown:
        raise ValueError(f"config file {path}: unknown section(s) {sorted(unknown)}; expected pipeline, train, data")
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
