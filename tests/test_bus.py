"""The bus between nodes, in process and on a real redis-server (restarted mid-test)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hotline.cluster.bus import Bus, InProcessBus, LocalHub, RedisBus
from tests.engines import RedisServer

DEADLINE = 30.0


async def until(check: Callable[[], Any], what: str) -> None:
    """Poll `check` (sync or async) until true, with a deadline (never a fixed sleep)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.fixture(params=["inprocess", "redis"])
def two_nodes(request: pytest.FixtureRequest) -> Callable[[], Any]:
    """A factory of two connected buses (nodes a and b) of one implementation."""

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[tuple[Bus, Bus]]:
        if request.param == "inprocess":
            hub = LocalHub()
            a: Bus = InProcessBus("a", hub)
            b: Bus = InProcessBus("b", hub)
        else:
            url = request.getfixturevalue("redis_server").url()
            a, b = RedisBus(url, "a"), RedisBus(url, "b")
        yield a, b
        await a.close()
        await b.close()

    return make


def run(coro_fn: Callable[[], Any]) -> None:
    asyncio.run(coro_fn())


def test_messages_reach_every_subscribed_node(two_nodes) -> None:
    async def main() -> None:
        async with two_nodes() as (a, b):
            got: list[tuple[str, dict]] = []
            b.subscribe("line:cmn", lambda m: got.append(("b", m)))
            a.subscribe("line:cmn", lambda m: got.append(("a", m)))
            a.subscribe("node:a", lambda m: got.append(("a-direct", m)))
            await a.start()
            await b.start()
            assert a.connected and b.connected
            assert await a.publish("line:cmn", {"type": "line_moved", "n": 1})
            assert await b.publish("node:a", {"type": "relay", "sdp": "v=0 你好"})
            await until(lambda: len(got) == 3, "three deliveries")
            assert sorted(got, key=lambda x: x[0]) == [
                ("a", {"type": "line_moved", "n": 1}),
                ("a-direct", {"type": "relay", "sdp": "v=0 你好"}),
                ("b", {"type": "line_moved", "n": 1}),
            ]

    run(main)


def test_heartbeats_expire(two_nodes) -> None:
    async def main() -> None:
        async with two_nodes() as (a, b):
            await a.start()
            await b.start()
            assert await a.heartbeat(60, {"ws": "ws://127.0.0.1:1/ws"})
            assert await b.heartbeat(0.2)
            assert (await a.live_nodes())["a"] == {"ws": "ws://127.0.0.1:1/ws"}
            await until(lambda: _gone(a, "b"), "b's heartbeat to expire")
            assert "a" in await b.live_nodes()

    run(main)


async def _gone(bus: Bus, node: str) -> bool:
    return node not in await bus.live_nodes()


def test_redis_restart_mid_test_resubscribes_and_loses_nothing_durable() -> None:
    srv = RedisServer()  # its own server: this test kills it
    srv.start()

    async def main() -> None:
        a, b = RedisBus(srv.url(), "a"), RedisBus(srv.url(), "b")
        got: list[dict] = []
        back: list[str] = []
        b.subscribe("line:yue", got.append)
        b.on_reconnect(lambda: back.append("b"))
        await a.start()
        await b.start()
        assert await a.publish("line:yue", {"n": 1})
        await until(lambda: got == [{"n": 1}], "the first message")

        srv.stop()  # Redis dies (no persistence: every key is gone)
        assert await a.publish("line:yue", {"n": 2}) is False  # reported, never raised
        assert await a.heartbeat(30) is False
        await until(lambda: not b.connected, "b to notice the loss")

        srv.start()  # same port
        await until(lambda: b.connected and back == ["b"], "b to resubscribe")
        await until(lambda: a.heartbeat(30), "a to reach Redis again")
        assert await a.publish("line:yue", {"n": 3})
        await until(lambda: got == [{"n": 1}, {"n": 3}], "a message after the restart")
        assert b.reconnects == 1
        await a.close()
        await b.close()

    try:
        asyncio.run(main())
    finally:
        srv.stop()
