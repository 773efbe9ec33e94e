"""Pipeline files: one ``.safetensors`` with the weights and a JSON document in its header.

Loading never unpickles and never imports anything named by the file: the stage names in
the header are looked up in the plugin registry, and an unknown one is an error that names
the plugin package to install. Tensors are checked strictly, key by key and shape by shape.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from .. import __version__
from ..config.options import describe_validation_error
from ..files import atomic_write
from ..plugin.manager import get_plugin_manager

FORMAT = "stagegen.pipeline"
FORMAT_VERSION = 1
METADATA_KEY = "stagegen"


#: the parts of a pipeline fitted after training, beside the generator's weights
FITTED_AFTER_TRAINING = ("conditional.", "attributes.")


class PipelineFileError(ValueError):
    """A file that is not a loadable stagegen pipeline, with the reason."""


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
    prior_type = pipeline.config.prior.type
    prior_provider = get_plugin_manager().priors.provider(prior_type)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "stagegen_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": pipeline.config.model_dump(mode="json"),
        "stages": stages,
        # who provided the prior, like each stage (files of 0.1 do not say)
        "prior": {
            "type": prior_type,
            "package": prior_provider.package,
            "package_version": prior_provider.version,
            "fitted": bool(pipeline.prior.fitted),  # for priors whose state cannot tell (files of 0.2 do not say)
        },
        "extra": extra or {},
    }
    if getattr(pipeline, "conditional", None) is not None:  # its labels and options are in the config; who provided its type
        spec = pipeline.config.conditional.prior
        provider = get_plugin_manager().priors.provider(spec.type)
        document["conditional"] = {
            "type": spec.type,
            "package": provider.package,
            "package_version": provider.version,
            "labels": len(pipeline.conditional.labels),
        }
    return document


def save_pipeline(
    pipeline, path: str | Path, state_dict: dict[str, torch.Tensor] | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``pipeline`` (or the given generator ``state_dict``, e.g. EMA weights) atomically."""
    from safetensors.torch import save

    path = Path(path)
    state = state_dict if state_dict is not None else pipeline.state_dict()
    if state_dict is not None:  # fitted after training (a prior per label, attribute directions): not in EMA weights
        state = {**{k: v for k, v in pipeline.state_dict().items() if k.startswith(FITTED_AFTER_TRAINING)}, **state}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    metadata = {METADATA_KEY: json.dumps(header_document(pipeline, extra), sort_keys=True)}
    data = save(tensors, metadata=metadata)  # in memory, then written by Python: a full disk is an OSError

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)
    return path


#: safetensors itself refuses headers over 100 MB; a pipeline's is a few KB
MAX_HEADER_BYTES = 100 * 1024 * 1024

DTYPE_NAMES = {  # torch dtype -> its name in a safetensors header
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def _parse_json(raw: bytes | str, path: Path, what: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:  # bad UTF-8 or JSON, or a number of thousands of digits
        detail = " ".join(str(exc).split())[:200]
        raise PipelineFileError(f"{path}: {what} is not valid JSON ({detail}); the file is damaged or not a pipeline") from None
    except RecursionError:
        raise PipelineFileError(
            f"{path}: {what} is nested too deeply to be a pipeline header; the file was crafted or damaged"
        ) from None


class _FileRecord(BaseModel):
    """A record of the header document: typed where stagegen reads it, any other field kept
    (a later stagegen may add some; `info --json` prints the document as the file holds it)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class StageRecord(_FileRecord):
    """Who provided a stage, and what it was when written (the config holds its options)."""

    index: StrictInt
    type: str = "?"
    kind: str = "?"
    resolution: StrictInt | None = None
    package: str = "unknown package"
    package_version: str = ""


class PriorRecord(_FileRecord):
    """Who provided the prior, and whether a fit ran (files of 0.1 have no record; 0.2 no ``fitted``)."""

    type: str = "?"
    package: str = "?"
    package_version: str = ""
    fitted: StrictBool | None = None


class HeaderDocument(_FileRecord):
    """The stagegen document in a pipeline file's header."""

    format: Literal["stagegen.pipeline"]
    format_version: StrictInt = Field(ge=1)
    stagegen_version: str = "?"
    created: str = "?"
    config: dict[str, Any]  # validated as a PipelineConfig when the pipeline is built
    stages: list[StageRecord]
    prior: PriorRecord | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The document as the file holds it (no defaults filled in)."""
        return self.model_dump(mode="json", exclude_unset=True)


#: what each field's validation error means, said the way a user reads it
_FIELD_PROBLEMS = {
    "format_version": "invalid format_version {value!r}; expected a positive integer",
    "config": "the header document has no pipeline config (an object under 'config')",
    "stages": "the header document's 'stages' is not a list of stage records",
    "extra": "the header document's 'extra' is not an object",
    "prior": "the header document's 'prior' is not a prior record",
}


def _document(raw: dict[str, Any], path: Path) -> HeaderDocument:
    version = raw.get("format_version")
    if type(version) is int and version > FORMAT_VERSION:  # said before any field a newer format may change
        raise PipelineFileError(
            f"{path} was written in pipeline format {version} by stagegen {raw.get('stagegen_version')}; this stagegen "
            f"({__version__}) reads format {FORMAT_VERSION} and older: upgrade stagegen"
        )
    try:
        return HeaderDocument.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = error["loc"]
        if where[:1] == ("stages",) and len(where) >= 3 and where[2] == "index":
            problem = f"stage record {where[1]} in the header has no integer 'index'"
        elif where[:1] == ("stages",) and len(where) >= 2:
            problem = _FIELD_PROBLEMS["stages"]
        elif where and where[0] in _FIELD_PROBLEMS:
            problem = _FIELD_PROBLEMS[where[0]].format(value=raw.get(where[0]))
        else:
            problem = "the header document is malformed: " + " ".join(describe_validation_error("it", exc).split())[:200]
        raise PipelineFileError(f"{path}: {problem}; the file was altered") from None


@dataclass(frozen=True)
class PipelineHeader:
    """What a pipeline file says before any tensor is read: its stagegen ``document`` (typed:
    format, versions, the config, who provided each stage and the prior, extra), where it is,
    and its ``tensors`` table (name -> dtype, shape, offsets)."""

    document: HeaderDocument
    path: Path
    tensors: dict[str, dict[str, Any]]

    def stage_versions(self) -> dict[int, str]:
        """Stage index -> the version of the plugin that wrote it ("" when the file does not say)."""
        return {r.index: r.package_version for r in self.document.stages}

    @property
    def prior_version(self) -> str:
        return self.document.prior.package_version if self.document.prior is not None else ""


def read_header(path: str | Path) -> PipelineHeader:
    """The header of a pipeline file, validated enough to describe it (``stagegen info``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no pipeline file at {path}")
    if path.is_dir():
        candidate = path / "pipeline.safetensors"
        if candidate.is_file():
            path = candidate
        else:
            raise PipelineFileError(f"{path} is a folder without pipeline.safetensors; give the path of the .safetensors file")
    if not path.is_file():  # a FIFO would block the read, a device read without end
        raise PipelineFileError(f"{path} is not a regular file (a FIFO, a device or a socket); give a .safetensors file")
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
        if header_len > MAX_HEADER_BYTES:
            raise PipelineFileError(
                f"{path}: its header claims {header_len} bytes, more than the {MAX_HEADER_BYTES} safetensors allows"
            )
        raw = f.read(header_len)
    header = _parse_json(raw, path, "the safetensors header")
    if not isinstance(header, dict):
        raise PipelineFileError(f"{path} is not a safetensors file: its header is not a JSON object")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not isinstance(meta.get(METADATA_KEY), str):
        raise PipelineFileError(
            f"{path} is a safetensors file but not a stagegen pipeline (no '{METADATA_KEY}' document in its metadata); "
            "plain weight files cannot be loaded as pipelines"
        )
    raw = _parse_json(meta[METADATA_KEY], path, "the stagegen document in the header")
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise PipelineFileError(f"{path}: the header document is not a {FORMAT} document")
    doc = _document(raw, path)
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    for key, entry in tensors.items():
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("shape"), list)
            and isinstance(entry.get("dtype"), str)
            and all(type(d) is int and d >= 0 for d in entry["shape"])
        ):
            raise PipelineFileError(
                f"{path}: the header entry of tensor {key!r} is malformed (no dtype or shape); the file was altered"
            )
    return PipelineHeader(doc, path, tensors)
