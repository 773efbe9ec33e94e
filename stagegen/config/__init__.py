"""Configuration: the validated models of a run (:mod:`.models`), the base for every plugin's
options (:mod:`.options`), ``-O`` overrides (:mod:`.overrides`) and presets, a run's starting
point (:mod:`.presets`)."""

from .models import (
    MAX_CONFIG_BYTES,
    MAX_STAGES,
    RESUMABLE,
    AugmentSpec,
    ConditionalSpec,
    DataConfig,
    LossSpec,
    PipelineConfig,
    PriorSpec,
    RunConfig,
    StageSpec,
    TrainConfig,
    deep_merge,
    read_config_file,
    resumable_fields,
    validate_run_config,
)
from .options import StrictModel, validate_options

__all__ = [
    "StrictModel",
    "validate_options",
    "AugmentSpec",
    "ConditionalSpec",
    "DataConfig",
    "LossSpec",
    "MAX_CONFIG_BYTES",
    "MAX_STAGES",
    "PipelineConfig",
    "PriorSpec",
    "RESUMABLE",
    "RunConfig",
    "StageSpec",
    "TrainConfig",
    "deep_merge",
    "read_config_file",
    "resumable_fields",
    "validate_run_config",
]
