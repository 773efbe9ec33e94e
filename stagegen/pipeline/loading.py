"""Loading a pipeline file without trusting it.

Nothing is allocated before the file is known to match: the network its config describes is
first built on the meta device and compared with the file's tensors (names, shapes, dtypes)
and size; stages written by another version of their plugin pass through its upgrade hook;
non-finite weights are refused by name. The file format itself is in :mod:`.pipeline_file`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from ..config.models import PipelineConfig
from ..config.options import describe_validation_error
from ..devices import resolve_device
from ..plugin.manager import get_plugin_manager
from .file import DTYPE_NAMES, PipelineFileError, PipelineHeader, read_header

__all__ = ["load_pipeline"]

#: the weights a file may make us allocate beyond its own tensor bytes (non-persistent buffers, slack)
ALLOCATION_SLACK_BYTES = 64 * 1024 * 1024
ALLOCATION_FACTOR = 1.5


def _version_note(config: PipelineConfig, header: PipelineHeader) -> str:
    """Which stages were written by another version of their plugin than the installed one."""
    registry = get_plugin_manager().stages
    recorded = {r.index: r for r in header.document.stages}
    changed = []
    for i, spec in enumerate(config.stages):
        record = recorded.get(i)
        installed = registry.provider(spec.type).version
        if record is not None and record.package_version and record.package_version != installed:
            changed.append(
                f"stage {i} ({spec.type}) was written by {record.package} {record.package_version}, {installed} is installed"
            )
    if not changed:
        return ""
    return (
        " (" + "; ".join(changed) + ": a plugin that renamed options or layers gives its stage type an upgrade "
        "hook, or install the version that wrote the file)"
    )


def _build(build, config: PipelineConfig, header: PipelineHeader, device: str | torch.device):
    try:
        with torch.device(device):
            return build(config)
    except (ValueError, TypeError) as exc:
        raise PipelineFileError(
            f"{header.path}: cannot rebuild the pipeline from its config: {exc}{_version_note(config, header)}"
        ) from None


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def upgrade_stage_tensors(
    config: PipelineConfig, versions: dict[int, str], tensors: dict[str, torch.Tensor], where: str
) -> tuple[PipelineConfig, dict[str, torch.Tensor]]:
    """Pass each stage written by another version of its plugin (``versions``: stage index ->
    the version that wrote it, "" when unknown) through its stage type's ``upgrade`` hook.
    ``tensors`` is keyed by full names (``stages.1.head.0.weight``); returns the new config and
    ``tensors`` with the upgraded stages' entries replaced. Used for pipeline files and training
    checkpoints alike."""
    registry = get_plugin_manager().stages
    specs, tensors = list(config.stages), dict(tensors)
    for i, spec in enumerate(specs):
        stage_type = registry.get(spec.type)
        written_by = versions.get(i, "")
        installed = registry.provider(spec.type).version
        if stage_type.upgrade is None or written_by == installed:
            continue
        what = f"stage {i} ({spec.type})"
        options = _run_upgrade_hook(stage_type.upgrade, spec.options, tensors, f"stages.{i}.", written_by, installed, what, where)
        specs[i] = spec.model_copy(update={"options": options})
    return config.model_copy(update={"stages": specs}), tensors


def upgrade_prior_tensors(
    config: PipelineConfig, version: str, tensors: dict[str, torch.Tensor], where: str
) -> tuple[PipelineConfig, dict[str, torch.Tensor]]:
    """The prior's options and tensors (``prior.*`` in ``tensors``) through its prior type's
    ``upgrade`` hook when ``version`` (who wrote them; "" when unknown) is not the installed one."""
    registry = get_plugin_manager().priors
    spec = config.prior
    prior_type, installed = registry.get(spec.type), registry.provider(spec.type).version
    if prior_type.upgrade is None or version == installed:
        return config, tensors
    tensors = dict(tensors)
    options = _run_upgrade_hook(
        prior_type.upgrade, spec.options, tensors, "prior.", version, installed, f"the {spec.type} prior", where
    )
    return config.model_copy(update={"prior": spec.model_copy(update={"options": options})}), tensors


def _run_upgrade_hook(
    hook, options, tensors: dict[str, torch.Tensor], prefix: str, written_by: str, installed: str, what: str, where: str
):
    """Run a plugin's upgrade hook on the options and the tensors under ``prefix`` (named
    relative to it), replacing those entries of ``tensors`` in place; returns the new options."""
    own = {k[len(prefix) :]: tensors.pop(k) for k in [k for k in tensors if k.startswith(prefix)]}
    try:
        options, own = hook(dict(options), own, written_by)
    except Exception as exc:  # a plugin's migration failing must name the plugin and the versions
        raise PipelineFileError(
            f"{where}: {what} was written by version {written_by or 'unknown'} of its plugin and its upgrade "
            f"to {installed} failed: {exc}"
        ) from None
    tensors.update({prefix + k: v for k, v in own.items()})
    return options


def _prior_is_stale(config: PipelineConfig, version: str) -> bool:
    registry = get_plugin_manager().priors
    return registry.get(config.prior.type).upgrade is not None and version != registry.provider(config.prior.type).version


def _upgrade(
    config: PipelineConfig, header: PipelineHeader
) -> tuple[PipelineConfig, dict[str, torch.Tensor], dict[str, dict[str, Any]]]:
    """Options and tensors of stages (and of the prior) written by another version of their
    plugin, through their type's ``upgrade`` hook. Returns the new config, the upgraded tensors
    and the tensor table they make (the header's, with theirs in place). Reading their tensors
    costs at most the file's size."""
    from safetensors import safe_open

    path = header.path
    registry = get_plugin_manager().stages
    versions = header.stage_versions()
    stale = [
        i
        for i, spec in enumerate(config.stages)
        if registry.get(spec.type).upgrade is not None and versions.get(i, "") != registry.provider(spec.type).version
    ]
    prior_version = header.prior_version
    prior_stale = config.prior.type in get_plugin_manager().priors and _prior_is_stale(config, prior_version)
    if not stale and not prior_stale:
        return config, {}, header.tensors
    prefixes = tuple(f"stages.{i}." for i in stale) + (("prior.",) if prior_stale else ())
    names = [k for k in header.tensors if k.startswith(prefixes)]
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            tensors = {k: f.get_tensor(k) for k in names}
    except Exception as exc:
        raise PipelineFileError(f"{path}: the tensor data is damaged or truncated ({exc})") from None
    config, replaced = upgrade_stage_tensors(config, {i: versions.get(i, "") for i in stale}, tensors, str(path))
    if prior_stale:
        config, replaced = upgrade_prior_tensors(config, prior_version, replaced, str(path))
    table = {k: v for k, v in header.tensors.items() if not k.startswith(prefixes)}
    table.update({k: {"shape": list(v.shape), "dtype": DTYPE_NAMES.get(v.dtype, str(v.dtype))} for k, v in replaced.items()})
    return config, replaced, table


def _check_against_file(skeleton, stored: dict[str, dict[str, Any]], path: Path) -> None:
    """Compare the network the config describes (built on the meta device: no memory) with the
    file's tensors, name by name, shape by shape, dtype by dtype, and bound what it would allocate."""
    file_bytes = path.stat().st_size
    needed = _tensor_bytes([*skeleton.parameters(), *skeleton.buffers()])
    budget = ALLOCATION_FACTOR * file_bytes + ALLOCATION_SLACK_BYTES
    if needed > budget:
        raise PipelineFileError(
            f"{path}: its config describes a network of {needed / 2**20:,.0f} MiB but the file holds only "
            f"{file_bytes / 2**20:,.1f} MiB of data (at most {budget / 2**20:,.0f} MiB would be allocated for it); "
            "refusing to build it: the file's config was altered or crafted"
        )
    expected = skeleton.state_dict()
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise PipelineFileError(
            f"{path}: the tensors do not match the pipeline its config describes: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for key, tensor in expected.items():
        shape = stored[key]["shape"]
        if shape != list(tensor.shape):
            raise PipelineFileError(
                f"{path}: tensor {key} has shape {shape} in the file but {list(tensor.shape)} in the pipeline"
            )
        want = DTYPE_NAMES.get(tensor.dtype, str(tensor.dtype))
        if stored[key]["dtype"] != want:
            raise PipelineFileError(
                f"{path}: tensor {key} is stored as {stored[key]['dtype']} but the pipeline holds {want}; "
                "the file was altered or written by a different network"
            )


def load_pipeline(path: str | Path, build, device: str | torch.device = "cpu", channels_last: bool = True):
    """Rebuild the pipeline with ``build(config)`` (``Pipeline.load`` passes the class, built for
    inference) and load its tensors strictly; eval mode.

    Nothing is allocated before the file is known to match: the network its config describes is
    first built on the meta device and compared with the file's tensors (names, shapes, dtypes)
    and size. Non-finite weights are refused by name. ``channels_last`` lays the weights out for
    faster convolutions (oneDNN, cuDNN); outputs then differ from the contiguous layout's in the
    last bits only."""
    device = resolve_device(device)
    header = read_header(path)
    path, doc = header.path, header.document
    try:
        config = PipelineConfig.model_validate(doc.config)
    except ValidationError as exc:
        raise PipelineFileError(f"{path}: " + describe_validation_error("pipeline config in the file", exc)) from None
    _check_stage_types_installed(config, doc, path)
    config, upgraded, table = _upgrade(config, header)
    try:
        skeleton = _build(build, config, header, "meta")
    except (RuntimeError, NotImplementedError):
        skeleton = None  # a plugin whose constructor computes with its tensors cannot be built on meta
    if skeleton is not None:
        _check_against_file(skeleton, table, path)
    pipeline = _build(build, config, header, "cpu")
    if skeleton is None:
        _check_against_file(pipeline, table, path)  # the same checks, after allocating (docs/security.md)
    pipeline.load_state_dict(_read_tensors(path, pipeline.state_dict(), upgraded), strict=True)
    _check_latent_models(pipeline, doc, config, path)
    pipeline.file_metadata = doc.as_dict()
    pipeline = pipeline.to(device).eval()
    if channels_last:
        pipeline.to(memory_format=torch.channels_last)
    return pipeline


def _check_stage_types_installed(config: PipelineConfig, doc, path: Path) -> None:
    registry = get_plugin_manager().stages
    recorded = {r.index: r for r in doc.stages}
    for i, spec in enumerate(config.stages):
        if spec.type not in registry:
            rec = recorded.get(i)
            package, version = (rec.package, rec.package_version) if rec is not None else ("unknown package", "")
            raise PipelineFileError(
                f"{path}: stage {i} is of type {spec.type!r}, which no installed plugin provides "
                f"(the file was written with it from {package} {version}). "
                f"Install that plugin package, then load again. {registry.installed_note()}"
            )


def _read_tensors(path: Path, expected: dict[str, torch.Tensor], upgraded: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The file's tensors under the pipeline's keys (upgraded ones from their plugin's hook), all finite."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {key: upgraded[key] if key in upgraded else f.get_tensor(key) for key in expected}
    except Exception as exc:  # safetensors reports truncated or overlapping data this way
        raise PipelineFileError(f"{path}: the tensor data is damaged or truncated ({exc})") from None
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise PipelineFileError(
                f"{path}: tensor {key} holds {bad} NaN or infinite value(s) of {tensor.numel()}; "
                "the weights are unusable (retrain, or load an earlier checkpoint's pipeline)"
            )
    return state


def _check_latent_models(pipeline, doc, config: PipelineConfig, path: Path) -> None:
    """The prior, the priors per label and the attribute directions are usable distributions."""
    # whether a fit ran, for priors whose state cannot tell; older files do not say, and were
    # sampled as they were (a prior that can tell, the gmm, still answers from its state)
    pipeline.prior.fit_done = doc.prior is None or doc.prior.fitted is not False
    problem = pipeline.prior.check_state()  # finite, yet not a distribution: a mixture weight below zero
    if problem is not None:
        raise PipelineFileError(f"{path}: its {config.prior.type} prior is unusable: {problem}; the file was altered or damaged")
    if pipeline.conditional is not None:  # written only once fitted
        pipeline.conditional.mark_fitted()
        problem = pipeline.conditional.check_state()
        if problem is not None:
            raise PipelineFileError(f"{path}: its conditional prior is unusable: {problem}; the file was altered or damaged")
    problem = pipeline.attributes.check_state() if pipeline.attributes is not None else None
    if problem is not None:
        raise PipelineFileError(f"{path}: its attribute directions are unusable: {problem}; the file was altered or damaged")
