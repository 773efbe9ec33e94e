"""A stage is a network plus losses: specs resolved against their stage type, losses built from
the registry, terms named and weighted, the balancing loss computed last."""

import pytest
import torch

from stagegen.config import LossSpec, PipelineConfig, StageSpec
from stagegen.losses import Loss, LossContext
from stagegen.losses.binding import stage_terms
from stagegen.pipeline import Pipeline
from stagegen.plugin import PluginError, get_plugin_manager
from stagegen.stages.composition import resolve_spec

from ..conftest import TINY_TRUNK


def _pipeline(refiner: dict) -> Pipeline:
    config = {"image_size": 16, "channels": 1, "stages": [{"type": "vae", "options": TINY_TRUNK}, refiner]}
    return Pipeline(PipelineConfig.model_validate(config)).train()


def test_a_composition_gets_its_default_losses_and_old_option_names_move_into_them():
    stage_type = get_plugin_manager().stages.get("srresnet-perceptual")
    spec = resolve_spec(
        StageSpec(
            type="srresnet-perceptual", options={"width": 8, "pixel_loss": "l2", "perceptual_weight": 0.5, "pretrained": False}
        ),
        stage_type,
    )
    assert spec.options == {"width": 8}
    assert [(loss.type, loss.weight) for loss in spec.losses] == [("l2", 1.0), ("perceptual", 0.5)]
    assert spec.losses[1].options == {"pretrained": False}
    # a spec with its own losses keeps them, and refuses the old shortcuts
    own = StageSpec(type="srresnet-perceptual", losses=[LossSpec(type="l1")])
    assert resolve_spec(own, stage_type).losses == [LossSpec(type="l1")]
    with pytest.raises(ValueError, match="perceptual_weight set its default losses"):
        resolve_spec(own.model_copy(update={"options": {"perceptual_weight": 1.0}}), stage_type)


def test_the_stored_config_lists_every_loss_with_its_validated_options():
    pipe = _pipeline({"type": "adversarial", "options": {"width": 8, "blocks": 1, "disc_width": 8}})
    l1, adversarial = pipe.config.stages[1].losses
    assert l1.type == "l1" and adversarial.options["disc_width"] == 8
    assert adversarial.options["gan_loss"] == "hinge"  # defaults written out
    assert "disc_width" not in pipe.config.stages[1].options


def test_a_network_is_a_stage_whose_losses_the_spec_gives():
    pipe = _pipeline(
        {"type": "resnet", "options": {"width": 8, "blocks": 1}, "losses": [{"type": "l1"}, {"type": "gradient", "weight": 2}]}
    )
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    terms = pipe.objective.logged_terms(x, pipe(x))
    assert {"stage1/l1", "stage1/gradient"} <= set(terms)
    assert all(torch.isfinite(v) for v in terms.values())
    # without losses a network trains on nothing: its stage contributes no term
    bare = _pipeline({"type": "resnet", "options": {"width": 8, "blocks": 1}})
    assert not [k for k in bare.objective.logged_terms(x, bare(x)) if k.startswith("stage1/")]


def test_unknown_loss_and_duplicate_names_are_refused_with_their_names():
    with pytest.raises(PluginError, match="no loss named 'sharpen' is installed.*Installed: .*l1"):
        _pipeline({"type": "resnet", "losses": [{"type": "sharpen"}]})
    with pytest.raises(ValueError, match="two losses named 'l1'; give one a name"):
        _pipeline({"type": "resnet", "losses": [{"type": "l1"}, {"type": "l1", "weight": 2}]})
    named = _pipeline(
        {
            "type": "resnet",
            "options": {"width": 8, "blocks": 1},
            "losses": [{"type": "l1"}, {"type": "l1", "name": "l1b", "weight": 2}],
        }
    )
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    terms = named.objective.logged_terms(x, named(x))
    assert torch.allclose(terms["stage1/l1b"], 2 * terms["stage1/l1"])


def test_loss_options_are_validated():
    with pytest.raises(ValueError, match=r"options of loss 'adversarial'.*unknown option 'colour'"):
        _pipeline({"type": "resnet", "losses": [{"type": "adversarial", "options": {"colour": 1}}]})
    with pytest.raises(ValueError, match="weight"):
        StageSpec(type="resnet", losses=[{"type": "l1", "weight": -1}])


class _Constant(Loss):
    def __init__(self, value, balanced=False):
        super().__init__()
        self.value, self.uses_reference = value, balanced
        self.seen_reference = None

    def forward(self, output, target, ctx):
        self.seen_reference = ctx.reference
        return (
            {"part": output.new_tensor(self.value), "other": output.new_tensor(1.0)}
            if self.value < 0
            else output.new_tensor(self.value)
        )


def test_terms_are_weighted_named_and_the_balancing_loss_sees_the_others():
    from stagegen.losses.binding import BoundLoss

    stage = torch.nn.Identity()
    stage.loss = lambda output, target, ctx: {"own": output.new_tensor(0.5)}
    balancing = _Constant(3.0, balanced=True)
    losses = [
        BoundLoss("late", 1.0, False, balancing),
        BoundLoss("a", 2.0, False, _Constant(1.0)),
        BoundLoss("multi", 10.0, True, _Constant(-1.0)),
    ]
    out = torch.zeros(1, 1, 2, 2)
    terms = stage_terms(stage, losses, out, out, LossContext(step=0), {})
    assert {k: float(v) for k, v in terms.items()} == {
        "own": 0.5,
        "a": 2.0,
        "multi.part": -10.0,
        "multi.other": 10.0,
        "late": 3.0,
    }
    assert balancing.seen_reference.item() == pytest.approx(0.5 + 2.0 - 10.0 + 10.0)
