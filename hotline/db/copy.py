"""Moving a site up: copy every table of a SQLite store into an empty PostgreSQL one, verified."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hotline.db import Database

BATCH = 1000
# Tables a migration fills with fixed rows: the copy replaces those rows with the source's.
SEEDED: set[str] = set()  # tables a migration fills (emptied before the copy)


class CopyRefused(RuntimeError):
    """The copy would overwrite data, or the two stores' schemas differ."""


@dataclass
class CopyReport:
    """Rows copied per table, and the rows compared field by field."""

    counts: dict[str, int] = field(default_factory=dict)
    spot_checked: dict[str, int] = field(default_factory=dict)


def tables(source: Database) -> list[tuple[str, str]]:
    """(table, primary-key column) of the SQLite store, in creation order (parents first)."""
    names = [
        r[0]
        for r in source.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name != 'schema_migrations' ORDER BY rowid"
        )
    ]
    out = []
    for name in names:
        # Table names come from sqlite_master, never from input.
        pk = [r["name"] for r in source.query(f"PRAGMA table_info({name})") if r["pk"] == 1]
        out.append((name, pk[0] if pk else "rowid"))
    return out


def _count(db: Database, table: str) -> int:
    row = db.query_one(f"SELECT COUNT(*) FROM {table}")
    return int(row[0]) if row else 0


def _row(db: Database, table: str, pk: str, key: Any) -> dict[str, Any]:
    row = db.query_one(f"SELECT * FROM {table} WHERE {pk} = ?", (key,))
    return dict(row) if row else {}


def _migrations(db: Database) -> set[str]:
    return {r[0] for r in db.query("SELECT name FROM schema_migrations")}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
    return a == b


def copy_store(source: Database, target: Database) -> CopyReport:
    """Copy every row of `source` (SQLite) into `target` (migrated, empty); verify; report.

    All or nothing: the rows go in one target transaction. Refuses a non-empty target.
    """
    if source.dialect != "sqlite" or target.dialect != "postgresql":
        raise CopyRefused("copy goes from a SQLite file to a PostgreSQL database")
    missing = _migrations(source) ^ _migrations(target)
    if missing:
        raise CopyRefused(f"the two stores are not at the same migration: {sorted(missing)}")
    found = tables(source)
    for name, _pk in found:
        if name not in SEEDED and _count(target, name):
            raise CopyRefused(f"target is not empty (table {name} has rows): refusing to copy")
    report = CopyReport()
    with target.transaction() as conn:
        for name, _pk in found:
            if name in SEEDED:
                conn.execute(f"DELETE FROM {name}")
            rows = source.query(f"SELECT * FROM {name}")
            report.counts[name] = len(rows)
            if not rows:
                continue
            cols = list(rows[0].keys())
            sql = f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
            for start in range(0, len(rows), BATCH):
                conn.executemany(sql, [tuple(r) for r in rows[start : start + BATCH]])
        target.reset_identities(conn)  # type: ignore[attr-defined]  # PgDatabase (checked above)
    _verify(source, target, found, report)
    return report


def _verify(
    source: Database, target: Database, found: list[tuple[str, str]], report: CopyReport
) -> None:
    """Counts of every table, and the first, middle and last row of each compared by value."""
    for name, pk in found:
        count = _count(target, name)
        if count != report.counts[name]:
            raise CopyRefused(f"{name}: {report.counts[name]} rows read, {count} in the target")
        keys = [r[0] for r in source.query(f"SELECT {pk} FROM {name} ORDER BY {pk}")]
        sample = {keys[i] for i in (0, len(keys) // 2, -1)} if keys else set()
        for key in sample:
            a, b = _row(source, name, pk, key), _row(target, name, pk, key)
            bad = [c for c in a if not _same(a[c], b.get(c))]
            if bad:
                raise CopyRefused(f"{name} row {key!r} differs in {bad}")
        report.spot_checked[name] = len(sample)
