"""A real PostgreSQL server for the tests: Debian's binaries, a throwaway cluster on 127.0.0.1.

`scripts/setup.sh` installs the `postgresql` package. The server runs as the `postgres`
system user when the tests run as root (PostgreSQL refuses to run as root), with trust
authentication on loopback only, and is stopped with its data removed at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class Postgres:
    """`initdb` + `pg_ctl start` in a fresh directory; `database()` makes an empty one."""

    def __init__(self) -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed: run scripts/setup.sh")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="musicgen-ft-pg-"))
        self.root.chmod(0o755)  # the postgres user must reach its data dir
        self.data = self.root / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str) -> None:
        subprocess.run(
            [*self._as, *argv], check=True, capture_output=True, text=True, cwd=self.root
        )

    def start(self) -> Postgres:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "musicgen",
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-w",
            "-l", str(self.root / "server.log"), "start",
        )  # fmt: skip
        return self

    def database(self, name: str) -> str:
        """A new, empty database; its URL."""
        assert name.isidentifier()
        base = f"postgresql://musicgen@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://musicgen@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
