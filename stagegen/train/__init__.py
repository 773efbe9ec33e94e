"""Training: the loop, checkpoints, EMA, distributed helpers."""

from .trainer import TrainingInterrupted, TrainingStopped, TrainResult, Trainer, resume, train

__all__ = ["Trainer", "TrainResult", "TrainingInterrupted", "TrainingStopped", "resume", "train"]
