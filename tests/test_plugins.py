import types

import pytest

import stagegen
from stagegen.plugins import PluginError, PluginManager, get_plugin_manager, reset_plugin_manager
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
