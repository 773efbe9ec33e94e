"""Two real processes on gloo (CPU): DDP, synchronised batch norm, rank-0-only writes."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from ..conftest import tiny_run_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(steps, batch, layout, variant):
    config = tiny_run_config(steps=steps, batch_size=batch, checkpoint_every=2, memory_format=layout)
    raw = config.model_dump()
    if variant == "cvae":  # a label-conditioned trunk: each rank's batches carry their images' labels
        raw["pipeline"]["stages"][0]["options"]["classes"] = 10
        return type(config).model_validate(raw)
    if variant != "gan":
        return config
    # a refiner that joins at step 2 (its parameters unused before) and judges prior samples
    raw["pipeline"]["stages"][1].update(
        type="resnet-gan",
        options={"width": 8, "blocks": 1},
        losses=[{"type": "l1"}, {"type": "adversarial", "weight": 0.1, "options": {"disc_width": 8, "disc_layers": 2}}],
        train_from=2,
    )
    raw["pipeline"]["prior"] = {"type": "gmm", "options": {"components": 2}}
    raw["train"].update(sample_prior_latents=64, sample_prior_refit_every=2)
    return type(config).model_validate(raw)


def _worker(rank, world, port, run_dir, out_file, batch, steps, deterministic, variant=None):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from stagegen.stages import Posterior
    from stagegen.train import Trainer
    from stagegen.train.distributed import shutdown_distributed

    if deterministic:  # no reparameterisation noise: the two set-ups must then agree
        Posterior.sample = lambda self, generator=None: self.mean
    writes = []
    if rank != 0:
        real_replace, real_save = os.replace, torch.save
        os.replace = lambda *a, **k: (writes.append(a), real_replace(*a, **k))[1]
        # all_gather_object pickles through torch.save into memory: only files count
        torch.save = lambda obj, f, *a, **k: (
            writes.append(f) if isinstance(f, (str, os.PathLike)) else None,
            real_save(obj, f, *a, **k),
        )[1]
    layout = "contiguous" if deterministic else "channels_last"
    trainer = Trainer(_config(steps, batch, layout, variant), run_dir)
    mismatches = []
    step = trainer.train_step

    def checked_step(batches):
        result = step(batches)
        flat = torch.cat([p.detach().flatten() for p in trainer.pipeline.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(world)] if world > 1 else [flat]
        if world > 1:
            dist.all_gather(gathered, flat)
        if not all(torch.equal(gathered[0], g) for g in gathered):
            mismatches.append(trainer.step)
        return result

    trainer.train_step = checked_step
    trainer.fit()
    if rank == 0:
        torch.save({"state": trainer.pipeline.state_dict(), "mismatches": mismatches}, out_file)
    else:
        assert not writes, f"rank {rank} wrote files: {writes}"
        assert not mismatches, f"parameters differed across ranks after steps {mismatches}"
    shutdown_distributed(trainer.dist)


def _run(world, tmp_path, name, batch, steps=4, deterministic=False, variant=None):
    out_file = tmp_path / f"{name}.pt"
    mp.spawn(
        _worker,
        args=(world, _free_port(), str(tmp_path / name), str(out_file), batch, steps, deterministic, variant),
        nprocs=world,
        join=True,
    )
    return torch.load(out_file, weights_only=True)


@pytest.mark.slow
def test_two_processes_stay_identical_and_only_rank0_writes(tmp_path):
    result = _run(2, tmp_path, "ddp", batch=4)
    assert result["mismatches"] == []
    run = tmp_path / "ddp"
    assert (run / "pipeline.safetensors").is_file() and (run / "checkpoints" / "last.pt").is_file()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4


@pytest.mark.slow
def test_a_late_refiner_judged_on_prior_samples_trains_in_step_across_processes(tmp_path):
    result = _run(2, tmp_path, "gan", batch=16, steps=8, variant="gan")
    assert result["mismatches"] == []
    import json

    records = [json.loads(line) for line in (tmp_path / "gan" / "metrics.jsonl").read_text().splitlines()]
    assert any(record.get("event") == "sample_prior_fit" for record in records)
    steps = [record for record in records if "loss" in record]
    assert "stage1/aux/d_loss" in steps[-1] and "stage1/aux/d_loss" not in steps[0]


@pytest.mark.slow
@pytest.mark.parametrize("variant", [None, "cvae"])
def test_two_processes_of_batch_b_match_one_process_of_batch_2b(tmp_path, variant):
    # with a label-conditioned trunk, a label that left its image on the way to a rank would differ here
    two = _run(2, tmp_path, "two", batch=4, deterministic=True, variant=variant)["state"]
    one = _run(1, tmp_path, "one", batch=8, deterministic=True, variant=variant)["state"]
    # contiguous layout here: oneDNN's channels-last kernels block batch 4 and batch 8 differently,
    # and Adam's normalised first steps amplify those last-bit differences (seen: up to 3e-4)
    for key, value in one.items():
        if value.is_floating_point():
            assert torch.allclose(value, two[key], atol=1e-5, rtol=1e-4), (key, (value - two[key]).abs().max().item())
        else:
            assert torch.equal(value, two[key]), key
