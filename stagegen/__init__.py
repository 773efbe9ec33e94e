"""stagegen: coarse-to-fine image generation with multi-stage variational auto-encoders.

A VAE trunk makes a coarse image; a chain of refiner plugins, each with its own loss, makes
it sharp (Cai, Gao, Ji, 2017). Load a trained pipeline with :func:`load`.
"""

__version__ = "0.3.0"

from . import _deprecated  # noqa: E402
from .plugin.hookspecs import hookimpl  # noqa: E402  (plugins import the marker from here)

_deprecated.install()  # modules that moved keep working under their old names, with a warning


def load(path, device="cpu", channels_last=True):
    """Load a pipeline file (``.safetensors``) in eval mode; see :meth:`Pipeline.sample`."""
    from .pipeline import Pipeline

    return Pipeline.load(path, device=device, channels_last=channels_last)


def __getattr__(name):
    # Heavy modules (torch) load on first use, so `import stagegen` in a plugin stays cheap.
    if name == "Pipeline":
        from .pipeline import Pipeline

        return Pipeline
    if name in {"PipelineConfig", "StageSpec", "RunConfig", "TrainConfig", "DataConfig"}:
        from .config import models as config

        return getattr(config, name)
    raise AttributeError(f"module 'stagegen' has no attribute {name!r}")


__all__ = ["__version__", "hookimpl", "load", "Pipeline", "PipelineConfig", "StageSpec", "RunConfig"]
