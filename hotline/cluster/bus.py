"""The bus between nodes: messages and node heartbeats with a TTL.

Only what can be rebuilt travels here: relayed signalling, "this dialect's line moved" ticks,
supervisors' live views. Every place, ring and booking is in the store, so losing the bus
loses nothing: `publish` reports False instead of raising, and `on_reconnect` hooks let a
node recompute everything from the store once the bus is back.

Two implementations of one `Bus` protocol: `InProcessBus` (one process, or several nodes in
one test process sharing a `LocalHub`) and `RedisBus` (redis.asyncio; a supervised pub/sub
task resubscribes after a dropped connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None] | None]
Hook = Callable[[], Awaitable[None] | None]
PREFIX = "hotline"


class Bus(Protocol):
    """Messages between nodes plus their liveness."""

    node: str

    @property
    def connected(self) -> bool: ...
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def publish(self, channel: str, message: dict[str, Any]) -> bool: ...
    async def deliver(self, channel: str, message: dict[str, Any]) -> int | None: ...
    def subscribe(self, channel: str, handler: Handler) -> None: ...
    def on_reconnect(self, hook: Hook) -> None: ...
    async def heartbeat(self, ttl: float, info: dict[str, Any] | None = None) -> bool: ...
    async def live_nodes(self) -> dict[str, dict[str, Any]]: ...


async def _call(fn: Callable[..., Any], *args: Any) -> None:
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:  # one bad handler must not stop the bus
        log.exception("bus handler failed")


# --- in process ----------------------------------------------------------------------------


@dataclass
class LocalHub:
    """What several in-process nodes share (a stand-in for Redis within one process)."""

    clock: Callable[[], float] = time.monotonic
    buses: list[InProcessBus] = field(default_factory=list)
    beats: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)


class InProcessBus:
    """The bus of a single node (the default), or of test nodes sharing one `LocalHub`."""

    def __init__(self, node: str, hub: LocalHub | None = None) -> None:
        self.node = node
        self.hub = hub or LocalHub()
        self._handlers: dict[str, list[Handler]] = {}
        self._hooks: list[Hook] = []
        self.hub.buses.append(self)

    @property
    def connected(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        if self in self.hub.buses:
            self.hub.buses.remove(self)

    async def publish(self, channel: str, message: dict[str, Any]) -> bool:
        await self.deliver(channel, message)
        return True

    async def deliver(self, channel: str, message: dict[str, Any]) -> int | None:
        """Publish; returns how many nodes were subscribed to the channel."""
        payload = json.loads(json.dumps(message))  # same shape as over the wire
        nodes = 0
        for bus in list(self.hub.buses):
            handlers = list(bus._handlers.get(channel, ()))
            nodes += bool(handlers)
            for handler in handlers:
                await _call(handler, payload)
        return nodes

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    def on_reconnect(self, hook: Hook) -> None:
        self._hooks.append(hook)

    async def heartbeat(self, ttl: float, info: dict[str, Any] | None = None) -> bool:
        self.hub.beats[self.node] = (self.hub.clock() + ttl, dict(info or {}))
        return True

    async def live_nodes(self) -> dict[str, dict[str, Any]]:
        now = self.hub.clock()
        return {n: info for n, (until, info) in self.hub.beats.items() if until > now}


# --- Redis ---------------------------------------------------------------------------------


CALL_TIMEOUT = 5.0  # no Redis call may hold a node up longer than this


async def _bounded(awaitable: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(awaitable, CALL_TIMEOUT)


class RedisBus:
    """The bus on Redis: PUBLISH/SUBSCRIBE, and SET … PX for heartbeats.

    A supervisor task owns the subscription: when the connection drops it retries with a
    capped backoff, subscribes to every channel again, then runs the `on_reconnect` hooks.
    """

    RETRY_MIN, RETRY_MAX = 0.05, 1.0

    def __init__(self, url: str, node: str) -> None:
        import redis.asyncio as aioredis  # only cluster mode needs it

        self.node = node
        self.url = url
        self._redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=5
        )
        self._handlers: dict[str, list[Handler]] = {}
        self._hooks: list[Hook] = []
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._changed = asyncio.Event()
        self._connected = False
        self._closing = False
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        """True while the subscription is live (False: fall back to reading the store)."""
        return self._connected

    def _key(self, *parts: str) -> str:
        return ":".join((PREFIX, *parts))

    async def start(self) -> None:
        """Start the supervised subscription and wait (briefly) for it to be live."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"bus-{self.node}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 5)

    async def close(self) -> None:
        self._closing = True  # the loops also end on this: a cancel can be swallowed by redis-py
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=CALL_TIMEOUT * 2)
            self._task = None
        with contextlib.suppress(Exception):
            await _bounded(self._redis.aclose())

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.setdefault(channel, []).append(handler)
        self._changed.set()  # the supervisor subscribes to the new channel

    def on_reconnect(self, hook: Hook) -> None:
        self._hooks.append(hook)

    async def _supervise(self) -> None:
        delay, first = self.RETRY_MIN, True
        while not self._closing:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await self._listen(pubsub, first)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # redis ConnectionError, TimeoutError, OSError
                if self._connected:
                    log.warning(
                        "bus: lost Redis (%s); serving from the store until it returns", exc
                    )
                self._connected = False
                self._subscribed.clear()
                await asyncio.sleep(delay)
                delay = min(self.RETRY_MAX, delay * 2)
                first = False
                continue
            finally:
                with contextlib.suppress(Exception):
                    await _bounded(pubsub.aclose())
            delay = self.RETRY_MIN

    async def _listen(self, pubsub: Any, first: bool) -> None:
        channels = {self._key("ch", c) for c in self._handlers} or {self._key("ch", "_")}
        await _bounded(pubsub.subscribe(*channels))
        self._connected = True
        self._subscribed.set()
        if not first:
            self.reconnects += 1
            log.info("bus: Redis is back; resubscribed to %d channels", len(channels))
            for hook in list(self._hooks):
                await _call(hook)
        while not self._closing:
            if self._changed.is_set():
                self._changed.clear()
                wanted = {self._key("ch", c) for c in self._handlers}
                if wanted - channels:
                    await _bounded(pubsub.subscribe(*(wanted - channels)))
                    channels |= wanted
            msg = await _bounded(pubsub.get_message(timeout=0.2))
            if msg is None or msg.get("type") != "message":
                continue
            channel = msg["channel"].decode().split(":", 2)[2]
            try:
                payload = json.loads(msg["data"])
            except ValueError:
                log.warning("bus: dropped a malformed message on %s", channel)
                continue
            for handler in list(self._handlers.get(channel, ())):
                await _call(handler, payload)

    async def publish(self, channel: str, message: dict[str, Any]) -> bool:
        """Send to every node subscribed to `channel`; False (never an exception) if Redis is down."""
        return await self.deliver(channel, message) is not None

    async def deliver(self, channel: str, message: dict[str, Any]) -> int | None:
        """Publish; returns how many nodes were subscribed (0: nobody listens there, e.g. a
        node that just died), None if Redis could not be reached."""
        try:
            data = json.dumps(message, ensure_ascii=False)
            return int(await _bounded(self._redis.publish(self._key("ch", channel), data)))
        except Exception as exc:
            log.debug("bus: publish on %s failed: %s", channel, exc)
            return None

    async def heartbeat(self, ttl: float, info: dict[str, Any] | None = None) -> bool:
        """This node is alive for `ttl` seconds more (a key that expires on its own)."""
        try:
            await _bounded(
                self._redis.set(
                    self._key("node", self.node), json.dumps(info or {}), px=max(1, int(ttl * 1000))
                )
            )
            return True
        except Exception:
            return False

    async def live_nodes(self) -> dict[str, dict[str, Any]]:
        """Nodes whose heartbeat has not expired, with what they said of themselves ({} while
        Redis is unreachable: callers treat "nothing known" as "change nothing")."""
        try:
            return await _bounded(self._live_nodes())
        except Exception:
            return {}

    async def _live_nodes(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        prefix = self._key("node", "")
        async for key in self._redis.scan_iter(match=prefix + "*", count=200):
            raw = await self._redis.get(key)
            if raw is not None:
                out[key.decode()[len(prefix) :]] = json.loads(raw)
        return out


# --- PostgreSQL, while Redis is away ----------------------------------------------------------

NOTIFY_LIMIT = 7900  # bytes: PostgreSQL refuses a NOTIFY payload of 8000 or more


class PgNotifyBus:
    """Messages over PostgreSQL's LISTEN/NOTIFY: slower and small (< 8 kB a message), but
    always there while the store is; it carries the bus while Redis is down."""

    RETRY = 1.0

    def __init__(self, url: str, node: str) -> None:
        self.url = url
        self.node = node
        self._handlers: dict[str, list[Handler]] = {}
        self._task: asyncio.Task[None] | None = None
        self._sender: Any = None
        self._send_lock = asyncio.Lock()
        self._connected = False
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._connected

    def _channel(self, channel: str) -> str:
        return f"{PREFIX}:{channel}"[:63]  # PostgreSQL identifiers are at most 63 bytes

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Subscribe before `start` (the listening connection LISTENs once it is made)."""
        self._handlers.setdefault(channel, []).append(handler)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name=f"pgbus-{self.node}")

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=CALL_TIMEOUT)
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender.close()

    async def _listen(self) -> None:
        import psycopg

        names = {self._channel(c): c for c in self._handlers}
        while not self._closing:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=5
                )
                async with conn:
                    for name in names:
                        await conn.execute(f'LISTEN "{name}"')
                    self._connected = True
                    async for note in conn.notifies():
                        try:
                            payload = json.loads(note.payload)
                        except ValueError:
                            continue
                        for handler in list(self._handlers.get(names.get(note.channel, ""), ())):
                            await _call(handler, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._connected:
                    log.warning("bus: lost PostgreSQL notifications (%s)", exc)
                self._connected = False
                await asyncio.sleep(self.RETRY)

    async def deliver(self, channel: str, message: dict[str, Any]) -> int | None:
        """Publish; PostgreSQL does not say who listened (None), 0 if it failed."""
        return None if await self.publish(channel, message) else 0

    async def publish(self, channel: str, message: dict[str, Any]) -> bool:
        """NOTIFY on the channel; a relay batch too big for one payload goes as several."""
        try:
            async with self._send_lock:  # one sender connection: messages keep their order
                if self._sender is None or self._sender.closed:
                    import psycopg

                    self._sender = await psycopg.AsyncConnection.connect(
                        self.url, autocommit=True, connect_timeout=5
                    )
                for part in _fit(message):
                    await _bounded(
                        self._sender.execute(
                            "SELECT pg_notify(%s, %s)", (self._channel(channel), part)
                        )
                    )
            return True
        except Exception as exc:
            log.debug("bus: NOTIFY on %s failed: %s", channel, exc)
            self._sender = None
            return False


def _fit(message: dict[str, Any]) -> list[str]:
    """The message as NOTIFY payloads: a relay batch ("items") is split to fit; anything
    else too big is dropped with a warning (signalling frames fit: SDPs are a few kB)."""
    data = json.dumps(message, ensure_ascii=False)
    if len(data.encode()) < NOTIFY_LIMIT:
        return [data]
    items = message.get("items")
    if not isinstance(items, list) or len(items) < 2:
        log.warning("bus: a %d-byte message cannot go by PostgreSQL; dropped", len(data))
        return []
    half = len(items) // 2
    return _fit({**message, "items": items[:half]}) + _fit({**message, "items": items[half:]})


class FallbackBus:
    """Redis while it answers, PostgreSQL notifications while it does not: a node that loses
    Redis keeps relaying through the store it cannot do without anyway (slower, smaller).

    Heartbeats live in Redis only; while it is down they read as "nothing known", and
    callers change nothing on that."""

    def __init__(self, redis: RedisBus, pg: PgNotifyBus) -> None:
        self.redis, self.pg = redis, pg
        self.node = redis.node

    @property
    def connected(self) -> bool:
        return self.redis.connected

    async def start(self) -> None:
        await self.pg.start()
        await self.redis.start()

    async def close(self) -> None:
        await self.redis.close()
        await self.pg.close()

    async def publish(self, channel: str, message: dict[str, Any]) -> bool:
        return await self.deliver(channel, message) != 0

    async def deliver(self, channel: str, message: dict[str, Any]) -> int | None:
        """How many nodes got it by Redis; None (unknown) by PostgreSQL; 0 if neither worked."""
        if self.redis.connected:
            nodes = await self.redis.deliver(channel, message)
            if nodes is not None:
                return nodes
        return await self.pg.deliver(channel, message)

    def subscribe(self, channel: str, handler: Handler) -> None:
        self.redis.subscribe(channel, handler)
        self.pg.subscribe(channel, handler)

    def on_reconnect(self, hook: Hook) -> None:
        self.redis.on_reconnect(hook)

    async def heartbeat(self, ttl: float, info: dict[str, Any] | None = None) -> bool:
        return await self.redis.heartbeat(ttl, info)

    async def live_nodes(self) -> dict[str, dict[str, Any]]:
        return await self.redis.live_nodes()


def make_bus(redis_url: str, node: str, database_url: str = "") -> Bus:
    """The configured bus: Redis (with PostgreSQL behind it when the store is PostgreSQL)
    when `HOTLINE_REDIS_URL` is set, else in process."""
    if not redis_url:
        return InProcessBus(node)
    redis = RedisBus(redis_url, node)
    return FallbackBus(redis, PgNotifyBus(database_url, node)) if database_url else redis
