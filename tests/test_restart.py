"""Stopping and restarting the server: waiting callers keep their place, calls are recorded."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from hotline.db import Database
from hotline.db import agents as agents_db
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from tests.support import SLOW, Client, ServerThread, agent_ticket, test_config


def test_waiting_callers_keep_their_place_across_a_restart(tmp_path: Path) -> None:
    cfg = test_config(tmp_path)
    srv = ServerThread(cfg)
    db = srv.db
    agent = agents_db.add(db, "a", "pw", ["cmn"])
    links = []
    for name in ("甲", "乙", "丙"):
        elder = elders_db.add(db, name, dialect="yue")
        links.append(elders_db.new_link(db, elder.id).token)
    cmn = elders_db.add(db, "丁", dialect="cmn")
    cmn_link = elders_db.new_link(db, cmn.id).token

    async def before() -> tuple[list[tuple[str, str]], str]:
        queued = []
        clients = []
        for token in links:
            c = await Client.open(f"{srv.ws}?role=caller&link={token}")
            await c.expect("hello")
            await c.send({"type": "call"})
            q = await c.expect("queued")
            queued.append((q["call_id"], q["rejoin"]))
            clients.append(c)
        ticket = agent_ticket(srv, agent.id)
        a = await Client.open(f"{srv.ws}?role=agent&token={ticket}")
        await a.expect("hello")
        await a.send({"type": "status", "status": "available"})
        c = await Client.open(f"{srv.ws}?role=caller&link={cmn_link}")
        await c.expect("hello")
        await c.send({"type": "call"})
        ring = await a.expect("ring")
        await a.send({"type": "accept", "call_id": ring["call_id"]})
        await c.expect("connected")
        return queued, ring["call_id"]

    queued, live_call = srv.call(before())
    srv.stop()

    assert calls_db.get(db, live_call)["outcome"] == "interrupted"
    srv2 = ServerThread(cfg)
    try:

        async def after() -> list[dict]:
            results = []
            for token, (call_id, rejoin) in zip(links, queued, strict=True):
                c = await Client.open(f"{srv2.ws}?role=caller&link={token}&rejoin={rejoin}")
                hello = await c.expect("hello")
                assert hello["rejoined"] and hello["call_id"] == call_id
                results.append(await c.expect("queue"))
            return results

        positions = srv2.call(after())
        assert [q["position"] for q in positions] == [1, 2, 3]
    finally:
        srv2.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_shuts_down_gracefully(tmp_path: Path) -> None:
    http, ws = _free_port(), _free_port()
    env = dict(
        os.environ,
        HOTLINE_DATA_DIR=str(tmp_path),
        HOTLINE_HTTP_PORT=str(http),
        HOTLINE_WS_PORT=str(ws),
        HOTLINE_SECRET_KEY="k",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotline", "serve"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20 * SLOW
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", http), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        db = Database(tmp_path / "hotline.sqlite3")
        elder = elders_db.add(db, "甲", dialect="cmn")
        token = elders_db.new_link(db, elder.id).token

        async def wait_in_line() -> Client:
            c = await Client.open(f"ws://127.0.0.1:{ws}/ws?role=caller&link={token}")
            await c.expect("hello")
            await c.send({"type": "call"})
            await c.expect("queued")
            proc.send_signal(signal.SIGTERM)
            await c.expect("server_restarting")
            return c

        asyncio.run(wait_in_line())
        assert proc.wait(20 * SLOW) == 0
        rows = db.query("SELECT * FROM calls")
        assert len(rows) == 1 and rows[0]["ended_at"] is None  # still in line for the restart
    finally:
        if proc.poll() is None:
            proc.kill()
