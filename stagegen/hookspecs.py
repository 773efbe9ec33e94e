"""The plugin hooks. A plugin module implements any of these with ``@stagegen.hookimpl``.

Each hook receives a ``register`` callable and calls it once per thing it provides, so one
plugin module can add several stages or datasets and the registry knows which module
provided each (needed for the "duplicate name" error and for the version recorded in files).
"""

import pluggy

hookspec = pluggy.HookspecMarker("stagegen")
hookimpl = pluggy.HookimplMarker("stagegen")


@hookspec
def register_stages(register):
    """Register stage types: call ``register(StageType(...))`` once per stage type."""


@hookspec
def register_datasets(register):
    """Register datasets: call ``register(DatasetType(...))`` once per dataset."""


@hookspec
def register_priors(register):
    """Register latent priors: call ``register(PriorType(...))`` once per prior type."""


@hookspec
def register_metrics(register):
    """Register evaluation metrics: call ``register(MetricType(...))`` once per metric."""
