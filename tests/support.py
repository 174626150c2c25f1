"""Test helpers: a real hotline server in a background thread, and websocket clients."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from hotline.config import Config
from hotline.server import Running, start

# One factor scales every wait, for slow CI machines.
SLOW = 1.0


def test_config(tmp: Path, **overrides: Any) -> Config:
    values: dict[str, Any] = dict(
        data_dir=tmp,
        http_port=0,
        ws_port=0,
        ice_loopback=True,
        secret_key="test-secret-key",
        ring_timeout_seconds=15.0,
        caption_warm=0,  # load speech models only in tests that caption
        # Every test client is 127.0.0.1: per-address limits would count the whole suite as
        # one caller (tests/test_attacks_*.py set small ones and come from several addresses).
        ws_callers_per_address=100_000,
        ws_calls_per_address_minute=100_000,
        tts_renders_per_address_minute=100_000,
        # Three chromiums on one address keep more than 16 connections open between them
        # (seen: "127.0.0.1 holds 16 connections; refusing more", a caller page half-loaded).
        http_connections_per_address=100,
    )
    values.update(overrides)
    if "database_url" not in values:  # HOTLINE_TEST_ENGINE=postgresql: the same test on PG
        from tests.engines import test_engine_url

        values["database_url"] = test_engine_url() or ""
    return Config.from_env(env={}, **values)


test_config.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout`
    seconds (scaled by SLOW) naming `what`: synchronisation on a condition, never a sleep."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout * SLOW:.0f} s waiting for {what}")
        time.sleep(interval)


async def async_wait_until(
    predicate: Any, timeout: float, what: str, interval: float = 0.02
) -> Any:
    """`wait_until` for coroutines: polls without blocking the loop."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout * SLOW:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


class ServerThread:
    """The whole hotline (HTTP + websocket + gateway) on its own loop in a thread."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="test-server", daemon=True
        )
        self._thread.start()
        self.running: Running = self.call(start(cfg))
        self.http = f"http://127.0.0.1:{self.running.http_port}"
        self.ws = f"ws://127.0.0.1:{self.running.ws_port}/ws"

    @property
    def services(self) -> Any:
        return self.running.services

    @property
    def db(self) -> Any:
        return self.running.services.db

    @property
    def switchboard(self) -> Any:
        return self.running.switchboard

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout * SLOW)

    def run(self, fn: Any, *args: Any) -> Any:
        """Run a plain function on the server loop and return its result."""

        async def wrapper() -> Any:
            return fn(*args)

        return self.call(wrapper())

    def stop(self) -> None:
        try:
            self.call(self.running.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


class Client:
    """A websocket client that keeps every message it receives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[dict[str, Any]] = []
        self._task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, url: str, **kw: Any) -> Client:
        return cls(await connect(url, **kw))

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                self.seen.append(msg)
                await self.inbox.put(msg)
        except Exception:
            pass

    async def send(self, msg: Any) -> None:
        await self.ws.send(msg if isinstance(msg, str | bytes) else json.dumps(msg))

    async def expect(self, kind: str, timeout: float = 10, **fields: Any) -> dict[str, Any]:
        """Wait for the next message of `kind` (others are skipped but kept in `seen`)."""

        async def wait() -> dict[str, Any]:
            while True:
                msg = await self.inbox.get()
                if msg.get("type") == kind and all(msg.get(k) == v for k, v in fields.items()):
                    return msg

        return await asyncio.wait_for(wait(), timeout * SLOW)

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()


def agent_ticket(srv: Any, agent_id: int) -> str:
    """A single-use websocket ticket for the agent, bound to a new signed-in session (what
    /api/ws-token hands a console)."""
    from hotline.db import agents as agents_db
    from hotline.db import sessions as sessions_db
    from hotline.tokens import digest, new_secret

    # (an unknown agent gets a ticket naming a session that does not exist)
    sid = sessions_db.create(srv.db, agent_id)[0] if agents_db.get(srv.db, agent_id) else "x"
    return str(
        srv.services.signer.dumps("ws", {"agent": agent_id, "s": digest(sid), "n": new_secret()})
    )


async def connect_call(srv: ServerThread, agent_id: int, link: str) -> tuple[Client, Client, str]:
    """An agent takes calls, the caller with `link` taps, the agent answers: (agent, caller, id)."""
    ticket = agent_ticket(srv, agent_id)
    agent = await Client.open(f"{srv.ws}?role=agent&token={ticket}")
    await agent.expect("hello")
    await agent.send({"type": "status", "status": "available"})
    caller = await Client.open(f"{srv.ws}?role=caller&link={link}")
    await caller.expect("hello")
    await caller.send({"type": "call"})
    ring = await agent.expect("ring")
    await agent.send({"type": "accept", "call_id": ring["call_id"]})
    await caller.expect("connected")
    return agent, caller, ring["call_id"]


def family_booking(srv: ServerThread, elder_id: int) -> tuple[int, str]:
    """A family callback booked for the elder, due tomorrow: (its id, its manage link's token)."""
    from hotline.callbacks.service import CallbackService
    from hotline.db import callbacks as callbacks_db

    now = time.time()
    booking_id = callbacks_db.insert(
        srv.db,
        {
            "code": callbacks_db.new_code(srv.db),
            "kind": "family",
            "status": "booked",
            "elder_id": elder_id,
            "dialect": "cmn",
            "due_at": now + 86400,
            "created_at": now,
            "updated_at": now,
        },
    )
    svc = CallbackService(srv.db, srv.cfg, signer=srv.services.signer)
    return booking_id, svc.manage_token(callbacks_db.get(srv.db, booking_id))
