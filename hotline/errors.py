"""Small named errors, each mapped to one HTTP status and one websocket error code."""

from __future__ import annotations


class HotlineError(Exception):
    """Base of every error a user can cause; it changes nothing and is answered plainly."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str = "", *, code: str | None = None) -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code
        if code:
            self.code = code

    def to_message(self) -> dict[str, str]:
        """The `{"type":"error"}` websocket message for this error."""
        return {"type": "error", "code": self.code, "detail": self.detail}


class BadMessage(HotlineError):
    code = "bad_message"


class BadSdp(HotlineError):
    code = "bad_sdp"


class Unauthorized(HotlineError):
    status = 401
    code = "unauthorized"


class Forbidden(HotlineError):
    status = 403
    code = "forbidden"


class NotFound(HotlineError):
    status = 404
    code = "not_found"


class LinkExpired(HotlineError):
    status = 410
    code = "link_expired"


class Conflict(HotlineError):
    status = 409
    code = "conflict"


class TooMany(HotlineError):
    status = 429
    code = "rate_limited"


class Unavailable(HotlineError):
    """What the request needs is out of reach for now (another node); trying again may work."""

    status = 503
    code = "unavailable"


class SpeechUnavailable(HotlineError):
    """A spoken prompt could not be rendered; pages show its text instead."""

    status = 503
    code = "speech_unavailable"
