"""The example third-party package in examples/custom_refiner, installed by .ci/run."""

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

import stagegen

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("stagegen_edge") is None,
    reason="the example plugin is not installed: pip install ./examples/custom_refiner (.ci/run does)",
)


def test_found_through_its_own_entry_point(plugin_manager):
    for registry, name in (
        (plugin_manager.stages, "edge-l1"),
        (plugin_manager.networks, "edge-conv"),
        (plugin_manager.losses, "edge"),
    ):
        provider = registry.provider(name)
        assert provider.package == "stagegen-edge" and provider.version == "0.2.0"


def test_its_loss_works_on_a_builtin_network():
    from stagegen.config.presets import compose_run_config

    config = compose_run_config(stages=["vae", "resnet-l1"], options=["1.losses=l1,edge", "1.loss.edge.order=2"])
    pipe = stagegen.Pipeline(config.pipeline).train()
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    terms = pipe.objective.logged_terms(x, pipe(x))
    assert terms["stage1/edge"] > 0 and torch.isfinite(terms["stage1/edge"])


@pytest.mark.slow
def test_trains_through_the_cli_and_loads(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stagegen",
            "train",
            "--stages",
            "vae,edge-l1",
            "--steps",
            "30",
            "--batch-size",
            "16",
            "--out",
            str(out),
            "--no-progress",
            "-O",
            "vae.widths=[16,32]",
            "-O",
            "vae.latent_dim=8",
            "-O",
            "train.log_every=10",
            "--prior",
            "truncated-normal",
            "-O",
            "prior.limit=1.5",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert "stage1/edge" in lines[-1] and lines[-1]["stage1/edge"] > 0
    pipe = stagegen.load(out / "pipeline.safetensors")
    assert pipe.file_metadata["stages"][1]["package"] == "stagegen-edge"
    assert pipe.sample(2, seed=0).shape == (2, 1, 16, 16)
    assert pipe.config.prior.type == "truncated-normal" and pipe.prior.sample(100).abs().max() <= 1.5
    from stagegen.metrics import evaluate

    report = evaluate(pipe, torch.rand(8, 1, 16, 16), ("edge-energy",), n_samples=4)
    assert all(row["sample_edge_energy"] > 0 for row in report["stages"])
