"""Browser sessions of the web page: a signed cookie standing for one of the API's tokens.

The token itself never leaves the login request: the cookie holds the token's id, an expiry
and an HMAC under a key kept in the data dir (shared by every front of one queue, kept over
restarts). The cookie is HttpOnly and SameSite=Strict; requests that change state with it
must also carry `X-Requested-With` (a header no cross-site form can send), so a session is
no CSRF door.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

COOKIE = "musicgen_ft_session"
CSRF_HEADER = "x-requested-with"
LIFETIME_S = 7 * 24 * 3600


def load_key(data_dir: Path) -> bytes:
    """The signing key in `data_dir/session.key`, made (mode 0600) on first use."""
    path = data_dir / "session.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


class Sessions:
    def __init__(self, key: bytes, token_ids: set[str]) -> None:
        self._key = key
        self._token_ids = token_ids

    def _mac(self, token_id: str, expires: int) -> str:
        return hmac.new(self._key, f"{token_id}.{expires}".encode(), hashlib.sha256).hexdigest()

    def issue(self, token_id: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + LIFETIME_S)
        return f"{token_id}.{expires}.{self._mac(token_id, expires)}"

    def verify(self, cookie: str, now: float | None = None) -> str | None:
        """The token id a cookie stands for; None if forged, expired, or its token was
        removed from the server's list."""
        parts = cookie.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        token_id, expires, mac = parts[0], int(parts[1]), parts[2]
        if not hmac.compare_digest(mac, self._mac(token_id, expires)):
            return None
        if expires < (now or time.time()) or token_id not in self._token_ids:
            return None
        return token_id
