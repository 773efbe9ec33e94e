"""Where training reports go: metrics.jsonl, a progress bar, TensorBoard when installed."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any


class MetricsLog:
    """Appends one JSON object per logging interval; flushed line by line, so a killed run
    keeps every line it wrote."""

    def __init__(self, path: Path | None, tensorboard_dir: Path | None = None):
        self.path = path
        self._file = None
        if path is not None:
            from .run_dir import open_no_follow

            self._file = os.fdopen(open_no_follow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a", encoding="utf-8")
        self._tb = _tensorboard_writer(tensorboard_dir)

    def write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
            self._file.write(json.dumps(clean) + "\n")
            self._file.flush()
        if self._tb is not None:
            scalars = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
            self._tensorboard(lambda tb: [tb.add_scalar(k, v, record["step"]) for k, v in scalars.items()])

    def image(self, tag: str, image, step: int) -> None:
        if self._tb is not None:
            self._tensorboard(lambda tb: tb.add_image(tag, image, step))

    def _tensorboard(self, call) -> None:
        """A failing TensorBoard writer (a full disk, a broken install) is said once and turned
        off: the run goes on, and metrics.jsonl keeps every value."""
        try:
            call(self._tb)
        except Exception as error:  # whatever the writer raises, the training must not die of it
            self._tb = None
            _tensorboard_failed(error)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tensorboard(lambda tb: tb.close())


def _tensorboard_writer(folder: Path | None):
    if folder is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # TensorBoard is optional (pip install "stagegen[tensorboard]")
        return None
    try:
        return SummaryWriter(str(folder))
    except Exception as error:  # an unwritable folder, a broken install: said, and the run goes on
        _tensorboard_failed(error)
        return None


def _tensorboard_failed(error: Exception) -> None:
    print(
        f"note: TensorBoard logging is off for the rest of this run: {type(error).__name__}: {error} "
        "(metrics.jsonl has every value)",
        file=sys.stderr,
        flush=True,
    )


#: a metrics line is a few hundred bytes; a longer one is not ours (or torn), and is dropped
MAX_METRICS_LINE = 2**20


def bounded_lines(f, limit: int):
    """The lines of a binary file, each read in full only when shorter than ``limit`` bytes (a
    longer one, such as gigabytes of a sparse file without a newline, yields None): memory
    stays bounded whatever the file holds."""
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):  # skip the rest of an overlong line
            line = f.readline(limit)
        yield None


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the lines of ``path`` up to ``step``: a run killed after its checkpoint had logged
    steps it will train again on resume, and each step should appear once. Streamed line by
    line into a temporary file renamed over it (atomic); lines that are not ours are dropped."""
    from ..files import atomic_write

    if not path.is_file():
        return

    def write(tmp):
        with open(path, "rb") as source, open(tmp, "wb") as out:
            for line in bounded_lines(source, MAX_METRICS_LINE):
                if line is None:
                    continue
                try:
                    record = json.loads(line)
                    line_step = record.get("step", 0)
                except (ValueError, AttributeError, RecursionError):
                    continue  # a line torn by the kill, or not JSON we wrote
                if isinstance(line_step, int) and line_step <= step:
                    out.write(line if line.endswith(b"\n") else line + b"\n")

    atomic_write(path, write)


class Progress:
    """tqdm bar with step, main losses, images/s and ETA (tqdm computes the ETA). Without a bar
    (``--no-progress``: logs, CI) a plain line every ``LINE_EVERY`` seconds says the same, so a
    long run is never silent."""

    #: seconds between the plain lines of a run without a bar
    LINE_EVERY = 30.0

    def __init__(self, total: int, initial: int, enabled: bool, lines: bool = False):
        self.bar = None
        self.total, self.step = total, initial
        self.lines = lines and not enabled
        self.values: dict[str, float] = {}
        self.started = self.last_line = time.monotonic()
        self.first = initial
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr, leave=True)

    def update(self, n: int = 1) -> None:
        self.step += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.lines and time.monotonic() - self.last_line >= self.LINE_EVERY:
            self.last_line = time.monotonic()
            self.write(self._line())

    def _line(self) -> str:
        rate = (self.step - self.first) / max(time.monotonic() - self.started, 1e-9)
        left = (self.total - self.step) / rate if rate > 0 else float("inf")
        eta = f"{left / 60:.0f} min" if left >= 90 else f"{left:.0f} s"
        values = ", ".join(f"{k} {v:.4g}" for k, v in self.values.items())
        return f"step {self.step:,}/{self.total:,}, {rate:.3g} steps/s, about {eta} left at this speed" + (
            f"; {values}" if values else ""
        )

    def show(self, values: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)
        self.values = dict(values)

    def write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class MetricsWindow:
    """Loss terms, extra-module terms and diagnostics summed over the steps since the last
    metrics line, by (stage, name); labelled only when the line is made."""

    def __init__(self, images_per_step: int):
        self.images_per_step = images_per_step
        self.headlines: set[tuple[int, str]] = set()
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, dict] = {"losses": {}, "auxiliary": {}, "diagnostics": {}}  # tensors, summed on the device
        self.counts: dict[tuple[str, tuple[int, str]], int] = {}  # steps each appeared in (a stage that joins late)
        self.steps = 0
        self.start = time.perf_counter()

    def add(self, outcome) -> None:
        for kind in self.sums:
            for key, value in getattr(outcome, kind).items():
                self.sums[kind][key] = self.sums[kind].get(key, 0) + value
                self.counts[kind, key] = self.counts.get((kind, key), 0) + 1
        self.headlines |= outcome.headlines
        self.steps += 1

    def _means(self) -> dict[str, dict]:
        return {kind: {key: float(v / self.counts[kind, key]) for key, v in sums.items()} for kind, sums in self.sums.items()}

    def _progress(self, means: dict[str, dict], loss: float, images_per_second: float) -> dict[str, float]:
        """What a progress bar shows: the loss, each stage's first term, the headline diagnostics, images/s."""
        progress = {"loss": loss}
        for stage in sorted({stage for stage, _ in means["losses"]}):  # each stage's first term, compactly
            name = next(name for s, name in means["losses"] if s == stage)
            progress[f"s{stage}/{name}"] = means["losses"][stage, name]
        for stage, name in sorted(self.headlines & set(means["diagnostics"])):
            progress[name] = means["diagnostics"][stage, name]
        progress["img/s"] = images_per_second
        return progress

    def peek(self) -> dict[str, float]:
        """The progress values of the window so far, without ending it (one host sync)."""
        means = self._means()
        elapsed = time.perf_counter() - self.start
        return self._progress(means, sum(means["losses"].values()), self.images_per_step * self.steps / max(elapsed, 1e-9))

    def close(self, state) -> tuple[dict[str, Any], dict[str, float]]:
        """The metrics line of this window for a TrainState (one host sync) and what a progress
        bar shows of it; then a fresh window."""
        from .step import StepOutcome

        elapsed = time.perf_counter() - self.start
        means = self._means()
        record: dict[str, Any] = {"step": state.step, "epoch": state.epoch, "loss": sum(means["losses"].values())}
        record.update({StepOutcome.label(key): v for key, v in means["losses"].items()})
        record.update({StepOutcome.label(key, auxiliary=True): v for key, v in means["auxiliary"].items()})
        record.update({StepOutcome.label(key): v for key, v in means["diagnostics"].items()})
        record["lr"] = state.schedulers[0].get_last_lr()[0]
        record["images_per_second"] = self.images_per_step * self.steps / max(elapsed, 1e-9)
        record["nonfinite_skipped"] = state.nonfinite_total
        progress = self._progress(means, record["loss"], record["images_per_second"])
        self._reset()
        return record, progress
