"""Child processes that never outlive the process that started them.

Linux's parent-death signal: the kernel sends SIGKILL to the child when the thread that
started it ends, including by `kill -9`. A trainer of a dead worker then stops at once
instead of writing on while another worker resumes the same job.
"""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """`preexec_fn` for subprocess.Popen: SIGKILL when the parent dies. One prctl call,
    async-signal-safe, so it is fit for a fork from a threaded process."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def stop_with_parent() -> None:
    """`preexec_fn`: SIGTERM when the parent dies, for a child that must stop its own
    children (torchrun ends its training processes on SIGTERM)."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
