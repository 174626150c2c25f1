"""The PostgreSQL store (cluster mode): the same interface as the SQLite `Database`.

Queries arrive in the portable SQLite subset and are translated once by `hotline.db.dialect`.
Rows behave like `sqlite3.Row` (by name, by index, `dict(row)`), so the domain modules in
hotline/db do not know which engine they run on.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import hotline.db as store
from hotline.db import Database, now
from hotline.db import dialect as sqlmap

log = logging.getLogger(__name__)

# Any fixed 64-bit number: every node that migrates takes this advisory lock first.
MIGRATE_LOCK = 0x686F746C696E65
# Held by a serving node for its whole life while the switchboard is not cluster-aware.
SINGLE_NODE_LOCK = 0x686F746C696E66


class NodeAlreadyServing(RuntimeError):
    """Another `hotline serve` already serves this PostgreSQL database."""


def single_node_lock(url: str) -> Any:
    """Hold, on a connection of its own, the lock that lets one node serve this database.

    Until the switchboard runs on the shared line (docs/cluster.md, status), a second node on
    the same database would keep a second line and, at its start, end the first node's calls
    as interrupted. The lock is a session advisory lock: it goes when the process does, even
    on kill -9. Returns the connection (keep it open); raises NodeAlreadyServing.
    """
    import psycopg

    conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (SINGLE_NODE_LOCK,)).fetchone()
    if not (row and row[0]):
        conn.close()
        raise NodeAlreadyServing(
            "another hotline node already serves this database; several nodes need"
            " HOTLINE_REDIS_URL too (cluster mode, docs/cluster.md)"
        )
    return conn


class Row(tuple):
    """A result row readable by column name or index, like sqlite3.Row."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Any:
    names = [c.name for c in cursor.description or ()]
    index = {name: i for i, name in enumerate(names)}
    return lambda values: Row(values, index)


class Cursor:
    """What `conn.execute` returns: rows, rowcount and (for INSERTs) lastrowid."""

    def __init__(self, cur: Any, lastrowid: int | None = None) -> None:
        self._cur = cur
        self.rowcount = cur.rowcount
        self.lastrowid = lastrowid

    def fetchone(self) -> Row | None:
        return self._cur.fetchone() if self._cur.description else None

    def fetchall(self) -> list[Row]:
        return self._cur.fetchall() if self._cur.description else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class Connection:
    """A psycopg connection speaking the portable subset (what `transaction()` yields)."""

    def __init__(self, db: PgDatabase, raw: Any) -> None:
        self._db = db
        self.raw = raw
        self.depth = 0

    @property
    def in_transaction(self) -> bool:
        return self.depth > 0

    def execute(self, sql: str, params: Any = ()) -> Cursor:
        table = sqlmap.insert_table(sql)
        returns_id = table is not None and table in self._db.identity_tables(self)
        text = sqlmap.query(sql) + (" RETURNING id" if returns_id else "")
        cur = self.raw.cursor(row_factory=_row_factory)
        try:
            cur.execute(text, tuple(params))
        except Exception as exc:
            _reraise(exc)
        lastrowid = None
        if returns_id:
            row = cur.fetchone()
            lastrowid = int(row[0]) if row else None
        return Cursor(cur, lastrowid)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run one statement for many parameter rows (psycopg pipelines them)."""
        cur = self.raw.cursor()
        try:
            cur.executemany(sqlmap.query(sql), rows)
        except Exception as exc:
            _reraise(exc)

    def execute_raw(self, sql: str, params: Any = ()) -> Cursor:
        """Run PostgreSQL text as is (for the few engine-specific statements in hotline/db)."""
        cur = self.raw.cursor(row_factory=_row_factory)
        try:
            cur.execute(sql, tuple(params))
        except Exception as exc:
            _reraise(exc)
        return Cursor(cur)


def _reraise(exc: Exception) -> None:
    """psycopg's integrity errors as sqlite3's, so callers catch one kind on both engines."""
    import psycopg

    if isinstance(exc, psycopg.errors.IntegrityError):
        raise sqlite3.IntegrityError(str(exc)) from exc
    raise exc


class _Entered:
    """A psycopg transaction already entered (BEGIN sent): `with` only commits or rolls back."""

    def __init__(self, tx: Any) -> None:
        self._tx = tx

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> Any:
        return self._tx.__exit__(*exc)


class PgDatabase(Database):
    """PostgreSQL via psycopg 3: one connection per thread, autocommit outside transactions."""

    dialect = "postgresql"

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        import psycopg  # only cluster mode needs it

        self._psycopg = psycopg
        self.url = url
        self.path = url
        self._connect_timeout = connect_timeout
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._identity: frozenset[str] | None = None

    def _conn(self) -> Connection:  # type: ignore[override]
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and (conn.raw.closed or conn.raw.broken) and conn.depth == 0:
            conn = None  # a restarted or unreachable server: reconnect on next use
        if conn is None:
            raw = self._psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
            )
            conn = Connection(self, raw)
            self._local.conn = conn
        return conn

    def identity_tables(self, conn: Connection) -> frozenset[str]:
        """Tables whose `id` is an identity column (INSERTs into them return the new id)."""
        if self._identity is None:
            rows = conn.execute_raw(
                "SELECT table_name FROM information_schema.columns WHERE column_name = 'id'"
                " AND is_identity = 'YES' AND table_schema = current_schema()"
            ).fetchall()
            self._identity = frozenset(r[0] for r in rows)
        return self._identity

    def _read(self, sql: str, params: Any) -> Cursor:
        conn = self._conn()
        try:
            return conn.execute(sql, params)
        except self._psycopg.OperationalError:
            if conn.depth or not conn.raw.broken:
                raise
            # A connection left from before a server restart: a read is safe to run again.
            self._local.conn = None
            return self._conn().execute(sql, params)

    def query(self, sql: str, params: Any = ()) -> list[Any]:  # type: ignore[override]
        return self._read(sql, params).fetchall()

    def query_one(self, sql: str, params: Any = ()) -> Any:  # type: ignore[override]
        return self._read(sql, params).fetchone()

    def execute(self, sql: str, params: Any = ()) -> Any:  # type: ignore[override]
        with self.transaction() as conn:
            return conn.execute(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:  # type: ignore[override]
        """A write transaction; nested use joins the outer one; commits on success.

        The in-process writer lock keeps this node's writes in the order SQLite would run
        them; across nodes, row locks and unique constraints decide (see docs/cluster.md).
        """
        conn = self._conn()
        with self._write_lock:
            if conn.depth:
                yield conn
                return
            conn, tx = self._begin(conn)
            conn.depth = 1
            try:
                with tx:
                    yield conn
            finally:
                conn.depth = 0

    def _begin(self, conn: Connection) -> tuple[Connection, Any]:
        """BEGIN on `conn`; once more on a fresh connection if it died while idle.

        A connection left from before a server restart only fails when used: failing at
        BEGIN means nothing ran, so retrying there loses no write (no retry after that).
        """
        tx = conn.raw.transaction()
        try:
            tx.__enter__()
            return conn, _Entered(tx)
        except self._psycopg.OperationalError:
            if not conn.raw.broken:
                raise
        self._local.conn = None
        conn = self._conn()
        tx = conn.raw.transaction()
        tx.__enter__()
        return conn, _Entered(tx)

    def migrate(self) -> list[str]:
        """Apply the same numbered migrations as SQLite, translated, under an advisory lock."""
        conn = self._conn()
        applied = []
        with self.transaction():
            conn.execute_raw("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            conn.execute_raw(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION)"
            )
            done = {r[0] for r in conn.execute_raw("SELECT name FROM schema_migrations")}
            for name, statements in store.migration_files():
                if name in done:
                    continue
                for statement in statements:
                    conn.execute_raw(sqlmap.ddl(statement))
                conn.execute_raw("INSERT INTO schema_migrations VALUES (%s, %s)", (name, now()))
                applied.append(name)
                log.info("applied migration %s", name)
            if applied:
                # A migration may rebuild a table by copying rows with their ids (the SQLite
                # way of changing a column); an identity sequence must not hand those out again.
                self._identity = None
                self.reset_identities(conn)
        self._identity = None
        return applied

    def reset_identities(self, conn: Connection) -> None:
        """Move every identity sequence past the largest id (after rows came in with ids)."""
        for table in sorted(self.identity_tables(conn)):
            conn.execute_raw(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            )

    def close(self) -> None:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.raw.close()
            self._local.conn = None
