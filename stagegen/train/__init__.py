"""Training: the loop, one step over a state, checkpoints, EMA, distributed helpers."""

from .run import RESUMABLE_OVERRIDES, resume, train
from .state import TrainState
from .step import StepOutcome, train_step
from .trainer import Trainer, TrainingInterrupted, TrainingStopped, TrainResult

__all__ = [
    "RESUMABLE_OVERRIDES",
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
