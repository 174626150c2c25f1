"""An elder's history for the console's context card: past calls with their wrap-ups,
open callbacks and follow-ups, fraud flags. Reads only; the callers audit every read."""

from __future__ import annotations

from typing import Any

from hotline.db import Database
from hotline.db.callbacks import ACTIVE

_CALLS = (
    "SELECT c.id AS call_id, c.arrived_at, c.answered_at, c.ended_at, c.outcome, c.rating,"
    " c.fraud_flag, c.talk_seconds, c.dialect, a.display_name AS agent,"
    " w.problem, w.action, w.next_step, w.next_owner, w.outcome_code,"
    " (SELECT ev.detail FROM call_events ev WHERE ev.call_id = c.id AND ev.kind = 'identity'"
    " ORDER BY ev.id DESC LIMIT 1) AS identity"
    " FROM calls c LEFT JOIN agents a ON a.id = c.agent_id"
    " LEFT JOIN wrapups w ON w.call_id = c.id"
    " WHERE c.elder_id = ? AND c.id != ? AND c.ended_at IS NOT NULL"
    " ORDER BY c.arrived_at DESC LIMIT ?"
)


def past_calls(db: Database, elder_id: int, *, exclude: str = "", limit: int = 3) -> list[dict]:
    """The elder's ended calls, newest first, each with its wrap-up fields (or None)."""
    return [dict(r) for r in db.query(_CALLS, (elder_id, exclude, limit))]


def calls_since(db: Database, elder_id: int, since: float) -> int:
    """How many calls the elder made since `since` (the current one included)."""
    row = db.query_one(
        "SELECT COUNT(*) FROM calls WHERE elder_id = ? AND arrived_at >= ?", (elder_id, since)
    )
    return int(row[0]) if row else 0


def fraud_flags(db: Database, elder_id: int) -> dict[str, Any]:
    """How many of the elder's calls were flagged for fraud, and when the last one was."""
    row = db.query_one(
        "SELECT COUNT(*), MAX(arrived_at) FROM calls WHERE elder_id = ? AND fraud_flag = 1",
        (elder_id,),
    )
    return {"count": int(row[0]) if row else 0, "last_at": row[1] if row else None}


def open_callbacks(db: Database, elder_id: int) -> list[dict[str, Any]]:
    """The elder's callbacks and follow-ups not yet done, soonest first."""
    marks = ",".join("?" for _ in ACTIVE)
    rows = db.query(
        "SELECT id, kind, status, due_at, topic FROM callbacks"
        f" WHERE elder_id = ? AND status IN ({marks}) ORDER BY due_at",
        (elder_id, *ACTIVE),
    )
    return [dict(r) for r in rows]
