"""Validated options: the one strict pydantic base every config and plugin options model uses,
and the readable one-line message a validation error becomes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["StrictModel", "describe_validation_error", "validate_options"]


class StrictModel(BaseModel):
    """Unknown keys are errors, not silently ignored; assignments are validated; NaN and
    infinity are refused wherever a number is expected."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def validate_options(model: type[BaseModel], raw: dict[str, Any] | None, where: str) -> Any:
    """``model`` validated from ``raw``, or a ValueError naming the bad key (stages, priors, datasets)."""
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        raise ValueError(describe_validation_error(where, exc, model)) from None


def describe_validation_error(where: str, exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One readable line from a pydantic error: which key, what was wrong, what is allowed."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        if err["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields) if model is not None and len(err["loc"]) == 1 else ""
            parts.append(f"unknown option {loc!r}" + (f" (known options: {known})" if known else ""))
        else:
            parts.append(f"{loc}: {err['msg']}")
    return f"invalid {where}: " + "; ".join(parts)
