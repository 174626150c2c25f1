"""The whole single node on PostgreSQL: serves, and reports not ready while the database is down."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.db import calls as calls_db
from hotline.db import open_database
from tests.engines import PostgresServer
from tests.support import Client, ServerThread, test_config

DEADLINE = 60.0


@pytest.fixture
def own_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, so it can be stopped without disturbing others."""
    pg = PostgresServer()
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


def readyz(srv: ServerThread) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(srv.http + "/readyz", timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def until(srv: ServerThread, status: int) -> dict:
    deadline = time.monotonic() + DEADLINE
    while True:
        code, body = readyz(srv)
        if code == status or time.monotonic() > deadline:
            assert code == status, body
            return body
        time.sleep(0.1)


def test_node_on_postgresql_serves_and_readyz_follows_the_database(
    own_pg: PostgresServer, tmp_path: Path
) -> None:
    url = own_pg.create_database()
    srv = ServerThread(test_config(tmp_path, database_url=url))
    try:
        assert readyz(srv) == (200, {"db": True, "live": True, "ok": True})

        async def caller() -> Client:
            c = await Client.open(f"{srv.ws}?role=caller")
            await c.send({"type": "call", "dialect": "cmn"})
            await c.expect("queued")
            return c

        client = srv.call(caller())
        store = open_database(url)
        assert [c["dialect"] for c in calls_db.open_calls(store)] == ["cmn"]  # stored in PG
        assert not (tmp_path / "hotline.sqlite3").exists()

        own_pg.stop("immediate")
        assert until(srv, 503) == {"db": False, "live": True, "ok": False}
        own_pg.start()
        assert until(srv, 200)["db"] is True
        srv.call(client.close())
    finally:
        srv.stop()


def test_writes_survive_a_postgresql_restart_without_losing_one(own_pg: PostgresServer) -> None:
    """A connection left from before the restart fails at BEGIN, and is replaced there."""
    db = open_database(own_pg.create_database())
    db.migrate()
    calls_db.create(db, "c1", elder_id=None, dialect="cmn", kind="inbound", arrived_at=1.0)
    own_pg.restart()
    calls_db.event(db, "c1", "after_restart")  # the first write after the restart
    assert calls_db.get(db, "c1") is not None  # and the first read
    assert [e["kind"] for e in calls_db.events(db, "c1")] == ["after_restart"]
    db.close()


def test_a_second_node_on_the_same_database_refuses_to_serve(pg_url: str, tmp_path: Path) -> None:
    """Until the switchboard runs on the shared line, one `hotline serve` per database."""
    import os
    import subprocess
    import sys

    from hotline.db.postgres import NodeAlreadyServing, single_node_lock

    held = single_node_lock(pg_url)  # "the first node"
    try:
        with pytest.raises(NodeAlreadyServing):
            single_node_lock(pg_url)
        env = dict(
            os.environ, HOTLINE_DATABASE_URL=pg_url, HOTLINE_DATA_DIR=str(tmp_path),
            HOTLINE_SECRET_KEY="k", HOTLINE_HTTP_PORT="0", HOTLINE_WS_PORT="0",
        )  # fmt: skip
        second = subprocess.run(
            [sys.executable, "-m", "hotline", "serve"], env=env, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode == 2 and "another hotline node" in second.stderr
    finally:
        held.close()
    single_node_lock(pg_url).close()  # released with its connection
