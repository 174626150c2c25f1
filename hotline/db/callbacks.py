"""Callbacks: agents' shifts, bookings, their attempts, and call wrap-ups.

Functions that must share one write transaction take the `Database` and are called inside
`with db.transaction():` by the service (nested use joins the outer transaction).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

from hotline.db import Database

# Bookings in these states still hold a slot (and count towards the per-phone limit).
ACTIVE = ("held", "booked", "queued", "claimed")
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


@dataclass(frozen=True)
class Booking:
    id: int
    code: str
    kind: str
    status: str
    elder_id: int | None
    phone: str
    dialect: str
    topic: str
    note: str
    slot_start: float | None
    alternates: tuple[float, ...]
    due_at: float
    attempts: int
    claimed_by: int | None
    claimed_at: float | None
    queued_at: float | None
    family_contact: str
    lang: str
    manage_nonce: str
    new_link_token: str | None
    source_call_id: str | None
    last_call_id: str | None
    created_at: float
    updated_at: float

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


@dataclass(frozen=True)
class ShiftRow:
    id: int
    agent_id: int
    username: str
    weekday: int
    start_hour: int
    end_hour: int
    dialects: frozenset[str]


def _booking(row: sqlite3.Row) -> Booking:
    return Booking(
        id=row["id"],
        code=row["code"],
        kind=row["kind"],
        status=row["status"],
        elder_id=row["elder_id"],
        phone=row["phone"],
        dialect=row["dialect"],
        topic=row["topic"],
        note=row["note"],
        slot_start=row["slot_start"],
        alternates=tuple(json.loads(row["alternates"] or "[]")),
        due_at=row["due_at"],
        attempts=row["attempts"],
        claimed_by=row["claimed_by"],
        claimed_at=row["claimed_at"],
        queued_at=row["queued_at"],
        family_contact=row["family_contact"],
        lang=row["lang"],
        manage_nonce=row["manage_nonce"],
        new_link_token=row["new_link_token"],
        source_call_id=row["source_call_id"],
        last_call_id=row["last_call_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


# --- shifts -------------------------------------------------------------------------------


def add_shift(
    db: Database, agent_id: int, weekday: int, start_hour: int, end_hour: int, at: float
) -> int:
    """Add one weekly shift (ISO weekday 1=Monday, hours [start, end))."""
    cur = db.execute(
        "INSERT INTO shifts (agent_id, weekday, start_hour, end_hour, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (agent_id, weekday, start_hour, end_hour, at),
    )
    return int(cur.lastrowid or 0)


def remove_shift(db: Database, shift_id: int) -> bool:
    return db.execute("DELETE FROM shifts WHERE id = ?", (shift_id,)).rowcount > 0


def shifts(db: Database) -> list[ShiftRow]:
    """Every shift of an enabled agent, with the agent's dialects."""
    rows = db.query(
        "SELECT s.*, a.username, a.dialects FROM shifts s JOIN agents a ON a.id = s.agent_id"
        " WHERE a.disabled = 0 ORDER BY a.username, s.weekday, s.start_hour"
    )
    return [
        ShiftRow(
            id=r["id"],
            agent_id=r["agent_id"],
            username=r["username"],
            weekday=r["weekday"],
            start_hour=r["start_hour"],
            end_hour=r["end_hour"],
            dialects=frozenset(d for d in r["dialects"].split(",") if d),
        )
        for r in rows
    ]


# --- bookings -----------------------------------------------------------------------------


def new_code(db: Database) -> str:
    """A short booking code nobody else has (read inside the booking's transaction)."""
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))
        if not db.query_one("SELECT 1 FROM callbacks WHERE code = ?", (code,)):
            return code


def insert(db: Database, values: dict[str, Any]) -> int:
    """Insert a booking row (columns by name); returns its id."""
    values = dict(values)
    values["alternates"] = json.dumps(list(values.get("alternates", ())))
    values.setdefault("manage_nonce", secrets.token_urlsafe(9))
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    cur = db.execute(f"INSERT INTO callbacks ({cols}) VALUES ({marks})", tuple(values.values()))
    return int(cur.lastrowid or 0)


def get(db: Database, booking_id: int) -> Booking | None:
    row = db.query_one("SELECT * FROM callbacks WHERE id = ?", (booking_id,))
    return _booking(row) if row else None


def by_idem(db: Database, key: str) -> Booking | None:
    row = db.query_one("SELECT * FROM callbacks WHERE idem_key = ?", (key,))
    return _booking(row) if row else None


def by_code(db: Database, code: str) -> Booking | None:
    row = db.query_one("SELECT * FROM callbacks WHERE code = ?", (code,))
    return _booking(row) if row else None


def all_bookings(db: Database) -> list[Booking]:
    return [_booking(r) for r in db.query("SELECT * FROM callbacks ORDER BY id")]


def active_bookings(db: Database) -> list[Booking]:
    marks = ",".join("?" for _ in ACTIVE)
    rows = db.query(f"SELECT * FROM callbacks WHERE status IN ({marks}) ORDER BY due_at", ACTIVE)
    return [_booking(r) for r in rows]


def recent_by_address(db: Database, address: str, since: float) -> int:
    row = db.query_one(
        "SELECT COUNT(*) FROM callbacks WHERE address = ? AND created_at >= ? AND kind = 'family'",
        (address, since),
    )
    return int(row[0]) if row else 0


def open_of_kind(db: Database, elder_id: int, kind: str) -> int | None:
    """The id of an open booking of this kind for the elder, if any."""
    marks = ",".join("?" for _ in ACTIVE)
    row = db.query_one(
        f"SELECT id FROM callbacks WHERE elder_id = ? AND kind = ? AND status IN ({marks})"
        " ORDER BY id LIMIT 1",
        (elder_id, kind, *ACTIVE),
    )
    return int(row[0]) if row else None


def open_by_phone_from(db: Database, phone: str, address: str) -> int:
    """Open bookings for this phone made from this address."""
    marks = ",".join("?" for _ in ACTIVE)
    row = db.query_one(
        f"SELECT COUNT(*) FROM callbacks WHERE phone = ? AND address = ? AND status IN ({marks})",
        (phone, address, *ACTIVE),
    )
    return int(row[0]) if row else 0


def open_by_phone(db: Database, phone: str) -> int:
    marks = ",".join("?" for _ in ACTIVE)
    row = db.query_one(
        f"SELECT COUNT(*) FROM callbacks WHERE phone = ? AND status IN ({marks})",
        (phone, *ACTIVE),
    )
    return int(row[0]) if row else 0


def booked_slots(db: Database, start: float, end: float) -> list[tuple[float, str]]:
    """(slot start, dialect) of every active booking holding a slot in [start, end)."""
    marks = ",".join("?" for _ in ACTIVE)
    rows = db.query(
        f"SELECT slot_start, dialect FROM callbacks WHERE slot_start >= ? AND slot_start < ?"
        f" AND status IN ({marks})",
        (start, end, *ACTIVE),
    )
    return [(float(r[0]), r[1]) for r in rows]


def claim_due(db: Database, now: float, hold_grace: float) -> list[Booking]:
    """Atomically move every due booking to 'queued' and return them: each fires once.

    A 'held' booking (a waiting caller keeping their place) is fired here only after its
    grace, i.e. when the live line that held it was lost (a restart).
    """
    with db.transaction() as conn:
        rows = conn.execute(
            "UPDATE callbacks SET status = 'queued', queued_at = ?, updated_at = ?"
            " WHERE (status = 'booked' AND due_at <= ?) OR (status = 'held' AND due_at + ? <= ?)"
            " RETURNING *",
            (now, now, now, hold_grace, now),
        ).fetchall()
    return sorted((_booking(r) for r in rows), key=lambda b: (b.due_at, b.id))


def fire_one(db: Database, booking_id: int, now: float, from_status: str) -> Booking | None:
    """Move one booking from `from_status` to 'queued' if it is still there."""
    with db.transaction() as conn:
        row = conn.execute(
            "UPDATE callbacks SET status = 'queued', queued_at = ?, due_at = MIN(due_at, ?),"
            " updated_at = ? WHERE id = ? AND status = ? RETURNING *",
            (now, now, now, booking_id, from_status),
        ).fetchone()
    return _booking(row) if row else None


def claim(db: Database, booking_id: int, agent_id: int, now: float) -> bool:
    """Give an open booking to one agent; False if someone else has it or it is closed."""
    cur = db.execute(
        "UPDATE callbacks SET status = 'claimed', claimed_by = ?, claimed_at = ?, updated_at = ?"
        " WHERE id = ? AND status IN ('booked', 'queued', 'held')",
        (agent_id, now, now, booking_id),
    )
    return cur.rowcount > 0


def update(db: Database, booking_id: int, expect_status: tuple[str, ...], **values: Any) -> bool:
    """Change fields of a booking if it is still in one of `expect_status`."""
    if "alternates" in values:
        values["alternates"] = json.dumps(list(values["alternates"]))
    sets = ", ".join(f"{k} = ?" for k in values)
    marks = ",".join("?" for _ in expect_status)
    cur = db.execute(
        f"UPDATE callbacks SET {sets} WHERE id = ? AND status IN ({marks})",
        (*values.values(), booking_id, *expect_status),
    )
    return cur.rowcount > 0


def add_attempt(
    db: Database,
    booking_id: int,
    *,
    at: float,
    agent_id: int | None,
    result: str,
    call_id: str | None = None,
    detail: str = "",
) -> None:
    db.execute(
        "INSERT INTO callback_attempts (callback_id, at, agent_id, result, call_id, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (booking_id, at, agent_id, result, call_id, detail),
    )


def attempts_of(db: Database, booking_id: int) -> list[dict[str, Any]]:
    rows = db.query(
        "SELECT * FROM callback_attempts WHERE callback_id = ? ORDER BY at, id", (booking_id,)
    )
    return [dict(r) for r in rows]


def previous_calls(db: Database, elder_ids: list[int]) -> dict[int, int]:
    """How many calls each elder has had (for the agent's list)."""
    if not elder_ids:
        return {}
    marks = ",".join("?" for _ in elder_ids)
    rows = db.query(
        f"SELECT elder_id, COUNT(*) FROM calls WHERE elder_id IN ({marks}) GROUP BY elder_id",
        tuple(elder_ids),
    )
    return {int(r[0]): int(r[1]) for r in rows}


def agent_names(db: Database, agent_ids: list[int]) -> dict[int, str]:
    if not agent_ids:
        return {}
    marks = ",".join("?" for _ in agent_ids)
    rows = db.query(f"SELECT id, display_name FROM agents WHERE id IN ({marks})", tuple(agent_ids))
    return {int(r[0]): r[1] for r in rows}


# --- wrap-ups -----------------------------------------------------------------------------


def get_wrapup(db: Database, call_id: str) -> dict[str, Any] | None:
    row = db.query_one("SELECT * FROM wrapups WHERE call_id = ?", (call_id,))
    return dict(row) if row else None


def save_wrapup(db: Database, call_id: str, values: dict[str, Any], at: float) -> None:
    """Insert or replace the wrap-up of a call (created_at is kept on update)."""
    cols = ["call_id", *values, "created_at", "updated_at"]
    params = [call_id, *values.values(), at, at]
    updates = ", ".join(f"{k} = excluded.{k}" for k in [*values, "updated_at"])
    db.execute(
        f"INSERT INTO wrapups ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
        f" ON CONFLICT(call_id) DO UPDATE SET {updates}",
        tuple(params),
    )


def shared_wrapup_for(db: Database, booking_id: int) -> dict[str, Any] | None:
    """The newest wrap-up the elder agreed to share, of a call made for this booking."""
    row = db.query_one(
        "SELECT w.* FROM wrapups w JOIN callback_attempts a ON a.call_id = w.call_id"
        " WHERE a.callback_id = ? AND w.share_with_family = 1"
        " ORDER BY w.updated_at DESC LIMIT 1",
        (booking_id,),
    )
    return dict(row) if row else None
