"""The guidance websocket messages, validated at the edge and applied to a session.

Agent -> server: guide_start, guide_push, guide_back, guide_skip, guide_text, guide_stop.
Caller -> server: guide_answer. Server -> both: guide_state (see docs/guidance.md).
"""

from __future__ import annotations

from typing import Any

from hotline.errors import BadMessage, Forbidden
from hotline.guidance.session import AnswerRow, GuidanceSession

AGENT_TYPES = ("guide_start", "guide_push", "guide_back", "guide_skip", "guide_text", "guide_stop")
CALLER_TYPES = ("guide_answer",)
MAX_ID = 64


def _field(msg: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    value = msg.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise BadMessage(f"{msg.get('type')} needs {name} ({kind.__name__})")
    if isinstance(value, str) and len(value) > MAX_ID and name != "text":
        raise BadMessage(f"{name} is too long")
    return value


def apply_message(session: GuidanceSession, msg: dict[str, Any], role: str) -> AnswerRow | None:
    """Apply one message from `role` ("agent" or "caller"); a typed error changes nothing."""
    kind = msg.get("type")
    if kind in AGENT_TYPES and role != "agent" or kind in CALLER_TYPES and role != "caller":
        raise Forbidden(f"{role} may not send {kind}")
    if kind == "guide_start":
        session.start(_field(msg, "script_id", str))
    elif kind == "guide_push":
        session.push(_field(msg, "step_id", str))
    elif kind == "guide_back":
        session.back()
    elif kind == "guide_skip":
        session.skip()
    elif kind == "guide_text":
        session.free_text(_field(msg, "text", str))
    elif kind == "guide_stop":
        session.stop()
    elif kind == "guide_answer":
        return session.answer(
            _field(msg, "seq", int),
            _field(msg, "answer", str),
            _field(msg, "step_id", str, required=False),
        )
    else:
        raise BadMessage(f"not a guidance message: {kind!r}")
    return None


def state_messages(
    session: GuidanceSession, lang: str = "zh_CN", dialect: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The guide_state messages for the agent (snapshot) and for the caller (view)."""
    return (
        {"type": "guide_state", "snapshot": session.snapshot()},
        {"type": "guide_state", "view": session.caller_view(lang, dialect)},
    )
