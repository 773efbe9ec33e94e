import pytest
import torch

from stagegen.losses import adaptive_weight
from stagegen.pipeline import Pipeline
from stagegen.stages import LossContext
from stagegen.train import Trainer

from ..conftest import tiny_pipeline_config, tiny_run_config


def _pipe(**options):
    config = tiny_pipeline_config(("vae", "adversarial"))
    config.stages[1].options.update(options)
    return Pipeline(config).train()


def test_term_is_zero_before_start_step_and_live_after():
    pipe = _pipe(start_step=5)
    disc = pipe.stages[1].build_auxiliary()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    before = pipe.losses(x, pipe(x), step=4, auxiliaries={1: disc})
    assert before["stage1/adversarial"].item() == 0.0
    assert pipe.stages[1].auxiliary_loss(disc, x, x, LossContext(step=4, auxiliary=disc)) == {}
    after = pipe.losses(x, pipe(x), step=5, auxiliaries={1: disc})
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


def test_discriminator_is_updated_on_its_own_step_and_kept_out_of_the_pipeline(tmp_path):
    trainer = Trainer(tiny_run_config(("vae", "adversarial"), steps=3), tmp_path / "run")
    disc = trainer.auxiliaries[1]
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
    assert set(state["auxiliaries"]["1"]) == set(disc.state_dict())


def test_generator_step_does_not_train_discriminator(tmp_path, monkeypatch):
    import stagegen.train.step

    trainer = Trainer(tiny_run_config(("vae", "adversarial"), steps=1), tmp_path / "run")
    disc = trainer.auxiliaries[1]
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
    disc = pipe.stages[1].build_auxiliary()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    terms = pipe.losses(x, pipe(x), step=0, auxiliaries={1: disc})
    d_terms = pipe.stages[1].auxiliary_loss(disc, x, x, LossContext(step=0, auxiliary=disc))
    assert all(torch.isfinite(v) for v in [*terms.values(), *d_terms.values()])
