"""The line and agents' states as rows: every transition one short transaction, exactly once.

Each transition is a conditional UPDATE (`… WHERE state = 'pending'`), so of two nodes trying
the same step only one changes a row; the other gets a typed `LineError` and changes nothing.
On PostgreSQL, `reserve_next` takes the head of the line with `FOR UPDATE SKIP LOCKED`, and
expiries use the database's clock; on SQLite the single writer serialises everything and the
one node's clock is the database's.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from hotline.db import Database

PENDING, RESERVED, ASSIGNED, WRAPPING, DONE = "pending", "reserved", "assigned", "wrapping", "done"
WAITING_STATES = (PENDING, RESERVED)


class LineError(Exception):
    """A transition that does not apply (someone else got there first, or it expired)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Entry:
    """One caller's row in the line."""

    call_id: str
    dialect: str
    arrived_at: float
    priority: int
    place: float
    state: str
    agent_id: int | None
    expires_at: float | None
    declined_by: frozenset[int]
    node: str


@dataclass(frozen=True)
class AgentRow:
    agent_id: int
    dialects: tuple[str, ...]
    status: str
    idle_since: float
    call_id: str | None
    node: str


def _entry(r: Any) -> Entry:
    return Entry(
        call_id=r["call_id"],
        dialect=r["dialect"],
        arrived_at=r["arrived_at"],
        priority=r["priority"],
        place=r["place"],
        state=r["state"],
        agent_id=r["agent_id"],
        expires_at=r["expires_at"],
        declined_by=frozenset(int(x) for x in r["declined_by"].split(",") if x),
        node=r["node"],
    )


def _agent(r: Any) -> AgentRow:
    return AgentRow(
        agent_id=r["agent_id"],
        dialects=tuple(d for d in r["dialects"].split(",") if d),
        status=r["status"],
        idle_since=r["idle_since"],
        call_id=r["call_id"],
        node=r["node"],
    )


def db_now(db: Database, conn: Any = None) -> float:
    """The database's clock in epoch seconds (PostgreSQL), or this node's (SQLite: one node)."""
    if db.dialect == "postgresql":
        c: Any = conn or db._conn()
        return float(c.execute_raw("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")
                     .fetchone()[0])  # fmt: skip
    return time.time()


def _next(conn: Any, counter: str, step: int) -> int:
    row = conn.execute(
        "UPDATE line_counters SET value = value + ? WHERE name = ? RETURNING value",
        (step, counter),
    ).fetchone()
    return int(row[0])


def arrive(
    db: Database, call_id: str, dialect: str, arrived_at: float, priority: int, node: str,
    *, at_head: bool = False,
) -> Entry:  # fmt: skip
    """A caller joins: pending at the back of their line (or the front, `at_head`)."""
    try:
        with db.transaction() as conn:
            place = _next(conn, "head", -1) if at_head else _next(conn, "arrival", 1)
            conn.execute(
                "INSERT INTO line_entries (call_id, dialect, arrived_at, priority, place, state,"
                " node, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                (call_id, dialect, arrived_at, priority, float(place), node, db_now(db, conn)),
            )
    except sqlite3.IntegrityError as exc:  # both engines raise this (see hotline/db/postgres.py)
        raise LineError("duplicate", "this caller is already in the line") from exc
    found = get(db, call_id)
    assert found is not None
    return found


def get(db: Database, call_id: str) -> Entry | None:
    row = db.query_one("SELECT * FROM line_entries WHERE call_id = ?", (call_id,))
    return _entry(row) if row else None


def waiting(db: Database) -> list[Entry]:
    """Pending and reserved callers in serving order (priority first, then place)."""
    rows = db.query(
        "SELECT * FROM line_entries WHERE state IN ('pending', 'reserved')"
        " ORDER BY priority DESC, place"
    )
    return [_entry(r) for r in rows]


def positions(db: Database) -> dict[str, int]:
    """1-based place of every waiting caller among those of their dialect."""
    rows = db.query(
        "SELECT call_id, ROW_NUMBER() OVER (PARTITION BY dialect ORDER BY priority DESC, place)"
        " FROM line_entries WHERE state IN ('pending', 'reserved')"
    )
    return {r[0]: int(r[1]) for r in rows}


def agent_login(db: Database, agent_id: int, dialects: tuple[str, ...], node: str) -> AgentRow:
    """An agent's console connects (to `node`): present, away until they say available."""
    with db.transaction() as conn:
        t = db_now(db, conn)
        conn.execute(
            "INSERT INTO agent_states (agent_id, dialects, status, idle_since, node, updated_at)"
            " VALUES (?, ?, 'away', ?, ?, ?) ON CONFLICT(agent_id) DO UPDATE SET"
            " dialects = excluded.dialects, node = excluded.node, updated_at = excluded.updated_at",
            (agent_id, ",".join(dialects), t, node, t),
        )
    found = agent(db, agent_id)
    assert found is not None
    return found


def agent(db: Database, agent_id: int) -> AgentRow | None:
    row = db.query_one("SELECT * FROM agent_states WHERE agent_id = ?", (agent_id,))
    return _agent(row) if row else None


def agents(db: Database) -> list[AgentRow]:
    return [_agent(r) for r in db.query("SELECT * FROM agent_states ORDER BY agent_id")]


def set_available(db: Database, agent_id: int, available: bool) -> AgentRow:
    """An agent between calls says available or away (not while ringing or in a call)."""
    with db.transaction() as conn:
        t = db_now(db, conn)
        cur = conn.execute(
            "UPDATE agent_states SET status = ?, idle_since = CASE WHEN ? = 'available'"
            " AND status != 'available' THEN ? ELSE idle_since END, updated_at = ?"
            " WHERE agent_id = ? AND status IN ('available', 'away')",
            ("available" if available else "away",) * 2 + (t, t, agent_id),
        )
        if cur.rowcount != 1:
            raise LineError("agent_busy", "the agent is ringing or in a call")
    found = agent(db, agent_id)
    assert found is not None
    return found


def _take_agent(conn: Any, agent_id: int, call_id: str, t: float) -> None:
    cur = conn.execute(
        "UPDATE agent_states SET status = 'ringing', call_id = ?, updated_at = ?"
        " WHERE agent_id = ? AND status = 'available'",
        (call_id, t, agent_id),
    )
    if cur.rowcount != 1:
        raise LineError("agent_busy", "the agent is not available (rung by another node?)")


def reserve(db: Database, call_id: str, agent_id: int, ttl: float) -> Entry:
    """Ring this agent for this caller: both must still be free (exactly once)."""
    with db.transaction() as conn:
        t = db_now(db, conn)
        cur = conn.execute(
            "UPDATE line_entries SET state = 'reserved', agent_id = ?, reserved_at = ?,"
            " expires_at = ?, updated_at = ? WHERE call_id = ? AND state = 'pending'",
            (agent_id, t, t + ttl, t, call_id),
        )
        if cur.rowcount != 1:
            raise LineError("not_pending", "this caller is not waiting (rung or answered)")
        _take_agent(conn, agent_id, call_id, t)
    found = get(db, call_id)
    assert found is not None
    return found


def reserve_next(db: Database, agent_id: int, ttl: float, overflow_seconds: float) -> Entry | None:
    """Ring this available agent for the first caller they may take, or None.

    First in line order among the agent's dialects, or any dialect once overflowed; callers
    this agent passed on are skipped. On PostgreSQL, rows another node is reserving right now
    are skipped (SKIP LOCKED) instead of waited for.
    """
    with db.transaction() as conn:
        t = db_now(db, conn)
        lock = " FOR UPDATE" if db.dialect == "postgresql" else ""
        row = conn.execute(
            f"SELECT dialects, status FROM agent_states WHERE agent_id = ?{lock}", (agent_id,)
        ).fetchone()
        if row is None or row["status"] != "available":
            raise LineError("agent_busy", "the agent is not available")
        dialects = [d for d in row["dialects"].split(",") if d]
        marks = ",".join("?" for _ in dialects) or "NULL"
        skip = " FOR UPDATE SKIP LOCKED" if db.dialect == "postgresql" else ""
        found = conn.execute(
            f"SELECT call_id FROM line_entries WHERE state = 'pending'"
            f" AND (dialect IN ({marks}) OR arrived_at <= ?)"
            f" AND declined_by NOT LIKE ? ORDER BY priority DESC, place LIMIT 1{skip}",
            (*dialects, t - overflow_seconds, f"%,{agent_id},%"),
        ).fetchone()
        if found is None:
            return None
        call_id = found[0]
        conn.execute(
            "UPDATE line_entries SET state = 'reserved', agent_id = ?, reserved_at = ?,"
            " expires_at = ?, updated_at = ? WHERE call_id = ? AND state = 'pending'",
            (agent_id, t, t + ttl, t, call_id),
        )
        _take_agent(conn, agent_id, call_id, t)
    return get(db, call_id)


def accept(db: Database, call_id: str, agent_id: int) -> Entry:
    """The rung agent answers before the ring expired (by the database clock): assigned."""
    with db.transaction() as conn:
        t = db_now(db, conn)
        cur = conn.execute(
            "UPDATE line_entries SET state = 'assigned', expires_at = NULL, updated_at = ?"
            " WHERE call_id = ? AND state = 'reserved' AND agent_id = ? AND expires_at > ?",
            (t, call_id, agent_id, t),
        )
        if cur.rowcount != 1:
            row = get(db, call_id)
            if row is None or row.state == DONE:
                raise LineError("no_call", "no such call")
            raise LineError("not_ringing", "this call is not ringing you (expired or taken)")
        conn.execute(
            "UPDATE agent_states SET status = 'in_call', updated_at = ? WHERE agent_id = ?",
            (t, agent_id),
        )
    found = get(db, call_id)
    assert found is not None
    return found


def _unreserve(conn: Any, call_id: str, agent_id: int, t: float, declined: bool) -> int:
    """Back to pending with the same place (and the agent added to declined_by if declined)."""
    mark = f"{agent_id}," if declined else ""
    return conn.execute(
        "UPDATE line_entries SET state = 'pending', agent_id = NULL, reserved_at = NULL,"
        " expires_at = NULL, declined_by = declined_by || ?, updated_at = ?"
        " WHERE call_id = ? AND state = 'reserved' AND agent_id = ?",
        (mark, t, call_id, agent_id),
    ).rowcount


def decline(db: Database, call_id: str, agent_id: int) -> Entry:
    """The rung agent passes: the caller keeps their place; the agent is available again."""
    with db.transaction() as conn:
        t = db_now(db, conn)
        if _unreserve(conn, call_id, agent_id, t, declined=True) != 1:
            raise LineError("not_ringing", "this call is not ringing you")
        conn.execute(
            "UPDATE agent_states SET status = 'available', call_id = NULL, updated_at = ?"
            " WHERE agent_id = ? AND status = 'ringing'",
            (t, agent_id),
        )
    found = get(db, call_id)
    assert found is not None
    return found


def expire(db: Database) -> list[Entry]:
    """Every ring past its expiry returns to pending (same place); its agent is set away.

    Idempotent: any node may run it at any time (the ring-timeout sweeper).
    """
    with db.transaction() as conn:
        t = db_now(db, conn)
        rows = conn.execute(
            "SELECT call_id, agent_id FROM line_entries WHERE state = 'reserved'"
            " AND expires_at <= ?",
            (t,),
        ).fetchall()
        done = []
        for call_id, agent_id in ((r[0], r[1]) for r in rows):
            if _unreserve(conn, call_id, agent_id, t, declined=False) == 1:
                conn.execute(
                    "UPDATE agent_states SET status = 'away', call_id = NULL, updated_at = ?"
                    " WHERE agent_id = ? AND status = 'ringing' AND call_id = ?",
                    (t, agent_id, call_id),
                )
                done.append(call_id)
    return [e for e in (get(db, c) for c in done) if e is not None]


def wrap(db: Database, call_id: str) -> Entry:
    """The conversation ended: the agent writes the wrap-up (assigned -> wrapping)."""
    with db.transaction() as conn:
        t = db_now(db, conn)
        row = conn.execute(
            "UPDATE line_entries SET state = 'wrapping', updated_at = ?"
            " WHERE call_id = ? AND state = 'assigned' RETURNING agent_id",
            (t, call_id),
        ).fetchone()
        if row is None:
            raise LineError("not_in_call", "this call is not in progress")
        conn.execute(
            "UPDATE agent_states SET status = 'wrap_up', updated_at = ? WHERE agent_id = ?",
            (t, row[0]),
        )
    found = get(db, call_id)
    assert found is not None
    return found


def finish(db: Database, call_id: str) -> Entry:
    """Wrap-up written (wrapping -> done); the agent is available, idle from now."""
    with db.transaction() as conn:
        t = db_now(db, conn)
        row = conn.execute(
            "UPDATE line_entries SET state = 'done', updated_at = ?"
            " WHERE call_id = ? AND state = 'wrapping' RETURNING agent_id",
            (t, call_id),
        ).fetchone()
        if row is None:
            raise LineError("not_wrapping", "this call is not in wrap-up")
        conn.execute(
            "UPDATE agent_states SET status = 'available', call_id = NULL, idle_since = ?,"
            " updated_at = ? WHERE agent_id = ? AND status = 'wrap_up'",
            (t, t, row[0]),
        )
    found = get(db, call_id)
    assert found is not None
    return found


def requeue_at_head(db: Database, call_id: str) -> Entry:
    """The agent dropped mid-call: the caller is next again (assigned -> pending, front)."""
    with db.transaction() as conn:
        t = db_now(db, conn)
        place = _next(conn, "head", -1)
        row = conn.execute(
            "UPDATE line_entries SET state = 'pending', agent_id = NULL, place = ?,"
            " updated_at = ? WHERE call_id = ? AND state = 'assigned' RETURNING call_id",
            (float(place), t, call_id),
        ).fetchone()
        if row is None:
            raise LineError("not_in_call", "this call is not in progress")
    found = get(db, call_id)
    assert found is not None
    return found


def leave(db: Database, call_id: str) -> Entry | None:
    """The caller hung up while waiting or ringing: done; a rung agent is available again."""
    with db.transaction() as conn:
        t = db_now(db, conn)
        row = conn.execute(
            "UPDATE line_entries SET state = 'done', updated_at = ?"
            " WHERE call_id = ? AND state IN ('pending', 'reserved') RETURNING agent_id",
            (t, call_id),
        ).fetchone()
        if row is not None and row[0] is not None:
            conn.execute(
                "UPDATE agent_states SET status = 'available', call_id = NULL, updated_at = ?"
                " WHERE agent_id = ? AND status = 'ringing' AND call_id = ?",
                (t, row[0], call_id),
            )
    return get(db, call_id)


def away_unless_on(db: Database, live_nodes: set[str]) -> list[int]:
    """Available agents whose console's node stopped beating are set away (not rung)."""
    if not live_nodes:
        return []  # no liveness information (the bus is down): change nothing
    marks = ",".join("?" for _ in live_nodes)
    with db.transaction() as conn:
        rows = conn.execute(
            f"UPDATE agent_states SET status = 'away', updated_at = ?"
            f" WHERE status = 'available' AND node NOT IN ({marks}) RETURNING agent_id",
            (db_now(db, conn), *sorted(live_nodes)),
        ).fetchall()
    return sorted(int(r[0]) for r in rows)


def move_node(db: Database, call_id: str, node: str) -> bool:
    """The caller's page reconnected to another node (the rejoin keeps the row as it is)."""
    cur = db.execute(
        "UPDATE line_entries SET node = ? WHERE call_id = ? AND state != 'done'", (node, call_id)
    )
    return cur.rowcount == 1


# Any fixed 64-bit numbers: one per periodic job that must not run twice at once.
JOB_LOCKS = {"callback_scheduler": 0x686C0001, "retention_purge": 0x686C0002}


def try_job_lock(db: Database, job: str) -> bool:
    """Take the cluster-wide lock of a periodic job for this transaction, without waiting.

    Call inside `with db.transaction():` and do the job's work in that transaction: the lock
    is released when it ends. PostgreSQL: `pg_try_advisory_xact_lock`, so of several nodes
    running the same job at once exactly one proceeds. SQLite: one node, its writer lock.
    """
    if db.dialect != "postgresql":
        return True
    conn: Any = db._conn()
    row = conn.execute_raw("SELECT pg_try_advisory_xact_lock(%s)", (JOB_LOCKS[job],)).fetchone()
    return bool(row and row[0])
