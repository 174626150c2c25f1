"""Connections with bounded outgoing queues, and topics that fan messages out to them.

A slow or stuck client never blocks anyone: each connection has its own writer task and a
bounded queue; when the queue is full the connection is closed (it will reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import defaultdict
from typing import Any

log = logging.getLogger(__name__)

_ids = itertools.count(1)
_background: set[asyncio.Task[None]] = set()  # strong refs to close_soon tasks


class Conn:
    """One websocket client as the live side sees it."""

    def __init__(self, ws: Any, *, max_queue: int = 256, send_timeout: float = 10.0) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.role = "anonymous"
        self.subject: Any = None  # the agent id, or the caller's call id
        self.elder: Any = None  # a caller's elder record, when they came by a one-tap link
        self.last_call_id: str | None = None  # the call that just ended here (for rating)
        self.lang = "zh_CN"  # a caller page's UI language
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(max_queue)
        self._send_timeout = send_timeout
        self._writer: asyncio.Task[None] | None = None
        self.closed = False

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message; never blocks. A client too slow to drain its queue is dropped."""
        if self.closed:
            return
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: escape them rather than fail the socket
            text = json.dumps(message, separators=(",", ":"))
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("conn %s: send queue full, closing slow client", self.id)
            self.close(code=1013, reason="too slow")

    async def _write_loop(self) -> None:
        try:
            while True:
                text = await self._queue.get()
                if text is None:
                    return
                await asyncio.wait_for(self.ws.send(text), self._send_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection gone or stuck: close it, the reader ends too
            log.info("conn %s: writer stopped: %s", self.id, type(exc).__name__)
            self.close(code=1011, reason="send failed")

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._writer is not None:
            self._writer.cancel()
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().create_task(self.ws.close(code, reason))

    def close_soon(self, code: int = 1000, reason: str = "") -> None:
        """Close after what is already queued has been sent (e.g. a final error message)."""
        if not self.closed:
            task = asyncio.get_running_loop().create_task(self.flush_and_close(code, reason))
            _background.add(task)
            task.add_done_callback(_background.discard)

    async def flush_and_close(
        self, code: int = 1000, reason: str = "", timeout: float = 2.0
    ) -> None:
        """Send what is queued, then close."""
        if self.closed:
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._writer), timeout)
        self.closed = True
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)


class Hub:
    """Topics (strings) to subscribed connections; the one bridge from threads into the loop."""

    def __init__(self) -> None:
        self._topics: dict[str, set[Conn]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, topic: str, conn: Conn) -> None:
        self._topics[topic].add(conn)

    def unsubscribe(self, conn: Conn) -> None:
        for topic in list(self._topics):
            self._topics[topic].discard(conn)
            if not self._topics[topic]:
                del self._topics[topic]

    def unsubscribe_topic(self, topic: str, conn: Conn) -> None:
        subscribers = self._topics.get(topic)
        if subscribers is not None:
            subscribers.discard(conn)
            if not subscribers:
                del self._topics[topic]

    def publish(self, topic: str, message: dict[str, Any]) -> int:
        """Send to every subscriber of `topic` (on the loop); returns how many."""
        conns = self._topics.get(topic, ())
        for conn in list(conns):
            conn.send(message)
        return len(conns)

    def publish_threadsafe(self, topic: str, message: dict[str, Any]) -> None:
        """Publish from any thread (Flask uses this)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.publish, topic, message)

    def call_threadsafe(self, fn: Any, *args: Any) -> None:
        """Run `fn(*args)` on the loop, from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    def ask_threadsafe(self, fn: Any, *args: Any, timeout: float = 5.0) -> Any:
        """Run `fn(*args)` on the loop from another thread and return its result."""
        if self._loop is None or self._loop.is_closed():
            raise RuntimeError("the live side is not running")

        async def call() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout)

    def subscribers(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))
