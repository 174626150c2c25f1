"""Calls and their timeline events."""

from __future__ import annotations

import json
from typing import Any

from hotline.db import Database, now


def create(
    db: Database,
    call_id: str,
    *,
    elder_id: int | None,
    dialect: str,
    kind: str,
    arrived_at: float,
    rejoin_hash: str | None = None,
    priority: int = 0,
) -> None:
    """Record a caller's arrival (before they are told they are in line)."""
    db.execute(
        "INSERT INTO calls (id, elder_id, dialect, kind, arrived_at, rejoin_hash, priority)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (call_id, elder_id, dialect, kind, arrived_at, rejoin_hash, priority),
    )


def rang(db: Database, call_id: str, agent_id: int, at: float) -> None:
    db.execute("UPDATE calls SET rang_at = COALESCE(rang_at, ?) WHERE id = ?", (at, call_id))
    event(db, call_id, "ring", {"agent_id": agent_id}, at=at)


def answered(db: Database, call_id: str, agent_id: int, at: float) -> None:
    with db.transaction() as conn:
        conn.execute(
            "UPDATE calls SET agent_id = ?, answered_at = ?, wait_seconds = ? - arrived_at"
            " WHERE id = ?",
            (agent_id, at, at, call_id),
        )
    event(db, call_id, "answer", {"agent_id": agent_id}, at=at)


def ended(db: Database, call_id: str, *, outcome: str, ended_by: str, at: float) -> None:
    """Close the call row once; a second end is ignored (idempotent)."""
    with db.transaction() as conn:
        conn.execute(
            "UPDATE calls SET ended_at = ?, outcome = ?, ended_by = ?,"
            " wait_seconds = COALESCE(wait_seconds, ? - arrived_at),"
            " talk_seconds = CASE WHEN answered_at IS NULL THEN NULL ELSE ? - answered_at END"
            " WHERE id = ? AND ended_at IS NULL",
            (at, outcome, ended_by, at, at, call_id),
        )
    event(db, call_id, "end", {"outcome": outcome, "by": ended_by}, at=at)


def requeued(db: Database, call_id: str, reason: str, at: float) -> None:
    """An answered call whose agent dropped goes back to waiting: forget the answer."""
    with db.transaction() as conn:
        conn.execute(
            "UPDATE calls SET agent_id = NULL, answered_at = NULL, wait_seconds = NULL WHERE id = ?",
            (call_id,),
        )
    event(db, call_id, "requeue", {"reason": reason}, at=at)


def event(
    db: Database,
    call_id: str,
    kind: str,
    detail: dict[str, Any] | None = None,
    *,
    at: float | None = None,
) -> None:
    db.execute(
        "INSERT INTO call_events (call_id, at, kind, detail) VALUES (?, ?, ?, ?)",
        (
            call_id,
            at if at is not None else now(),
            kind,
            json.dumps(detail or {}, ensure_ascii=False),
        ),
    )


def get(db: Database, call_id: str) -> dict[str, Any] | None:
    row = db.query_one("SELECT * FROM calls WHERE id = ?", (call_id,))
    return dict(row) if row else None


def add_events(db: Database, rows: list[tuple[str, float, str, dict[str, Any]]]) -> None:
    """Several calls' events (call id, at, kind, detail), in one transaction."""
    with db.transaction() as conn:
        for call_id, at, kind, detail in rows:
            conn.execute(
                "INSERT INTO call_events (call_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                (call_id, at, kind, json.dumps(detail, ensure_ascii=False)),
            )


def ended_by_rejoin(db: Database, rejoin_hash: str, since: float) -> dict[str, Any] | None:
    """The call a rejoin secret was issued for, if it was answered and ended at or after
    `since` (a page whose call was never answered just starts afresh)."""
    row = db.query_one(
        "SELECT * FROM calls WHERE rejoin_hash = ? AND answered_at IS NOT NULL"
        " AND ended_at IS NOT NULL AND ended_at >= ?",
        (rejoin_hash, since),
    )
    return dict(row) if row else None


def events(db: Database, call_id: str) -> list[dict[str, Any]]:
    rows = db.query("SELECT * FROM call_events WHERE call_id = ? ORDER BY at, id", (call_id,))
    return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]


def recent_handle_seconds(db: Database, limit: int = 50) -> list[float]:
    """Talk seconds of the most recent answered, ended calls (for the wait estimate)."""
    rows = db.query(
        "SELECT talk_seconds FROM calls WHERE talk_seconds IS NOT NULL"
        " ORDER BY ended_at DESC LIMIT ?",
        (limit,),
    )
    return [float(r[0]) for r in rows]


def open_calls(db: Database) -> list[dict[str, Any]]:
    """Calls left open (waiting callers are restored from these), oldest arrival first, each
    with whether the caller asked to be called back (one query however long the line)."""
    # Ties (equal arrival times) break by insertion on SQLite; PostgreSQL has no rowid.
    order = "c.arrived_at, c.rowid" if db.dialect == "sqlite" else "c.arrived_at, c.id"
    rows = db.query(
        "SELECT c.*, EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id"
        " AND e.kind = 'callback_requested') AS callback_requested"
        f" FROM calls c WHERE c.ended_at IS NULL ORDER BY {order}"
    )
    return [{**dict(r), "callback_requested": bool(r["callback_requested"])} for r in rows]


def close_interrupted(db: Database, at: float) -> int:
    """Mark every call left open by a crash as interrupted; returns how many."""
    rows = open_calls(db)
    for row in rows:
        ended(db, row["id"], outcome="interrupted", ended_by="server", at=at)
    return len(rows)


def flag_fraud(db: Database, call_id: str) -> None:
    """Mark the call for follow-up: a fraud cue was heard (wrap-up then needs a follow-up)."""
    db.execute("UPDATE calls SET fraud_flag = 1 WHERE id = ?", (call_id,))


RATINGS = ("good", "ok", "bad")


def rate(db: Database, call_id: str, rating: str) -> bool:
    """The caller's one-tap rating of an ended call (once); False if already rated."""
    cur = db.execute(
        "UPDATE calls SET rating = ? WHERE id = ? AND rating IS NULL AND ended_at IS NOT NULL",
        (rating, call_id),
    )
    return cur.rowcount > 0


def in_call_with(db: Database, agent_id: int, elder_id: int) -> bool:
    """Whether the agent has a call with this elder that has not ended (answered or not)."""
    row = db.query_one(
        "SELECT 1 FROM calls WHERE agent_id = ? AND elder_id = ? AND ended_at IS NULL LIMIT 1",
        (agent_id, elder_id),
    )
    return row is not None
