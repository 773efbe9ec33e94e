"""Evaluate a pipeline against real images, stage by stage."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..pipeline import resize_to
from .classifiers import Classifier, recognisability
from .fid import FeatureExtractor, frechet_distance
from .image import finite_mean, psnr, sharpness_ratio, ssim
from .swd import swd

ALL_METRICS = ("psnr", "ssim", "sharpness", "swd", "fid", "recognisability", "lpips")
DEFAULT_METRICS = ("psnr", "ssim", "sharpness", "swd", "fid", "recognisability")


def _chunks(fn, n: int, batch: int) -> list[torch.Tensor]:
    parts: list[list[torch.Tensor]] = []
    for start in range(0, n, batch):
        out = fn(start, min(batch, n - start))
        parts.append([o.cpu() for o in out])
    return [torch.cat(p) for p in zip(*parts)]


def generate(pipeline, n: int, seed: int = 0, temperature: float = 1.0, batch: int = 256) -> list[torch.Tensor]:
    """n samples per stage, reproducibly (chunk k uses seed + k)."""
    return _chunks(lambda s, m: pipeline.sample(m, seed=seed + s, temperature=temperature, return_stages=True), n, batch)


def reconstruct_all(pipeline, real: torch.Tensor, batch: int = 256) -> list[torch.Tensor]:
    return _chunks(lambda s, m: pipeline.reconstruct(real[s : s + m].to(pipeline.device), return_stages=True), len(real), batch)


def evaluate(
    pipeline,
    real: torch.Tensor,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    n_samples: int | None = None,
    seed: int = 0,
    fid_features: FeatureExtractor | None = None,
    lpips_network=None,
    batch: int = 256,
    classifier: Classifier | None = None,
    temperature: float = 1.0,
) -> dict[str, Any]:
    """Per-stage metrics of reconstructions (of ``real``) and of prior samples.

    ``real``: float images in [0, 1], N x C x H x W at the pipeline's resolution (a held-out split).
    ``classifier``: a digit classifier for recognisability (skipped without one); samples
    come from the pipeline's own prior at ``temperature``.
    """
    unknown = set(metrics) - set(ALL_METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}; choose from {', '.join(ALL_METRICS)}")
    n_samples = n_samples or len(real)
    real = real.float()
    recon = reconstruct_all(pipeline, real, batch) if {"psnr", "ssim", "sharpness", "lpips"} & set(metrics) else None
    recognise = classifier if "recognisability" in metrics else None
    wants_samples = {"sharpness", "swd", "fid"} & set(metrics) or recognise is not None
    samples = generate(pipeline, n_samples, seed, temperature, batch=batch) if wants_samples else None
    real_features = fid_features(real) if ("fid" in metrics and fid_features is not None) else None

    rows = []
    for k, spec in enumerate(pipeline.specs):
        res = pipeline.resolutions[k]
        target = resize_to(real, res).clamp(0, 1)
        row: dict[str, Any] = {"stage": k, "type": spec.type, "resolution": res}
        if recon is not None:
            if "psnr" in metrics:
                row["recon_psnr"] = finite_mean(psnr(recon[k], target))
            if "ssim" in metrics:
                row["recon_ssim"] = float(ssim(recon[k], target).mean()) if res > 10 else math.nan
            if "sharpness" in metrics:
                row["recon_sharpness"] = sharpness_ratio(recon[k], target)
            if "lpips" in metrics and lpips_network is not None:
                with torch.inference_mode():
                    row["recon_lpips"] = float(lpips_network(recon[k] * 2 - 1, target * 2 - 1))
        if samples is not None:
            if "sharpness" in metrics:
                row["sample_sharpness"] = sharpness_ratio(samples[k], target)
            if "swd" in metrics:
                m = min(len(samples[k]), len(target))
                row["sample_swd"] = [round(v, 3) for v in swd(samples[k][:m], target[:m], seed=seed)]
            if real_features is not None:
                row["sample_fid"] = frechet_distance(fid_features(samples[k]), real_features)
            if recognise is not None:
                row["sample_confident"], row["sample_coverage"] = recognisability(recognise.probabilities(samples[k]))
        rows.append(row)
    report: dict[str, Any] = {"stages": rows, "n_real": len(real), "n_samples": n_samples,
                              "prior": pipeline.config.prior.type, "temperature": temperature}
    if recognise is not None:
        report["classifier"] = recognise.name
        report["classifier_test_accuracy"] = recognise.accuracy
        report["real_confident"], report["real_coverage"] = recognisability(recognise.probabilities(real))
    if fid_features is not None and "fid" in metrics:
        report["fid_features"] = fid_features.name
        if hasattr(fid_features, "accuracy"):
            report["fid_classifier_test_accuracy"] = fid_features.accuracy
    return report


def format_table(report: dict[str, Any], title: str | None = None) -> str:
    """A markdown table of a report (one row per stage)."""
    columns = [c for c in ("recon_psnr", "recon_ssim", "recon_lpips", "recon_sharpness", "sample_sharpness", "sample_swd",
                           "sample_fid", "sample_confident", "sample_coverage")
               if any(c in r for r in report["stages"])]
    head = ["stage", "type", "res", *columns]
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["stages"]:
        cells = [str(r["stage"]), r["type"], str(r["resolution"])]
        for c in columns:
            v = r.get(c)
            if isinstance(v, list):
                cells.append(" / ".join(f"{x:.2f}" for x in v))
            elif isinstance(v, float):
                cells.append(f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}")
            else:
                cells.append("" if v is None else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
