import pytest
import torch

from stagegen.losses import TimmFeatures
from stagegen.pipeline import Pipeline
from stagegen.weights import MissingWeightsError

from ..conftest import tiny_pipeline_config


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch" / "hub"))
    return tmp_path


@pytest.mark.parametrize("backbone", ["lpips-vgg", "lpips-alex", "lpips-squeeze"])
def test_missing_lpips_weights_give_one_clear_message_before_building(empty_caches, backbone, monkeypatch):
    import lpips

    def must_not_run(*a, **k):
        raise AssertionError("the network was touched before the weights were checked")

    monkeypatch.setattr(lpips, "LPIPS", must_not_run)
    config = tiny_pipeline_config(("vae", "srresnet-perceptual"))
    config.stages[1].options.update(pretrained=True, backbone=backbone)
    with pytest.raises(MissingWeightsError) as err:
        Pipeline(config)
    message = str(err.value)
    assert ".pth" in message and str(empty_caches) in message and "weights_path" in message


def test_missing_timm_weights_message(empty_caches, monkeypatch):
    import timm

    monkeypatch.setattr(timm, "create_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("touched")))
    with pytest.raises(MissingWeightsError, match="resnet18.*Hugging Face cache"):
        TimmFeatures("resnet18", pretrained=True)


def test_weights_path_that_does_not_exist(empty_caches):
    config = tiny_pipeline_config(("vae", "srresnet-perceptual"))
    config.stages[1].options.update(pretrained=True, weights_path=str(empty_caches / "nope.pth"))
    with pytest.raises(MissingWeightsError, match="nope.pth does not exist"):
        Pipeline(config)


def test_explicit_weights_path_loads_a_torchvision_backbone(tmp_path):
    import torchvision

    state = torchvision.models.alexnet(weights=None).state_dict()
    state = {k: torch.full_like(v, 0.01) for k, v in state.items()}
    torch.save(state, tmp_path / "alex.pth")
    config = tiny_pipeline_config(("vae", "srresnet-perceptual"))
    config.stages[1].options.update(pretrained=True, backbone="lpips-alex", weights_path=str(tmp_path / "alex.pth"))
    pipe = Pipeline(config)
    net = pipe.objective.losses[1][1].loss.network.metric.net
    assert torch.all(net.slice1[0].weight == 0.01)


def test_timm_backbone_with_random_weights_trains():
    config = tiny_pipeline_config(("vae", "srresnet-perceptual"))
    config.stages[1].options.update(backbone="timm:resnet18", pretrained=False)
    pipe = Pipeline(config).train()
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    terms = pipe.objective.logged_terms(x, pipe(x))
    assert torch.isfinite(terms["stage1/perceptual"]) and terms["stage1/perceptual"] > 0
    terms["stage1/perceptual"].backward()
    assert pipe.stages[1].head[0].weight.grad is not None
    # the loss network is not part of the generator
    assert not any("loss_network" in k or "metric" in k for k in pipe.state_dict())


def test_a_perceptual_loss_of_weight_zero_needs_no_weights(empty_caches):
    config = tiny_pipeline_config(("vae", "srresnet-perceptual"))
    config.stages[1].options.update(pretrained=True, backbone="lpips-vgg", perceptual_weight=0.0)
    pipe = Pipeline(config).train()
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    assert [k for k in pipe.objective.logged_terms(x, pipe(x)) if k.startswith("stage1/")] == ["stage1/l1"]
