"""Every built-in refiner: shapes per scale, named finite loss terms, options, gradient flow."""

import pytest
import torch

from stagegen.config import StageSpec
from stagegen.pipeline import Pipeline
from stagegen.plugin import get_plugin_manager
from stagegen.stages.composition import resolve_spec

from ..conftest import TINY_REFINERS, tiny_pipeline_config

REFINERS = ["resnet-l1", "resnet-l2", "srresnet-perceptual", "adversarial"]
EXPECTED_TERMS = {
    "resnet-l1": {"l1"},
    "resnet-l2": {"l2"},
    "srresnet-perceptual": {"l1", "perceptual"},
    "adversarial": {"l1", "adversarial"},
}


def _build(name, scale=1, detach=False):
    return Pipeline(tiny_pipeline_config(("vae", name), image_size=16, scales=[scale], detach_input=detach)).train()


def _aux(pipe):
    from stagegen.train.auxiliary import build_auxiliaries

    return build_auxiliaries(pipe)


@pytest.mark.parametrize("name", REFINERS)
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_output_shape_for_each_scale(name, scale):
    pipe = _build(name, scale)
    assert pipe.resolutions == [16 // scale, 16]
    y = pipe.stages[1](torch.rand(2, 1, 16 // scale, 16 // scale) * 2 - 1)
    assert y.shape == (2, 1, 16, 16)
    assert y.abs().max() <= 1


@pytest.mark.parametrize("name", REFINERS)
def test_loss_terms_are_named_and_finite(name):
    pipe = _build(name)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    terms = pipe.objective.logged_terms(x, pipe(x), step=0, auxiliaries=_aux(pipe))
    stage1 = {k.split("/", 1)[1] for k in terms if k.startswith("stage1/")}
    assert stage1 == EXPECTED_TERMS[name]
    assert all(torch.isfinite(v) and v.dim() == 0 for v in terms.values())


@pytest.mark.parametrize("name", REFINERS)
def test_options_validate(name):
    stage_type = get_plugin_manager().stages.get(name)
    spec = resolve_spec(StageSpec(type=name, options=TINY_REFINERS[name]), stage_type)
    assert stage_type.validate_options(spec.options).width == 8
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        stage_type.validate_options({"colour": "red"})
    with pytest.raises(ValueError, match="width"):
        stage_type.validate_options({"width": 0})


@pytest.mark.parametrize("name", REFINERS)
@pytest.mark.parametrize("detach", [False, True])
def test_gradient_reaches_previous_stage_only_when_joint(name, detach):
    pipe = _build(name, detach=detach)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    terms = pipe.objective.logged_terms(x, pipe(x), step=0, auxiliaries=_aux(pipe))
    sum(v for k, v in terms.items() if k.startswith("stage1/")).backward()
    grad = pipe.trunk.decoder[0].weight.grad
    assert (grad is not None and bool(grad.abs().sum() > 0)) is (not detach)
    # the refiner itself always learns from its own loss
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in pipe.stages[1].parameters())
