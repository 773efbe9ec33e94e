"""A stage type's upgrade hook: a built-in that renames an option and a layer in a new release
still loads the files its old release wrote, and they sample exactly as before."""

import os

import pytest
import torch
from pydantic import Field

import stagegen
from stagegen.pipeline import Pipeline
from stagegen.pipeline.file import PipelineFileError
from stagegen.plugin import Provider, get_plugin_manager, reset_plugin_manager
from stagegen.stages import NetworkType, StageOptions, StageType
from stagegen_resnet import ResidualNet, ResidualNetOptions

from .conftest import tiny_pipeline_config


class ResidualNetOptionsV9(StageOptions):
    """Release 9.0 of the resnet network: ``head_width`` is now called ``wide_width`` (and the
    other options of 0.2 are fixed at their defaults)."""

    width: int = Field(64, ge=1)
    blocks: int = Field(5, ge=0)
    wide_width: int = Field(256, ge=0)
    scale: int = 1


class ResidualNetV9(ResidualNet):
    """...and its last layers, ``tail``, are now called ``output``."""

    def __init__(self, options: ResidualNetOptionsV9, channels: int):
        old = ResidualNetOptions(width=options.width, blocks=options.blocks, head_width=options.wide_width, scale=options.scale)
        super().__init__(old, channels)
        self.output = self.tail
        del self.tail

    def forward(self, image):
        h = self.head(image)
        h = h + self.skip(self.blocks(h))
        return self.output(self.upsample(h))


def upgrade(options, tensors, version):
    major = int(version.split(".")[0]) if version else 0
    if major < 9:
        options = {key: options[key] for key in ("width", "blocks", "scale")} | {"wide_width": options["head_width"]}
        tensors = {("output." + k[len("tail.") :] if k.startswith("tail.") else k): v for k, v in tensors.items()}
    return options, tensors


def _release_9(upgrade_hook=upgrade):
    """The installed plugins, with the resnet plugin replaced by its release 9.0."""
    import types

    names = ["vae", "datasets", "losses", "normal-prior", "priors"]
    os.environ["STAGEGEN_PLUGINS"] = ",".join(names)
    reset_plugin_manager()
    module = types.ModuleType("stagegen_resnet_v9")

    @stagegen.hookimpl
    def register_networks(register):
        register(
            NetworkType(
                name="resnet",
                options=ResidualNetOptionsV9,
                build=lambda o, ctx: ResidualNetV9(o, ctx.channels),
                scale=lambda o: o.scale,
                upgrade=upgrade_hook,
            )
        )

    @stagegen.hookimpl
    def register_stages(register):
        register(StageType(name="resnet-l1", kind="refiner", network="resnet", losses=({"type": "l1"},)))

    module.register_networks = register_networks
    module.register_stages = register_stages
    get_plugin_manager().register(module, name="resnet", provider=Provider("resnet", "stagegen", "9.0.0"))


@pytest.fixture
def old_file(tmp_path):
    pipe = Pipeline(tiny_pipeline_config(("vae", "resnet-l1"))).eval()
    with torch.no_grad():
        for p in pipe.parameters():
            p.add_(0.01 * torch.randn_like(p))  # weights the default init would not reproduce
    path = pipe.save(tmp_path / "old.safetensors")
    expected = pipe.sample(6, seed=4, return_stages=True)
    return path, expected


def test_old_file_loads_through_the_upgrade_and_samples_identically(old_file):
    path, expected = old_file
    _release_9()
    loaded = stagegen.load(path, channels_last=False)
    assert isinstance(loaded.stages[1], ResidualNetV9)
    assert loaded.config.stages[1].options["wide_width"] == 8 and "head_width" not in loaded.config.stages[1].options
    for a, b in zip(expected, loaded.sample(6, seed=4, return_stages=True)):
        assert torch.equal(a, b)
    # saved again, it is a release-9 file: no upgrade is needed to read it
    again = loaded.save(path.with_name("new.safetensors"))
    assert torch.equal(stagegen.load(again, channels_last=False).sample(2, seed=1), loaded.sample(2, seed=1))


def test_without_an_upgrade_hook_the_error_names_the_versions(old_file):
    path, _ = old_file
    _release_9(upgrade_hook=None)
    with pytest.raises(PipelineFileError, match=r"unknown option 'head_width'.*written by stagegen .*9\.0\.0 is installed"):
        stagegen.load(path)


def test_a_failing_upgrade_names_the_stage_and_versions(old_file):
    path, _ = old_file

    def broken(options, tensors, version):
        raise KeyError("head_width")

    _release_9(upgrade_hook=broken)
    with pytest.raises(PipelineFileError, match=r"stage 1 \(resnet-l1\) was written by version .* upgrade to 9\.0\.0 failed"):
        stagegen.load(path)


def test_a_renamed_stage_type_still_loads_files_and_takes_commands_with_its_old_name(old_file):
    import types

    from stagegen.config.presets import compose_run_config

    path, expected = old_file
    os.environ["STAGEGEN_PLUGINS"] = "vae,datasets,losses,normal-prior,priors,presets"
    reset_plugin_manager()
    import stagegen_resnet

    module = types.ModuleType("renamed_resnet")

    @stagegen.hookimpl
    def register_stages(register):
        register(
            StageType(name="paper-l1", kind="refiner", network="resnet", losses=({"type": "l1"},), renamed_from=("resnet-l1",))
        )

    module.register_stages = register_stages
    module.register_networks = stagegen_resnet.register_networks  # the real networks, without resnet-l1
    get_plugin_manager().register(module, name="renamed")
    loaded = stagegen.load(path, channels_last=False)
    assert loaded.config.stages[1].type == "paper-l1"  # stored under its current name from now on
    for a, b in zip(expected, loaded.sample(6, seed=4, return_stages=True)):
        assert torch.equal(a, b)
    config = compose_run_config(stages=["vae", "resnet-l1"])
    assert Pipeline(config.pipeline).config.stages[1].type == "paper-l1"


def test_a_prior_plugin_that_renamed_its_buffer_upgrades_old_files(tmp_path):
    import types

    from stagegen.priors import Prior, PriorOptions, PriorType

    def offset_prior(buffer_name, version, upgrade=None):
        class OffsetPrior(Prior):
            needs_fit = False

            def __init__(self, latent_shape):
                super().__init__(latent_shape)
                self.register_buffer(buffer_name, torch.full((self.latent_dim,), 3.0))

            def sample_flat(self, n, generator, temperature):
                return getattr(self, buffer_name) + temperature * torch.randn((n, self.latent_dim), generator=generator)

        module = types.ModuleType(f"offset_{version}")
        module.register_priors = stagegen.hookimpl(
            lambda register: register(
                PriorType(
                    name="offset", options=PriorOptions, build=lambda o, ctx: OffsetPrior(ctx.latent_shape), upgrade=upgrade
                )
            )
        )
        get_plugin_manager().register(module, name="offset", provider=Provider("offset", "offset-prior", version))

    offset_prior("shift", "1.0.0")
    config = tiny_pipeline_config(("vae", "resnet-l1"))
    config.prior.type = "offset"
    pipe = Pipeline(config).eval()
    path = pipe.save(tmp_path / "old.safetensors")
    expected = pipe.sample(3, seed=1)
    reset_plugin_manager()

    def rename(options, tensors, version):
        assert version == "1.0.0"
        return options, {"offset": tensors["shift"]}

    offset_prior("offset", "2.0.0", upgrade=rename)
    loaded = stagegen.load(path, channels_last=False)
    assert torch.equal(loaded.sample(3, seed=1), expected)
    assert loaded.file_metadata["prior"]["package_version"] == "1.0.0"
