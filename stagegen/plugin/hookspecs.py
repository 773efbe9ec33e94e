"""The plugin hooks. A plugin module implements any of these with ``@stagegen.hookimpl``.

Each hook receives a ``register`` callable and calls it once per thing it provides, so one
plugin module can add several things of a kind and the registry knows which module provided
each (needed for the "duplicate name" error and for the version recorded in files). The types
they register are all importable from :mod:`stagegen.plugin`.
"""

import pluggy

hookspec = pluggy.HookspecMarker("stagegen")
hookimpl = pluggy.HookimplMarker("stagegen")


@hookspec
def register_stages(register):
    """Register stage types (self-contained, or compositions of a network and losses): call
    ``register(StageType(...))`` once per stage type."""


@hookspec
def register_networks(register):
    """Register refiner networks: call ``register(NetworkType(...))`` once per network."""


@hookspec
def register_losses(register):
    """Register loss types: call ``register(LossType(...))`` once per loss."""


@hookspec
def register_datasets(register):
    """Register datasets: call ``register(DatasetType(...))`` once per dataset."""


@hookspec
def register_priors(register):
    """Register latent priors: call ``register(PriorType(...))`` once per prior type."""


@hookspec
def register_metrics(register):
    """Register evaluation metrics: call ``register(MetricType(...))`` once per metric."""


@hookspec
def register_metric_resources(register):
    """Register what metrics may need besides images (a classifier, a feature network): call
    ``register(ResourceType(...))`` once per resource (stagegen.metrics.resources)."""


@hookspec
def register_presets(register):
    """Register presets (named starting configurations): call ``register(Preset(...))`` once per preset."""


@hookspec
def register_callbacks(register):
    """Register training callbacks: call ``register(CallbackType(...))`` once per callback;
    every run builds each (its ``build(config)`` may return None to stay out of a run)."""
