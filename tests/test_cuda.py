"""The CUDA paths: training in bf16 with the data, the sample path's prior and every update on
the GPU, one host sync per step, resume, sampling and the memory checks. Skipped where CUDA is
not available; on a GPU machine the same suite is the GPU check (benchmarks/gpu_check.sh)."""

from __future__ import annotations

import warnings

import pytest
import torch

import stagegen
from stagegen.devices import available_memory, check_memory
from stagegen.pipeline import Pipeline
from stagegen.train import Trainer, resume
from stagegen.train.batches import TensorBatches

from .conftest import tiny_pipeline_config, tiny_run_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on a GPU machine)")


def _sharp_chain(steps=16, **train):
    """As the sharp presets: calibrated trunk, l1 + adversarial on reconstructions and prior
    samples, a gmm sample-path prior, EMA and input augmentation."""
    config = tiny_run_config(("vae", "resnet-gan"), steps=steps, ema_decay=0.999, device="cuda", **train)
    raw = config.model_dump()
    raw["pipeline"]["stages"][0]["options"].update(recon_loss="calibrated", sigma_mode="optimal", kl_reduction="elbo")
    raw["pipeline"]["stages"][1].update(
        options={"width": 8, "blocks": 1},
        losses=[
            {"type": "l1"},
            {"type": "adversarial", "weight": 0.1, "options": {"judge": "both", "disc_width": 8, "disc_layers": 2}},
        ],
        augment={"blur": 1.0, "noise": 0.1},
    )
    raw["pipeline"]["prior"] = {"type": "gmm", "options": {"components": 2}}
    raw["train"].update(sample_prior_latents=64, sample_prior_refit_every=1000)
    return type(config).model_validate(raw)


def test_the_sharp_chain_trains_on_the_gpu_in_bf16_with_everything_there(tmp_path):
    trainer = Trainer(_sharp_chain(precision="auto"), tmp_path / "run")
    assert trainer.device.type == "cuda" and trainer.bf16
    assert isinstance(trainer.loader, TensorBatches) and trainer.loader.images.is_cuda  # images resident as uint8
    sampler = trainer.state.sample_prior
    assert sampler.means.is_cuda and sampler.generator.device.type == "cuda"
    assert all(group["fused"] for opt in trainer.optimizers for group in opt.param_groups)
    assert all(group["fused"] for opt in trainer.state.aux_optimizers.values() for group in opt.param_groups)
    result = trainer.fit()
    assert result.steps == 16 and result.nonfinite_steps == 0
    assert sampler.fits >= 1 and next(sampler.prior.buffers()).is_cuda  # fitted on the CPU, kept on the GPU
    pipe = stagegen.load(result.pipeline_path)
    images = pipe.sample(4, seed=0, return_stages=True)
    assert [tuple(s.shape) for s in images] == [(4, 1, 16, 16)] * 2 and all(torch.isfinite(s).all() for s in images)


def test_a_step_syncs_with_the_host_once(tmp_path):
    trainer = Trainer(_sharp_chain(steps=40, log_every=1000), tmp_path / "run")
    batches = trainer.batches()
    for _ in range(10):  # the sample path's prior fitted (64 latents of batch 8) and drawn from
        trainer.train_step(batches)
    assert trainer.state.sample_prior.ready
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(3):
                trainer.train_step(batches)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= 3, syncs  # the finite check of each step, nothing else


def test_a_gpu_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    config = _sharp_chain(steps=8, precision="fp32")
    whole = Trainer(config, tmp_path / "whole")
    whole.fit()
    part = Trainer(config, tmp_path / "part")
    part.fit(stop_after=4)
    assert resume(tmp_path / "part").steps == 8
    resumed = Trainer(config, tmp_path / "part", resume=True)
    # the same steps on the same data and noise; a GPU's kernels may differ in the last bits
    for k, v in whole.pipeline.state_dict().items():
        assert torch.allclose(v.float(), resumed.pipeline.state_dict()[k].float(), atol=1e-4), k


def test_a_cpu_run_resumes_on_the_gpu(tmp_path):
    config = _sharp_chain(steps=12)
    cpu = type(config).model_validate({**config.model_dump(), "train": {**config.train.model_dump(), "device": "cpu"}})
    Trainer(cpu, tmp_path / "run").fit(stop_after=10)
    result = resume(tmp_path / "run", device="cuda")  # the sample path's CPU generator state gives way to a GPU one
    assert result.steps == 12 and result.pipeline_path.is_file()


def test_sampling_on_the_gpu_draws_the_latents_a_cpu_draws(tmp_path):
    pipe = Pipeline(tiny_pipeline_config(("vae", "resnet-l1"))).eval()
    path = pipe.save(tmp_path / "p.safetensors")
    cpu, gpu = stagegen.load(path, device="cpu"), stagegen.load(path, device="cuda")
    a, b = cpu.sample(4, seed=3), gpu.sample(4, seed=3)
    assert b.is_cuda and torch.allclose(a, b.cpu(), atol=1e-3)


def test_the_memory_checks_read_the_gpu():
    device = torch.device("cuda")
    assert 0 < available_memory(device) <= torch.cuda.get_device_properties(device).total_memory
    config = tiny_pipeline_config(("vae",))
    config.stages[0].options = {"widths": [8, 16], "latent_dim": 8}
    with torch.device("meta"):
        skeleton = Pipeline(config, for_training=False)
    check_memory(skeleton, device, 5)  # a tiny pipeline fits
    with pytest.raises(ValueError, match="GiB"):
        check_memory(skeleton, device, 10**12)
