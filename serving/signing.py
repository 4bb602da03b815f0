"""Webhook signatures, the way Replicate signs them (the Standard Webhooks scheme).

Content `"{webhook_id}.{timestamp}.{body}"` is signed with HMAC-SHA256 keyed with the
base64-decoded part of the `whsec_...` secret; the header carries `v1,<base64 digest>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The value of the `webhook-signature` header for one delivery."""
    assert secret.startswith(PREFIX), "a webhook secret starts with whsec_"
    key = base64.b64decode(secret[len(PREFIX) :])
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
