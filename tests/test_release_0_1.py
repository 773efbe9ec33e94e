"""Files and runs written by stagegen 0.1, when each refiner had its own network and its losses
were options of the stage: they load, sample as they did, and resume. The fixtures are real
files that 0.1 wrote (tests/fixtures/v0_1_0/make_fixtures.py says how)."""

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import stagegen
from stagegen.config.presets import compose_run_config
from stagegen.train import Trainer, resume

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_0"


def test_a_pipeline_file_of_0_1_loads_and_samples_as_it_did():
    pipe = stagegen.load(FIXTURES / "pipeline.safetensors", channels_last=False)
    expected = load_file(FIXTURES / "expected.safetensors")
    stages = pipe.sample(4, seed=0, return_stages=True)
    assert [s.type for s in pipe.config.stages] == ["vae", "resnet-l1", "resnet-l2", "srresnet-perceptual", "adversarial"]
    # to the last bit CPUs differ in: the kernels torch picks for an instruction set round
    # differently (one unit in the last place, 6e-8, on an AMD EPYC against the file's machine)
    for i, images in enumerate(stages):
        torch.testing.assert_close(images, expected[f"stage{i}"], atol=1e-6, rtol=0, msg=f"stage {i}")
    torch.testing.assert_close(pipe.reconstruct(stages[-1]), expected["recon"], atol=1e-6, rtol=0)
    # the losses that were options of the stage are the stage's losses now, with their values
    resnet, _, srresnet, adversarial = pipe.config.stages[1:]
    assert [(loss.type, loss.weight) for loss in resnet.losses] == [("l1", 0.5)]
    assert [(loss.type, loss.weight) for loss in srresnet.losses] == [("l1", 1.0), ("perceptual", 0.2)]
    assert adversarial.losses[1].weight == 0.3 and adversarial.losses[1].options["disc_width"] == 8


def test_saved_again_it_is_a_current_file(tmp_path):
    pipe = stagegen.load(FIXTURES / "pipeline.safetensors", channels_last=False)
    again = stagegen.load(pipe.save(tmp_path / "again.safetensors"), channels_last=False)
    assert again.file_metadata["stages"][1]["package_version"] == stagegen.__version__
    assert torch.equal(again.sample(3, seed=1), pipe.sample(3, seed=1))


@pytest.fixture
def old_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "run", run)
    return run


def test_a_run_of_0_1_resumes_with_its_weights_and_discriminator_in_their_new_places(old_run):
    checkpoint = torch.load(old_run / "checkpoints" / "last.pt", weights_only=True)
    assert "stage_versions" not in checkpoint and set(checkpoint["auxiliaries"]) == {"2"}
    trainer = Trainer(compose_resumed(old_run), old_run, resume=True)
    assert trainer.step == 4
    state = {k: v.cpu() for k, v in trainer.pipeline.state_dict().items()}  # where CUDA is, the run resumes there
    old = checkpoint["pipeline"]
    assert torch.equal(state["stages.1.skip.0.weight"], old["stages.1.skip_conv.weight"])  # the paper refiner's long skip
    assert torch.equal(state["stages.2.tail.0.weight"], old["stages.2.last_layer.weight"])  # the adversarial refiner's output
    disc = trainer.auxiliaries["2/adversarial"].state_dict()
    assert all(torch.equal(v.cpu(), checkpoint["auxiliaries"]["2"][k]) for k, v in disc.items())
    result = resume(old_run, steps=6)
    assert result.steps == 6 and result.pipeline_path.is_file()
    assert {"stage2/adversarial", "stage2/aux/d_loss"} <= set(result.losses[-1])


def compose_resumed(run: Path):
    import json

    from stagegen.config import validate_run_config

    return validate_run_config(json.loads((run / "config.json").read_text()))


def test_option_names_of_0_1_still_set_the_losses():
    config = compose_run_config(
        None,
        None,
        ["vae", "resnet-l1", "srresnet-perceptual", "adversarial"],
        [
            "resnet-l1.pixel_weight=2",
            "srresnet-perceptual.pretrained=false",
            "srresnet-perceptual.backbone=lpips-alex",
            "adversarial.adversarial_weight=0.3",
            "adversarial.start_step=10",
        ],
    )
    pipe = stagegen.Pipeline(config.pipeline)
    resnet, srresnet, adversarial = pipe.config.stages[1:]
    assert resnet.losses[0].weight == 2
    assert srresnet.losses[1].options["pretrained"] is False and srresnet.losses[1].options["backbone"] == "lpips-alex"
    assert adversarial.losses[1].weight == 0.3 and adversarial.losses[1].options["start_step"] == 10


def test_a_file_of_0_1_has_no_labels_and_says_how_to_fit_a_prior_per_label():
    pipe = stagegen.load(FIXTURES / "pipeline.safetensors")
    assert pipe.labels == () and pipe.sample(2, seed=0).shape[0] == 2
    with pytest.raises(ValueError, match=r"no conditional prior, so it cannot sample a label.*fit-prior PIPELINE --conditional"):
        pipe.sample(2, label=7)
