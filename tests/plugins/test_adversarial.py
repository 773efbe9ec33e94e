"""The adversarial loss: its discriminator as an extra module, its start step and stabilisers,
feature matching, the sample path it judges, and the stage type kept from stagegen 0.1."""

import pytest
import torch

from stagegen.config import PipelineConfig
from stagegen.losses import LossContext, adaptive_weight, feature_matching, r1_penalty
from stagegen.pipeline import Pipeline
from stagegen.train import Trainer
from stagegen.train.auxiliary import build_auxiliaries

from ..conftest import TINY_TRUNK, tiny_pipeline_config, tiny_run_config


def _pipe(**options):
    config = tiny_pipeline_config(("vae", "adversarial"))
    config.stages[1].options.update(options)
    return Pipeline(config).train()


def _gan_pipe(**loss_options):
    """A resnet network with l1 + the adversarial loss at its own defaults (and these options)."""
    loss = {"type": "adversarial", "weight": 0.1, "options": {"disc_width": 8, "disc_layers": 2, **loss_options}}
    return Pipeline(
        PipelineConfig.model_validate(
            {
                "image_size": 16,
                "channels": 1,
                "stages": [
                    {"type": "vae", "options": TINY_TRUNK},
                    {
                        "type": "resnet",
                        "options": {"width": 8, "blocks": 1, "head_width": 0, "output": "residual"},
                        "losses": [{"type": "l1"}, loss],
                    },
                ],
            }
        )
    ).train()


def test_term_is_zero_before_start_step_and_live_after():
    pipe = _pipe(start_step=5)
    aux = build_auxiliaries(pipe)
    assert list(aux) == ["1/adversarial"]
    loss = pipe.objective.losses[1][1].loss
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    before = pipe.objective.logged_terms(x, pipe(x), step=4, auxiliaries=aux)
    assert before["stage1/adversarial"].item() == 0.0
    assert loss.auxiliary_loss(aux["1/adversarial"], x, [x], LossContext(step=4)) == {}
    after = pipe.objective.logged_terms(x, pipe(x), step=5, auxiliaries=aux)
    assert after["stage1/adversarial"].item() != 0.0
    assert torch.isfinite(after["stage1/adversarial"])


def test_adaptive_weight_is_finite_in_float32_even_for_degenerate_gradients():
    layer = torch.nn.Conv2d(1, 1, 3)
    x = torch.randn(2, 1, 8, 8)
    out = layer(x)
    rec = out.abs().mean()
    adv = (out * 0).sum()  # zero gradient: the ratio would be inf without the guard
    weight = adaptive_weight(rec, adv, layer.weight)
    assert torch.isfinite(weight) and weight.dtype == torch.float32 and weight.item() <= 1e4
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
        w = adaptive_weight(out.abs().mean(), -out.mean(), layer.weight)
    assert torch.isfinite(w) and w.dtype == torch.float32


def test_adaptive_weight_balances_against_the_other_terms_at_the_networks_last_layer():
    pipe = _gan_pipe(adaptive=True)
    aux = build_auxiliaries(pipe)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    diagnostics = {}
    terms = pipe.objective.logged_terms(x, pipe(x), step=0, auxiliaries=aux, diagnostics=diagnostics)
    weight = diagnostics["stage1/adaptive_weight"]
    assert torch.isfinite(weight) and weight > 0 and weight != 1.0
    # without the adaptive weight the reported weight is 1
    pipe = _gan_pipe(adaptive=False)
    diagnostics = {}
    pipe.objective.logged_terms(x, pipe(x), step=0, auxiliaries=build_auxiliaries(pipe), diagnostics=diagnostics)
    assert diagnostics["stage1/adaptive_weight"] == 1.0
    assert set(terms) >= {"stage1/l1", "stage1/adversarial", "stage1/feature_matching"}


def test_feature_matching_is_zero_for_identical_images_and_positive_otherwise():
    disc = _gan_pipe().objective.losses[1][1].loss.build_auxiliary()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    _, features = disc.forward_with_features(x)
    assert len(features) >= 2
    assert feature_matching(features, features).item() == 0.0
    _, other = disc.forward_with_features(-x)
    assert feature_matching(features, other).item() > 0


def test_r1_penalty_is_the_squared_gradient_norm_at_real_images():
    x = torch.randn(3, 1, 4, 4, requires_grad=True)
    logits = (2.0 * x).sum(dim=(1, 2, 3))  # gradient 2 everywhere: |g|^2 = 4 * 16 per image
    assert r1_penalty(logits, x).item() == pytest.approx(64.0)


def test_discriminator_update_applies_r1_every_r1_every_steps_and_judges_every_fake():
    pipe = _gan_pipe(r1=2.0, r1_every=3)
    loss, disc = pipe.objective.losses[1][1].loss, build_auxiliaries(pipe)["1/adversarial"]
    real, fake = torch.rand(4, 1, 16, 16) * 2 - 1, torch.zeros(4, 1, 16, 16)
    with_penalty = loss.auxiliary_loss(disc, real, [fake, fake + 0.5], LossContext(step=3))
    without = loss.auxiliary_loss(disc, real, [fake], LossContext(step=4))
    assert torch.isfinite(with_penalty["r1"]) and with_penalty["r1"] > 0
    assert without["r1"] == 0  # logged every step (so its mean is the penalty's average), applied every third
    assert set(without) == {"d_loss", "d_real", "d_fake", "r1"}
    no_r1 = _gan_pipe(r1=0.0).objective.losses[1][1].loss
    assert "r1" not in no_r1.auxiliary_loss(disc, real, [fake], LossContext(step=3))


def test_sample_path_outputs_are_judged_and_train_the_refiner_not_the_trunk():
    pipe = _gan_pipe(judge="samples", feature_matching=0.0)
    aux = build_auxiliaries(pipe)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    assert pipe.objective.uses_samples and pipe.objective.wants_samples(0)
    # without samples the realism term has nothing to judge
    assert pipe.objective.logged_terms(x, pipe(x), step=0, auxiliaries=aux)["stage1/adversarial"].item() == 0.0
    out = pipe(x, prior_latents=torch.randn(6, *pipe.trunk.latent_shape))
    assert [tuple(s.shape) for s in out.samples] == [(6, 1, 16, 16), (6, 1, 16, 16)]
    assert not out.samples[0].requires_grad  # the trunk decodes the sample path without gradient
    term = pipe.objective.logged_terms(x, out, step=0, auxiliaries=aux)["stage1/adversarial"]
    assert term.item() != 0.0
    term.backward()
    assert pipe.trunk.decoder[0].weight.grad is None
    assert pipe.stages[1].head[0].weight.grad is not None


def test_a_late_start_keeps_the_sample_path_off_until_then():
    pipe = _gan_pipe(start_step=10)
    assert pipe.objective.uses_samples and not pipe.objective.wants_samples(9) and pipe.objective.wants_samples(10)
    assert not _gan_pipe(judge="reconstructions").objective.uses_samples


def test_discriminator_is_updated_on_its_own_step_and_kept_out_of_the_pipeline(tmp_path):
    trainer = Trainer(tiny_run_config(("vae", "adversarial"), steps=3), tmp_path / "run")
    disc = trainer.auxiliaries["1/adversarial"]
    before = {k: v.clone() for k, v in disc.state_dict().items()}
    generator_before = {k: v.clone() for k, v in trainer.pipeline.state_dict().items()}
    result = trainer.fit()
    changed = [k for k, v in disc.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert changed, "the discriminator was never updated"
    assert any(not torch.equal(v, generator_before[k]) for k, v in trainer.pipeline.state_dict().items())
    lines = result.losses
    assert "stage1/aux/d_loss" in lines[-1] and "stage1/adversarial" in lines[-1]
    # the discriminator lives in the checkpoint, never in the pipeline file
    from safetensors import safe_open

    with safe_open(str(result.pipeline_path), "pt") as f:
        assert all(not k.startswith("aux") and "disc" not in k for k in f.keys())
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert set(state["auxiliaries"]["1/adversarial"]) == set(disc.state_dict())


def test_generator_step_does_not_train_discriminator(tmp_path, monkeypatch):
    import stagegen.train.step

    trainer = Trainer(tiny_run_config(("vae", "adversarial"), steps=1), tmp_path / "run")
    disc = trainer.auxiliaries["1/adversarial"]
    monkeypatch.setattr(stagegen.train.step, "_auxiliary_step", lambda *a, **k: {})  # generator step only
    before = {k: v.clone() for k, v in disc.state_dict().items() if "running" not in k and "num_batches" not in k}
    trainer.train_step(trainer.batches())
    for k, v in before.items():
        assert torch.equal(disc.state_dict()[k], v), k
        assert dict(disc.named_parameters()).get(k) is None or dict(disc.named_parameters())[k].grad is None


@pytest.mark.parametrize("gan_loss", ["hinge", "non-saturating"])
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_gan_variants_give_finite_losses(gan_loss, spectral_norm):
    pipe = _pipe(gan_loss=gan_loss, spectral_norm=spectral_norm)
    aux = build_auxiliaries(pipe)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    terms = pipe.objective.logged_terms(x, pipe(x), step=0, auxiliaries=aux)
    d_terms = pipe.objective.losses[1][1].loss.auxiliary_loss(aux["1/adversarial"], x, [x], LossContext(step=0))
    assert all(torch.isfinite(v) for v in [*terms.values(), *d_terms.values()])


def test_the_stage_type_of_0_1_keeps_its_defaults_and_option_names():
    pipe = _pipe(adversarial_weight=0.3, gan_loss="non-saturating", spectral_norm=True)
    l1, adversarial = pipe.config.stages[1].losses
    assert (l1.type, l1.weight) == ("l1", 1.0)
    assert adversarial.weight == 0.3
    assert adversarial.options["gan_loss"] == "non-saturating" and adversarial.options["spectral_norm"] is True
    # 0.1's refiner judged reconstructions only, without R1 or feature matching
    assert adversarial.options["judge"] == "reconstructions"
    assert adversarial.options["r1"] == 0.0 and adversarial.options["feature_matching"] == 0.0
    assert not pipe.objective.uses_samples
