"""The audit log: who read or did what sensitive thing, when."""

from __future__ import annotations

from hotline.db import Database, now


def record(db: Database, actor: str, action: str, subject: str = "", detail: str = "") -> None:
    """Append one audit entry (never updated, never deleted by the app)."""
    db.execute(
        "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
        (now(), actor, action, subject, detail),
    )


def entries(db: Database, *, action: str | None = None, limit: int = 200) -> list[dict]:
    sql = "SELECT * FROM audit_log"
    params: tuple = ()
    if action:
        sql += " WHERE action = ?"
        params = (action,)
    sql += " ORDER BY id DESC LIMIT ?"
    return [dict(r) for r in db.query(sql, (*params, limit))]


def did(db: Database, actor: str, action: str, subject: str) -> bool:
    """Whether `actor` has an audit entry of `action` on `subject`."""
    row = db.query_one(
        "SELECT 1 FROM audit_log WHERE actor = ? AND action = ? AND subject = ? LIMIT 1",
        (actor, action, subject),
    )
    return row is not None
