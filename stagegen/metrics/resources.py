"""What metrics read besides images: resources (a classifier, a feature network) that plugins
supply.

A metric declares what it ``needs``: ``reconstructions``, ``samples``, or a resource by name.
A resource is registered through the ``register_metric_resources`` hook as a
:class:`ResourceType` whose ``provide(request)`` returns the resource for the data being
evaluated, or None where it has none to offer (no digit classifier for faces): the metrics that
need it are then left out of the report. ``evaluate`` and the CLI know no resource by name.
The built-ins (``classifier``, ``fid_features``, ``tf_inception``, ``lpips``) register below like any plugin's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..optional import OptionalImportError
from ..plugin.hookspecs import hookimpl

__all__ = ["INPUTS", "ResourceRequest", "ResourceType", "provide_resources"]

#: what an evaluation can give a metric without a resource (``label_samples``: only a pipeline
#: with a conditional prior, :mod:`stagegen.priors.per_label`; metrics that need them are left out otherwise)
INPUTS = ("reconstructions", "samples", "label_samples")


@dataclass
class ResourceRequest:
    """What a resource provider may read: the data evaluated (its registered name and root),
    the options of the command (``classifier``, ``fid_features``, ``mnist_root``,
    ``inception_weights``, ``tf_inception_weights``, ``device`` for the built-ins, ``--resource-option KEY=VALUE`` for any), and
    ``get(name)``, another resource (the FID features reuse the classifier)."""

    data_name: str
    data_root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    get: Callable[[str], Any] = lambda name: None
    note: Callable[[str], None] = lambda text: None  # a line for the user (a resource skipped, and why)


@dataclass(frozen=True, kw_only=True)
class ResourceType:
    """A registered resource: ``provide(request)`` returns it for this data, or None."""

    name: str
    provide: Callable[[ResourceRequest], Any]
    description: str = ""


def provide_resources(
    names: set[str] | list[str], data_name: str, data_root: str | None = None, options: dict[str, Any] | None = None, note=None
) -> dict[str, Any]:
    """Every named resource (None where its provider has none for this data), each provided once."""
    from ..plugin.manager import get_plugin_manager

    registry = get_plugin_manager().metric_resources
    provided: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in provided:
            if name not in registry:
                raise ValueError(
                    f"no plugin provides the metric resource {name!r}; installed: {', '.join(registry.names()) or 'none'}"
                )
            provided[name] = registry.get(name).provide(request)
        return provided[name]

    request = ResourceRequest(data_name, data_root, dict(options or {}), get, note or (lambda text: None))
    return {name: get(name) for name in sorted(names)}


# ---------------------------------------------------------------------------- the built-ins


def _digit_classifier_name(choice: str, data_name: str) -> str | None:
    """auto: the digit classifier of a digit dataset; nothing for other images."""
    if choice == "auto":
        return data_name if data_name in ("mnist", "digits") else None
    return None if choice == "none" else choice


def _mnist_root(request: ResourceRequest) -> str | None:
    return request.options.get("mnist_root") or (request.data_root if request.data_name == "mnist" else None)


def _classifier(request: ResourceRequest):
    from .classifiers import Classifier

    name = _digit_classifier_name(request.options.get("classifier", "auto"), request.data_name)
    return Classifier(name, _mnist_root(request)) if name else None


def _fid_features(request: ResourceRequest):
    from .fid import ClassifierFeatures, InceptionFeatures

    choice = request.options.get("fid_features", "auto")
    name = _digit_classifier_name(choice, request.data_name) if choice == "auto" else choice
    if name in ("mnist", "digits"):
        from .classifiers import Classifier

        shared = request.get("classifier") if request.options.get("classifier", "auto") != "none" else None
        same = shared is not None and shared.name == name
        return ClassifierFeatures(classifier=shared if same else Classifier(name, _mnist_root(request)))
    if name == "inception" or choice == "auto":
        from ..weights import MissingWeightsError

        try:
            return InceptionFeatures(request.options.get("inception_weights"))
        except OptionalImportError as exc:
            request.note(f"FID skipped: {exc}")
        except MissingWeightsError as exc:
            if choice != "auto":
                raise
            request.note(f"FID skipped ({exc})")
    return None


def _tf_inception(request: ResourceRequest):
    """The TF-FID network from the weights the user has; without them, a note (once) and None,
    unless the user named a file, which must then be right."""
    from ..weights import MissingWeightsError
    from .tf_inception import TFInceptionFeatures

    path = request.options.get("tf_inception_weights")
    try:
        return TFInceptionFeatures(path, device=request.options.get("device", "cpu"))
    except OptionalImportError as exc:
        request.note(f"TF-FID and KID skipped: {exc}")
    except MissingWeightsError as exc:
        if path:
            raise
        request.note(f"TF-FID and KID skipped: {exc}")
    return None


def _lpips(request: ResourceRequest):
    from ..losses.perceptual import LPIPSFeatures

    return LPIPSFeatures("alex", pretrained=True)


@hookimpl
def register_metric_resources(register):
    register(
        ResourceType(
            name="classifier",
            provide=_classifier,
            description="the project's digit classifier for mnist and digits data (option classifier: auto, mnist, digits, none)",
        )
    )
    register(
        ResourceType(
            name="fid_features",
            provide=_fid_features,
            description="FID features: the digit classifier's for digit data, Inception-v3 where its weights are "
            "(option fid_features: auto, mnist, digits, inception)",
        )
    )
    register(
        ResourceType(
            name="tf_inception",
            provide=_tf_inception,
            description="the TF-FID Inception network papers report FID and KID with (option tf_inception_weights: its "
            "file, by default torch-fidelity's download location)",
        )
    )
    register(ResourceType(name="lpips", provide=_lpips, description="the LPIPS network (needs its weights)"))
