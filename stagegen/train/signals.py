"""SIGINT and SIGTERM during a run: stop within seconds at any phase, keeping what was finished.

Between steps, a signal is a request: the current step finishes, a checkpoint is written and
the run ends (so a resume continues exactly there). A phase that may take long and can be
abandoned without losing anything (a prior fit, whose inputs are in the checkpoint) is marked
with :meth:`StopSignals.abandon_on_signal`: a signal there ends the run at once. A second
signal ends it at once anywhere: the last checkpoint written is what remains.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable

__all__ = ["FINAL_PRIOR_FIT", "StopSignals", "TrainingInterrupted"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: the phase a signal may cut short after the last step (the final checkpoint holds its inputs)
FINAL_PRIOR_FIT = "fitting the prior"


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM ended the run; the message says what was kept and how to continue."""


class StopSignals:
    """The handlers of a run; ``requested`` once a signal came. ``abandoned(what)`` makes the
    message of a run ended in the middle of ``what`` (or of a step, on a second signal)."""

    def __init__(self, abandoned: Callable[[str], str]):
        self.abandoned = abandoned
        self.requested = False
        self._phase: str | None = None
        self._previous: dict = {}

    def install(self) -> None:
        self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        again = self.requested
        self.requested = True
        if self._phase is not None:
            raise TrainingInterrupted(self.abandoned(self._phase))
        if again:  # a second signal: the user will not wait for the step to finish
            raise TrainingInterrupted(self.abandoned("running a step (a second signal)"))

    @contextlib.contextmanager
    def abandon_on_signal(self, phase: str):
        """A signal during the block ends the run at once (one that came before it, on entry)."""
        if self.requested:
            raise TrainingInterrupted(self.abandoned(phase))
        outer, self._phase = self._phase, phase
        try:
            yield
        finally:
            self._phase = outer
