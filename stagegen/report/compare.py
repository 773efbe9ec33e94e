"""Side-by-side figures and tables of several pipelines, the way the paper compares its models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..images import save_grid
from ..metrics import evaluate, format_table


def compare(
    pipelines: dict[str, Any],
    real: torch.Tensor,
    out: str | Path,
    n_show: int = 10,
    seed: int = 0,
    real_labels: torch.Tensor | None = None,
    **evaluate_kwargs,
) -> dict[str, Any]:
    """Writes OUT (reconstructions: input row, then each pipeline's final output), OUT-samples
    (one row of prior samples per pipeline, same latents where latent sizes agree), and OUT.md /
    OUT.json with every pipeline's per-stage metrics. Returns the reports. ``real_labels``: the
    real images' classes, which a label-conditioned trunk reconstructs with."""
    out = Path(out)
    shown = real[:n_show]
    shown_labels = None if real_labels is None else real_labels[:n_show]
    recon_rows = [shown] + [p.reconstruct(shown.to(p.device), labels=shown_labels).cpu() for p in pipelines.values()]
    save_grid(recon_rows, out, labels=["input", *pipelines])
    sample_path = out.with_name(out.stem + "-samples" + out.suffix)
    temperature = evaluate_kwargs.get("temperature", 1.0)
    samples = [p.sample(n_show, seed=seed, temperature=temperature).cpu() for p in pipelines.values()]
    save_grid(samples, sample_path, labels=list(pipelines))
    reports = {name: evaluate(p, real, seed=seed, real_labels=real_labels, **evaluate_kwargs) for name, p in pipelines.items()}
    steps = {name: (getattr(p, "file_metadata", None) or {}).get("extra", {}).get("train_steps") for name, p in pipelines.items()}
    for name, report in reports.items():
        report["train_steps"] = steps[name]
    md = [f"Rows of {out.name}: input, then " + ", ".join(pipelines) + f"; {sample_path.name}: one row per pipeline.", ""]
    known = {n for n in steps.values() if n is not None}
    md += [
        "Training steps: "
        + ", ".join(f"{name} {n if n is not None else 'unknown'}" for name, n in steps.items())
        + (" (unequal: this is not a comparison at equal budget)" if len(known) > 1 else ""),
        "",
    ]
    md += [format_table(r, title=name) + "\n" for name, r in reports.items()]
    out.with_suffix(".md").write_text("\n".join(md))
    out.with_suffix(".json").write_text(json.dumps(reports, indent=2))
    return reports
