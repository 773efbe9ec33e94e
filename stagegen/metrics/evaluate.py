"""Evaluate a pipeline against real images, stage by stage."""

from __future__ import annotations

from typing import Any

import torch

from ..images import resize
from ..optional import import_problem
from ..plugin.manager import get_plugin_manager
from .fid import FeatureExtractor
from .registry import MetricContext
from .resources import INPUTS


def metric_names(defaults_only: bool = False) -> tuple[str, ...]:
    """The registered metrics (built-in and from plugins), or those on by default."""
    registry = get_plugin_manager().metrics
    return tuple(n for n in registry.in_order() if not defaults_only or registry.get(n).default)


def runnable_metrics(pipeline, metrics: tuple[str, ...], resources: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Of ``metrics``, those this evaluation can compute, and why each other one is left out:
    a package it imports that cannot be imported here (a broken torchvision), a resource not
    provided (no digit classifier for faces, no TF-Inception weights), or label samples from a
    pipeline without a prior per label."""
    registry = get_plugin_manager().metrics
    kept, left_out = [], {}
    for name in metrics:
        missing = [need for need in registry.get(name).needs if need not in INPUTS and resources.get(need) is None]
        broken = [(module, import_problem(module)) for module in registry.get(name).imports]
        broken = [(module, problem) for module, problem in broken if problem is not None]
        if broken:
            left_out[name] = f"it needs {broken[0][0]}, which cannot be imported here: {broken[0][1]}"
        elif missing:
            left_out[name] = f"it needs {', '.join(missing)}, which this evaluation does not have"
        elif "label_samples" in registry.get(name).needs and not pipeline.labels:
            left_out[name] = "the pipeline has no prior per label"
        else:
            kept.append(name)
    return kept, left_out


def _chunks(fn, n: int, batch: int) -> list[torch.Tensor]:
    parts: list[list[torch.Tensor]] = []
    for start in range(0, n, batch):
        out = fn(start, min(batch, n - start))
        parts.append([o.cpu() for o in out])
    return [torch.cat(p) for p in zip(*parts)]


def generate(pipeline, n: int, seed: int = 0, temperature: float = 1.0, batch: int = 256) -> list[torch.Tensor]:
    """n samples per stage, reproducibly (chunk k uses seed + k)."""
    return _chunks(lambda s, m: pipeline.sample(m, seed=seed + s, temperature=temperature, return_stages=True), n, batch)


def generate_per_label(
    pipeline, n: int, seed: int = 0, temperature: float = 1.0, batch: int = 256
) -> list[list[tuple[str, torch.Tensor]]]:
    """n samples of every label of the pipeline's conditional prior, per stage: for each stage,
    (label name, its samples) in label order."""
    per_label = [
        _chunks(
            lambda s, m, name=name: pipeline.sample(m, seed=seed + s, temperature=temperature, return_stages=True, label=name),
            n,
            batch,
        )
        for name in pipeline.labels
    ]
    return [[(name, stages[k]) for name, stages in zip(pipeline.labels, per_label)] for k in range(len(pipeline.specs))]


def label_sampling(pipeline) -> str:
    """Where a pipeline's samples of a label come from, in words (for the report's notes)."""
    source = "each label's prior" if pipeline.conditional is not None else f"the {pipeline.config.prior.type} prior"
    if pipeline.label_conditioned:
        source += ", decoded with the label by the label-conditioned trunk"
    return source


def label_sample_count(pipeline, metrics: list[str], n_samples: int) -> int:
    """Samples per label the ``metrics`` need: none unless one reads label samples; else the
    unconditional count shared out over the labels, and never under 100 (a share of fewer says
    little about one label)."""
    registry = get_plugin_manager().metrics
    if not pipeline.labels or not any("label_samples" in registry.get(m).needs for m in metrics):
        return 0
    return max(-(-n_samples // len(pipeline.labels)), 100)


def reconstruct_all(pipeline, real: torch.Tensor, batch: int = 256, labels: torch.Tensor | None = None) -> list[torch.Tensor]:
    def part(s: int, m: int) -> list[torch.Tensor]:
        known = None if labels is None else labels[s : s + m]
        return pipeline.reconstruct(real[s : s + m].to(pipeline.device), return_stages=True, labels=known)

    return _chunks(part, len(real), batch)


def _known(metrics: tuple[str, ...]) -> tuple[str, ...]:
    registry = get_plugin_manager().metrics
    unknown = [m for m in metrics if m not in registry]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(registry.names())} (see `stagegen plugins`)")
    return metrics


def evaluate(
    pipeline,
    real: torch.Tensor,
    metrics: tuple[str, ...] | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    fid_features: FeatureExtractor | None = None,
    lpips_network=None,
    batch: int = 256,
    classifier=None,
    temperature: float = 1.0,
    resources: dict[str, Any] | None = None,
    real_labels: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Per-stage values of every requested metric (default: the registered ones on by default),
    from reconstructions of ``real`` and from prior samples at ``temperature``.

    ``real``: float images in [0, 1], N x C x H x W at the pipeline's resolution (a held-out split);
    ``real_labels``: their class indices, which a label-conditioned trunk reconstructs with.
    ``resources``: what the metrics need besides images, by name (see
    :func:`stagegen.metrics.resources.provide_resources`); ``fid_features``, ``classifier`` and
    ``lpips_network`` are the built-in ones, given directly. A metric that needs a resource not
    given (or given as None) is left out of the report.
    """
    given = {"fid_features": fid_features, "classifier": classifier, "lpips": lpips_network}
    resources = {**{k: v for k, v in given.items() if v is not None}, **(resources or {})}
    metrics = tuple(metrics) if metrics is not None else metric_names(defaults_only=True)
    runnable, left_out = runnable_metrics(pipeline, _known(metrics), resources)
    chosen = [get_plugin_manager().metrics.get(m) for m in runnable]
    needs = {need for m in chosen for need in m.needs}
    n_samples = n_samples or len(real)
    real = real.float()
    recon = reconstruct_all(pipeline, real, batch, real_labels) if "reconstructions" in needs else None
    samples = generate(pipeline, n_samples, seed, temperature, batch=batch) if "samples" in needs else None
    n_per_label = label_sample_count(pipeline, runnable, n_samples)
    label_samples = generate_per_label(pipeline, n_per_label, seed, temperature, batch) if n_per_label else None

    images = {"real": real, "reconstructions": recon, "samples": samples, "label_samples": label_samples}
    rows = _stage_rows(pipeline, chosen, images, seed, resources)
    report = _report(pipeline, rows, len(real), n_samples, temperature, chosen, left_out, n_per_label)
    for metric in chosen:
        if metric.summary is not None:
            report.update(metric.summary(real, resources))
    return report


def _stage_rows(pipeline, chosen, images: dict[str, Any], seed: int, resources: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per stage: every chosen metric on that stage's images (at its resolution)."""
    real, recon, samples, label_samples = (images[k] for k in ("real", "reconstructions", "samples", "label_samples"))
    rows = []
    cache: dict[str, Any] = {}
    for k, spec in enumerate(pipeline.specs):
        res = pipeline.resolutions[k]
        row: dict[str, Any] = {"stage": k, "type": spec.type, "resolution": res}
        ctx = MetricContext(
            stage=k,
            resolution=res,
            real=resize(real, res).clamp(0, 1),
            reconstructions=recon[k] if recon is not None else None,
            samples=samples[k] if samples is not None else None,
            seed=seed,
            resources=resources,
            cache=cache,
            final_real=real.clamp(0, 1),
            label_samples=label_samples[k] if label_samples is not None else None,
        )
        for metric in chosen:
            row.update(metric.compute(ctx))
        rows.append(row)
    return rows


def _report(pipeline, rows, n_real, n_samples, temperature, chosen, left_out, n_per_label) -> dict[str, Any]:
    """The per-stage rows with what was measured and how: sizes, prior, which way is better."""
    report: dict[str, Any] = {
        "stages": rows,
        "n_real": n_real,
        "n_samples": n_samples,
        "prior": pipeline.config.prior.type,
        "temperature": temperature,
    }
    report["better"] = {column: way for metric in chosen for column, way in metric.better.items()}
    if left_out:  # said beside the table, so a comparison's reader sees it too
        report["metrics_left_out"] = left_out
    if pipeline.label_conditioned:
        report["sample_labels"] = "each sample decoded with a label drawn uniformly (a label-conditioned trunk)"
    if n_per_label:
        report["n_samples_per_label"] = n_per_label
        report["label_samples_from"] = label_sampling(pipeline)
    return report


def format_value(v: Any) -> str:
    """A report cell: floats to three decimals (small ones in exponent form), lists joined;
    anything else (an eval.json read back may hold anything) as short text."""
    if isinstance(v, list):
        return " / ".join(format_value(x) if isinstance(x, float) else str(x)[:20] for x in v[:8])
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 100):
        return f"{int(v):,}" if abs(v) < 1e15 else f"{v:.3g}"  # a count: 20,000, not 2e+04 or 20000.0
    if isinstance(v, float):
        return f"{v:.2e}" if 0 < abs(v) < 0.01 else f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return "" if v is None else str(v)[:60]


def better_text(way: Any) -> str:
    """A column's direction as a table shows it: "higher", "lower", or "near 0.5"."""
    if not isinstance(way, str) or not way:
        return ""
    return way[:20] if way in ("higher", "lower") else f"near {way[:20]}"


def table_columns(report: dict[str, Any]) -> list[str]:
    """The value columns of a report's stage rows, in the order the metrics filled them."""
    columns: dict[str, None] = {}
    for r in report["stages"]:
        columns.update((c, None) for c in r if c not in ("stage", "type", "resolution"))
    return list(columns)


def report_notes(report: dict[str, Any]) -> list[str]:
    """What the rows were measured on, and what the metrics say of the real images themselves."""
    lines = [
        f"{report.get('n_real', '?')} real images, {report.get('n_samples', '?')} samples per stage from the "
        f"{report.get('prior', '?')} prior at temperature {report.get('temperature', '?')}"
        + (f", {report['sample_labels']}" if "sample_labels" in report else "")
    ]
    if "n_samples_per_label" in report:
        source = report.get("label_samples_from", "each label's prior")  # an eval.json written before CVAE trunks
        lines.append(f"{report['n_samples_per_label']} samples per label from {source} (the label_ columns)")
    left_out = report.get("metrics_left_out")
    if isinstance(left_out, dict):  # an eval.json read back may hold anything
        lines += [f"{name} left out: {why}" for name, why in left_out.items()]
    said = {"stages", "n_real", "n_samples", "prior", "temperature", "n_samples_per_label", "label_samples_from"}
    said |= {"sample_labels", "metrics_left_out", "better"}
    for key, value in report.items():
        if key not in said:
            lines.append(f"{key}: {format_value(value) if isinstance(value, float) else value}")
    return lines


def format_table(report: dict[str, Any], title: str | None = None) -> str:
    """A markdown table of a report (one row per stage)."""
    columns = table_columns(report)
    head = ["stage", "type", "res", *columns]
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    better = report.get("better") or {}
    if isinstance(better, dict) and better:
        lines.append("| better | | | " + " | ".join(better_text(better.get(c)) for c in columns) + " |")
    for r in report["stages"]:
        cells = [str(r["stage"]), r["type"], str(r["resolution"]), *(format_value(r.get(c)) for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *report_notes(report)]
    return "\n".join(lines)
