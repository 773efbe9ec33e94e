"""A stage type's upgrade hook: a built-in that renames an option and a layer in a new release
still loads the files its old release wrote, and they sample exactly as before."""

import os

import pytest
import torch
from pydantic import Field

import stagegen
from stagegen.pipeline import Pipeline
from stagegen.pipeline_file import PipelineFileError
from stagegen.plugins import Provider, get_plugin_manager, reset_plugin_manager
from stagegen.stages import StageOptions, StageType
from stagegen_resnet import ResNetOptions, ResNetRefiner

from .conftest import tiny_pipeline_config


class ResNetOptionsV2(StageOptions):
    """Release 9.0 of resnet-l1: ``head_width`` is now called ``wide_width``."""

    width: int = Field(64, ge=1)
    blocks: int = Field(5, ge=0)
    wide_width: int = Field(256, ge=1)
    scale: int = 1
    leaky_slope: float = 0.3
    pixel_weight: float = 1.0


class ResNetRefinerV2(ResNetRefiner):
    """...and its last layers, ``tail``, are now called ``output``."""

    def __init__(self, options: ResNetOptionsV2, channels: int):
        old = ResNetOptions(
            width=options.width,
            blocks=options.blocks,
            head_width=options.wide_width,
            scale=options.scale,
            leaky_slope=options.leaky_slope,
            pixel_weight=options.pixel_weight,
        )
        super().__init__(old, channels, "l1")
        self.output = self.tail
        del self.tail

    def forward(self, image):
        h = self.head(image)
        h = h + self.skip_conv(self.blocks(h))
        return self.output(self.upsample(h))


def upgrade(options, tensors, version):
    major = int(version.split(".")[0])
    if major < 9:
        options["wide_width"] = options.pop("head_width")
        tensors = {("output." + k[len("tail.") :] if k.startswith("tail.") else k): v for k, v in tensors.items()}
    return options, tensors


def _release_9(upgrade_hook=upgrade):
    """The installed plugins, with resnet-l1 replaced by its release 9.0."""
    import types

    names = ["vae", "datasets", "srresnet", "adversarial", "normal-prior", "priors"]
    os.environ["STAGEGEN_PLUGINS"] = ",".join(names)
    reset_plugin_manager()
    module = types.ModuleType("stagegen_resnet_v9")

    @stagegen.hookimpl
    def register_stages(register):
        register(
            StageType(
                name="resnet-l1",
                kind="refiner",
                options=ResNetOptionsV2,
                build=lambda o, ctx: ResNetRefinerV2(o, ctx.channels),
                scale=lambda o: o.scale,
                upgrade=upgrade_hook,
            )
        )

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
    assert isinstance(loaded.stages[1], ResNetRefinerV2)
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
