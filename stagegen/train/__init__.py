"""Training: the loop and its events, one step over a state, checkpoints, EMA, distributed helpers."""

from .callbacks import Callback, CallbackType
from .run import RESUMABLE_OVERRIDES, resume, train
from .state import TrainState
from .step import StepOutcome, train_step
from .trainer import Trainer, TrainingInterrupted, TrainingStopped, TrainResult

__all__ = [
    "RESUMABLE_OVERRIDES",
    "Callback",
    "CallbackType",
    "StepOutcome",
    "TrainResult",
    "TrainState",
    "Trainer",
    "TrainingInterrupted",
    "TrainingStopped",
    "resume",
    "train",
    "train_step",
]
