import types

import pytest

import stagegen
from stagegen.plugin import PluginError, PluginManager, get_plugin_manager, reset_plugin_manager
from stagegen.stages import StageOptions, StageType

BUILTIN_STAGES = {"vae", "resnet-l1", "resnet-l2", "srresnet-perceptual", "adversarial"}


def _plugin_module(name, stage_name, kind="refiner"):
    module = types.ModuleType(name)

    class Options(StageOptions):
        width: int = 4

    @stagegen.hookimpl
    def register_stages(register):
        register(StageType(name=stage_name, kind=kind, options=Options, build=lambda o, ctx: None, description="test stage"))

    module.register_stages = register_stages
    return module


def test_builtins_come_through_entry_points(plugin_manager):
    assert BUILTIN_STAGES <= set(plugin_manager.stages.names())
    # every built-in is provided by the installed distribution, found as an entry point
    for name in BUILTIN_STAGES:
        assert plugin_manager.stages.provider(name).package == "stagegen"
    assert "digits" in plugin_manager.datasets.names()


def test_registered_plugin_appears(plugin_manager):
    plugin_manager.register(_plugin_module("my_plugin", "my-refiner"))
    assert "my-refiner" in plugin_manager.stages.names()
    assert plugin_manager.stages.provider("my-refiner").package == "my_plugin"


def test_duplicate_name_names_both_providers(plugin_manager):
    plugin_manager.register(_plugin_module("other_package", "resnet-l1"))
    with pytest.raises(PluginError) as err:
        plugin_manager.stages.names()
    message = str(err.value)
    assert "resnet-l1" in message and "other_package" in message and "stagegen" in message


def test_unknown_option_is_refused_with_its_name(plugin_manager):
    stage_type = plugin_manager.stages.get("resnet-l1")
    with pytest.raises(ValueError, match="unknown option 'depth'.*known options: width"):
        stage_type.validate_options({"depth": 3})
    with pytest.raises(ValueError, match="blocks"):
        stage_type.validate_options({"blocks": -1})


def test_unknown_stage_names_what_is_installed(plugin_manager):
    with pytest.raises(PluginError, match="no stage type named 'nope'.*Installed: .*resnet-l1"):
        plugin_manager.stages.get("nope")


def test_env_variable_restricts_plugins(monkeypatch):
    monkeypatch.setenv("STAGEGEN_PLUGINS", "vae")
    reset_plugin_manager()
    names = get_plugin_manager().stages.names()
    assert names == ["vae"]
    with pytest.raises(PluginError, match="STAGEGEN_PLUGINS='vae' restricts"):
        get_plugin_manager().stages.get("resnet-l1")
    monkeypatch.setenv("STAGEGEN_PLUGINS", "")
    assert PluginManager().stages.names() == []


def test_every_option_is_documented_with_a_default(plugin_manager):
    for name in plugin_manager.stages.names():
        options = plugin_manager.stages.get(name).options
        assert options.model_config.get("extra") == "forbid", name
        for field_name, field in options.model_fields.items():
            assert field.description, f"{name}.{field_name} has no description"
            assert not field.is_required(), f"{name}.{field_name} has no default"


def test_a_broken_plugin_is_named(plugin_manager):
    module = types.ModuleType("broken_plugin")

    @stagegen.hookimpl
    def register_stages(register):
        raise RuntimeError("boom")

    module.register_stages = register_stages
    plugin_manager.register(module)
    with pytest.raises(PluginError, match="broken_plugin.*register_stages.*boom.*STAGEGEN_PLUGINS"):
        plugin_manager.stages.names()


def _hooks(name, **hooks):
    module = types.ModuleType(name)
    for hook, items in hooks.items():

        def implementation(register, _items=items):
            for item in _items:
                register(item)

        implementation.__name__ = hook
        setattr(module, hook, stagegen.hookimpl(implementation))
    return module


def test_networks_and_losses_have_registries_and_compositions_resolve_against_them(plugin_manager):
    assert {"resnet", "srresnet"} <= set(plugin_manager.networks.names())
    assert {"l1", "adversarial", "perceptual"} <= set(plugin_manager.losses.names())
    composed = plugin_manager.stages.get("resnet-gan")
    network = plugin_manager.networks.get("resnet")
    assert composed.build is network.build and composed.options is not network.options
    assert composed.options().output == "residual" and network.options().output == "image"  # its own defaults
    assert plugin_manager.stages.get("resnet").losses == ()  # a network is a stage without losses


def test_a_composition_of_a_missing_network_names_it():
    from stagegen.stages import StageType

    manager = PluginManager(load_entry_points=False)
    manager.register(_hooks("orphan", register_stages=[StageType(name="x-l1", kind="refiner", network="unet", description="x")]))
    with pytest.raises(
        PluginError, match="'x-l1' from .* is composed from the network 'unet', which no installed plugin provides"
    ):
        manager.stages.names()


def test_a_network_may_not_take_a_stage_types_name(plugin_manager):
    from stagegen.stages import NetworkType

    clash = NetworkType(name="resnet-l1", options=StageOptions, build=lambda o, ctx: None, description="clash")
    plugin_manager.register(_hooks("clashing", register_networks=[clash]))
    with pytest.raises(PluginError, match="'resnet-l1' is registered twice"):
        plugin_manager.stages.names()


def test_composition_defaults_must_be_options_of_the_network(plugin_manager):
    from stagegen.stages import StageType

    bad = StageType(name="x-gan", kind="refiner", network="resnet", network_defaults={"colour": 1}, description="x")
    plugin_manager.register(_hooks("bad_defaults", register_stages=[bad]))
    with pytest.raises(PluginError, match=r"'x-gan' sets defaults for \['colour'\]"):
        plugin_manager.stages.names()
