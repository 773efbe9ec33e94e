"""The plugin contract, in one place: the hooks, the nine types a plugin registers, and the
manager that finds plugins through the ``stagegen`` entry-point group.

A plugin module implements hooks with ``@stagegen.hookimpl`` (:mod:`.hookspecs`); each hook
gets a ``register`` callable for one kind of thing:

==========================  ==========================================  =========================
hook                        registers                                   contract
==========================  ==========================================  =========================
register_stages             :class:`StageType`                          :mod:`stagegen.stages`
register_networks           :class:`NetworkType`                        :mod:`stagegen.stages`
register_losses             :class:`LossType`                           :mod:`stagegen.losses`
register_priors             :class:`PriorType`                          :mod:`stagegen.priors`
register_datasets           :class:`DatasetType`                        :mod:`stagegen.data`
register_metrics            :class:`MetricType`                         :mod:`stagegen.metrics`
register_metric_resources   :class:`ResourceType`                       :mod:`stagegen.metrics`
register_presets            :class:`Preset`                             :mod:`stagegen.config`
register_callbacks          :class:`CallbackType`                       :mod:`stagegen.train`
==========================  ==========================================  =========================

Every name below is importable from here (``from stagegen.plugin import LossType, Loss``);
they load on first use, so a plugin that imports this module stays cheap to import.
"""

from __future__ import annotations

import importlib
from typing import Any

from .hookspecs import hookimpl, hookspec

#: name -> the module that defines it
_CONTRACT = {
    **dict.fromkeys(
        ["StageType", "NetworkType", "StageOptions", "BuildContext", "Stage", "Trunk", "Refiner", "Posterior", "Upgrade"],
        "stagegen.stages.contract",
    ),
    **dict.fromkeys(["LossType", "Loss", "LossOptions", "LossBuildContext"], "stagegen.losses.contract"),
    **dict.fromkeys(["LossContext", "AuxiliaryOwner"], "stagegen.losses.context"),
    **dict.fromkeys(["PriorType", "Prior", "PriorOptions", "PriorContext", "LatentSet"], "stagegen.priors.contract"),
    "DatasetType": "stagegen.data.registry",
    **dict.fromkeys(["MetricType", "MetricContext"], "stagegen.metrics.registry"),
    **dict.fromkeys(["ResourceType", "ResourceRequest"], "stagegen.metrics.resources"),
    "Preset": "stagegen.config.presets",
    **dict.fromkeys(["CallbackType", "Callback"], "stagegen.train.callbacks"),
    "StrictModel": "stagegen.config.options",
    **dict.fromkeys(
        [
            "PluginManager",
            "get_plugin_manager",
            "reset_plugin_manager",
            "get_stage_type",
            "get_network_type",
            "get_loss_type",
            "get_dataset_type",
            "get_prior_type",
            "get_metric_type",
        ],
        "stagegen.plugin.manager",
    ),
    **dict.fromkeys(["PluginError", "Provider", "Registry", "ENTRY_POINT_GROUP", "PLUGINS_ENV"], "stagegen.plugin.registry"),
}

__all__ = ["hookimpl", "hookspec", *sorted(_CONTRACT)]


def __getattr__(name: str) -> Any:
    if name not in _CONTRACT:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_CONTRACT[name]), name)
    globals()[name] = value  # found once
    return value


def __dir__() -> list[str]:
    return __all__
