"""The pipeline: the chain of stages as one module (:mod:`.chain`), its file (:mod:`.file`,
:mod:`.loading`) and the memory checks before it decodes (:mod:`.memory`). What the chain is
trained on lives with the trainer (:mod:`stagegen.losses.objective`)."""

from .._deprecated import moved_attribute
from .chain import ChainOutput, Pipeline, to_model_range, to_unit_range

__all__ = ["ChainOutput", "Pipeline", "to_model_range", "to_unit_range"]

__getattr__ = moved_attribute(__name__, {"term_label": ("stagegen.losses.objective", "term_label")})
