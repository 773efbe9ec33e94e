"""Names that moved keep working where stagegen 0.2 documented them: each gives the very object
at its new home, with one FutureWarning that names that home; names that did not move give no
warning at all. The table is docs/plugins.md's section 9 as released in 0.2."""

import importlib
import warnings

import pytest
import torch

from stagegen import _deprecated

RELEASE_0_2_CONTRACT = {
    "stagegen": ["hookimpl", "load", "Pipeline", "__version__"],
    "stagegen.stages": [
        "StageType",
        "NetworkType",
        "StageOptions",
        "BuildContext",
        "LossContext",
        "Posterior",
        "Trunk",
        "Refiner",
        "Stage",
        "Upgrade",
    ],
    "stagegen.loss_types": ["LossType", "LossOptions", "LossBuildContext", "Loss"],
    "stagegen.prior": ["PriorType", "PriorOptions", "PriorContext", "Prior", "LatentSet"],
    "stagegen.data": ["DatasetType", "DatasetOptions", "DataRequest", "DataError", "TensorImages"],
    "stagegen.metrics": ["MetricType", "MetricContext"],
    "stagegen.metrics.resources": ["ResourceType", "ResourceRequest"],
    "stagegen.layers": ["conv_bn_act", "ResidualBlock", "PixelShuffleUpsampler"],
    "stagegen.losses": [
        "pixel_loss",
        "perceptual_network",
        "LPIPSFeatures",
        "TimmFeatures",
        "discriminator_loss",
        "generator_loss",
        "adaptive_weight",
        "r1_penalty",
        "feature_matching",
        "PixelLoss",
        "GanLoss",
    ],
    "stagegen.weights": ["MissingWeightsError", "load_state_file", "missing_weights"],
    "stagegen.options": ["StrictModel", "validate_options"],
    "stagegen.io": ["atomic_write"],
    "stagegen.plugins": ["PluginManager", "PluginError"],
    "stagegen.presets": ["Preset", "compose_run_config", "preset"],
    "stagegen.train": ["Callback", "CallbackType", "StepOutcome", "TrainState", "train_step", "train", "resume"],
}

#: old place -> where the name lives now (everything else did not move)
MOVED = {
    "stagegen.stages.LossContext": "stagegen.losses.LossContext",
    **{f"stagegen.loss_types.{n}": f"stagegen.losses.{n}" for n in RELEASE_0_2_CONTRACT["stagegen.loss_types"]},
    **{f"stagegen.prior.{n}": f"stagegen.priors.{n}" for n in RELEASE_0_2_CONTRACT["stagegen.prior"]},
    "stagegen.losses.PixelLoss": "stagegen.losses.PixelKind",
    "stagegen.options.StrictModel": "stagegen.config.options.StrictModel",
    "stagegen.options.validate_options": "stagegen.config.options.validate_options",
    "stagegen.io.atomic_write": "stagegen.files.atomic_write",
    "stagegen.plugins.PluginManager": "stagegen.plugin.PluginManager",
    "stagegen.plugins.PluginError": "stagegen.plugin.PluginError",
    **{f"stagegen.presets.{n}": f"stagegen.config.presets.{n}" for n in RELEASE_0_2_CONTRACT["stagegen.presets"]},
}


@pytest.fixture(autouse=True)
def fresh_warnings():
    """Each test sees the first use of a name (the warnings are once per process)."""
    saved = set(_deprecated._warned)
    _deprecated._warned.clear()
    yield
    _deprecated._warned.clear()
    _deprecated._warned.update(saved)


def _get(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("dotted", [f"{m}.{n}" for m, names in RELEASE_0_2_CONTRACT.items() for n in names], ids=lambda d: d)
def test_every_name_of_the_0_2_contract_still_works(dotted):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = _get(dotted)
    messages = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    if dotted in MOVED:
        assert value is _get(MOVED[dotted])
        assert len(messages) == 1 and dotted in messages[0] and MOVED[dotted] in messages[0], messages
    else:
        assert messages == [], f"{dotted} did not move, yet warns: {messages}"


def test_a_moved_name_warns_once_per_process():
    with pytest.warns(FutureWarning, match=r"stagegen\.loss_types\.Loss is deprecated.*use stagegen\.losses\.Loss"):
        from stagegen.loss_types import Loss  # noqa: F401
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from stagegen.loss_types import Loss  # noqa: F401, F811  (the second use is silent)


def test_a_name_that_never_existed_is_still_an_attribute_error():
    with pytest.raises(ImportError):
        from stagegen.plugins import no_such_name  # noqa: F401
    with pytest.raises(AttributeError):
        importlib.import_module("stagegen.losses").no_such_name  # noqa: B018


def test_every_module_that_moved_is_importable_under_its_old_name():
    for old, homes in _deprecated.MOVED_MODULES.items():
        module = importlib.import_module(old)
        assert module.__name__ == old and homes


def test_the_pipelines_old_objective_methods_warn_and_give_the_objectives_values():
    from stagegen.config import PipelineConfig
    from stagegen.pipeline import Pipeline

    pipe = Pipeline(PipelineConfig(image_size=8, channels=1, stages=[{"type": "vae"}, {"type": "resnet-l1"}]))
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    torch.manual_seed(0)
    out = pipe(x)
    with pytest.warns(FutureWarning, match=r"Pipeline\.losses is deprecated.*Pipeline\.objective\.logged_terms"):
        old = pipe.losses(x, out)
    new = pipe.objective.logged_terms(x, out)
    assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in new)
    with pytest.warns(FutureWarning, match=r"Pipeline\.stage_losses"):
        assert pipe.stage_losses is pipe.objective.losses
    with pytest.warns(FutureWarning, match=r"Pipeline\.wants_samples"):
        assert pipe.wants_samples(0) is pipe.objective.wants_samples(0)


def test_a_renamed_type_warns_once_naming_its_current_name(plugin_manager):
    import types

    import stagegen
    from stagegen.stages import StageType

    module = types.ModuleType("renamer")

    def register_stages(register):
        register(StageType(name="paper-l1", kind="refiner", network="resnet", renamed_from=("old-l1",)))

    module.register_stages = stagegen.hookimpl(register_stages)
    plugin_manager.register(module)
    with pytest.warns(FutureWarning, match=r"stage type name 'old-l1' is deprecated.*'paper-l1'"):
        assert plugin_manager.stages.get("old-l1").name == "paper-l1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plugin_manager.stages.get("old-l1")
        plugin_manager.stages.get("paper-l1")


def test_a_stage_with_the_0_2_extra_module_signature_is_called_the_old_way():
    from stagegen.train.auxiliary import _takes_output_and_target

    class Old:
        def auxiliary_loss(self, auxiliary, output, target, ctx):
            return {}

    class New:
        def auxiliary_loss(self, auxiliary, real, fakes, ctx):
            return {}

    with pytest.warns(FutureWarning, match=r"auxiliary_loss\(auxiliary, real, fakes, ctx\)"):
        assert _takes_output_and_target(Old())
    assert not _takes_output_and_target(New())
