"""How a run's configuration is composed: presets, dataset defaults, stage lists, priors, -O."""

import pytest

from stagegen.config.presets import compose_run_config, preset
from stagegen_presets import PRESETS


@pytest.mark.parametrize(
    "dataset, size, channels, preset_name",
    [
        ("digits", 16, 1, "sharp-digits"),
        ("mnist", 28, 1, "sharp-mnist"),
        ("celeba", 64, 3, "sharp-celeba64"),
        ("folder", 64, 3, "sharp-celeba64"),
    ],
)
def test_a_dataset_brings_its_image_format_and_starting_preset(dataset, size, channels, preset_name):
    config = compose_run_config(data__name=dataset, data__root="somewhere")
    assert (config.pipeline.image_size, config.pipeline.channels) == (size, channels)
    expected = preset(preset_name)["pipeline"]["stages"][0]["options"]
    assert config.pipeline.stages[0].options == expected
    assert config.data.name == dataset


def test_the_headline_command_trains_64px_rgb_faces_with_the_celeba_preset():
    config = compose_run_config(stages=["vae", "resnet-l1"], data__name="celeba", data__root="x")
    assert (config.pipeline.image_size, config.pipeline.channels) == (64, 3)
    assert config.pipeline.stages[0].options["recon_loss"] == "calibrated"
    assert config.pipeline.prior.type == "gmm"


def test_explicit_choices_win_over_dataset_defaults():
    config = compose_run_config(data__name="celeba", data__root="x", pipeline__image_size=32, pipeline__channels=1)
    assert (config.pipeline.image_size, config.pipeline.channels) == (32, 1)
    # a preset made for another dataset keeps its own format when the user names it
    config = compose_run_config("msvae-mnist", data__name="celeba", data__root="x")
    assert (config.pipeline.image_size, config.pipeline.channels) == (28, 1)


def test_the_default_run_is_the_sharp_digits_preset():
    config = compose_run_config()
    assert config.data.name == "digits" and config.pipeline.image_size == 16
    assert config.pipeline.prior.type == "gmm" and config.pipeline.stages[0].options["recon_loss"] == "calibrated"
    assert config.train.time_budget == 600


def test_paper_presets_keep_the_authors_losses():
    for name in ("vae-mnist", "msvae-mnist", "msvae-celeba", "msvae-digits"):
        config = compose_run_config(name)
        trunk = config.pipeline.stages[0].options
        assert trunk.get("recon_loss", "l2") == "l2" and trunk.get("kl_reduction", "mean") == "mean", name
        assert config.pipeline.prior.type == "normal", name


def test_prior_flag_and_options():
    config = compose_run_config(prior="latent-vae", options=["prior.steps=10", "prior.width=8"])
    assert config.pipeline.prior.type == "latent-vae" and config.pipeline.prior.options == {"steps": 10, "width": 8}
    config = compose_run_config(options=["prior.components=20"])  # the preset's gmm keeps its type
    assert config.pipeline.prior.type == "gmm" and config.pipeline.prior.options["components"] == 20
    config = compose_run_config(prior="gmm")  # same type as the preset's: its options stay
    assert config.pipeline.prior.options == {"components": 10}


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds(name):
    import torch

    from stagegen.pipeline import Pipeline

    config = compose_run_config(name)
    with torch.device("meta"):  # shapes only: the paper's CelebA models are large
        pipe = Pipeline(config.pipeline, for_training=False)
    assert pipe.resolutions[-1] == config.pipeline.image_size


def test_the_gpu_setting_of_the_128_preset_composes():
    from pathlib import Path

    import torch

    from stagegen.pipeline import Pipeline

    gpu = Path(__file__).resolve().parents[2] / "examples" / "configs" / "sharp-celeba128-gpu.toml"
    config = compose_run_config("sharp-celeba128", str(gpu))
    with torch.device("meta"):
        pipe = Pipeline(config.pipeline, for_training=False)
    assert pipe.resolutions == [32, 64, 128] and config.train.batch_size == 64
    assert [s.train_from for s in config.pipeline.stages] == [0, 20000, 40000]


def test_losses_and_augmentation_are_set_per_stage_with_o():
    config = compose_run_config(
        stages=["vae", "resnet"],
        options=[
            "1.losses=l1,adversarial",
            "1.loss.adversarial.weight=0.05",
            "1.loss.adversarial.start_step=7",
            "1.augment.blur=1.5",
        ],
    )
    stage = config.pipeline.stages[1]
    assert [(loss.type, loss.weight) for loss in stage.losses] == [("l1", 1.0), ("adversarial", 0.05)]
    assert stage.losses[1].options == {"start_step": 7} and stage.augment.blur == 1.5
    # a stage on its type's default losses gets them written out first, then changed
    config = compose_run_config(stages=["vae", "srresnet-perceptual"], options=["1.loss.perceptual.pretrained=false"])
    assert [loss.type for loss in config.pipeline.stages[1].losses] == ["l1", "perceptual"]
    assert config.pipeline.stages[1].losses[1].options == {"pretrained": False}
    json_list = '1.losses=[{"type": "l1", "weight": 2}, "gradient"]'
    assert [
        (s.type, s.weight) for s in compose_run_config(stages=["vae", "resnet"], options=[json_list]).pipeline.stages[1].losses
    ] == [
        ("l1", 2.0),
        ("gradient", 1.0),
    ]
    with pytest.raises(ValueError, match="has no loss named 'perceptual'.*its losses: l1"):
        compose_run_config(stages=["vae", "resnet-l1"], options=["1.loss.perceptual.weight=1"])
    with pytest.raises(ValueError, match="STAGE.loss.NAME.FIELD"):
        compose_run_config(stages=["vae", "resnet-l1"], options=["1.loss.l1=2"])


def test_presets_come_from_a_plugin_and_a_run_says_what_is_missing_without_it(monkeypatch):
    from stagegen.plugin import PluginError, get_plugin_manager, reset_plugin_manager

    assert get_plugin_manager().presets.provider("sharp-digits").plugin == "presets"
    monkeypatch.setenv("STAGEGEN_PLUGINS", "vae,datasets,normal-prior,resnet,losses")
    reset_plugin_manager()
    with pytest.raises(PluginError, match="no preset named 'sharp-digits' is installed"):
        compose_run_config()  # the digits dataset's own preset comes from the presets plugin


def test_a_config_file_with_its_own_chain_needs_no_preset(tmp_path, monkeypatch):
    import json

    from stagegen.pipeline import Pipeline
    from stagegen.plugin import reset_plugin_manager

    monkeypatch.setenv("STAGEGEN_PLUGINS", "vae,datasets,normal-prior,resnet,losses")
    reset_plugin_manager()
    path = tmp_path / "run.json"
    stages = [{"type": "vae", "options": {"widths": [8, 16], "latent_dim": 8}}, {"type": "resnet-l1", "options": {"width": 8}}]
    path.write_text(json.dumps({"pipeline": {"stages": stages}, "train": {"steps": 3}}))
    config = compose_run_config(config_file=str(path))
    assert [s.type for s in config.pipeline.stages] == ["vae", "resnet-l1"] and config.pipeline.prior.type == "normal"
    assert Pipeline(config.pipeline).resolutions == [16, 16]
