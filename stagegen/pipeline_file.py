"""Pipeline files: one ``.safetensors`` with the weights and a JSON document in its header.

Loading never unpickles and never imports anything named by the file: the stage names in
the header are looked up in the plugin registry, and an unknown one is an error that names
the plugin package to install. Tensors are checked strictly, key by key and shape by shape.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from . import __version__
from .config import PipelineConfig
from .plugins import get_plugin_manager
from .stages import describe_validation_error

FORMAT = "stagegen.pipeline"
FORMAT_VERSION = 1
METADATA_KEY = "stagegen"


class PipelineFileError(ValueError):
    """A file that is not a loadable stagegen pipeline, with the reason."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone makes files private (0600)


def atomic_write(path: Path, write) -> None:
    """Write through ``write(tmp_path)`` then rename over ``path``: a crash leaves the old file or the new."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def header_document(pipeline, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    registry = get_plugin_manager().stages
    stages = []
    for i, spec in enumerate(pipeline.specs):
        provider = registry.provider(spec.type)
        stages.append(
            {
                "index": i,
                "type": spec.type,
                "kind": pipeline.stage_types[i].kind,
                "resolution": pipeline.resolutions[i],
                "package": provider.package,
                "package_version": provider.version,
            }
        )
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "stagegen_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": pipeline.config.model_dump(mode="json"),
        "stages": stages,
        "extra": extra or {},
    }


def save_pipeline(pipeline, path: str | Path, state_dict: dict[str, torch.Tensor] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``pipeline`` (or the given generator ``state_dict``, e.g. EMA weights) atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    state = state_dict if state_dict is not None else pipeline.state_dict()
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    metadata = {METADATA_KEY: json.dumps(header_document(pipeline, extra), sort_keys=True)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return path


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON document of a pipeline file, validated enough to describe it (``stagegen info``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no pipeline file at {path}")
    if path.is_dir():
        candidate = path / "pipeline.safetensors"
        if candidate.is_file():
            path = candidate
        else:
            raise PipelineFileError(f"{path} is a folder without pipeline.safetensors; give the path of the .safetensors file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise PipelineFileError(f"{path} is not a safetensors file: only {size} bytes long")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise PipelineFileError(
                f"{path} is not a complete safetensors file: its header claims {header_len} bytes but the file has "
                f"{size - 8} after the length field (truncated, or not a safetensors file at all)"
            )
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PipelineFileError(f"{path} is not a safetensors file: its header is not JSON") from None
    if not isinstance(header, dict):
        raise PipelineFileError(f"{path} is not a safetensors file: its header is not a JSON object")
    meta = header.get("__metadata__") or {}
    if METADATA_KEY not in meta:
        raise PipelineFileError(
            f"{path} is a safetensors file but not a stagegen pipeline (no '{METADATA_KEY}' document in its metadata); "
            "plain weight files cannot be loaded as pipelines"
        )
    try:
        doc = json.loads(meta[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise PipelineFileError(f"{path}: the stagegen document in the header is not valid JSON ({exc}); the file was altered") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PipelineFileError(f"{path}: the header document is not a {FORMAT} document")
    version = doc.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise PipelineFileError(f"{path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise PipelineFileError(
            f"{path} was written in pipeline format {version} by stagegen {doc.get('stagegen_version')}; this stagegen "
            f"({__version__}) reads format {FORMAT_VERSION} and older: upgrade stagegen"
        )
    doc["_path"] = str(path)
    doc["_tensors"] = {k: v for k, v in header.items() if k != "__metadata__"}
    return doc


def load_pipeline(path: str | Path, device: str | torch.device = "cpu", channels_last: bool = True):
    """Rebuild the pipeline from the registry and load its tensors strictly; eval mode.
    ``channels_last`` lays the weights out for faster convolutions (oneDNN, cuDNN); outputs
    then differ from the contiguous layout's in the last bits only."""
    from safetensors import safe_open

    from .pipeline import Pipeline

    doc = read_header(path)
    path = Path(doc["_path"])
    try:
        config = PipelineConfig.model_validate(doc.get("config"))
    except ValidationError as exc:
        raise PipelineFileError(f"{path}: " + describe_validation_error("pipeline config in the file", exc)) from None

    registry = get_plugin_manager().stages
    recorded = {s.get("index"): s for s in doc.get("stages", []) if isinstance(s, dict)}
    for i, spec in enumerate(config.stages):
        if spec.type not in registry:
            rec = recorded.get(i, {})
            package = rec.get("package", "unknown package")
            raise PipelineFileError(
                f"{path}: stage {i} is of type {spec.type!r}, which no installed plugin provides "
                f"(the file was written with it from {package} {rec.get('package_version', '')}). "
                f"Install that plugin package, then load again. {registry.installed_note()}"
            )
    try:
        pipeline = Pipeline(config, for_training=False)
    except (ValueError, TypeError) as exc:
        raise PipelineFileError(f"{path}: cannot rebuild the pipeline from its config: {exc}") from None

    expected = pipeline.state_dict()
    stored = doc["_tensors"]
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise PipelineFileError(
            f"{path}: the tensors do not match the pipeline its config describes: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for key, tensor in expected.items():
        shape = list(stored[key].get("shape", []))
        if shape != list(tensor.shape):
            raise PipelineFileError(f"{path}: tensor {key} has shape {shape} in the file but {list(tensor.shape)} in the pipeline")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {key: f.get_tensor(key) for key in expected}
    except Exception as exc:  # safetensors reports truncated or overlapping data this way
        raise PipelineFileError(f"{path}: the tensor data is damaged or truncated ({exc})") from None
    pipeline.load_state_dict(state, strict=True)
    pipeline.file_metadata = {k: v for k, v in doc.items() if not k.startswith("_")}
    pipeline = pipeline.to(device).eval()
    if channels_last:
        pipeline.to(memory_format=torch.channels_last)
    return pipeline
