import os

import pytest
import torch

from stagegen.config import PipelineConfig, RunConfig
from stagegen.plugin import get_plugin_manager, reset_plugin_manager

TINY_TRUNK = {"widths": [8, 16], "latent_dim": 8}
TINY_REFINERS = {
    "resnet-l1": {"width": 8, "blocks": 1, "head_width": 8},
    "resnet-l2": {"width": 8, "blocks": 1, "head_width": 8},
    "srresnet-perceptual": {"width": 8, "blocks": 1, "scale": 1, "backbone": "lpips-alex", "pretrained": False},
    "adversarial": {"width": 8, "blocks": 1, "disc_width": 8, "disc_layers": 2},
}


def tiny_pipeline_config(stages=("vae", "resnet-l1"), image_size=16, channels=1, scales=None, **spec_fields):
    specs = []
    for i, name in enumerate(stages):
        options = dict(TINY_TRUNK if i == 0 else TINY_REFINERS.get(name, {}))
        if scales and i > 0:
            options["scale"] = scales[i - 1]
        specs.append({"type": name, "options": options, **(spec_fields if i > 0 else {})})
    return PipelineConfig.model_validate({"image_size": image_size, "channels": channels, "stages": specs})


def tiny_run_config(stages=("vae", "resnet-l1"), steps=6, **train):
    """A run of a tiny chain on the digits. On the CPU unless ``device`` says otherwise: the unit
    tests check results a CPU gives bit for bit (repeatable runs, exact resume), which a GPU's
    kernels do not promise; tests/test_cuda.py runs the CUDA paths."""
    train.setdefault("device", "cpu")
    return RunConfig.model_validate(
        {
            "pipeline": tiny_pipeline_config(stages).model_dump(),
            "train": {
                "steps": steps,
                "batch_size": 8,
                "log_every": 1,
                "sample_every": 0,
                "checkpoint_every": 0,
                "progress": False,
                "lr": 1e-3,
                **train,
            },
            "data": {"name": "digits"},
        }
    )


@pytest.fixture(autouse=True)
def _fresh_plugins_and_threads():
    """Each test sees the installed plugins only (not another test's registrations)."""
    os.environ.pop("STAGEGEN_PLUGINS", None)
    reset_plugin_manager()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
    reset_plugin_manager()


@pytest.fixture
def plugin_manager():
    return get_plugin_manager()


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory):
    """A STAGEGEN_CACHE folder whose classifiers/ holds the digits classifier, trained once per
    session (about half a minute) and shared by the tests that evaluate recognisability."""
    from stagegen.metrics.classifiers import Classifier

    cache = tmp_path_factory.mktemp("stagegen-cache") / "datasets"
    previous = os.environ.get("STAGEGEN_CACHE")
    os.environ["STAGEGEN_CACHE"] = str(cache)
    try:
        Classifier("digits", progress=False)
    finally:
        if previous is None:
            os.environ.pop("STAGEGEN_CACHE", None)
        else:
            os.environ["STAGEGEN_CACHE"] = previous
    return cache


@pytest.fixture
def small_filesystem(monkeypatch):
    """small_filesystem(path, free_bytes) -> a folder that runs out of space (see tests/hostile.py)."""
    from .hostile import SmallFilesystem

    fs = SmallFilesystem(monkeypatch)
    if os.environ.get("STAGEGEN_TEST_SIMULATED_DISK"):
        fs.real = False  # exercise the simulation even where a tmpfs could be mounted
    yield fs
    fs.close()
