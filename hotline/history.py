"""Who is calling: the context card an agent sees on the ring and during the call.

Pure: it shapes rows read by hotline/db/history.py into the card sent to the console. The
card holds no phone number (the agent does not need it to help; callbacks have their own,
audited way to show it).
"""

from __future__ import annotations

import json
from typing import Any

WEEK = 7 * 86400.0
CARD_CALLS = 3  # past calls on the card; the full history is one click away

CallRow = dict[str, Any]


def past_call(row: CallRow) -> dict[str, Any]:
    """One past call as the console shows it (wrap-up fields empty when none was written)."""
    return {
        "call_id": row["call_id"],
        "at": row["arrived_at"],
        "agent": row.get("agent") or "",
        "problem": row.get("problem") or "",
        "action": row.get("action") or "",
        "next_step": row.get("next_step") or "",
        "next_owner": row.get("next_owner") or "",
        "outcome_code": row.get("outcome_code") or "",
        "outcome": row.get("outcome") or "",
        "rating": row.get("rating") or "",
        "fraud": bool(row.get("fraud_flag")),
        "talk_seconds": round(row["talk_seconds"]) if row.get("talk_seconds") else 0,
        "identity": _identity(row.get("identity")),
    }


def _identity(raw: str | None) -> str:
    """The identity check's recorded outcome of a call ('' when none was recorded)."""
    if not raw:
        return ""
    try:
        return str(json.loads(raw).get("outcome") or "")
    except (ValueError, AttributeError):
        return ""


def card(
    elder: Any | None,
    *,
    calls: list[CallRow],
    calls_7d: int,
    open_callbacks: list[dict[str, Any]],
    fraud: dict[str, Any],
) -> dict[str, Any]:
    """The context card; an anonymous caller (no link) gets a card that says so."""
    if elder is None:
        return {"known": False}
    return {
        "known": True,
        "elder": {
            "id": elder.id,
            "name": elder.name,
            "dialect": elder.dialect,
            "hard_of_hearing": bool(elder.hard_of_hearing),
        },
        "calls_7d": calls_7d,
        "last_calls": [past_call(r) for r in calls],
        "open_callbacks": [
            {
                "id": c["id"],
                "kind": c["kind"],
                "status": c["status"],
                "due_at": c["due_at"],
                "topic": c["topic"],
            }
            for c in open_callbacks
        ],
        "fraud": {"count": fraud.get("count", 0), "last_at": fraud.get("last_at")},
    }
