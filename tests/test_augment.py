"""Conditioning augmentation of a refiner's input: per-image blur and noise, in training only."""

import pytest
import torch

from stagegen.augment import augment_input, gaussian_blur
from stagegen.config import AugmentSpec
from stagegen.metrics.image import gradient_energy
from stagegen.pipeline import Pipeline

from .conftest import tiny_pipeline_config


def test_blur_of_sigma_zero_is_the_identity_and_larger_sigma_blurs_more():
    x = torch.rand(3, 2, 16, 16)
    out = gaussian_blur(x, torch.tensor([0.0, 1.0, 3.0]))
    assert torch.allclose(out[0], x[0], atol=1e-6)
    energy = gradient_energy(out)
    assert energy[2] < energy[1] < gradient_energy(x[1:2])[0]
    # a constant image stays constant (the kernel sums to one)
    flat = torch.full((1, 1, 8, 8), 0.3)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([2.0])), flat, atol=1e-6)


def test_noise_is_drawn_per_image_up_to_the_given_level():
    x = torch.zeros(64, 1, 16, 16)
    out = augment_input(x, AugmentSpec(noise=0.2), torch.Generator().manual_seed(0))
    stds = out.flatten(1).std(1)
    assert stds.max() <= 0.25 and stds.min() < 0.1 and stds.max() > 0.1
    assert augment_input(x, AugmentSpec()) is x


@pytest.mark.parametrize("field", ["noise", "blur"])
def test_the_trunk_cannot_be_augmented(field):
    config = tiny_pipeline_config(("vae", "resnet-l1"))
    config.stages[0].augment = AugmentSpec(**{field: 0.1})
    with pytest.raises(ValueError, match="refiners only"):
        Pipeline(config)


def test_a_refiners_input_is_augmented_in_training_only():
    config = tiny_pipeline_config(("vae", "resnet-l1"))
    config.stages[1].augment = AugmentSpec(noise=0.5)
    pipe = Pipeline(config)
    seen = []
    pipe.stages[1].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    z = torch.randn(4, *pipe.trunk.latent_shape)
    pipe.eval()
    coarse = pipe.run_chain(z).images[0]
    assert torch.equal(seen[-1], coarse)
    pipe.train()
    torch.manual_seed(0)
    coarse = pipe.run_chain(z).images[0]
    assert not torch.allclose(seen[-1], coarse)
    # the sample path shows the refiner its real inputs, unaugmented
    samples = pipe.sample_path(z)
    assert torch.equal(seen[-1], samples[0])
