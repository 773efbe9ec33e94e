"""Optional dependencies (torch-fidelity, lpips, timm, torchvision), imported where they are used,
with one clear message when one cannot be.

A broken install does not raise ImportError alone: torchvision built for another release of
torch fails with "RuntimeError: operator torchvision::nms does not exist" on import, and every
package that imports torchvision (torch-fidelity, lpips, timm) with it. A command that can do
without the piece (``eval`` without one metric) leaves it out and says why; one that cannot (a
perceptual loss) stops with that reason, not with the error of a bug.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

__all__ = ["OptionalImportError", "import_problem", "require"]


class OptionalImportError(ImportError):
    """An optional dependency a feature needs cannot be imported here; the message says why."""


@functools.cache
def import_problem(module: str) -> str | None:
    """Why ``module`` cannot be imported here ("ModuleNotFoundError: ...", or what a broken
    torchvision means), or None when it can. Tried once per process (a failed import can leave
    half a package behind, which a second attempt would misread)."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # a broken install raises anything
        return _describe(module, exc)
    return None


def _describe(module: str, exc: Exception) -> str:
    text = " ".join(str(exc).split())[:300]
    if "torchvision::" in text and "does not exist" in text:
        import torch

        return (
            f"the installed torchvision {_version('torchvision')} was built for another release of torch than this one "
            f"({torch.__version__}); install the torchvision release made for it "
            f"(https://pytorch.org/get-started/previous-versions/) ({text})"
        )
    return f"{type(exc).__name__}: {text}"


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "(version unknown)"


def require(module: str, purpose: str) -> ModuleType:
    """``module``, imported; or :class:`OptionalImportError` saying that ``purpose`` needs it and why
    it cannot be imported."""
    problem = import_problem(module)
    if problem is not None:
        raise OptionalImportError(f"{purpose} needs {module}, which cannot be imported here: {problem}")
    return importlib.import_module(module)
