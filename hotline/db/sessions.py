"""Server-side agent sessions: the cookie holds a random id; only its hash is stored."""

from __future__ import annotations

import secrets

from hotline.db import Database, now
from hotline.tokens import digest


def create(db: Database, agent_id: int, sid: str | None = None) -> tuple[str, str]:
    """A new session for the agent: (cookie value, CSRF token). `sid` only for benches."""
    sid, csrf = sid or secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    t = now()
    db.execute(
        "INSERT INTO sessions (id_hash, agent_id, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?)",
        (digest(sid), agent_id, csrf, t, t),
    )
    return sid, csrf


def lookup(db: Database, sid: str, idle_seconds: float, max_seconds: float) -> dict | None:
    """The live session behind a cookie (and touch it), or None if unknown or timed out."""
    if not sid or len(sid) > 200:
        return None
    row = db.query_one("SELECT * FROM sessions WHERE id_hash = ?", (digest(sid),))
    if row is None:
        return None
    t = now()
    if t - row["last_seen"] > idle_seconds or t - row["created_at"] > max_seconds:
        delete(db, sid)
        return None
    if t - row["last_seen"] > 30:
        db.execute("UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (t, row["id_hash"]))
    return dict(row)


def delete(db: Database, sid: str) -> None:
    db.execute("DELETE FROM sessions WHERE id_hash = ?", (digest(sid),))


def alive(
    db: Database, id_hash: str, agent_id: int, idle_seconds: float, max_seconds: float
) -> bool:
    """Whether the session with this stored hash is still signed in, for this agent."""
    row = db.query_one("SELECT * FROM sessions WHERE id_hash = ?", (id_hash,))
    if row is None or row["agent_id"] != agent_id:
        return False
    t = now()
    return t - row["last_seen"] <= idle_seconds and t - row["created_at"] <= max_seconds


def delete_for_agent(db: Database, agent_id: int, keep: str | None = None) -> int:
    """Sign an account out everywhere (password change, disable, role change), except the
    session whose stored hash is `keep` (a supervisor changing their own password)."""
    return db.execute(
        "DELETE FROM sessions WHERE agent_id = ? AND id_hash != ?", (agent_id, keep or "")
    ).rowcount
