"""How a run's configuration is composed: presets, dataset defaults, stage lists, priors, -O."""

import pytest

from stagegen.presets import PRESETS, compose_run_config


@pytest.mark.parametrize(
    "dataset, size, channels, preset",
    [
        ("digits", 16, 1, "sharp-digits"),
        ("mnist", 28, 1, "sharp-mnist"),
        ("celeba", 64, 3, "sharp-celeba64"),
        ("folder", 64, 3, "sharp-celeba64"),
    ],
)
def test_a_dataset_brings_its_image_format_and_starting_preset(dataset, size, channels, preset):
    config = compose_run_config(data__name=dataset, data__root="somewhere")
    assert (config.pipeline.image_size, config.pipeline.channels) == (size, channels)
    expected = PRESETS[preset][1]["pipeline"]["stages"][0]["options"]
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
