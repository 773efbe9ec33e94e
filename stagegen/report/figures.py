"""The report's plots: a run's logged values over training steps, as PNG bytes (matplotlib,
drawn off-screen)."""

from __future__ import annotations

import io
import math
import re

__all__ = ["curve_groups", "curves_png"]

STAGE_KEY = re.compile(r"^stage(\d+)/(.+)$")
#: logged but not curves: counters and the run's bookkeeping
NOT_CURVES = {"step", "epoch", "nonfinite_skipped"}
COLUMNS = 4


def curve_groups(metrics: list[dict[str, float]]) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """The logged series by group: ``run`` (total loss, lr, images/s, anything not a stage's) and
    ``stage K`` (its loss terms and what it reports: sigma, KL, bits per dimension, ...)."""
    groups: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for record in metrics:
        step = int(record.get("step", 0))
        for key, value in record.items():
            if key in NOT_CURVES:
                continue
            match = STAGE_KEY.match(key)
            group, name = (f"stage {match[1]}", match[2]) if match else ("run", key)
            steps, values = groups.setdefault(group, {}).setdefault(name, ([], []))
            steps.append(step)
            values.append(value)
    order = sorted(groups, key=lambda g: (g != "run", int(g.split()[1]) if g != "run" else 0))
    return {g: groups[g] for g in order}


def _log_scale(values: list[float]) -> bool:
    """A loss falling over decades reads better on a log axis; values at or below zero cannot."""
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and len(values) > 2 and max(positive) / min(positive) > 30


def curves_png(series: dict[str, tuple[list[int], list[float]]], dpi: int = 72) -> bytes:
    """Small multiples, one panel per series, against the training step (the page captions them)."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # off-screen; a notebook's own backend is left alone when already chosen
    from matplotlib.figure import Figure

    names = list(series)
    rows = max(1, math.ceil(len(names) / COLUMNS))
    figure = Figure(figsize=(3.0 * min(COLUMNS, max(1, len(names))), 2.2 * rows), dpi=dpi, layout="constrained")
    axes = figure.subplots(rows, min(COLUMNS, max(1, len(names))), squeeze=False).flatten()
    for ax, name in zip(axes, names):
        steps, values = series[name]
        ax.plot(steps, values, marker="." if len(steps) < 30 else None, linewidth=1.2, color="#1f5fa8")
        ax.set_title(name[:60], fontsize=9, parse_math=False)  # a logged name is text, never TeX (`$\\frac{$` breaks mathtext)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if _log_scale(values):
            ax.set_yscale("log")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    axes[min(len(names), len(axes)) - 1].set_xlabel("step", fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
