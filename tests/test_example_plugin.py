"""The example third-party package in examples/custom_refiner, installed by .ci/run."""

import importlib.util
import json
import subprocess
import sys

import pytest

import stagegen

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("stagegen_edge") is None,
    reason="the example plugin is not installed: pip install ./examples/custom_refiner (.ci/run does)",
)


def test_found_through_its_own_entry_point(plugin_manager):
    provider = plugin_manager.stages.provider("edge-l1")
    assert provider.package == "stagegen-edge" and provider.version == "0.1.0"


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
