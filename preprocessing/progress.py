"""Progress that reads well in a log: a tqdm bar on a terminal, rate-limited log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any

logger = logging.getLogger("preprocessing.progress")


class Progress:
    """Count work done; draw a bar on a TTY, otherwise log at most every `every` seconds."""

    def __init__(self, what: str, total: float | None, unit: str = "", every: float = 5.0) -> None:
        self.what = what
        self.total = total
        self.unit = unit
        self.every = every
        self.done = 0.0
        self._start = time.monotonic()
        self._last = self._start
        self._bar: Any = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            # No monitor thread: the prep stage forks workers, which must not run beside threads.
            tqdm.monitor_interval = 0
            scale = unit == "B"
            self._bar = tqdm(
                total=total, desc=what, unit=unit or "it", unit_scale=scale, leave=False
            )

    def update(self, amount: float = 1.0) -> None:
        self.done += amount
        if self._bar is not None:
            self._bar.update(amount)
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            logger.info("%s", self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        done = self._fmt(self.done)
        rate = f"{self._fmt(self.done / elapsed)}/s"
        if self.total:
            pct = 100.0 * self.done / self.total
            return f"{self.what}: {done} of {self._fmt(self.total)} ({pct:.0f} %), {rate}"
        return f"{self.what}: {done}, {rate}"

    def _fmt(self, value: float) -> str:
        if self.unit == "B":
            return f"{value / 1e6:.1f} MB"
        return f"{value:.0f}{(' ' + self.unit) if self.unit else ''}"

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.close()
