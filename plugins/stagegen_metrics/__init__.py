"""The built-in metrics, registered through the same hook a third-party package uses."""

from __future__ import annotations

import math

import numpy as np
import torch

from stagegen.images import resize
from stagegen.metrics.classifiers import recognisability
from stagegen.metrics.fid import frechet_distance, metric_cache_dir, precision_recall
from stagegen.metrics.image import finite_mean, psnr, sharpness_ratio, ssim
from stagegen.metrics.realism import real_baseline, two_sample_test
from stagegen.metrics.registry import MetricContext, MetricType
from stagegen.metrics.resources import register_metric_resources  # noqa: F401  the built-in resources: registered with the metrics
from stagegen.metrics.spectrum import spectrum_distance
from stagegen.metrics.swd import swd
from stagegen.metrics.tf_inception import PROTOCOL, kid
from stagegen.plugin import hookimpl


def _psnr(ctx: MetricContext) -> dict:
    return {"recon_psnr": finite_mean(psnr(ctx.reconstructions, ctx.real))}


def _ssim(ctx: MetricContext) -> dict:
    return {"recon_ssim": float(ssim(ctx.reconstructions, ctx.real).mean()) if ctx.resolution > 10 else math.nan}


def _lpips(ctx: MetricContext) -> dict:
    with torch.inference_mode():
        return {"recon_lpips": float(ctx.resources["lpips"](ctx.reconstructions * 2 - 1, ctx.real * 2 - 1))}


def _sharpness(ctx: MetricContext) -> dict:
    values = {}
    if ctx.reconstructions is not None:
        values["recon_sharpness"] = sharpness_ratio(ctx.reconstructions, ctx.real)
    if ctx.samples is not None:
        values["sample_sharpness"] = sharpness_ratio(ctx.samples, ctx.real)
    return values


def _swd(ctx: MetricContext) -> dict:
    m = min(len(ctx.samples), len(ctx.real))
    return {"sample_swd": [round(v, 3) for v in swd(ctx.samples[:m], ctx.real[:m], seed=ctx.seed)]}


def _spectrum(ctx: MetricContext) -> dict:
    values = {}
    if ctx.reconstructions is not None:
        values["recon_spectrum"] = spectrum_distance(ctx.reconstructions, ctx.real)
    if ctx.samples is not None:
        values["sample_spectrum"] = spectrum_distance(ctx.samples, ctx.real)
    return values


def _realism(ctx: MetricContext) -> dict:
    """Judged at the final resolution (a ladder's coarse stage upsampled to the size people
    see) and, for a stage of another resolution, at its own against the real images shrunk to
    it: upsampling alone gives a coarse stage away, which would inflate the refiner's gain."""
    final_real = ctx.final_real if ctx.final_real is not None else ctx.real
    samples = ctx.samples.clamp(0, 1)
    final = two_sample_test(final_real, resize(samples, final_real.shape[-2:]).clamp(0, 1), seed=ctx.seed)
    values = {"sample_realism": final.accuracy, "sample_realism_ci95": final.ci95}
    if samples.shape[-2:] != final_real.shape[-2:]:
        own = two_sample_test(ctx.real, samples, seed=ctx.seed)
        values.update(sample_realism_own=own.accuracy, sample_realism_own_ci95=own.ci95)
    return values


def _realism_summary(real, resources) -> dict:
    baseline = real_baseline(real.clamp(0, 1))
    return {
        "real_realism": baseline.accuracy,
        "real_realism_ci95": baseline.ci95,
        "realism_protocol": "a CNN critic trains on 40% of each set, stops early on a tenth and is tested on the other "
        f"half; real_realism: two halves of the real images ({baseline.tested} tested a side), what a perfect "
        "generator scores; ci95: half-width of the 95% Wilson interval",
    }


def _features(ctx: MetricContext, resource: str) -> tuple[np.ndarray, np.ndarray]:
    """This stage's sample features and the real images' (at the final resolution) in the
    feature space of ``resource``, each computed once per evaluation for all metrics using them."""
    features = ctx.resources[resource]
    real_key, sample_key = (resource, "real"), (resource, "samples", ctx.stage)
    if real_key not in ctx.cache:
        real = ctx.final_real if ctx.final_real is not None else ctx.real
        reference = getattr(features, "reference", None)  # a network with an on-disk cache of the real features
        ctx.cache[real_key] = reference(real, metric_cache_dir()) if reference is not None else features(real)
    if sample_key not in ctx.cache:
        ctx.cache[sample_key] = features(ctx.samples)
    return ctx.cache[sample_key], ctx.cache[real_key]


def _fid(ctx: MetricContext) -> dict:
    return {"sample_fid": frechet_distance(*_features(ctx, "fid_features"))}


def _precision_recall(ctx: MetricContext) -> dict:
    generated, real = _features(ctx, "fid_features")
    precision, recall = precision_recall(generated, real)
    return {"sample_precision": precision, "sample_recall": recall}


def _tf_fid(ctx: MetricContext) -> dict:
    return {"sample_tf_fid": frechet_distance(*_features(ctx, "tf_inception"))}


def _kid(ctx: MetricContext) -> dict:
    mean, std, _ = kid(*_features(ctx, "tf_inception"), seed=ctx.seed)
    return {"sample_kid": mean, "sample_kid_std": std}


def _tf_protocol(real, resources) -> dict:
    network = resources["tf_inception"]
    return {"tf_fid_protocol": PROTOCOL.format(weights=f"{network.path.name}, sha256 {network.weights_sha256[:12]}")}


def _fid_summary(real, resources) -> dict:
    features = resources["fid_features"]
    summary = {"fid_features": features.name}
    if hasattr(features, "accuracy"):
        summary["fid_classifier_test_accuracy"] = features.accuracy
    return summary


def _recognisability(ctx: MetricContext) -> dict:
    confident, coverage = recognisability(ctx.resources["classifier"].probabilities(ctx.samples))
    return {"sample_confident": confident, "sample_coverage": coverage}


def _label_recognisability(ctx: MetricContext) -> dict:
    """Of the samples drawn for each label, the share the classifier assigns to that label with
    >= 0.9 confidence; only labels the classifier knows by name (the digits' "0".."9")."""
    classifier = ctx.resources["classifier"]
    known = [(name, images) for name, images in ctx.label_samples if name in classifier.class_names]
    if not known:
        return {}
    shares = []
    for name, images in known:
        probabilities = classifier.probabilities(images)
        hit = (probabilities.argmax(1) == classifier.class_names.index(name)) & (probabilities.max(1).values >= 0.9)
        shares.append(float(hit.float().mean()))
    return {
        "label_recognised": sum(shares) / len(shares),  # equal samples per label: the share of all of them
        "label_recognised_worst": min(shares),
        "label_recognised_per_label": shares,
    }


def _recognisability_summary(real, resources) -> dict:
    classifier = resources["classifier"]
    confident, coverage = recognisability(classifier.probabilities(real))
    return {
        "classifier": classifier.name,
        "classifier_test_accuracy": classifier.accuracy,
        "real_confident": confident,
        "real_coverage": coverage,
    }


def _image_metrics() -> list[MetricType]:
    """Each image against its input: reconstruction quality and sharpness."""
    return [
        MetricType(
            name="psnr",
            better={"recon_psnr": "higher"},
            needs=("reconstructions",),
            compute=_psnr,
            description="PSNR of reconstructions against the real images, dB",
        ),
        MetricType(
            name="ssim",
            better={"recon_ssim": "higher"},
            needs=("reconstructions",),
            compute=_ssim,
            description="SSIM of reconstructions (stages over 10x10 pixels)",
        ),
        MetricType(
            name="sharpness",
            better={"recon_sharpness": "1", "sample_sharpness": "1"},
            needs=("reconstructions", "samples"),
            compute=_sharpness,
            description="gradient energy of reconstructions and samples over the real images' (1 = as sharp)",
        ),
    ]


def _distribution_metrics() -> list[MetricType]:
    """Generated images as a set against the real ones, by their pixels and spectra."""
    return [
        MetricType(
            name="swd",
            better={"sample_swd": "lower"},
            needs=("samples",),
            compute=_swd,
            description="sliced Wasserstein distance per Laplacian-pyramid level, samples against real",
        ),
        MetricType(
            name="realism",
            better={"sample_realism": "0.5", "sample_realism_own": "0.5"},
            needs=("samples",),
            compute=_realism,
            summary=_realism_summary,
            description="held-out accuracy of a small CNN trained to convergence to tell real images from this stage's "
            "samples, at the final resolution and (_own) at the stage's own (0.5: indistinguishable; a classifier "
            "two-sample test, with the real-vs-real baseline and 95% intervals)",
        ),
        MetricType(
            name="spectrum",
            better={"recon_spectrum": "lower", "sample_spectrum": "lower"},
            needs=("reconstructions", "samples"),
            compute=_spectrum,
            description="distance of the radially averaged log power spectrum of reconstructions and samples from the "
            "real images' at the stage's resolution (0: the same detail; blur and noise both raise it)",
        ),
    ]


def _feature_metrics() -> list[MetricType]:
    """Generated images as a set against the real ones, in a network's features (Inception)."""
    return [
        MetricType(
            name="fid",
            better={"sample_fid": "lower"},
            needs=("samples", "fid_features"),
            compute=_fid,
            summary=_fid_summary,
            description="Frechet distance of sample features to the real images' (digit classifier or Inception)",
        ),
        MetricType(
            name="precision_recall",
            better={"sample_precision": "higher", "sample_recall": "higher"},
            imports=("torch_fidelity",),
            needs=("samples", "fid_features"),
            compute=_precision_recall,
            description="precision (share of samples inside the real images' manifold) and recall (share of real images "
            "inside the samples'), k=3 nearest neighbours in the FID feature space (Kynkaanniemi et al. 2019)",
        ),
        MetricType(
            name="tf_fid",
            better={"sample_tf_fid": "lower"},
            imports=("torch_fidelity",),
            needs=("samples", "tf_inception"),
            compute=_tf_fid,
            summary=_tf_protocol,
            description="FID in the TF-Inception feature space papers use (needs its weights; protocol printed)",
        ),
        MetricType(
            name="kid",
            better={"sample_kid": "lower"},
            imports=("torch_fidelity",),
            needs=("samples", "tf_inception"),
            compute=_kid,
            summary=_tf_protocol,
            description="kernel inception distance in the TF-Inception feature space (needs its weights)",
        ),
    ]


def _recognition_metrics() -> list[MetricType]:
    """What a classifier recognises in the images."""
    return [
        MetricType(
            name="recognisability",
            better={"sample_confident": "higher", "sample_coverage": "higher"},
            needs=("samples", "classifier"),
            compute=_recognisability,
            summary=_recognisability_summary,
            description="share of samples a digit classifier is confident about, and how many classes they cover",
        ),
        MetricType(
            name="label_recognisability",
            better={"label_recognised": "higher", "label_recognised_worst": "higher", "label_recognised_per_label": "higher"},
            needs=("label_samples", "classifier"),
            compute=_label_recognisability,
            description="share of each label's samples (a conditional prior's) that a digit classifier assigns to "
            "that label with >= 0.9 confidence: overall, the worst label, and per label",
        ),
    ]


def _perceptual_metrics() -> list[MetricType]:
    """Perceptual distance of reconstructions to their inputs."""
    return [
        MetricType(
            name="lpips",
            better={"recon_lpips": "lower"},
            imports=("lpips",),
            needs=("reconstructions", "lpips"),
            compute=_lpips,
            default=False,
            description="LPIPS distance of reconstructions (needs the LPIPS weights)",
        ),
    ]


@hookimpl
def register_metrics(register):
    for group in (_image_metrics, _distribution_metrics, _feature_metrics, _recognition_metrics, _perceptual_metrics):
        for metric in group():
            register(metric)
