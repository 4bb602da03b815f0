"""Signed webhook deliveries with Replicate's semantics.

Each training with a webhook gets one `_Channel`: a thread that delivers its events in order.
`start` and `completed` are always delivered (when the filter selects them); `logs` and
`output` are coalesced to at most one per 500 ms, each carrying the latest state. A terminal
delivery is retried with exponential backoff on a non-2xx answer or a connection failure,
keeping the same `webhook-id`. Redirects are never followed; the URL is checked against the
operator's private-address rule before every attempt, and again at connect time by the guarded
client of `musicgen_ft.net` (the address connected to is the one checked).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from musicgen_ft.constants import TERMINAL_STATUSES
from musicgen_ft.net import UnsafeUrlError, check_url, guarded_client, redact
from serving.signing import sign

log = logging.getLogger(__name__)

EVENTS = ("start", "output", "logs", "completed")
THROTTLE_S = 0.5
_THROTTLED = ("output", "logs")


@dataclass(frozen=True)
class Snapshot:
    """What one delivery sends: the training as GET returns it, where, and which events."""

    payload: dict[str, object]
    url: str
    events_filter: tuple[str, ...]
    secret: str


Render = Callable[[str], "Snapshot | None"]


def wants(events_filter: tuple[str, ...], event: str, payload: dict[str, object]) -> bool:
    """Whether a filter selects an event. A terminal state that carries output is also an
    `output` event, so a filter of ["output"] still receives the trained version."""
    if event in events_filter:
        return True
    return event == "completed" and "output" in events_filter and bool(payload.get("output"))


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 1.0
    max_attempts: int = 8

    def delay(self, attempt: int) -> float:
        """Delay before attempt `attempt + 1` (attempt counts from 1)."""
        return float(self.base_s * 2 ** (attempt - 1))


def deliver_once(
    client: httpx.Client, snap: Snapshot, body: bytes, webhook_id: str, *, allow_private: bool
) -> bool:
    """POST one signed delivery; True on a 2xx answer."""
    try:
        check_url(snap.url, allow_private=allow_private, field="webhook")
    except UnsafeUrlError as exc:
        log.warning("webhook %s not sent: %s", webhook_id, exc)
        return False
    timestamp = str(int(time.time()))
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": sign(snap.secret, webhook_id, timestamp, body),
    }
    try:
        response = client.post(snap.url, content=body, headers=headers)
    except UnsafeUrlError as exc:  # the address changed since the check (DNS rebinding)
        log.warning("webhook %s not sent: %s", webhook_id, exc)
        return False
    except httpx.HTTPError as exc:
        log.warning("webhook %s to %s failed: %s", webhook_id, redact(snap.url), exc)
        return False
    if not 200 <= response.status_code < 300:
        log.warning(
            "webhook %s to %s answered %s", webhook_id, redact(snap.url), response.status_code
        )
        return False
    return True


class _Channel:
    """Ordered deliveries of one training's events, on a thread of its own."""

    def __init__(self, hub: WebhookHub, training_id: str) -> None:
        self._hub = hub
        self._id = training_id
        self._cond = threading.Condition()
        # start / completed, never dropped, with the state at the time of the event
        self._must: deque[tuple[str, Snapshot | None]] = deque()
        self._pending: set[str] = set()  # throttled events waiting for their slot
        self._last_throttled = 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"webhook-{training_id}", daemon=True
        )
        self._thread.start()

    def push(self, event: str, snap: Snapshot | None = None) -> None:
        with self._cond:
            if event in _THROTTLED:
                self._pending.add(event)
            else:
                if event == "completed":
                    self._pending.clear()  # the terminal payload carries the latest logs
                self._must.append((event, snap))
            self._cond.notify()

    def _next(self) -> tuple[str, Snapshot | None]:
        """Wait for the next event that is due."""
        with self._cond:
            while True:
                if self._must:
                    return self._must.popleft()
                if self._pending:
                    wait = self._last_throttled + THROTTLE_S - time.monotonic()
                    if wait <= 0:
                        event = "output" if "output" in self._pending else "logs"
                        self._pending.clear()
                        self._last_throttled = time.monotonic()
                        return event, None
                    self._cond.wait(wait)
                else:
                    self._cond.wait()

    def _run(self) -> None:
        try:
            while True:
                event, snap = self._next()
                self._hub._send(self._id, event, snap)
                if event == "completed":
                    return
        finally:
            self._hub._closed(self._id)


class WebhookHub:
    """Routes a training's events to its channel; creates channels on demand."""

    def __init__(self, render: Render, *, allow_private: bool, retry: RetryPolicy) -> None:
        self._render = render
        self._allow_private = allow_private
        self._retry = retry
        self._channels: dict[str, _Channel] = {}
        self._completed: set[str] = set()  # no event follows a terminal one
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._client = guarded_client(
            allow_private=allow_private, timeout=httpx.Timeout(10.0), field="webhook"
        )

    def emit(self, training_id: str, event: str) -> None:
        assert event in EVENTS
        with self._lock:
            if training_id in self._completed:
                return
            if event == "completed":
                self._completed.add(training_id)
            channel = self._channels.get(training_id)
            if channel is not None and event in _THROTTLED:
                channel.push(event)  # rendered when its slot comes
                return
            snap = self._render(training_id)
            if snap is None:  # no webhook
                return
            if channel is None:
                channel = self._channels[training_id] = _Channel(self, training_id)
        # start and completed carry the state of their moment; throttled events the latest.
        channel.push(event, None if event in _THROTTLED else snap)

    def _closed(self, training_id: str) -> None:
        with self._lock:
            self._channels.pop(training_id, None)

    def _send(self, training_id: str, event: str, snap: Snapshot | None) -> None:
        snap = snap or self._render(training_id)
        if snap is None or not wants(snap.events_filter, event, snap.payload):
            return
        if event in _THROTTLED and snap.payload.get("status") in TERMINAL_STATUSES:
            return  # it ended meanwhile: the terminal event carries this state
        body = json.dumps(snap.payload).encode()
        webhook_id = f"msg_{uuid.uuid4().hex}"
        attempts = self._retry.max_attempts if event == "completed" else 1
        for attempt in range(1, attempts + 1):
            if deliver_once(
                self._client, snap, body, webhook_id, allow_private=self._allow_private
            ):
                return
            if attempt < attempts and self._stopping.wait(self._retry.delay(attempt)):
                return
        log.warning("webhook %s (%s of %s) gave up", webhook_id, event, training_id)

    def idle(self) -> bool:
        with self._lock:
            return not self._channels

    def close(self) -> None:
        self._stopping.set()
        self._client.close()
