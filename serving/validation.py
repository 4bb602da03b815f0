"""Validate a training request's `input` before it is queued, naming every bad field.

The rules are the trainer's own (the inputs table, musicgen_ft/inputs.py), so whatever the
trainer would refuse minutes later is refused here at create time, with every bad field named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from musicgen_ft.inputs import TrainInputs
from musicgen_ft.net import UnsafeUrlError, check_url
from musicgen_ft.schema import field_errors
from serving.trainer import OPERATOR_ONLY

# Inputs the trainer reads from somewhere: they must be URLs, since a server-side path would let
# a request read the server's own files.
URL_INPUTS = ("dataset_path", "labels_file")


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class InvalidInputError(Exception):
    """One or more input fields are invalid; `errors` names each."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def validate_input(
    raw: Any, *, allow_private_urls: bool, local: Mapping[str, str] | None = None
) -> TrainInputs:
    """Check a request's `input` against the trainer's inputs.

    `allow_private_urls` is the operator's setting; a request may not set it. `local` maps
    URL inputs that named this server's own uploads to the stored files' paths (resolved by
    the server, so they are not URLs to check).

    Raises:
        InvalidInputError: naming each bad field (`input.<name>`).
    """
    if not isinstance(raw, dict):
        raise InvalidInputError([FieldError("input", "must be an object of training inputs")])
    errors = [
        FieldError(
            f"input.{name}",
            "is decided by the server operator (musicgen-ft serve --allow_private_urls), "
            "not by a request",
        )
        for name in raw
        if name in OPERATOR_ONLY
    ]
    resolved = dict(local or {})
    values = {k: v for k, v in raw.items() if k not in OPERATOR_ONLY} | resolved
    if "dataset_path" not in values:
        errors.append(FieldError("input.dataset_path", "is required: the URL of the dataset"))
    inputs: TrainInputs | None = None
    try:
        inputs = TrainInputs.model_validate({**values, "allow_private_urls": allow_private_urls})
    except ValidationError as exc:
        errors += [
            FieldError(f"input.{name}", message)
            for name, message in field_errors(TrainInputs, exc)
            if not (name == "dataset_path" and "dataset_path" not in values)
        ]
    for name in URL_INPUTS:
        value = values.get(name)
        checked = name not in resolved and not _has_error(errors, name)
        if isinstance(value, str) and value and checked:
            try:
                check_url(value, allow_private=allow_private_urls, field=name)
            except UnsafeUrlError as exc:
                errors.append(FieldError(f"input.{name}", exc.message))
    if errors or inputs is None:
        raise InvalidInputError(errors)
    return inputs


def _has_error(errors: list[FieldError], name: str) -> bool:
    return any(e.field == f"input.{name}" for e in errors)
