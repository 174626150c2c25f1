"""Elders and their one-tap links."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

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


CARD_DIGITS = 10  # 8**10 ~ 1.07e9 codes: guessing is hopeless within the failure limits


def _card_code() -> str:
    # Unambiguous digits a family member can read off the printed card (no 0/1 vs O/l).
    return "".join(secrets.choice("23456789") for _ in range(CARD_DIGITS))


def _free_card_code(conn: Any) -> str:
    for _ in range(20):
        code = _card_code()
        if not conn.execute("SELECT 1 FROM elders WHERE card_code = ?", (code,)).fetchone():
            return code
    raise RuntimeError("no free card code found")


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
        code = _free_card_code(conn)
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


def get_many(db: Database, elder_ids: set[int]) -> dict[int, Elder]:
    """Several elders by id in one query (restoring a long line after a failover)."""
    if not elder_ids:
        return {}
    marks = ", ".join("?" for _ in elder_ids)
    rows = db.query(f"SELECT * FROM elders WHERE id IN ({marks})", tuple(sorted(elder_ids)))
    return {r["id"]: _elder(r) for r in rows}


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


def rotate_card_code(db: Database, elder_id: int) -> str:
    """Draw a new card code for the elder (the printed card's code stops working)."""
    with db.transaction() as conn:
        code = _free_card_code(conn)
        conn.execute("UPDATE elders SET card_code = ? WHERE id = ?", (code, elder_id))
    return code


def lengthen_card_codes(db: Database) -> int:
    """Redraw every card code shorter than CARD_DIGITS (codes from before 0008); idempotent."""
    rows = db.query("SELECT id, card_code FROM elders")
    short = [r["id"] for r in rows if len(r["card_code"]) < CARD_DIGITS]
    for elder_id in short:
        rotate_card_code(db, elder_id)
    return len(short)


def record_card_failure(db: Database, address: str, at: float) -> None:
    db.execute("INSERT INTO card_failures (at, address) VALUES (?, ?)", (at, address))


def card_failures(db: Database, address: str, since: float) -> tuple[int, int]:
    """Wrong card codes since `since`: (from this address, from everyone)."""
    mine = db.query_one(
        "SELECT COUNT(*) FROM card_failures WHERE address = ? AND at >= ?", (address, since)
    )
    every = db.query_one("SELECT COUNT(*) FROM card_failures WHERE at >= ?", (since,))
    return int(mine[0]) if mine else 0, int(every[0]) if every else 0
