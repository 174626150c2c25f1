"""Connections whose sends never block the loop, and topics that fan messages out to them.

A slow or stuck client never blocks anyone: a send is written at once (no per-connection task
or queue), and a client that has fallen too far behind is closed (it will reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import defaultdict
from typing import Any

from websockets.protocol import State

log = logging.getLogger(__name__)

MAX_BUFFER = 256 * 1024  # unsent bytes a client may fall behind by before it is dropped

_ids = itertools.count(1)
_background: set[asyncio.Task[None]] = set()  # strong refs to closing tasks


def text_frame(data: bytes) -> bytes:
    """One unfragmented, unmasked websocket text frame (RFC 6455 5.2), as a server sends it.

    Framed here rather than by websockets' protocol object: queue rounds send thousands of
    small frames a second and this is a third of the per-message cost. Safe because nothing
    here fragments and compression is off; websockets' own frames (ping, pong, close) are
    whole writes to the same transport, so frames never interleave.
    """
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + data
    return b"\x81\x7f" + n.to_bytes(8, "big") + data


def json_text(message: dict[str, Any]) -> str:
    """The message as compact JSON that encodes to UTF-8 (lone surrogates escaped, not fatal)."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(message, separators=(",", ":"))
    return text


class Conn:
    """One websocket client as the live side sees it.

    Sending is synchronous: the frame goes straight to the socket, or into the transport's
    buffer when the client reads slowly. No task or queue per connection (a surge holds
    thousands of waiting callers); a client whose unsent bytes pass `max_buffer` is closed
    (it will reconnect), so one stuck page never grows the server's memory or blocks anyone.
    """

    __slots__ = (
        "id",
        "ws",
        "role",
        "subject",
        "elder",
        "last_call_id",
        "lang",
        "_max_buffer",
        "closed",
        "pong",
        "unsent",
        "__weakref__",
    )

    def __init__(self, ws: Any, *, max_buffer: int = MAX_BUFFER) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.role = "anonymous"
        self.subject: Any = None  # the agent id, or the caller's call id
        self.elder: Any = None  # a caller's elder record, when they came by a one-tap link
        self.last_call_id: str | None = None  # the call that just ended here (for rating)
        self.lang = "zh_CN"  # a caller page's UI language
        self._max_buffer = max_buffer
        self.closed = False
        self.pong: asyncio.Future[float] | None = None  # the last keepalive ping's answer
        self.unsent = 0  # bytes waiting to be sent at the last keepalive round

    def send(self, message: dict[str, Any]) -> None:
        """Send a message now; never blocks. A client too slow to drain its data is dropped."""
        if not self.is_open():
            return  # closing: the reader ends and cleans up
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: escape them rather than fail the socket
            data = json.dumps(message, separators=(",", ":")).encode()
        self._write(data)

    def send_json(self, text: str) -> None:
        """Send a message the caller encoded itself (valid JSON of plain ASCII/UTF-8 text):
        the queue rounds build thousands a second from a template."""
        if self.is_open():
            self._write(text.encode("utf-8"))

    def is_open(self) -> bool:
        return not self.closed and self.ws.protocol.state is State.OPEN

    def _write(self, data: bytes) -> None:
        transport = self.ws.transport
        if transport is None or transport.get_write_buffer_size() > self._max_buffer:
            log.warning("conn %s: too much unsent, dropping slow client", self.id)
            self.drop()  # a closing handshake would queue behind the backlog
            return
        try:
            transport.write(text_frame(data))
        except Exception as exc:  # the socket went away under us: the reader cleans up
            log.info("conn %s: send failed: %s", self.id, type(exc).__name__)
            self.close(code=1011, reason="send failed")

    def drop(self) -> None:
        """Abort the connection at once, without a closing handshake (a dead or stuck peer)."""
        self.closed = True
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (idempotent)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            task = asyncio.get_running_loop().create_task(self.ws.close(code, reason))
            _background.add(task)
            task.add_done_callback(_background.discard)

    async def flush_and_close(
        self, code: int = 1000, reason: str = "", timeout: float = 2.0
    ) -> None:
        """Close, waiting up to `timeout` for the closing handshake (what was sent goes first)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code, reason), timeout)


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
        """Send to every subscriber of `topic` (on the loop); returns how many.

        Encoded once for all of them (consoles get a line summary twice a second), then sent
        as text, which sockets here and relayed ones (cluster/relay.py's BusConn) both take."""
        conns = self._topics.get(topic, ())
        if conns:
            text = json_text(message)
            for conn in list(conns):
                conn.send_json(text)
        return len(conns)

    def publish_threadsafe(self, topic: str, message: dict[str, Any]) -> None:
        """Publish from any thread (Flask uses this)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.publish, topic, message)

    def call_threadsafe(self, fn: Any, *args: Any) -> None:
        """Run `fn(*args)` on the loop, from any thread (a coroutine it returns is run too)."""

        def run() -> None:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                task = asyncio.get_running_loop().create_task(result)
                _background.add(task)
                task.add_done_callback(_background.discard)

        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(run)

    def ask_threadsafe(self, fn: Any, *args: Any, timeout: float = 5.0) -> Any:
        """Run `fn(*args)` on the loop from another thread and return its result."""
        if self._loop is None or self._loop.is_closed():
            raise RuntimeError("the live side is not running")

        async def call() -> Any:
            result = fn(*args)
            if asyncio.iscoroutine(result):  # cluster mode: asked of the line's holder
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout)

    def subscribers(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))
