"""Three nodes on one PostgreSQL and one Redis: rings cross nodes, places follow, failures heal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from hotline.cluster.bus import InProcessBus, LocalHub, RedisBus
from hotline.cluster.line_store import LineError, MemoryLineStore, SqlLineStore
from hotline.cluster.node import ClusterNode, NodeSettings
from hotline.db import Database, open_database
from tests.engines import PostgresServer, RedisServer, present

DEADLINE = 30.0
FAST = NodeSettings(
    ring_ttl=5.0, overflow_seconds=30.0, heartbeat_every=0.1, heartbeat_ttl=0.5,
    sweep_every=0.1, poll_every=0.2, coalesce=0.02,
)  # fmt: skip


async def until(check: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class Seen:
    """What one node told its own callers and agents."""

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}
        self.rings: list[tuple[str, int]] = []

    def on_positions(self, positions: dict[str, int]) -> None:
        self.positions = positions

    def on_ring(self, call_id: str, agent_id: int) -> None:
        self.rings.append((call_id, agent_id))


def test_three_nodes_share_one_line(pg_url: str) -> None:
    redis = RedisServer()  # this test stops and restarts it
    redis.start()
    setup = open_database(pg_url)
    setup.migrate()
    dbs: list[Database] = []

    def node(name: str, settings: NodeSettings = FAST) -> tuple[ClusterNode, Seen]:
        db = open_database(pg_url)
        dbs.append(db)
        seen = Seen()
        n = ClusterNode(
            name, SqlLineStore(db, node=name), RedisBus(redis.url(), name), settings,
            on_positions=seen.on_positions, on_ring=seen.on_ring,
        )  # fmt: skip
        return n, seen

    async def main() -> None:
        (a, sa), (b, sb), (c, sc) = node("a"), node("b"), node("c")
        for n in (a, b, c):
            await n.start()
        now = time.time()

        # A caller on node A is rung to an agent whose console is on node B; places on
        # node C follow the line wherever it moves.
        await b.agent_online(1, ("cmn",))
        await a.arrive("c1", "cmn", now)
        await c.arrive("c2", "cmn", now + 1)
        await c.arrive("c3", "cmn", now + 2)
        await until(lambda: sb.rings == [("c1", 1)], "the ring to reach node B")
        assert sa.rings == [] and sc.rings == []
        await until(lambda: sc.positions == {"c2": 2, "c3": 3}, "C's places")
        await b.accept("c1", 1)  # (the ring lasts ring_ttl = 5 s by the database clock)
        await until(lambda: sc.positions == {"c2": 1, "c3": 2}, "C's places to move up")

        # kill -9 of node A: it just stops (no clean-up). Its heartbeat expires; the line
        # does not care (c1 is in a call, its media browser to browser).
        kill(a)
        await until(lambda: _not_live(b, "a"), "A's heartbeat to expire")

        # A ring held by a node that dies expires by the database clock and moves on.
        d, sd = node("d")
        await d.start()
        await d.agent_online(2, ("cmn",))
        await until(lambda: ("c2", 2) in sd.rings, "c2 rung to agent 2 on D")
        kill(d)  # D dies while ringing
        line = SqlLineStore(setup)
        await until(lambda: present(line.get("c2")).state == "pending", "the ring to expire")
        assert present(line.get("c2")).place == 2.0  # the same place
        assert sc.positions == {"c2": 1, "c3": 2}

        # Redis dies: node C keeps its callers' places right by reading PostgreSQL.
        redis.stop()
        await until(lambda: not c.bus.connected, "C to notice Redis is gone")
        await b.end_call("c1")  # agent 1 free again: rung to c2 by a round on B
        await until(lambda: ("c2", 1) in sb.rings or _rung_without_bus(line), "c2 rung")
        await b.accept("c2", 1)
        await until(lambda: sc.positions == {"c3": 1}, "C's places without Redis")

        redis.start()
        await until(lambda: c.bus.connected, "C to resubscribe")
        await c.arrive("c4", "cmn", time.time())
        await until(lambda: sc.positions == {"c3": 1, "c4": 2}, "C's places after Redis")
        for n in (b, c):
            await n.stop()
        await a.bus.close()
        await d.bus.close()

    try:
        asyncio.run(main())
    finally:
        redis.stop()
        for db in dbs:
            db.close()
        setup.close()


def kill(node: ClusterNode) -> None:
    """kill -9, in process: every loop of the node and its bus stops at once, nothing cleaned."""
    node._stopping = True
    for task in node._tasks:
        task.cancel()
    if isinstance(node.bus, RedisBus):
        node.bus._closing = True
        if node.bus._task is not None:
            node.bus._task.cancel()


async def _not_live(n: ClusterNode, name: str) -> bool:
    return name not in await n.bus.live_nodes()


def _rung_without_bus(line: SqlLineStore) -> bool:
    # With Redis down the ring cannot be relayed to B's console, but it is in the store.
    e = line.get("c2")
    return e is not None and e.state == "reserved" and e.agent_id == 1


def test_signalling_reaches_the_node_holding_the_other_party() -> None:
    """In process (LocalHub): relays go to whichever node holds the socket, or report why not."""

    async def main() -> None:
        hub = LocalHub()
        got: dict[str, list[tuple[str, dict]]] = {"a": [], "b": []}
        nodes = {}

        def sink(name: str) -> Callable[[str, dict], None]:
            return lambda conn, msg: got[name].append((conn, msg))

        for name in ("a", "b"):
            nodes[name] = ClusterNode(
                name, MemoryLineStore(node=name), InProcessBus(name, hub), FAST,
                on_relay=sink(name),
            )  # fmt: skip
            await nodes[name].start()
        a, b = nodes["a"], nodes["b"]
        await until(lambda: _live(a, {"a", "b"}), "both heartbeats")
        await a.hold("caller-1")
        await b.hold("agent-7")
        offer = {"type": "offer", "sdp": "v=0"}
        assert await a.relay("agent-7", offer) == "relayed"  # the agent's page is on b
        assert await a.relay("caller-1", {"type": "hello"}) == "local"
        assert await a.relay("nobody", offer) == "unreachable"
        assert got == {"a": [("caller-1", {"type": "hello"})], "b": [("agent-7", offer)]}
        await b.release("agent-7")
        assert await a.relay("agent-7", offer) == "unreachable"  # the page left
        for n in (a, b):
            await n.stop()

    asyncio.run(main())


async def _live(n: ClusterNode, names: set[str]) -> bool:
    return names <= set(await n.bus.live_nodes())


def test_a_node_that_cannot_reach_postgresql_refuses_with_a_typed_error() -> None:
    pg = PostgresServer()  # its own server: this test stops it
    try:
        pg.start()
        url = pg.create_database()
        db = open_database(url)
        db.migrate()

        async def main() -> None:
            node = ClusterNode("a", SqlLineStore(db, node="a"), InProcessBus("a"), FAST)
            await node.start()
            await node.arrive("c1", "cmn", time.time())
            pg.stop("immediate")
            with pytest.raises(LineError) as err:
                await node.arrive("c2", "cmn", time.time())
            assert err.value.code == "store_unavailable"
            pg.start()
            await until(lambda: _arrives(node, "c3"), "the node to serve again")
            await node.stop()

        asyncio.run(main())
        db.close()
    finally:
        pg.destroy()


async def _arrives(node: ClusterNode, call_id: str) -> bool:
    try:
        await node.arrive(call_id, "cmn", time.time())
    except LineError:
        return False
    return True
