"""The VAE trunk's losses: the authors' l2 + KL mean, and the calibrated Gaussian (sigma-VAE)."""

import math

import pytest
import torch

from stagegen.config import PipelineConfig
from stagegen.losses import LossContext
from stagegen.pipeline import Pipeline
from stagegen.stages import Posterior

from ..conftest import TINY_TRUNK


def _trunk(**options):
    config = PipelineConfig.model_validate(
        {"image_size": 16, "channels": 3, "stages": [{"type": "vae", "options": {**TINY_TRUNK, **options}}]}
    )
    return Pipeline(config).trunk


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    output = (target + 0.1 * torch.randn(4, 3, 16, 16, generator=g)).clamp(-1, 1)
    posterior = Posterior(torch.randn(4, 8, generator=g), torch.rand(4, 8, generator=g) + 0.5)
    return output, target, posterior


def test_optimal_sigma_is_the_rms_error_and_the_elbo_adds_up():
    trunk = _trunk(recon_loss="calibrated", kl_reduction="elbo")
    output, target, posterior = _batch()
    ctx = LossContext(step=0, posterior=posterior)
    terms = trunk.loss(output, target, ctx)
    mse = (output - target).square().mean()
    assert ctx.diagnostics["sigma"] == pytest.approx(float(mse.sqrt()), rel=1e-4)
    pixels = 3 * 16 * 16
    # with sigma^2 = MSE the per-pixel Gaussian NLL is 0.5 + log sigma + 0.5 log 2 pi
    assert float(terms["nll"]) == pytest.approx(0.5 + 0.5 * math.log(float(mse)) + 0.5 * math.log(2 * math.pi), rel=1e-4)
    kl_per_image = posterior.kl().sum(1).mean()
    assert float(terms["kl"]) == pytest.approx(float(kl_per_image) / pixels, rel=1e-5)
    nelbo = float(terms["nll"]) * pixels + float(kl_per_image)
    assert float(ctx.diagnostics["nelbo_nats"]) == pytest.approx(nelbo, rel=1e-5)
    assert float(ctx.diagnostics["bpd"]) == pytest.approx(nelbo / (pixels * math.log(2)) + math.log2(127.5), rel=1e-5)


def test_learned_sigma_is_a_parameter_per_channel_and_gets_a_gradient():
    trunk = _trunk(recon_loss="calibrated", sigma_mode="learned", sigma_per_channel=True, kl_reduction="elbo")
    assert trunk.log_sigma.shape == (3,)
    output, target, posterior = _batch()
    terms = trunk.loss(output, target, LossContext(step=0, posterior=posterior))
    terms["nll"].backward()
    # sigma starts at 1 (log 0) while the error is ~0.1: the gradient pushes every sigma down
    assert (trunk.log_sigma.grad > 0).all()
    assert "log_sigma" not in dict(_trunk(recon_loss="calibrated").named_parameters())


def test_sigma_has_a_floor():
    trunk = _trunk(recon_loss="calibrated")
    output, target, posterior = _batch()
    ctx = LossContext(step=0, posterior=posterior)
    terms = trunk.loss(target.clone(), target, ctx)  # a perfect reconstruction
    assert torch.isfinite(terms["nll"]) and float(ctx.diagnostics["sigma"]) >= math.exp(-6) * 0.99


def test_authors_settings_are_unchanged():
    trunk = _trunk()  # l2 + KL mean: the paper presets
    output, target, posterior = _batch()
    terms = trunk.loss(output, target, LossContext(step=0, posterior=posterior))
    assert set(terms) == {"l2", "kl"}
    assert float(terms["l2"]) == pytest.approx(float((output - target).square().mean()), rel=1e-6)
    assert float(terms["kl"]) == pytest.approx(float(posterior.kl().mean()), rel=1e-6)


def test_a_label_conditioned_trunk_encodes_and_decodes_with_the_label():
    trunk = _trunk(classes=10, label_dim=4).eval()
    z = torch.randn(3, 8)
    threes, sevens = trunk.decode(z, torch.full((3,), 3)), trunk.decode(z, torch.full((3,), 7))
    assert threes.shape == (3, 3, 16, 16) and not torch.allclose(threes, sevens)  # same z, another class
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    assert not torch.allclose(
        trunk.encode(x, torch.zeros(3, dtype=torch.long)).mean, trunk.encode(x, torch.ones(3, dtype=torch.long)).mean
    )
    with pytest.raises(ValueError, match="conditioned on 10 classes: give each image's label"):
        trunk.decode(z)


def test_an_unconditioned_trunk_keeps_its_weights_and_one_class_is_refused():
    # files written before the option existed hold exactly these tensors
    assert not any("label" in name for name in _trunk().state_dict())
    assert _trunk().to_posterior.in_features + 4 == _trunk(classes=2, label_dim=4).to_posterior.in_features
    with pytest.raises(ValueError, match="at least two classes"):
        _trunk(classes=1)
