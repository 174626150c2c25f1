"""Time-limited TURN credentials (coturn's use-auth-secret / static-auth-secret scheme)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any


def credentials(
    secret: str, urls: list[str], ttl: int, *, user: str = "hotline", now: float | None = None
) -> dict[str, Any]:
    """An RTCIceServer dict: username `expiry:user`, credential base64(HMAC-SHA1(secret, username))."""
    expiry = int((now if now is not None else time.time()) + ttl)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return {"urls": urls, "username": username, "credential": base64.b64encode(digest).decode()}
