"""The agent's wrap-up of a call: validated at the edge, saved with an optional follow-up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hotline.callbacks.booking import TOPICS, BookingError
from hotline.callbacks.service import CallbackService
from hotline.callbacks.slots import DAY
from hotline.db import callbacks as store
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from hotline.errors import Forbidden, NotFound

OUTCOMES = ("solved", "partly_solved", "not_solved", "referred", "fraud_stopped", "no_contact")
OWNERS = ("agent", "elder", "family", "none")
TEXT_MAX = 500


class WrapupError(BookingError):
    """A wrap-up input problem (422 unless said otherwise)."""


@dataclass(frozen=True)
class FollowUp:
    when: float
    topic: str


@dataclass(frozen=True)
class Wrapup:
    problem: str
    action: str
    next_step: str
    next_owner: str
    outcome_code: str
    share_with_family: bool
    follow_up: FollowUp | None
    no_follow_up_reason: str


def _text(data: dict[str, Any], key: str, required: bool = False) -> str:
    value = data.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise WrapupError("wrapup.err_field", key, field_name=key)
    value = value.strip()
    if len(value) > TEXT_MAX:
        raise WrapupError("wrapup.err_too_long", key, n=TEXT_MAX)
    if required and not value:
        raise WrapupError("wrapup.err_required", key)
    return value


def parse_when(raw: Any, now: float, tz: ZoneInfo) -> float:
    """A follow-up time: epoch seconds or local 'YYYY-MM-DDTHH:MM', future, within 14 days."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        at = float(raw)
    elif isinstance(raw, str) and len(raw) <= 32:
        try:
            local = datetime.fromisoformat(raw)
        except ValueError:
            raise WrapupError("wrapup.err_when", "follow_up.when") from None
        at = (local if local.tzinfo else local.replace(tzinfo=tz)).timestamp()
    else:
        raise WrapupError("wrapup.err_when", "follow_up.when")
    if not now < at <= now + 14 * DAY:
        raise WrapupError("wrapup.err_when", "follow_up.when")
    return at


def parse(data: Any, *, fraud: bool, now: float, tz: ZoneInfo) -> Wrapup:
    """Validate a wrap-up body; fraud calls need a follow-up or an explicit reason."""
    if not isinstance(data, dict):
        raise WrapupError("wrapup.err_json")
    outcome = data.get("outcome_code")
    if outcome not in OUTCOMES:
        raise WrapupError("wrapup.err_outcome", "outcome_code")
    owner = data.get("next_owner") or "none"
    if owner not in OWNERS:
        raise WrapupError("wrapup.err_owner", "next_owner")
    share = data.get("share_with_family", False)
    if not isinstance(share, bool):
        raise WrapupError("wrapup.err_field", "share_with_family")
    follow = None
    raw = data.get("follow_up")
    if raw is not None:
        if not isinstance(raw, dict):
            raise WrapupError("wrapup.err_field", "follow_up")
        topic = raw.get("topic") or "other"
        if topic not in TOPICS:
            raise WrapupError("wrapup.err_topic", "follow_up.topic")
        follow = FollowUp(parse_when(raw.get("when"), now, tz), topic)
    reason = _text(data, "no_follow_up_reason")
    if fraud and follow is None and not reason:
        raise WrapupError("wrapup.err_fraud_follow_up", "follow_up")
    return Wrapup(
        problem=_text(data, "problem", required=True),
        action=_text(data, "action"),
        next_step=_text(data, "next_step"),
        next_owner=owner,
        outcome_code=outcome,
        share_with_family=share,
        follow_up=follow,
        no_follow_up_reason=reason,
    )


def save(
    service: CallbackService, call_id: str, agent_id: int, is_supervisor: bool, data: Any
) -> dict[str, Any]:
    """Store the wrap-up of a call by its agent (or a supervisor); book the follow-up once."""
    db = service.db
    call = calls_db.get(db, call_id) if len(call_id) <= 64 else None
    if call is None:
        raise NotFound("no such call", code="call_unknown")
    if call["agent_id"] != agent_id and not is_supervisor:
        raise Forbidden(
            "only the call's agent or a supervisor may wrap it up", code="not_your_call"
        )
    now = service.clock()
    w = parse(data, fraud=bool(call["fraud_flag"]), now=now, tz=service.tz)
    with db.transaction():
        previous = store.get_wrapup(db, call_id)
        follow_id = previous["follow_up_callback_id"] if previous else None
        if w.follow_up is not None and follow_id is None:
            elder = elders_db.get(db, call["elder_id"]) if call["elder_id"] else None
            follow_id = store.insert(
                db,
                {
                    "code": store.new_code(db),
                    "kind": "follow_up",
                    "status": "booked",
                    "elder_id": elder.id if elder else None,
                    "phone": elder.phone if elder else "",
                    "dialect": call["dialect"],
                    "topic": w.follow_up.topic,
                    "note": w.next_step,
                    "due_at": w.follow_up.when,
                    "lang": elder.lang if elder else service.cfg.default_lang,
                    "idem_key": f"follow_up:{call_id}",
                    "source_call_id": call_id,
                    "created_by": f"agent:{agent_id}",
                    "created_at": now,
                    "updated_at": now,
                },
            )
        store.save_wrapup(
            db,
            call_id,
            {
                "agent_id": call["agent_id"] or agent_id,
                "problem": w.problem,
                "action": w.action,
                "next_step": w.next_step,
                "next_owner": w.next_owner,
                "outcome_code": w.outcome_code,
                "share_with_family": int(w.share_with_family),
                "follow_up_callback_id": follow_id,
                "no_follow_up_reason": w.no_follow_up_reason,
            },
            now,
        )
    return {"call_id": call_id, "saved": True, "follow_up_callback_id": follow_id}
