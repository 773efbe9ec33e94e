"""A training step reads one value back to the host: whether it was finite.

On a GPU every read of a tensor's value on the host (``bool(t)``, ``float(t)``, ``t.item()``,
``t.cpu()``, ...) makes the host wait until the GPU has finished all work queued before it, so
the next step cannot be queued while this one runs. On the CPU those reads cost nothing and are
invisible to a profiler; here they are counted by wrapping the tensor methods that make them, so
the CPU suite keeps the GPU step free of them. (tests/test_cuda.py checks the same on a GPU
with torch's own sync detector.)
"""

from __future__ import annotations

import contextlib
import traceback

import torch

from stagegen.train import Trainer

from ..conftest import tiny_run_config

READS = ("__bool__", "__float__", "__int__", "item", "tolist", "numpy", "cpu")


@contextlib.contextmanager
def counting_host_reads(monkeypatch):
    """Yields a list that collects, for each host read, the source line that made it."""
    reads: list[str] = []
    for name in READS:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _original=original, **kwargs):
            frame = traceback.extract_stack(limit=2)[0]  # the caller of the method
            reads.append(f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    try:
        yield reads
    finally:
        monkeypatch.undo()


def _sharp_chain_config(**train):
    """A ladder like the sharp presets: calibrated trunk, a refiner with l1 + adversarial on
    reconstructions and prior samples, a gmm sample-path prior, EMA, input augmentation."""
    config = tiny_run_config(("vae", "resnet-gan"), **{"steps": 40, "ema_decay": 0.999, "log_every": 1000, **train})
    raw = config.model_dump()
    raw["pipeline"]["stages"][1]["options"] = {"width": 8, "blocks": 1}
    raw["pipeline"]["stages"][0]["options"].update(recon_loss="calibrated", sigma_mode="optimal", kl_reduction="elbo")
    raw["pipeline"]["stages"][1]["losses"] = [
        {"type": "l1"},
        {"type": "adversarial", "weight": 0.1, "options": {"judge": "both", "disc_width": 8, "disc_layers": 2}},
    ]
    raw["pipeline"]["stages"][1]["augment"] = {"blur": 1.0, "noise": 0.1}
    raw["pipeline"]["prior"] = {"type": "gmm", "options": {"components": 2}}
    raw["train"].update(sample_prior_latents=64, sample_prior_refit_every=1000)
    return type(config).model_validate(raw)


def test_a_step_of_the_sharp_chain_reads_one_value_on_the_host(tmp_path, monkeypatch):
    trainer = Trainer(_sharp_chain_config(), tmp_path / "run")
    batches = trainer.batches()
    for _ in range(10):  # until the sample path's prior is fitted (64 latents, batch 8) and drawn from
        trainer.train_step(batches)
    sampler = trainer.state.sample_prior
    assert sampler.ready and sampler.fits == 1
    with counting_host_reads(monkeypatch) as reads:
        for _ in range(3):
            outcome = trainer.train_step(batches)
            assert not outcome.nonfinite and outcome.auxiliary  # the discriminator trained too
    # the one read per step: is the loss and the gradient finite (step.py)
    assert len(reads) == 3 and len(set(reads)) == 1 and reads[0].startswith("step.py"), reads
