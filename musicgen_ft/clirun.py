"""One mapping from the project's errors to exit codes and one-line messages, for every command.

2    a bad input (InputError): the line names the field and what is accepted
1    any other FineTuneError: the line says what failed; details are in the logs
130  interrupted (Ctrl-C); the work dir is kept
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from musicgen_ft.errors import FineTuneError, InputError

logger = logging.getLogger("musicgen_ft")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def run_cli(work: Callable[[], int | None], *, where: Path | None = None, prog: str = "") -> int:
    """Run a command's body; turn the project's errors into one line on stderr and an exit code.

    Args:
        work: The command's body; returns an exit code or None (success).
        where: The folder holding the command's logs and work dir, named in failure lines.
        prog: Prefix of the error line (the command's name).
    """
    prefix = f"{prog}: error" if prog else "error"
    try:
        return int(work() or EXIT_OK)
    except InputError as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FineTuneError as exc:
        logger.debug("%s", exc)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        tail = f" (logs: {where})" if where is not None else ""
        print(f"{prefix}: {first}{tail}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        kept = f"; work dir kept at {where}" if where is not None else ""
        print(f"{prefix}: interrupted{kept}", file=sys.stderr)
        return EXIT_INTERRUPTED
