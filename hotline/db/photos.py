"""Elders' registered photos (identity check): rows here, image files under the data dir."""

from __future__ import annotations

from typing import Any

from hotline.db import Database, now


def add(db: Database, elder_id: int, path: str, mime: str, added_by: str, consent: bool) -> int:
    """Record a new registered photo (the newest one is the one shown)."""
    cur = db.execute(
        "INSERT INTO elder_photos (elder_id, path, mime, added_by, consent, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (elder_id, path, mime, added_by, int(consent), now()),
    )
    return int(cur.lastrowid or 0)


def latest(db: Database, elder_id: int) -> dict[str, Any] | None:
    row = db.query_one(
        "SELECT * FROM elder_photos WHERE elder_id = ? ORDER BY id DESC LIMIT 1", (elder_id,)
    )
    return dict(row) if row else None


def older_than(db: Database, days: float) -> list[dict[str, Any]]:
    """Photos past retention (their files are deleted by the caller, then the rows)."""
    rows = db.query("SELECT * FROM elder_photos WHERE created_at < ?", (now() - days * 86400,))
    return [dict(r) for r in rows]


def delete(db: Database, photo_id: int) -> None:
    db.execute("DELETE FROM elder_photos WHERE id = ?", (photo_id,))
