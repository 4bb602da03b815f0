"""Validate a prediction's `input` at create time, naming every bad field.

The rules are the generation table's (inference/params.py, the one predict.py uses) and the
model's own (its longest duration, melody or not). `input_audio` may name one of this
server's files (resolved to the stored file now) or an https URL (fetched when it runs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from inference.params import GenerateParams
from musicgen_ft.errors import InputError
from musicgen_ft.net import UnsafeUrlError, check_url
from musicgen_ft.schema import field_errors
from musicgen_ft.variants import Variant
from serving.files import UnknownFileError
from serving.validation import FieldError, InvalidInputError

FILE_INPUT = "input_audio"
ResolveFile = Callable[[object], "Path | None"]


def validate(
    raw: Any, variant: Variant, resolve_file: ResolveFile, *, allow_private_urls: bool
) -> dict[str, Any]:
    """The params the predictor runs: `raw` checked, a file URL of this server resolved to
    its local path.

    Raises:
        InvalidInputError: naming each bad field (`input.<name>`).
    """
    if not isinstance(raw, dict):
        raise InvalidInputError([FieldError("input", "must be an object of prediction inputs")])
    params = dict(raw)
    errors: list[FieldError] = []
    if params.get(FILE_INPUT) == "":
        del params[FILE_INPUT]  # an empty form field: no audio
    source = params.get(FILE_INPUT)
    if isinstance(source, str):
        try:
            local = resolve_file(source)
            if local is not None:
                params[FILE_INPUT] = str(local)
            else:
                check_url(source, allow_private=allow_private_urls, field=FILE_INPUT)
        except UnknownFileError as exc:
            errors.append(FieldError(f"input.{FILE_INPUT}", str(exc)))
        except UnsafeUrlError as exc:
            errors.append(FieldError(f"input.{FILE_INPUT}", exc.message))
    file_refused = bool(errors)
    checked: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
    if isinstance(checked.get(FILE_INPUT), str):
        checked[FILE_INPUT] = Path(FILE_INPUT)  # stands in for a file fetched later
    try:
        GenerateParams.model_validate(checked).check_for(variant)
    except ValidationError as exc:
        errors += [
            FieldError(f"input.{name}", message)
            for name, message in field_errors(GenerateParams, exc)
            if not (name == FILE_INPUT and file_refused)
        ]
    except InputError as exc:
        errors.append(FieldError(f"input.{exc.field}", exc.message))
    if errors:
        raise InvalidInputError(errors)
    return {k: v for k, v in params.items() if v is not None}
