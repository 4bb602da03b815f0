"""One inputs table drives every door: Cog signatures, command lines, API validation, schemas.

An inputs table is a pydantic model whose fields carry their type, default, bounds
(`Field(ge=, le=, max_length=)`), choices (`Literal[...]`, or `choices=` in
`json_schema_extra` for choices known only at import time) and description. The helpers here
read those once, so a default or a bound is written in one place only:

- `parse` / `field_errors`: validation with one clear line per bad field;
- `add_arguments` / `values_from_namespace`: an argparse command line;
- `cog_signature`: the parameters of a Cog `train()` / `predict()`;
- `input_properties`: the OpenAPI properties in the layout Cog publishes.
"""

from __future__ import annotations

import argparse
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from musicgen_ft.errors import InputError

M = TypeVar("M", bound=BaseModel)

URI_FORMAT = {"format": "uri"}


def choices_of(values: Iterable[str]) -> dict[str, Any]:
    """`json_schema_extra` for a string field whose choices are known only at import time."""
    return {"choices": list(values)}


@dataclass(frozen=True)
class Spec:
    """What every door needs to know of one input."""

    name: str
    kind: type  # str, int, float, bool or Path
    required: bool
    default: Any
    description: str
    choices: tuple[Any, ...] | None
    ge: float | None
    le: float | None
    max_length: int | None
    is_uri: bool


def _base_kind(annotation: Any) -> tuple[type, tuple[Any, ...] | None]:
    """The scalar type of an annotation (Optional stripped) and its Literal choices."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        values = typing.get_args(annotation)
        return type(values[0]), tuple(values)
    if origin is not None and args:  # Optional[X] / X | None
        return _base_kind(args[0])
    if isinstance(annotation, type):
        return annotation, None
    raise TypeError(f"unsupported input annotation {annotation!r}")


def specs(model: type[BaseModel]) -> list[Spec]:
    """The inputs of `model`, in declaration order."""
    out = []
    for name, info in model.model_fields.items():
        kind, choices = _base_kind(info.annotation)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if choices is None and "choices" in extra:
            choices = tuple(typing.cast(list[Any], extra["choices"]))
        out.append(
            Spec(
                name=name,
                kind=kind,
                required=info.is_required(),
                default=None if info.is_required() else info.default,
                description=info.description or "",
                choices=choices,
                ge=_bound(info, annotated_types.Ge, "ge"),
                le=_bound(info, annotated_types.Le, "le"),
                max_length=typing.cast(
                    "int | None", _bound(info, annotated_types.MaxLen, "max_length")
                ),
                is_uri=extra.get("format") == "uri",
            )
        )
    return out


def _bound(info: FieldInfo, kind: type, attr: str) -> Any:
    for item in info.metadata:
        if isinstance(item, kind):
            return getattr(item, attr)
    return None


# --- validation ----------------------------------------------------------------------------


def parse(model: type[M], data: Mapping[str, Any]) -> M:
    """Validate `data` into `model`; raise InputError naming the first bad field."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        field, message = field_errors(model, exc)[0]
        raise InputError(field, message) from None


def field_errors(model: type[BaseModel], exc: ValidationError) -> list[tuple[str, str]]:
    """(field, one-line message) for every error of a validation."""
    known = list(model.model_fields)
    choices = {spec.name: spec.choices or () for spec in specs(model)}
    return [_describe(err, known, choices) for err in exc.errors()]


def _describe(
    err: Any, known: list[str], choices: Mapping[str, tuple[Any, ...]]
) -> tuple[str, str]:
    loc = err.get("loc") or ("input",)
    name = str(loc[0])
    value = err.get("input")
    ctx = err.get("ctx") or {}
    kind = err.get("type", "")
    messages: dict[str, Callable[[], str]] = {
        "missing": lambda: f"{name} is required",
        "extra_forbidden": lambda: f"unknown input {name!r}; accepted: {', '.join(known)}",
        "int_parsing": lambda: f"{name}={value!r} is not an integer",
        "int_from_float": lambda: f"{name}={value!r} is not an integer",
        "int_type": lambda: f"{name}={value!r} is not an integer",
        "float_parsing": lambda: f"{name}={value!r} is not a number",
        "float_type": lambda: f"{name}={value!r} is not a number",
        "finite_number": lambda: f"{name}={value!r} is not a finite number",
        "bool_parsing": lambda: f"{name}={value!r} is not a boolean (true or false)",
        "bool_type": lambda: f"{name}={value!r} is not a boolean (true or false)",
        "greater_than_equal": lambda: f"{name}={value} must be >= {ctx.get('ge')}",
        "less_than_equal": lambda: f"{name}={value} must be <= {ctx.get('le')}",
        "greater_than": lambda: f"{name}={value} must be > {ctx.get('gt')}",
        "less_than": lambda: f"{name}={value} must be < {ctx.get('lt')}",
        "literal_error": lambda: (
            f"{name}={value!r} is not one of {', '.join(map(str, choices.get(name, ())))}"
        ),
        "string_type": lambda: f"{name} must be a string, got {type(value).__name__}",
        "string_too_long": lambda: (
            f"{name} is longer than {ctx.get('max_length')} characters; shorten it"
        ),
        "value_error": lambda: str(ctx.get("error", err.get("msg", ""))),
    }
    describe = messages.get(kind)
    return name, describe() if describe else f"{name}: {err.get('msg', 'is invalid')}"


# --- command lines -------------------------------------------------------------------------


def add_arguments(
    parser: argparse.ArgumentParser, model: type[BaseModel], skip: Iterable[str] = ()
) -> None:
    """One `--name` option per input; values are validated by the model, not by argparse."""
    for spec in specs(model):
        if spec.name in skip:
            continue
        help_ = spec.description
        if spec.choices:
            help_ += f" Choices: {', '.join(map(str, spec.choices))}."
        if not spec.required and spec.default is not None:
            help_ += f" (default: {spec.default})"
        is_bool = spec.kind is bool
        parser.add_argument(
            f"--{spec.name}",
            required=spec.required,
            default=None,
            metavar="true|false" if is_bool else spec.kind.__name__.upper(),
            help=help_,
            # Booleans also work as bare flags: `--allow_private_urls`.
            nargs="?" if is_bool else None,
            const="true" if is_bool else None,
        )


def values_from_namespace(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    """The inputs given on a command line (options left out keep the model's defaults)."""
    return {
        name: getattr(args, name)
        for name in model.model_fields
        if getattr(args, name, None) is not None
    }


# --- Cog -----------------------------------------------------------------------------------


def cog_parameters(model: type[BaseModel], skip: Iterable[str] = ()) -> list[inspect.Parameter]:
    """Parameters of a Cog entry point (`train()`, `predict()`) with Cog's `Input(...)`."""
    from cog import Input
    from cog import Path as CogPath

    params = []
    for spec in specs(model):
        if spec.name in skip:
            continue
        kwargs: dict[str, Any] = {"description": spec.description}
        if not spec.required:
            kwargs["default"] = spec.default
        if spec.choices:
            kwargs["choices"] = list(spec.choices)
        for key in ("ge", "le", "max_length"):
            if getattr(spec, key) is not None:
                kwargs[key] = getattr(spec, key)
        annotation: type = CogPath if spec.is_uri or spec.kind is Path else spec.kind
        params.append(
            inspect.Parameter(
                spec.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=Input(**kwargs),
                annotation=annotation,
            )
        )
    return params


def cog_entry_point(
    function: Callable[..., Any],
    parameters: list[inspect.Parameter],
    returns: type,
) -> None:
    """Give `function(**inputs)` the signature Cog inspects (names, types, `Input`s)."""
    function.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        parameters, return_annotation=returns
    )
    function.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": returns}


# --- OpenAPI -------------------------------------------------------------------------------

_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "string"}


def input_properties(
    model: type[BaseModel], skip: Iterable[str] = ()
) -> tuple[dict[str, Any], list[str]]:
    """(properties, required) of the model's inputs in the layout Cog's schemas use."""
    skipped = set(skip)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for order, spec in enumerate(specs(model)):
        if spec.name in skipped:
            continue
        prop: dict[str, Any] = {
            "type": _JSON_TYPES[spec.kind],
            "title": spec.name.replace("_", " ").title(),
            "description": spec.description,
            "x-order": order,
        }
        if spec.is_uri or spec.kind is Path:
            prop["format"] = "uri"
        if spec.required:
            required.append(spec.name)
        elif spec.default is not None:
            prop["default"] = spec.default
        else:
            prop["nullable"] = True
        if spec.choices:
            prop["enum"] = list(spec.choices)
        if spec.ge is not None:
            prop["minimum"] = spec.ge
        if spec.le is not None:
            prop["maximum"] = spec.le
        if spec.max_length is not None:
            prop["maxLength"] = spec.max_length
        properties[spec.name] = prop
    return properties, required
