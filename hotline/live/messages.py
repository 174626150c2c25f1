"""Parsing and validating websocket messages at the edge.

Every client message is a JSON object with a `type`. Each type declares its fields:
name -> (python type, required, max length for strings). Unknown fields are ignored;
anything else wrong raises BadMessage, which the server answers with a typed error.
"""

from __future__ import annotations

import json
from typing import Any

from hotline.errors import BadMessage

MAX_MESSAGE_BYTES = 64 * 1024
MAX_SDP = 60_000

Spec = dict[str, tuple[type | tuple[type, ...], bool, int]]

_SIGNAL: Spec = {"call_id": (str, False, 64), "data": (dict, True, 0)}
_TAP: Spec = {"call_id": (str, False, 64), "sdp": (str, True, MAX_SDP)}
# The one field of most plug-in messages (hold, transfer, history, ...): routes share it.
CALL_ID: Spec = {"call_id": (str, True, 64)}

# Messages each role may send.
CALLER: dict[str, Spec] = {
    "call": {"dialect": (str, False, 16)},
    "hangup": {"reason": (str, False, 32)},
    "signal": _SIGNAL,
    "tap_offer": _TAP,
    "rate": {"rating": (str, True, 8)},
    "ping": {},
}
AGENT: dict[str, Spec] = {
    "status": {"status": (str, True, 16)},
    "accept": CALL_ID,
    "decline": CALL_ID,
    "hangup": CALL_ID,
    "ready": {},
    "signal": _SIGNAL,
    "tap_offer": _TAP,
    "ping": {},
}


def parse(raw: str | bytes, allowed: dict[str, Spec]) -> dict[str, Any]:
    """Decode and validate one message for a role; raises BadMessage."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_MESSAGE_BYTES:
            raise BadMessage("message over 64 KiB", code="too_large")
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadMessage("message is not UTF-8", code="bad_json") from None
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise BadMessage("message over 64 KiB", code="too_large")
    try:
        msg = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadMessage("message is not valid JSON", code="bad_json") from None
    if not isinstance(msg, dict):
        raise BadMessage("message must be a JSON object", code="bad_json")
    try:  # valid JSON may still hold lone surrogates ("\ud800"): not text we can relay
        json.dumps(msg, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadMessage("message holds text that is not valid Unicode", code="bad_json") from None
    kind = msg.get("type")
    if not isinstance(kind, str) or kind not in allowed:
        raise BadMessage(
            f"unknown message type for this connection: {str(kind)[:40]!r}", code="unknown_type"
        )
    check_fields(msg, allowed[kind])
    return msg


def check_fields(msg: dict[str, Any], spec: Spec) -> None:
    """Check declared fields' presence, types and lengths."""
    for name, (kind, required, max_len) in spec.items():
        if name not in msg or msg[name] is None:
            if required:
                raise BadMessage(f"field {name!r} is required", code="missing_field")
            continue
        value = msg[name]
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            raise BadMessage(f"field {name!r} has the wrong type", code="bad_field")
        if not isinstance(value, kind):
            raise BadMessage(f"field {name!r} has the wrong type", code="bad_field")
        if max_len and isinstance(value, str) and len(value) > max_len:
            raise BadMessage(f"field {name!r} is too long", code="bad_field")


def check_signal_data(data: dict[str, Any]) -> dict[str, Any]:
    """A browser-to-browser signalling payload: an SDP description or an ICE candidate."""
    if "sdp" in data:
        sdp, kind = data.get("sdp"), data.get("kind")
        if kind not in ("offer", "answer") or not isinstance(sdp, str):
            raise BadMessage("description needs kind offer|answer and sdp", code="bad_sdp")
        check_sdp(sdp)
        return {"sdp": sdp, "kind": kind}
    if "candidate" in data:
        cand = data.get("candidate")
        if cand is not None and not isinstance(cand, dict):
            raise BadMessage("candidate must be an object or null", code="bad_signal")
        if isinstance(cand, dict):
            text = cand.get("candidate", "")
            if not isinstance(text, str) or len(text) > 1024:
                raise BadMessage("bad candidate", code="bad_signal")
            clean = {
                "candidate": text,
                "sdpMid": cand.get("sdpMid") if isinstance(cand.get("sdpMid"), str) else None,
                "sdpMLineIndex": cand.get("sdpMLineIndex")
                if isinstance(cand.get("sdpMLineIndex"), int)
                and not isinstance(cand.get("sdpMLineIndex"), bool)
                else None,
            }
            return {"candidate": clean}
        return {"candidate": None}
    raise BadMessage("signal data needs sdp or candidate", code="bad_signal")


def check_sdp(sdp: str) -> None:
    """Reject text that is plainly not SDP (the peer's parser has the last word)."""
    if len(sdp) > MAX_SDP or not sdp.startswith("v=0") or "\nm=" not in sdp:
        raise BadMessage("that is not an SDP description", code="bad_sdp")
