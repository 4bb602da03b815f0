"""Validate a training request's `input` before it is queued, naming every bad field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from musicgen_ft.errors import InputError
from musicgen_ft.inputs import TrainInputs, coerce, field_type, input_fields
from serving.netguard import UnsafeUrlError, check_url
from serving.trainer import OPERATOR_ONLY


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class InvalidInputError(Exception):
    """One or more input fields are invalid; `errors` names each."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def validate_input(raw: Any, *, allow_private_urls: bool) -> TrainInputs:
    """Check a request's `input` against the trainer's inputs.

    Every field is checked on its own so that the answer names all bad fields at once.
    `allow_private_urls` is the operator's setting; a request may not set it.

    Raises:
        InvalidInputError: naming each bad field (`input.<name>`).
    """
    if not isinstance(raw, dict):
        raise InvalidInputError([FieldError("input", "must be an object of training inputs")])
    known = {f.name: f for f in input_fields()}
    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name in OPERATOR_ONLY:
            errors.append(
                FieldError(
                    f"input.{name}",
                    "is decided by the server operator (musicgen-ft serve --allow_private_urls),"
                    " not by a request",
                )
            )
            continue
        if name not in known:
            accepted = ", ".join(n for n in known if n not in OPERATOR_ONLY)
            errors.append(FieldError(f"input.{name}", f"unknown input; accepted: {accepted}"))
            continue
        try:
            values[name] = coerce(name, value, field_type(known[name]))
            _check_alone(name, values[name])
        except InputError as exc:
            errors.append(FieldError(f"input.{name}", exc.message))
    if "dataset_path" not in raw:
        errors.append(FieldError("input.dataset_path", "is required: the URL of the dataset"))
    elif "dataset_path" in values:
        try:
            check_url(str(values["dataset_path"]), allow_private=allow_private_urls)
        except UnsafeUrlError as exc:
            errors.append(FieldError("input.dataset_path", str(exc)))
    # Files the trainer reads must be URLs too: a server-side path would let a request read
    # the server's own files.
    if values.get("labels_file"):
        try:
            check_url(str(values["labels_file"]), allow_private=allow_private_urls)
        except UnsafeUrlError as exc:
            errors.append(FieldError("input.labels_file", str(exc)))
    if errors:
        raise InvalidInputError(errors)
    try:
        return TrainInputs.from_dict({**values, "allow_private_urls": allow_private_urls})
    except InputError as exc:  # a rule across fields
        raise InvalidInputError([FieldError(f"input.{exc.field}", exc.message)]) from None


def _check_alone(name: str, value: Any) -> None:
    """Run TrainInputs' own rules on one field, the others left at their defaults."""
    placeholder = {"dataset_path": "https://example.invalid/dataset.zip"}
    TrainInputs(**{**placeholder, name: value}).validate()
