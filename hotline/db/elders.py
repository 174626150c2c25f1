"""Elders and their one-tap links."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from hotline.db import Database, now


@dataclass(frozen=True)
class Elder:
    id: int
    name: str
    phone: str
    dialect: str
    lang: str
    hard_of_hearing: bool
    card_code: str


@dataclass(frozen=True)
class Link:
    token: str
    elder_id: int
    auto_start: bool
    expires_at: float | None
    revoked_at: float | None

    def state(self, at: float | None = None) -> str:
        """'ok', 'revoked' or 'expired'."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and (at or now()) >= self.expires_at:
            return "expired"
        return "ok"


def _elder(row) -> Elder:
    return Elder(
        id=row["id"],
        name=row["name"],
        phone=row["phone"],
        dialect=row["dialect"],
        lang=row["lang"],
        hard_of_hearing=bool(row["hard_of_hearing"]),
        card_code=row["card_code"],
    )


def _link(row) -> Link:
    return Link(
        token=row["token"],
        elder_id=row["elder_id"],
        auto_start=bool(row["auto_start"]),
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


def _card_code() -> str:
    # Short, unambiguous digits a family member can read off the printed card.
    return "".join(secrets.choice("23456789") for _ in range(6))


def add(
    db: Database,
    name: str,
    *,
    phone: str = "",
    dialect: str = "cmn",
    lang: str = "zh_CN",
    hard_of_hearing: bool = False,
) -> Elder:
    """Create an elder (a unique card code is drawn)."""
    with db.transaction() as conn:
        for _ in range(20):
            code = _card_code()
            if not conn.execute("SELECT 1 FROM elders WHERE card_code = ?", (code,)).fetchone():
                break
        cur = conn.execute(
            "INSERT INTO elders (name, phone, dialect, lang, hard_of_hearing, card_code, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, phone, dialect, lang, int(hard_of_hearing), code, now()),
        )
        elder_id = int(cur.lastrowid or 0)
    found = get(db, elder_id)
    assert found is not None
    return found


def get(db: Database, elder_id: int) -> Elder | None:
    row = db.query_one("SELECT * FROM elders WHERE id = ?", (elder_id,))
    return _elder(row) if row else None


def by_card_code(db: Database, code: str) -> Elder | None:
    row = db.query_one("SELECT * FROM elders WHERE card_code = ?", (code,))
    return _elder(row) if row else None


def all_elders(db: Database) -> list[Elder]:
    return [_elder(r) for r in db.query("SELECT * FROM elders ORDER BY id")]


def new_link(
    db: Database, elder_id: int, *, auto_start: bool = False, expires_at: float | None = None
) -> Link:
    """Issue an unguessable one-tap link token for the elder."""
    token = secrets.token_urlsafe(18)
    db.execute(
        "INSERT INTO links (token, elder_id, auto_start, expires_at, created_at) VALUES (?, ?, ?, ?, ?)",
        (token, elder_id, int(auto_start), expires_at, now()),
    )
    link = get_link(db, token)
    assert link is not None
    return link


def get_link(db: Database, token: str) -> Link | None:
    row = db.query_one("SELECT * FROM links WHERE token = ?", (token,))
    return _link(row) if row else None


def links_of(db: Database, elder_id: int) -> list[Link]:
    return [_link(r) for r in db.query("SELECT * FROM links WHERE elder_id = ?", (elder_id,))]


def revoke_link(db: Database, token: str) -> bool:
    cur = db.execute(
        "UPDATE links SET revoked_at = ? WHERE token = ? AND revoked_at IS NULL", (now(), token)
    )
    return cur.rowcount > 0
