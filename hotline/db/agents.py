"""Agents and supervisors: accounts, dialects, login throttling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from hotline.db import Database, now


@dataclass(frozen=True)
class Agent:
    id: int
    username: str
    display_name: str
    role: str
    dialects: tuple[str, ...]
    lang: str
    disabled: bool


def _agent(row) -> Agent:
    return Agent(
        id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        role=row["role"],
        dialects=tuple(d for d in row["dialects"].split(",") if d),
        lang=row["lang"],
        disabled=bool(row["disabled"]),
    )


def add(
    db: Database,
    username: str,
    password: str,
    dialects: list[str],
    *,
    display_name: str = "",
    role: str = "agent",
    lang: str = "zh_CN",
) -> Agent:
    """Create an agent with a hashed password."""
    with db.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO agents (username, display_name, password_hash, role, dialects, lang, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                username,
                display_name or username,
                generate_password_hash(password),
                role,
                ",".join(dialects),
                lang,
                now(),
            ),
        )
        agent_id = cur.lastrowid
    found = get(db, int(agent_id or 0))
    assert found is not None
    return found


def get(db: Database, agent_id: int) -> Agent | None:
    row = db.query_one("SELECT * FROM agents WHERE id = ?", (agent_id,))
    return _agent(row) if row else None


def by_username(db: Database, username: str) -> Agent | None:
    row = db.query_one("SELECT * FROM agents WHERE username = ?", (username,))
    return _agent(row) if row else None


def all_agents(db: Database) -> list[Agent]:
    return [_agent(r) for r in db.query("SELECT * FROM agents ORDER BY id")]


def set_password(db: Database, agent_id: int, password: str) -> None:
    db.execute(
        "UPDATE agents SET password_hash = ? WHERE id = ?",
        (generate_password_hash(password), agent_id),
    )


def check_password(db: Database, username: str, password: str) -> Agent | None:
    """The agent if the password matches and the account is enabled, else None."""
    row = db.query_one("SELECT * FROM agents WHERE username = ?", (username,))
    if row is None:
        # Spend the same time as a real check so timing does not reveal usernames.
        check_password_hash(_DUMMY_HASH, password)
        return None
    if row["disabled"] or not check_password_hash(row["password_hash"], password):
        return None
    return _agent(row)


_DUMMY_HASH = generate_password_hash("not-a-password")


def record_login_failure(db: Database, username: str, address: str) -> None:
    db.execute(
        "INSERT INTO login_failures (at, username, address) VALUES (?, ?, ?)",
        (now(), username, address),
    )


def recent_login_failures(
    db: Database, username: str, address: str, window: float
) -> tuple[int, int]:
    """Failures in the last `window` seconds for (this account from this address, this
    address). Never for the account alone: anyone could then lock an agent out."""
    since = now() - window
    by_user = _count(
        db,
        "SELECT COUNT(*) FROM login_failures WHERE at > ? AND username = ? AND address = ?",
        (since, username, address),
    )
    by_addr = _count(
        db, "SELECT COUNT(*) FROM login_failures WHERE at > ? AND address = ?", (since, address)
    )
    return by_user, by_addr


def _count(db: Database, sql: str, params: tuple[Any, ...]) -> int:
    """The single number a COUNT query returns (0 when it returns no row)."""
    row = db.query_one(sql, params)
    return int(row[0]) if row is not None else 0


def update(
    db: Database,
    agent_id: int,
    *,
    display_name: str | None = None,
    dialects: list[str] | None = None,
    role: str | None = None,
    disabled: bool | None = None,
) -> bool:
    """Change the given fields of an agent; False if there is no such agent."""
    values: dict[str, object] = {}
    if display_name is not None:
        values["display_name"] = display_name
    if dialects is not None:
        values["dialects"] = ",".join(dialects)
    if role is not None:
        values["role"] = role
    if disabled is not None:
        values["disabled"] = int(disabled)
    if not values:
        return get(db, agent_id) is not None
    sets = ", ".join(f"{k} = ?" for k in values)  # keys are the fixed names above
    cur = db.execute(f"UPDATE agents SET {sets} WHERE id = ?", (*values.values(), agent_id))
    return cur.rowcount > 0
