"""Sockets on every node, the line on one: fronts hand their sockets to the line's holder.

Cluster mode (docs/cluster.md). Every node terminates websockets (its `Front`); the node
holding the line's lock (hotline/cluster/holder.py) runs the one switchboard, and its `Back`
runs every socket's session there, exactly as a single node does, against a `BusConn` that
stands in for a socket held by another node. Frames go to the holder over the bus
(`node:<holder>`), numbered and kept until the holder says it ran them; both ways go
batched, one publish per node per loop turn, in order. When the holder changes (a crash,
kill -9, a graceful stop) every front opens its sockets' sessions again on the new holder:
callers with the rejoin secret the holder gave them, agents with the identity the old holder
admitted (their ticket was spent there), family pages with their call; then the frames no
holder said it ran.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed

from hotline.cluster.bus import Bus
from hotline.live.hub import Conn, json_text
from hotline.live.messages import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

CLUSTER = "cluster"  # "this node holds the line now"
HEARTBEAT_EVERY, HEARTBEAT_TTL = 1.0, 3.0
RPC_TIMEOUT = 5.0
MAX_UNACKED = 64  # frames a socket keeps until the holder says it ran them
# What a session's URL query may carry to the holder (the rest stays on the front).
QUERY_KEYS = ("role", "link", "rejoin", "lang", "token", "join")


def node_channel(node: str) -> str:
    return f"node:{node}"


# --- on the holder ---------------------------------------------------------------------------


class Outbox:
    """Messages to other nodes, batched per node and loop turn, sent in order by one sender:
    the holder's to sockets on other nodes (`out`), a front's to the holder (`in`)."""

    def __init__(self, bus: Bus, op: str = "out", sender: str = "") -> None:
        self.bus = bus
        self.op, self.sender = op, sender
        self._items: dict[str, list[Any]] = {}
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._flush_scheduled = False
        self._sender: asyncio.Task[None] | None = None

    def push(self, node: str, item: Any) -> None:
        self._items.setdefault(node, []).append(item)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def send(self, node: str, message: dict[str, Any]) -> None:
        """A control message to a node, in order with the batches."""
        self._flush()
        self._enqueue(node, message)

    def _flush(self) -> None:
        self._flush_scheduled = False
        items, self._items = self._items, {}
        for node, batch in items.items():
            self._enqueue(node, {"op": self.op, "items": batch, "from": self.sender})

    def _enqueue(self, node: str, message: dict[str, Any]) -> None:
        self._queue.put_nowait((node, message))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        # One sender: publishes leave in the order they were made (a connection pool would
        # let two overtake each other).
        while not self._queue.empty():
            node, message = self._queue.get_nowait()
            if not await self.bus.publish(node_channel(node), message):
                log.warning("relay: could not reach node %s (bus down)", node)


class BusConn(Conn):
    """On the holder: a socket another node holds. Sends never block; they are batched."""

    __slots__ = ("sid", "node", "_outbox")

    def __init__(self, sid: str, node: str, outbox: Outbox) -> None:
        super().__init__(None)
        self.sid, self.node, self._outbox = sid, node, outbox

    def is_open(self) -> bool:
        return not self.closed

    def send(self, message: dict[str, Any]) -> None:
        if not self.closed:
            self._outbox.push(self.node, ["t", self.sid, json_text(message)])

    def send_json(self, text: str) -> None:
        if not self.closed:
            self._outbox.push(self.node, ["t", self.sid, text])

    def drop(self) -> None:
        self.close(1011, "dropped")

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            self._outbox.push(self.node, ["c", self.sid, code, reason])

    async def flush_and_close(
        self, code: int = 1000, reason: str = "", timeout: float = 2.0
    ) -> None:
        self.close(code, reason)


@dataclass
class _Session:
    """A socket's session on the holder: its context and the work queued for it, in order."""

    ctx: Any  # hotline.live.server.Context
    node: str
    work: deque[tuple[Any, ...]] = field(default_factory=deque)
    running: bool = False
    admitted: bool = False
    ended: bool = False


class Back:
    """The holder's side: runs every node's sockets' sessions on the one switchboard."""

    def __init__(self, live: Any, node: str, outbox: Outbox) -> None:
        self.live = live
        self.node = node
        self.outbox = outbox
        self.sessions: dict[str, _Session] = {}
        self.calls: dict[str, Callable[..., Any]] = {}  # what other nodes may ask (rpc)
        self._tasks: set[asyncio.Task[None]] = set()

    def open(
        self, sid: str, node: str, query: dict[str, str], address: str, conn: Conn | None
    ) -> None:
        """A socket asks to be admitted (`conn`: the socket itself when it is on this node)."""
        from hotline.live.server import Context

        if sid in self.sessions:
            return  # announced twice (a holder change seen by two routes)
        stand_in = conn if conn is not None else BusConn(sid, node, self.outbox)
        stand_in.role = query.get("role", "")
        session = _Session(Context(stand_in, stand_in.role, address=address), node)
        self.sessions[sid] = session
        self._queue(sid, session, ("open", query))

    def frame(self, sid: str, raw: str | bytes, seq: int = 0, replayed: bool = False) -> None:
        session = self.sessions.get(sid)
        if session is not None:
            self._queue(sid, session, ("frame", raw, seq, replayed))

    def close(self, sid: str) -> None:
        session = self.sessions.get(sid)
        if session is not None and not session.ended:
            session.ended = True
            self._queue(sid, session, ("close",))

    def close_node(self, node: str) -> int:
        """A node stopped beating: its sockets are gone (their pages reconnect elsewhere)."""
        gone = [sid for sid, s in self.sessions.items() if s.node == node]
        for sid in gone:
            self.close(sid)
        return len(gone)

    def _queue(self, sid: str, session: _Session, item: tuple[Any, ...]) -> None:
        session.work.append(item)
        if not session.running:
            session.running = True
            task = asyncio.get_running_loop().create_task(self._drain(sid, session))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self, sid: str, session: _Session) -> None:
        """Run a session's work in arrival order (one task only while it has work)."""
        try:
            while session.work:
                item = session.work.popleft()
                try:
                    await self._run(sid, session, item)
                except Exception:
                    log.exception("relay: session %s failed on %s", sid, item[0])
        finally:
            session.running = False

    async def _run(self, sid: str, session: _Session, item: tuple[Any, ...]) -> None:
        ctx = session.ctx
        if item[0] == "open":
            query = {k: [str(v)] for k, v in item[1].items()}
            session.admitted = await self.live.open_session(ctx, query)
            if not session.admitted:
                await self._end(sid, session)
            elif session.node != self.node:
                # The front keeps who was admitted, to open the session again after a failover.
                self.outbox.push(session.node, ["o", sid, ctx.agent_id, self._session_of(ctx)])
        elif item[0] == "frame":
            if session.admitted and not session.ended:
                await self.live.dispatch(ctx, item[1], replayed=item[3])
            if item[2] and session.node != self.node:
                # Ran: its front may forget it (it would send it again to the next holder).
                self.outbox.push(session.node, ["a", sid, item[2]])
        else:
            await self._end(sid, session)

    def _session_of(self, ctx: Any) -> str | None:
        return self.live.conn_sessions.get(ctx.conn)

    async def _end(self, sid: str, session: _Session) -> None:
        if self.sessions.get(sid) is session:
            del self.sessions[sid]
        await self.live.close_session(ctx=session.ctx)
        session.ctx.conn.close()

    async def rpc(self, name: str, args: list[Any]) -> Any:
        return await _invoke(self.calls[name], args)


# --- on every node ---------------------------------------------------------------------------


@dataclass
class _Socket:
    """A socket this node holds, and what it needs to be admitted again elsewhere."""

    conn: Conn
    query: dict[str, str]
    address: str
    # Frames sent to the holder that it has not said it ran: if it dies, the next holder
    # gets them again (after the session's reopening, in order).
    unacked: deque[dict[str, Any]] = field(default_factory=deque)
    sent: int = 0  # frames numbered so far


class Front:
    """Every node's side: its sockets, handed to whichever node holds the line."""

    def __init__(self, node: str, bus: Bus, back: Back) -> None:
        self.node = node
        self.bus = bus
        self.back = back
        self.holder: str | None = None
        self.epoch = 0  # the holder's epoch (holder.py): a newer holder always wins
        self.sockets: dict[str, _Socket] = {}
        self._rpc_ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._missing: dict[str, float] = {}  # node -> since when it has not beaten
        # What other nodes may ask of this node itself, whoever holds the line (`ask_node`).
        self.node_calls: dict[str, Callable[..., Any]] = {}
        self._asked: set[asyncio.Task[None]] = set()
        # Opens, frames and closes for the holder: one publish per loop turn, in order (a
        # failover reopens thousands of sessions at once: one publish each swamped Redis).
        self._up = Outbox(bus, "in", node)
        bus.subscribe(node_channel(node), self._on_message)
        bus.subscribe(CLUSTER, self._on_cluster)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._beat()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()

    # ----------------------------------------------------------------- sockets
    async def serve(self, conn: Conn, query: dict[str, list[str]], address: str) -> None:
        """Hand one socket's session to the holder for as long as the socket is open."""
        sid = f"{self.node}/{conn.id}"
        kept = {k: v[0] for k, v in query.items() if k in QUERY_KEYS and v}
        socket = self.sockets[sid] = _Socket(conn, kept, address)
        try:
            self._to_holder({"op": "open", "sid": sid, "q": kept, "ip": address})
            while True:
                raw = await conn.ws.recv()
                self._send_frame(socket, {"op": "frame", "sid": sid, **_frame(raw)})
        except ConnectionClosed:
            pass
        finally:
            self.sockets.pop(sid, None)
            self._to_holder({"op": "close", "sid": sid})

    def _send_frame(self, socket: _Socket, message: dict[str, Any]) -> None:
        """A frame to the holder, kept until it says it ran it (`a`): a frame that reached a
        holder in its last moment, or nobody at all, is not lost with it."""
        if self.holder != self.node:  # (on the holder, a socket dies with it anyway)
            socket.sent += 1
            message["n"] = socket.sent
            if len(socket.unacked) < MAX_UNACKED:
                socket.unacked.append(message)
            else:
                log.warning(
                    "relay: %s: no holder ran its last %d frames", message["sid"], MAX_UNACKED
                )
        self._to_holder(message)

    def _to_holder(self, message: dict[str, Any]) -> None:
        holder = self.holder
        if holder == self.node:
            self._on_back(message)
        elif holder is not None:
            self._up.push(holder, message)

    def _on_back(self, message: dict[str, Any], sender: str | None = None) -> None:
        """A socket's open, frame or close, run on this node's back (we hold the line)."""
        op, sid = message["op"], message.get("sid", "")
        local = sender is None
        if op == "open":
            conn = self.sockets[sid].conn if local and sid in self.sockets else None
            if local and conn is None:
                return  # the socket closed meanwhile
            self.back.open(sid, sender or self.node, message["q"], message.get("ip", "?"), conn)
        elif op == "frame":
            raw = base64.b64decode(message["bin"]) if "bin" in message else message["raw"]
            self.back.frame(sid, raw, int(message.get("n", 0)), bool(message.get("again")))
        elif op == "close":
            self.back.close(sid)

    async def _on_message(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "out":
            self._deliver(message["items"])
        elif op == "in":
            if self.is_holder():
                sender = str(message.get("from", ""))
                for item in message["items"]:
                    self._on_back(item, sender=sender)
        elif op == "rpc" and ("to" in message or self.is_holder()):
            # "to": addressed to this node itself (`ask_node`); else to the line's holder.
            calls = self.node_calls if "to" in message else self.back.calls
            task = asyncio.get_running_loop().create_task(self._answer(message, calls))
            self._asked.add(task)
            task.add_done_callback(self._asked.discard)
        elif op == "reply":
            future = self._replies.pop(int(message["id"]), None)
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(RuntimeError(message["error"]))
                else:
                    future.set_result(message.get("result"))

    def _deliver(self, items: list[list[Any]]) -> None:
        for item in items:
            socket = self.sockets.get(item[1])
            if socket is None:
                continue
            if item[0] == "t":
                text = item[2]
                if text.startswith('{"type":"queued"'):  # the rejoin secret, for a failover
                    socket.query["rejoin"] = json.loads(text).get("rejoin", "")
                elif text.startswith('{"type":"status"'):  # an agent's status, likewise
                    socket.query["resume_status"] = json.loads(text).get("status", "")
                elif text.startswith('{"type":"connected"') and "resume_agent" in socket.query:
                    socket.query["resume_call"] = json.loads(text).get("call_id", "")
                elif text.startswith('{"type":"hello","role":"family"'):  # its link is spent
                    socket.query["resume_call"] = json.loads(text).get("call_id", "")
                socket.conn.send_json(text)
            elif item[0] == "c":
                socket.conn.close(code=int(item[2]), reason=str(item[3]))
            elif item[0] == "a":
                while socket.unacked and socket.unacked[0]["n"] <= item[2]:
                    socket.unacked.popleft()
            elif item[0] == "o" and item[2] is not None:
                socket.query["resume_agent"] = str(item[2])
                socket.query["resume_session"] = str(item[3] or "")

    # ----------------------------------------------------------------- holder changes
    def is_holder(self) -> bool:
        """Whether this node serves the line (from the end of its restore, not the lock)."""
        return self.holder == self.node

    async def _on_cluster(self, message: dict[str, Any]) -> None:
        if message.get("op") == "holder":
            self.holder_is(str(message["node"]), int(message.get("epoch", 0)))

    def holder_is(self, node: str, epoch: int) -> None:
        """The line is held by `node` now: open every socket's session there again."""
        if node == self.holder or epoch < self.epoch:
            return  # the same holder, or an older one whose last heartbeat is still live
        log.info("relay: the line is held by %s; reopening %d sockets", node, len(self.sockets))
        self.holder, self.epoch = node, epoch
        for sid, socket in list(self.sockets.items()):
            query = {**socket.query, "moved": "1"}
            if "resume_agent" in query:
                query.pop("token", None)
            # Its session there, then the frames no holder said it ran (the old one may have
            # died before running them), in order, ahead of any new frame.
            self._to_holder({"op": "open", "sid": sid, "q": query, "ip": socket.address})
            for message in socket.unacked:
                self._to_holder({**message, "again": 1})
            if self.is_holder():
                socket.unacked.clear()  # run here, by this node's own back

    async def became_holder(self, epoch: int) -> None:
        """This node won the line's lock (its switchboard is already restored)."""
        self.holder_is(self.node, epoch)
        await self.bus.heartbeat(HEARTBEAT_TTL, self._beat_info())
        await self.bus.publish(CLUSTER, {"op": "holder", "node": self.node, "epoch": epoch})

    def _beat_info(self) -> dict[str, Any]:
        return {"holder": True, "epoch": self.epoch} if self.is_holder() else {}

    async def _beat(self) -> None:
        """Beat; learn the holder from the others' beats (a missed announcement); and, on
        the holder, end the sessions of nodes that stopped beating."""
        while True:
            holder = self.is_holder()
            await self.bus.heartbeat(HEARTBEAT_TTL, self._beat_info())
            live = await self.bus.live_nodes() if self.bus.connected else {}
            if not live:
                self._missing.clear()  # nothing known (Redis away): nobody is declared gone
            else:
                if holder:
                    self._end_silent_nodes(set(live))
                else:
                    held = [
                        (info.get("epoch", 0), n) for n, info in live.items() if info.get("holder")
                    ]
                    if held:
                        epoch, node = max(held)
                        self.holder_is(node, int(epoch))
            await asyncio.sleep(HEARTBEAT_EVERY)

    def _end_silent_nodes(self, live: set[str]) -> None:
        """End the sessions of nodes missing from the beats for a whole TTL (one missing
        once may just not have beaten yet, e.g. right after Redis restarted empty)."""
        now = asyncio.get_running_loop().time()
        for node in {s.node for s in self.back.sessions.values()} - {self.node}:
            if node in live:
                self._missing.pop(node, None)
            elif now - self._missing.setdefault(node, now) >= HEARTBEAT_TTL:
                del self._missing[node]
                n = self.back.close_node(node)
                log.warning("relay: node %s stopped beating; its %d sockets are gone", node, n)

    # ----------------------------------------------------------------- asking the holder
    async def ask(self, name: str, *args: Any) -> Any:
        """Run one of the holder's registered calls (HTTP handlers on any node use this)."""
        if self.holder is None:
            raise RuntimeError("no node holds the line right now")
        if self.holder == self.node:
            return await self.back.rpc(name, list(args))
        return await self._request(self.holder, name, args, to_node=False)

    def tell(self, name: str, *args: Any) -> Awaitable[None]:
        """`ask` without waiting for the answer (for calls that return nothing)."""

        async def go() -> None:
            try:
                await self.ask(name, *args)
            except Exception as exc:
                log.warning("relay: %s on the holder failed: %s", name, exc)

        return go()

    async def _request(self, node: str, name: str, args: tuple[Any, ...], *, to_node: bool) -> Any:
        """Send a request to `node` and wait for its reply: to the holder's registered calls,
        or (`to_node`) to that node's own `node_calls`, whichever node holds the line."""
        rid = next(self._rpc_ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies[rid] = future
        message = {"op": "rpc", "id": rid, "fn": name, "args": list(args), "from": self.node}
        try:
            if to_node:
                # 0: nobody listens on its channel (the node is gone); None: sent by PostgreSQL.
                if await self.bus.deliver(node_channel(node), {**message, "to": node}) == 0:
                    raise RuntimeError(f"node {node} is unreachable")
            elif not await self.bus.publish(node_channel(node), message):
                raise RuntimeError("the line's holder is unreachable")
            return await asyncio.wait_for(future, RPC_TIMEOUT)
        finally:
            self._replies.pop(rid, None)

    async def _answer(self, message: dict[str, Any], calls: dict[str, Callable[..., Any]]) -> None:
        """Run a request's call and send its reply (or its error) to the node that asked."""
        reply: dict[str, Any] = {"op": "reply", "id": message["id"]}
        try:
            reply["result"] = await _invoke(calls[str(message["fn"])], list(message["args"]))
        except Exception as exc:
            reply["error"] = repr(exc)
        self.back.outbox.send(str(message["from"]), reply)

    # ----------------------------------------------------------------- asking one node
    async def ask_node(self, node: str, name: str, *args: Any) -> Any:
        """Run one of `node`'s own calls (its `node_calls`), whichever node holds the line."""
        if node == self.node:
            return await _invoke(self.node_calls[name], list(args))
        return await self._request(node, name, args, to_node=True)


async def _invoke(call: Callable[..., Any], args: list[Any]) -> Any:
    result = call(*args)
    if asyncio.iscoroutine(result):
        result = await result
    return result


def _frame(raw: str | bytes) -> dict[str, Any]:
    """A frame as JSON: text as is, binary as base64 (both cut just past the size limit, so
    the holder answers "too large" exactly as a single node does)."""
    if isinstance(raw, bytes):
        return {"bin": base64.b64encode(raw[: MAX_MESSAGE_BYTES + 1]).decode()}
    return {"raw": raw[: MAX_MESSAGE_BYTES + 1]}
