"""Reads for the supervisor side: call history and search, report rows, metrics aggregates,
and the enabled/disabled state of guidance scripts."""

from __future__ import annotations

import json
from typing import Any

from hotline.db import Database, now

# Columns of a call that reports and the history list need (never rejoin_hash).
CALL_COLUMNS = (
    "c.id, c.elder_id, c.agent_id, c.dialect, c.kind, c.arrived_at, c.rang_at, c.answered_at,"
    " c.ended_at, c.wait_seconds, c.talk_seconds, c.outcome, c.ended_by, c.fraud_flag,"
    " c.priority, c.rating, c.hold_seconds, c.transfers"
)
ALERT_KINDS = ("any", "fraud", "distress")
SEARCH_LIMIT = 500


def ping(db: Database) -> bool:
    """True when the database answers a trivial read."""
    row = db.query_one("SELECT 1")
    return bool(row and row[0] == 1)


def calls_between(db: Database, start: float, end: float) -> list[dict[str, Any]]:
    """Every call that arrived in [start, end), oldest first."""
    rows = db.query(
        f"SELECT {CALL_COLUMNS} FROM calls c WHERE c.arrived_at >= ? AND c.arrived_at < ?"
        " ORDER BY c.arrived_at",
        (start, end),
    )
    return [dict(r) for r in rows]


def arrivals_between(db: Database, start: float, end: float) -> list[float]:
    """Arrival times of calls in [start, end) (for calls-per-hour)."""
    rows = db.query(
        "SELECT arrived_at FROM calls WHERE arrived_at >= ? AND arrived_at < ?", (start, end)
    )
    return [float(r[0]) for r in rows]


def alerts_between(db: Database, start: float, end: float) -> list[dict[str, Any]]:
    """Alert events (phrase, category) heard in [start, end)."""
    rows = db.query(
        "SELECT call_id, at, detail FROM call_events WHERE kind = 'alert' AND at >= ? AND at < ?"
        " ORDER BY at",
        (start, end),
    )
    return [{"call_id": r[0], "at": r[1], **_detail(r[2])} for r in rows]


def _detail(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def guidance_answers_between(db: Database, start: float, end: float) -> list[dict[str, Any]]:
    """Guidance answer rows stored in [start, end)."""
    rows = db.query(
        "SELECT call_id, script_id, step_id, answer, seq, at, seconds FROM guidance_answers"
        " WHERE at >= ? AND at < ? ORDER BY at, id",
        (start, end),
    )
    return [dict(r) for r in rows]


def search_calls(
    db: Database,
    *,
    elder: str = "",
    agent_id: int | None = None,
    start: float | None = None,
    end: float | None = None,
    dialect: str = "",
    outcome: str = "",
    alert: str = "",
    rating: str = "",
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Calls matching every given filter, newest first, with elder and agent names.

    `elder` matches an elder id, a card code, or part of a name; `alert` is `any`, `fraud`
    or `distress` (calls with such an alert event; `fraud` also matches flagged calls).
    """
    where: list[str] = ["1=1"]
    params: list[Any] = []
    if elder:
        where.append("(CAST(e.id AS TEXT) = ? OR e.card_code = ? OR e.name LIKE ? ESCAPE '\\')")
        params += [elder, elder, f"%{_like(elder)}%"]
    if agent_id is not None:
        where.append("c.agent_id = ?")
        params.append(agent_id)
    if start is not None:
        where.append("c.arrived_at >= ?")
        params.append(start)
    if end is not None:
        where.append("c.arrived_at < ?")
        params.append(end)
    if dialect:
        where.append("c.dialect = ?")
        params.append(dialect)
    if outcome == "open":
        where.append("c.ended_at IS NULL")
    elif outcome:
        where.append("c.outcome = ?")
        params.append(outcome)
    if rating:
        where.append("c.rating = ?")
        params.append(rating)
    if alert in ALERT_KINDS:
        cond = "ev.call_id = c.id AND ev.kind = 'alert'"
        if alert != "any":
            cond += " AND json_extract(ev.detail, '$.category') = ?"
            params.append(alert)
        clause = f"EXISTS (SELECT 1 FROM call_events ev WHERE {cond})"
        where.append(f"({clause} OR c.fraud_flag = 1)" if alert in ("any", "fraud") else clause)
    sql = (
        f"SELECT {CALL_COLUMNS}, e.name AS elder_name, e.card_code AS elder_card,"
        " a.display_name AS agent_name,"
        " (SELECT COUNT(*) FROM call_events ev2 WHERE ev2.call_id = c.id AND ev2.kind = 'alert')"
        " AS alerts"
        " FROM calls c LEFT JOIN elders e ON e.id = c.elder_id"
        " LEFT JOIN agents a ON a.id = c.agent_id"
        f" WHERE {' AND '.join(where)} ORDER BY c.arrived_at DESC LIMIT ? OFFSET ?"
    )
    limit = max(1, min(int(limit), SEARCH_LIMIT))
    rows = db.query(sql, (*params, limit, max(0, int(offset))))
    return [dict(r) for r in rows]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def call_names(db: Database, call_id: str) -> dict[str, Any]:
    """The elder's and agent's display names of one call (empty when unknown)."""
    row = db.query_one(
        "SELECT e.name AS elder_name, e.card_code AS elder_card, a.display_name AS agent_name"
        " FROM calls c LEFT JOIN elders e ON e.id = c.elder_id"
        " LEFT JOIN agents a ON a.id = c.agent_id WHERE c.id = ?",
        (call_id,),
    )
    return dict(row) if row else {}


def outcomes(db: Database) -> list[str]:
    """Every outcome stored so far (for the search form)."""
    rows = db.query("SELECT DISTINCT outcome FROM calls WHERE outcome IS NOT NULL ORDER BY 1")
    return [r[0] for r in rows]


# --- metrics aggregates --------------------------------------------------------------------

# Each latency is a fixed expression (never built from input).
_LATENCY = {
    "ring": ("rang_at - arrived_at", "rang_at IS NOT NULL"),
    "answer": ("answered_at - arrived_at", "answered_at IS NOT NULL"),
}


def latency_histogram(
    db: Database, which: str, bounds: tuple[float, ...]
) -> tuple[list[int], int, float]:
    """Cumulative bucket counts (one per bound), total count and sum of a call latency.

    Over every stored call, so the counts only grow (Prometheus histogram semantics).
    """
    expr, cond = _LATENCY[which]
    cols = ", ".join(f"SUM(CASE WHEN {expr} <= ? THEN 1 ELSE 0 END)" for _ in bounds)
    row = db.query_one(
        f"SELECT COUNT(*), COALESCE(SUM({expr}), 0){', ' + cols if cols else ''}"
        f" FROM calls WHERE {cond}",
        bounds,
    )
    if row is None:
        return [0] * len(bounds), 0, 0.0
    count, total = int(row[0] or 0), float(row[1] or 0.0)
    return [int(v or 0) for v in row[2:]], count, total


def calls_by_outcome(db: Database) -> dict[str, int]:
    """Ended calls by outcome, over every stored call."""
    rows = db.query(
        "SELECT outcome, COUNT(*) FROM calls WHERE ended_at IS NOT NULL GROUP BY outcome"
    )
    return {str(r[0] or "unknown"): int(r[1]) for r in rows}


def callbacks_by_status(db: Database) -> dict[str, int]:
    """Callback bookings by status."""
    rows = db.query("SELECT status, COUNT(*) FROM callbacks GROUP BY status")
    return {str(r[0]): int(r[1]) for r in rows}


def ratings_total(db: Database) -> dict[str, int]:
    """Rated calls by rating, over every stored call."""
    rows = db.query("SELECT rating, COUNT(*) FROM calls WHERE rating IS NOT NULL GROUP BY rating")
    return {str(r[0]): int(r[1]) for r in rows}


# --- guidance scripts on/off ---------------------------------------------------------------


def disabled_scripts(db: Database) -> set[str]:
    """Ids of guidance scripts a supervisor switched off (the live side should not offer them)."""
    return {r[0] for r in db.query("SELECT script_id FROM script_settings WHERE enabled = 0")}


def set_script_enabled(db: Database, script_id: str, enabled: bool, by: str) -> None:
    """Switch a guidance script on or off."""
    db.execute(
        "INSERT INTO script_settings (script_id, enabled, updated_at, updated_by)"
        " VALUES (?, ?, ?, ?) ON CONFLICT(script_id) DO UPDATE SET enabled = excluded.enabled,"
        " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        (script_id, int(enabled), now(), by),
    )


# --- elders' links -------------------------------------------------------------------------


def find_elders(db: Database, text: str, limit: int = 20) -> list[dict[str, Any]]:
    """Elders whose id or card code is `text` or whose name contains it."""
    rows = db.query(
        "SELECT id, name, dialect, card_code FROM elders WHERE CAST(id AS TEXT) = ?"
        " OR card_code = ? OR name LIKE ? ESCAPE '\\' ORDER BY id LIMIT ?",
        (text, text, f"%{_like(text)}%", limit),
    )
    return [dict(r) for r in rows]
