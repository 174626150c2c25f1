"""The store: connections, the single writer, and numbered migrations, on two engines.

SQLite (one file, the default) or PostgreSQL (`HOTLINE_DATABASE_URL=postgresql://…`, cluster
mode, in hotline/db/postgres.py). All SQL of the project lives in this package, written once
in the portable subset described in hotline/db/dialect.py; other modules call its functions.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def now() -> float:
    """Wall-clock seconds; one place so tests can reason about stored times."""
    return time.time()


def is_url(target: object) -> bool:
    """True when `target` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def open_database(target: Path | str) -> Database:
    """The store at `target`: a postgresql:// URL (cluster mode) or a SQLite file path."""
    if is_url(target):
        from hotline.db.postgres import PgDatabase

        return PgDatabase(str(target))
    return Database(target)


def open_configured(cfg: Any) -> Database:
    """The store a `Config` names: `database_url` when set, else the SQLite file."""
    if cfg.database_url:
        if not is_url(cfg.database_url):
            raise ValueError("HOTLINE_DATABASE_URL must start with postgresql://")
        return open_database(cfg.database_url)
    return Database(cfg.db_path or Path(cfg.data_dir) / "hotline.sqlite3")


def migration_files() -> list[tuple[str, list[str]]]:
    """(file name, statements) of every migration in hotline/db/migrations, in name order."""
    folder = resources.files("hotline.db") / "migrations"
    out = []
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".sql"):
            out.append((item.name, _split_sql(item.read_text(encoding="utf-8"))))
    return out


class Database:
    """A SQLite database in WAL mode: many readers, one writer at a time (a lock)."""

    dialect = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.RLock()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA cache_size=-256")
            self._local.conn = conn
        return conn

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        """Run a read and return all rows."""
        return self._conn().execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        """Run a read and return the first row or None."""
        return self._conn().execute(sql, params).fetchone()

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """Run one write in its own transaction."""
        with self.transaction() as conn:
            return conn.execute(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate write transaction, serialised by the writer lock; commits on success."""
        conn = self._conn()
        with self._write_lock:
            if conn.in_transaction:  # nested use joins the outer transaction
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def migrate(self) -> list[str]:
        """Apply every migration in hotline/db/migrations not applied yet, in name order."""
        conn = self._conn()
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL)"
        )
        done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
        applied = []
        for name, statements in migration_files():
            if name in done:
                continue
            with self._write_lock:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, now()))
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            applied.append(name)
            log.info("applied migration %s", name)
        return applied

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _split_sql(sql: str) -> list[str]:
    statements, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements
