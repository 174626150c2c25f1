from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.db import Database, open_database
from tests.engines import PostgresServer, RedisServer, shared_postgres
from tests.support import ServerThread, test_config


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    """A real hotline on free ports with a temp database."""
    srv = ServerThread(test_config(tmp_path))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One throw-away PostgreSQL cluster for the session (fails, never skips, when missing)."""
    yield shared_postgres()  # removed at process exit


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One throw-away redis-server for the session (fails, never skips, when missing)."""
    srv = RedisServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives, once per engine: a SQLite file path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "hotline.sqlite3")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(engine_target: str) -> Iterator[Database]:
    """A migrated, empty store, once per engine."""
    db = open_database(engine_target)
    db.migrate()
    yield db
    db.close()
