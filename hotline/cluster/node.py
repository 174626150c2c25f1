"""One node of a cluster: the shared line (store) and the bus, with the node's periodic work.

What a node does, whichever node it is (no leader):
- after it changes the line, it publishes a coalesced "line moved" tick; on a tick from any
  node it runs a routing round (safe on every node at once: reservations are exactly once)
  and recomputes the places of the callers whose sockets it holds;
- it delivers a ring to the node holding the rung agent's console (`node:<id>` channel);
- it beats (a TTL key) and sweeps expired rings (idempotent SQL, by the database clock);
- while the bus is down it polls the store instead, so nothing waits for Redis.

The switchboard is not wired to this yet (docs/cluster.md, status): this module is the seam.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hotline.cluster.bus import Bus
from hotline.cluster.line_store import Entry, LineError, LineStore, route

log = logging.getLogger(__name__)

LINE_CHANNEL = "line"
PositionsHook = Callable[[dict[str, int]], Awaitable[None] | None]
RingHook = Callable[[str, int], Awaitable[None] | None]
RelayHook = Callable[[str, dict[str, Any]], Awaitable[None] | None]


@dataclass(frozen=True)
class NodeSettings:
    """Timings of a node's periodic work (seconds)."""

    ring_ttl: float = 15.0
    overflow_seconds: float = 30.0
    heartbeat_every: float = 2.0
    heartbeat_ttl: float = 6.0
    sweep_every: float = 1.0
    poll_every: float = 1.0  # only while the bus is down
    coalesce: float = 0.05  # ticks closer than this make one round


async def _call(fn: Callable[..., Any], *args: Any) -> None:
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


class ClusterNode:
    """A node's view of the shared line: transitions, ticks, rings, positions, liveness."""

    def __init__(
        self,
        node_id: str,
        line: LineStore,
        bus: Bus,
        settings: NodeSettings = NodeSettings(),
        *,
        on_positions: PositionsHook | None = None,
        on_ring: RingHook | None = None,
        on_relay: RelayHook | None = None,
    ) -> None:
        self.node_id = node_id
        self.line = line
        self.bus = bus
        self.settings = settings
        self.on_positions = on_positions
        self.on_ring = on_ring
        self.on_relay = on_relay
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.last_positions: dict[str, int] = {}

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self.bus.subscribe(LINE_CHANNEL, self._on_tick)
        self.bus.subscribe(f"node:{self.node_id}", self._on_direct)
        self.bus.on_reconnect(self._dirty.set)  # the bus is back: re-read everything
        await self.bus.start()
        for name, loop in (
            ("rounds", self._rounds),
            ("beat", self._beat),
            ("sweep", self._sweep),
            ("poll", self._poll),
        ):
            self._tasks.append(asyncio.create_task(loop(), name=f"{self.node_id}-{name}"))
        self._dirty.set()

    async def stop(self) -> None:
        """Stop the node's work (a clean stop; kill -9 is simply never calling this)."""
        self._stopping = True  # the loops end on this too (a cancel may be swallowed below)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        self._tasks.clear()
        await self.bus.close()

    # --- transitions (each followed by a tick) ------------------------------------------

    async def _store(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a store call off the event loop; an unreachable store is a typed error."""
        try:
            return await asyncio.to_thread(fn, *args)
        except LineError:
            raise
        except Exception as exc:
            if _unreachable(exc):
                raise LineError("store_unavailable", "the database cannot be reached") from exc
            raise

    async def arrive(
        self, call_id: str, dialect: str, arrived_at: float, priority: int = 0
    ) -> Entry:
        entry = await self._store(self.line.arrive, call_id, dialect, arrived_at, priority)
        await self.line_moved()
        return entry

    async def agent_online(self, agent_id: int, dialects: tuple[str, ...]) -> None:
        await self._store(self.line.agent_login, agent_id, dialects)
        await self._store(self.line.set_available, agent_id, True)
        await self.line_moved()

    async def accept(self, call_id: str, agent_id: int) -> Entry:
        entry = await self._store(self.line.accept, call_id, agent_id)
        await self.line_moved()
        return entry

    async def decline(self, call_id: str, agent_id: int) -> Entry:
        entry = await self._store(self.line.decline, call_id, agent_id)
        await self.line_moved()
        return entry

    async def end_call(self, call_id: str) -> Entry:
        """The conversation and its wrap-up are over: the agent is free again."""
        await self._store(self.line.wrap, call_id)
        entry = await self._store(self.line.finish, call_id)
        await self.line_moved()
        return entry

    async def adopt(self, call_id: str) -> bool:
        """A caller's page reconnected here (its node died or the proxy moved it)."""
        from hotline.cluster.line_store import SqlLineStore
        from hotline.db import line as line_db

        if not isinstance(self.line, SqlLineStore):
            return False
        moved = await self._store(line_db.move_node, self.line.db, call_id, self.node_id)
        await self.line_moved()
        return bool(moved)

    async def line_moved(self) -> None:
        """Tell every node (this one included) that the line changed."""
        self._dirty.set()
        await self.bus.publish(LINE_CHANNEL, {"type": "line_moved", "node": self.node_id})

    # --- reacting -----------------------------------------------------------------------

    def _on_tick(self, message: dict[str, Any]) -> None:
        self._dirty.set()

    async def _on_direct(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ring" and self.on_ring is not None:
            await _call(self.on_ring, str(message["call_id"]), int(message["agent_id"]))
        elif kind == "relay" and self.on_relay is not None:
            await _call(self.on_relay, str(message["to"]), dict(message["message"]))

    # --- connections and relaying (signalling to the node holding the other party) -----

    async def hold(self, conn_id: str) -> None:
        """A socket (a caller's or agent's page) is now on this node."""
        await self.bus.hold_connection(conn_id)

    async def release(self, conn_id: str) -> None:
        await self.bus.release_connection(conn_id)

    async def relay(self, conn_id: str, message: dict[str, Any]) -> str:
        """Deliver `message` to the socket `conn_id` wherever it is.

        Returns "local" (this node holds it), "relayed", or "unreachable" (no live node holds
        it, or the bus is down): the sender then tells its page the other party is away.
        """
        node = await self.bus.connection_node(conn_id) if self.bus.connected else None
        if node == self.node_id:
            await self._on_direct({"type": "relay", "to": conn_id, "message": message})
            return "local"
        if node is None:
            return "unreachable"
        sent = await self.bus.publish(
            f"node:{node}", {"type": "relay", "to": conn_id, "message": message}
        )
        return "relayed" if sent else "unreachable"

    async def _rounds(self) -> None:
        while not self._stopping:
            await self._dirty.wait()
            await asyncio.sleep(self.settings.coalesce)  # let a burst of ticks make one round
            self._dirty.clear()
            try:
                await self.round()
            except Exception:  # the store is unreachable: the next tick or poll retries
                log.exception("%s: routing round failed", self.node_id)

    async def round(self) -> None:
        """Ring whoever can be rung now, then push places to this node's callers."""
        s = self.settings
        now = await self._store(self.line.now)
        rung = await self._store(route, self.line, now, s.ring_ttl, s.overflow_seconds)
        if rung:
            agents = {a.agent_id: a.node for a in await self._store(self.line.agents)}
            for call_id, agent_id in rung:
                await self._deliver_ring(agents.get(agent_id, ""), call_id, agent_id)
            await self.bus.publish(LINE_CHANNEL, {"type": "line_moved", "node": self.node_id})
        await self._push_positions()

    async def _deliver_ring(self, node: str, call_id: str, agent_id: int) -> None:
        if node == self.node_id:
            await self._on_direct({"type": "ring", "call_id": call_id, "agent_id": agent_id})
        elif not await self.bus.publish(
            f"node:{node}", {"type": "ring", "call_id": call_id, "agent_id": agent_id}
        ):
            log.warning("%s: ring for agent %s not relayed (bus down); it will expire",
                        self.node_id, agent_id)  # fmt: skip

    async def _push_positions(self) -> None:
        entries = await self._store(self.line.waiting)
        places: dict[str, int] = {}
        mine: dict[str, int] = {}
        for e in entries:  # serving order: a running count per dialect is the place
            places[e.dialect] = places.get(e.dialect, 0) + 1
            if e.node == self.node_id:
                mine[e.call_id] = places[e.dialect]
        if mine != self.last_positions:
            self.last_positions = mine
            if self.on_positions is not None:
                await _call(self.on_positions, dict(mine))

    # --- periodic work ------------------------------------------------------------------

    async def _beat(self) -> None:
        while not self._stopping:
            await self.bus.heartbeat(self.settings.heartbeat_ttl, {"node": self.node_id})
            await asyncio.sleep(self.settings.heartbeat_every)

    async def _sweep(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.sweep_every)
            try:
                await self._sweep_once()
            except LineError:
                continue  # the store is unreachable: next time
            except Exception:  # never let the sweeper die
                log.exception("%s: ring sweep failed", self.node_id)

    async def _sweep_once(self) -> None:
        expired = await self._store(self.line.expire)
        gone: list[int] = []
        if self.bus.connected:  # agents whose node stopped beating are not rung
            live = set(await self.bus.live_nodes())
            if self.node_id in live:
                gone = await self._store(self.line.away_unless_on, live)
        if expired or gone:
            await self.line_moved()

    async def _poll(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.poll_every)
            if not self.bus.connected:
                self._dirty.set()  # no ticks arrive: read the store instead


def _unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached (either engine)."""
    import sqlite3

    if isinstance(exc, sqlite3.OperationalError):
        return True
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(exc, psycopg.OperationalError)
