"""Signed, expiring tokens: websocket tickets, spoken-prompt URLs, manage links."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from hotline.errors import LinkExpired, Unauthorized


class Signer:
    """One secret, several purposes (salts), so a token of one kind never passes as another."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def _s(self, purpose: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._secret, salt=f"hotline.{purpose}")

    def dumps(self, purpose: str, payload: Any) -> str:
        return self._s(purpose).dumps(payload)

    def loads(self, purpose: str, token: str, max_age: int | None = None) -> Any:
        """The payload; Unauthorized if forged, LinkExpired if too old."""
        if not isinstance(token, str) or len(token) > 4096:
            raise Unauthorized("bad token")
        try:
            return self._s(purpose).loads(token, max_age=max_age)
        except SignatureExpired:
            raise LinkExpired("this token has expired") from None
        except BadSignature:
            raise Unauthorized("this token is not valid") from None


def new_secret(nbytes: int = 18) -> str:
    return secrets.token_urlsafe(nbytes)


def digest(secret: str) -> str:
    """What is stored for a bearer secret (never the secret itself)."""
    return hashlib.sha256(secret.encode()).hexdigest()
