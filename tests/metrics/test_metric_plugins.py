"""Metrics come from the registry: a plugin's metric is computed and reported by `stagegen eval`
like a built-in one, and the built-ins register through the same hook."""

import json
import types

import pytest
import torch
from click.testing import CliRunner

import stagegen
from stagegen.cli import cli
from stagegen.metrics import MetricType, evaluate, metric_names
from stagegen.metrics.evaluate import runnable_metrics
from stagegen.pipeline import Pipeline
from stagegen.plugin import get_plugin_manager

from ..conftest import tiny_pipeline_config


def _register_brightness_plugin():
    module = types.ModuleType("brightness_metric")

    @stagegen.hookimpl
    def register_metrics(register):
        register(
            MetricType(
                name="brightness",
                needs=("samples",),
                default=False,
                compute=lambda ctx: {"sample_brightness": float(ctx.samples.mean()), "real_brightness": float(ctx.real.mean())},
                description="mean pixel value of the samples (a test metric)",
            )
        )

    module.register_metrics = register_metrics
    get_plugin_manager().register(module)


@pytest.fixture
def pipeline_file(tmp_path):
    return Pipeline(tiny_pipeline_config(("vae", "resnet-l1"))).eval().save(tmp_path / "p.safetensors")


def test_builtin_metrics_are_registered_through_the_hook():
    registry = get_plugin_manager().metrics
    assert {"psnr", "ssim", "sharpness", "swd", "fid", "recognisability", "lpips"} <= set(registry.names())
    assert registry.provider("psnr").plugin == "metrics"  # the entry point, as a third-party plugin would have
    assert "lpips" not in metric_names(defaults_only=True)  # needs downloaded weights: opt-in


def test_a_plugin_metric_is_reported_by_stagegen_eval(pipeline_file):
    _register_brightness_plugin()
    result = CliRunner().invoke(cli, ["eval", str(pipeline_file), "--metrics", "psnr,brightness", "--limit", "32", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for row in report["stages"]:
        assert 0 <= row["sample_brightness"] <= 1 and "recon_psnr" in row
    table = CliRunner().invoke(cli, ["eval", str(pipeline_file), "--metrics", "brightness", "--limit", "16"])
    assert "sample_brightness" in table.stdout.splitlines()[2]


def test_metric_values_match_a_direct_computation(pipeline_file):
    _register_brightness_plugin()
    pipe = stagegen.load(pipeline_file)
    real = torch.rand(20, 1, 16, 16)
    report = evaluate(pipe, real, ("brightness",), n_samples=12, seed=3)
    samples = pipe.sample(12, seed=3, return_stages=True)
    for row, stage_samples in zip(report["stages"], samples):
        assert row["sample_brightness"] == pytest.approx(float(stage_samples.mean()), abs=1e-6)
        assert row["real_brightness"] == pytest.approx(float(real.mean()), abs=1e-6)


def _register_weather_plugin(provides: bool = True):
    """A metric that needs a resource its own plugin supplies (for digit data only)."""
    from stagegen.metrics.resources import ResourceType

    module = types.ModuleType("weather_metric")

    @stagegen.hookimpl
    def register_metric_resources(register):
        if provides:
            register(
                ResourceType(
                    name="thermometer",
                    provide=lambda request: (
                        (lambda x: float(x.mean()) * request.options.get("scale", 1)) if request.data_name == "digits" else None
                    ),
                    description="a test resource",
                )
            )

    @stagegen.hookimpl
    def register_metrics(register):
        register(
            MetricType(
                name="warmth",
                needs=("samples", "thermometer"),
                default=False,
                compute=lambda ctx: {"sample_warmth": ctx.resources["thermometer"](ctx.samples)},
            )
        )

    module.register_metric_resources = register_metric_resources
    module.register_metrics = register_metrics
    get_plugin_manager().register(module)


def test_a_plugin_supplies_the_resource_its_metric_needs(pipeline_file):
    _register_weather_plugin()
    args = ["eval", str(pipeline_file), "--metrics", "warmth", "--limit", "16", "--json"]
    report = json.loads(CliRunner().invoke(cli, [*args, "--resource-option", "scale=100"]).stdout)
    assert all(1 <= row["sample_warmth"] <= 100 for row in report["stages"])  # the option reached the provider
    assert "thermometer (metric resource)" in CliRunner().invoke(cli, ["plugins"]).stdout


def test_a_resource_with_nothing_for_this_data_leaves_its_metric_out(pipeline_file):
    _register_weather_plugin()
    pipe = stagegen.load(pipeline_file)
    report = evaluate(pipe, torch.rand(8, 1, 16, 16), ("psnr", "warmth"), n_samples=8, resources={"thermometer": None})
    assert "sample_warmth" not in report["stages"][0] and "recon_psnr" in report["stages"][0]


def test_eval_says_which_metrics_it_leaves_out_and_why(pipeline_file, classifier_cache):
    _register_weather_plugin()
    pipe = stagegen.load(pipeline_file)
    kept, left_out = runnable_metrics(pipe, ("psnr", "warmth", "label_recognisability"), {"thermometer": None})
    assert kept == ["psnr"]
    assert left_out == {
        "warmth": "it needs thermometer, which this evaluation does not have",
        "label_recognisability": "it needs classifier, which this evaluation does not have",
    }
    kept, left_out = runnable_metrics(pipe, ("label_recognisability",), {"classifier": object()})
    assert kept == [] and left_out == {"label_recognisability": "the pipeline has no prior per label"}
    args = ["eval", str(pipeline_file), "--metrics", "psnr,label_recognisability", "--limit", "8"]
    result = CliRunner().invoke(cli, args, env={"STAGEGEN_CACHE": str(classifier_cache)})
    assert result.exit_code == 0, result.output
    assert "note: label_recognisability is left out: the pipeline has no prior per label" in result.stderr
    assert "evaluating psnr on 8 real images" in result.stderr  # only what is measured


def test_unknown_metric_and_unprovided_resource_are_named(pipeline_file):
    result = CliRunner().invoke(cli, ["eval", str(pipeline_file), "--metrics", "psnr,nope"])
    assert result.exit_code == 2 and "unknown metric(s) nope" in result.stderr
    _register_weather_plugin(provides=False)
    result = CliRunner().invoke(cli, ["eval", str(pipeline_file), "--metrics", "warmth"])
    assert result.exit_code == 1 and "no plugin provides the metric resource 'thermometer'" in result.stderr


def test_plugins_lists_metrics():
    result = CliRunner().invoke(cli, ["plugins"])
    assert "swd (metric) from stagegen" in result.stdout
