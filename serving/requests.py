"""What create requests of trainings and predictions share: the webhook fields and how bad
input is answered (422 naming each field)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from musicgen_ft.net import UnsafeUrlError, check_url
from serving.edge import ApiError
from serving.validation import FieldError, InvalidInputError

Event = Literal["start", "output", "logs", "completed"]


class WebhookFields(BaseModel):
    """`webhook`, `webhook_completed` and `webhook_events_filter`, as the official client sends
    them."""

    model_config = ConfigDict(extra="forbid")
    webhook: str | None = Field(default=None, max_length=2000)
    webhook_completed: str | None = Field(default=None, max_length=2000)
    webhook_events_filter: list[Event] | None = None

    def subscription(self, *, allow_private: bool) -> tuple[str | None, list[str] | None]:
        """(url, events filter) of the request's webhook; 422 for a URL that may not be used.
        `webhook_completed` alone means the completed event only."""
        webhook, events = self.webhook, self.webhook_events_filter
        if webhook is None and self.webhook_completed is not None:
            webhook, events = self.webhook_completed, ["completed"]
        if webhook is not None:
            try:
                check_url(webhook, allow_private=allow_private, field="webhook")
            except UnsafeUrlError as exc:
                error = FieldError("webhook", exc.message)
                raise invalid([error], title="Invalid request") from None
        return webhook, None if events is None else list(dict.fromkeys(events))


def invalid(errors: list[FieldError], *, title: str = "Invalid input") -> ApiError:
    """A 422 naming each bad field."""
    return ApiError(
        422,
        title,
        str(InvalidInputError(errors)),
        invalid_fields=[{"field": e.field, "message": e.message} for e in errors],
    )
