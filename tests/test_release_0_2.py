"""Files and runs written by stagegen 0.2, the last release before the house moved to one folder
per idea and the training objective left the Pipeline: they load, sample as they did, and a run
resumed here trains on to the very weights 0.2 trained it to. The fixtures are real files that
0.2.0 wrote (tests/fixtures/v0_2_0/make_fixtures.py says how)."""

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

import stagegen
from stagegen.train import resume

FIXTURES = Path(__file__).parent / "fixtures" / "v0_2_0"
#: the last bits CPUs differ in (kernels chosen per instruction set round differently)
ATOL = 1e-6


def test_a_pipeline_file_of_0_2_loads_and_samples_as_it_did():
    pipe = stagegen.load(FIXTURES / "pipeline.safetensors", channels_last=False)
    expected = load_file(FIXTURES / "expected.safetensors")
    assert [s.type for s in pipe.config.stages] == ["vae", "resnet-gan", "srresnet-perceptual"]
    assert pipe.objective is None  # loaded for sampling: no losses, so no perceptual network is built
    stages = pipe.sample(4, seed=0, return_stages=True)
    for i, images in enumerate(stages):
        torch.testing.assert_close(images, expected[f"stage{i}"], atol=ATOL, rtol=0, msg=f"stage {i}")
    assert pipe.labels == tuple(str(d) for d in range(10))  # its prior per digit
    torch.testing.assert_close(pipe.sample(4, seed=1, label="7"), expected["sevens"], atol=ATOL, rtol=0)
    torch.testing.assert_close(pipe.reconstruct(stages[-1]), expected["recon"], atol=ATOL, rtol=0)


def test_a_run_of_0_2_resumed_here_trains_to_the_weights_0_2_trained_it_to(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "run", run)
    assert "callbacks" not in torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # 0.2 kept no callback state
    result = resume(run, steps=6)
    assert result.steps == 6
    assert {"stage1/adversarial", "stage1/aux/d_loss", "stage1/aux/r1", "stage2/perceptual"} <= set(result.losses[-1])
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    expected = load_file(FIXTURES / "resumed.safetensors")
    ours = {f"pipeline.{k}": v for k, v in state["pipeline"].items()}
    ours.update({f"aux.{key}.{k}": v for key, aux in state["auxiliaries"].items() for k, v in aux.items()})
    assert ours.keys() == expected.keys()
    for key, tensor in expected.items():
        torch.testing.assert_close(ours[key].cpu(), tensor, atol=1e-5, rtol=0, msg=key)
