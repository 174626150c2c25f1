"""Taps in a cluster: a browser's tap is answered by the node holding its websocket.

The switchboard runs on the node holding the line (docs/cluster.md), but every node answers
the taps of the browsers whose sockets it holds, with its own `Gateway`: the Opus decoding of the calls
is spread over the nodes, and the holder's death costs a tap only the re-offer its page makes
anyway. The holder's `ClusterGateway` gives the switchboard and captions the plain gateway's
interface:

- a tap offer from a socket on another node is answered there (`Front.ask_node`), under a leg
  id the holder picks first; the holder remembers which node holds each party's leg and tells
  the old node to close it when the party's leg moves (the page reconnected elsewhere);
- that node batches the leg's 16 kHz PCM into 100 ms chunks and publishes them, in order, to
  whichever node holds the line as each chunk leaves (`media:<holder>`): dropped while nobody
  holds it, never kept for a dead holder. The holder feeds them to the sink captions attached
  and keeps the leg's last counters for the agent's `tap_level`;
- the holder hears only the legs it knows: a chunk of any other leg (its call ended while no
  node held the line, or it was answered for an earlier holder) makes it tell that leg's node
  to close it. A new holder knows no legs: the pages re-offer their taps after the failover
  (`connected` with `rejoined`) and each node's gateway replaces the party's old leg.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from hotline.calls.gateway import Gateway, Leg, Sink
from hotline.cluster.relay import Front
from hotline.errors import BadSdp, HotlineError, Unavailable

log = logging.getLogger(__name__)

CHUNK_BYTES = 3200  # 100 ms of 16 kHz s16 mono: ~4.3 kB as base64, under NOTIFY's 8 kB
MAX_QUEUED_PER_LEG = 20  # chunks a node keeps waiting for the bus, per leg (2 s); then drops
TOLD_MAX = 1024  # leg ids recently told to close (a few of their chunks are still in flight)
NO_STATS: dict[str, Any] = {
    "frames": 0,
    "seconds": 0.0,
    "rms": 0.0,
    "peak_rms": 0.0,
    "state": "new",
    "connect_ms": None,
}

Key = tuple[str, str]  # (call id, speaker)


def media_channel(node: str) -> str:
    return f"media:{node}"


@dataclass
class RemoteLeg:
    """On the holder: a party's tap answered by another node."""

    call_id: str
    speaker: str
    node: str
    leg_id: str
    sink: Sink | None = None
    last: dict[str, Any] = field(default_factory=lambda: dict(NO_STATS))

    def stats(self) -> dict[str, Any]:
        return dict(self.last)


@dataclass
class _Served:
    """On any node: a leg its gateway answered for the holder (its audio goes there)."""

    leg_id: str
    leg: Leg


class ClusterGateway:
    """This node's own `Gateway`, and on the holder the line's view of every node's legs."""

    def __init__(self, local: Gateway) -> None:
        self.local = local
        self.tracks: Counter[str] = local.tracks  # this node's
        self._front: Front | None = None
        self._remote: dict[Key, RemoteLeg] = {}  # holder: legs answered by other nodes
        self._served: dict[Key, _Served] = {}  # any node: legs answered here for the holder
        self._outgoing: deque[dict[str, Any]] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._told: set[str] = set()
        self._closing = False
        self.dropped_chunks = 0  # audio that could not keep up with the bus

    def bind(self, front: Front) -> None:
        """Join the cluster: answer taps for the holder; hear every node's legs when holding."""
        self._front = front
        front.node_calls.update(tap_answer=self._serve_answer, tap_close=self._serve_close)
        front.bus.subscribe(media_channel(front.node), self._on_media)

    @property
    def open_legs(self) -> int:
        """Legs on this node's own gateway (each node's /metrics shows the spread)."""
        return self.local.open_legs

    # ----------------------------------------------------------------- the holder's side
    async def answer(
        self, call_id: str, speaker: str, offer_sdp: str, node: str | None = None
    ) -> str:
        """Answer a tap offer on `node`, the node holding the party's socket (None: here);
        replaces the party's previous leg wherever it was. Raises BadSdp or Unavailable."""
        key = (call_id, speaker)
        self._forget_remote(key)
        front = self._front
        if front is None or node is None or node == front.node:
            self._served.pop(key, None)  # a leg answered here for an earlier holder: replaced
            return await self.local.answer(call_id, speaker, offer_sdp)
        await self._close_own(key)
        remote = RemoteLeg(call_id, speaker, node, secrets.token_hex(6))
        self._remote[key] = remote  # before the answer: its first chunk may come at once
        try:
            result = await front.ask_node(
                node, "tap_answer", call_id, speaker, offer_sdp, remote.leg_id
            )
        except Exception as exc:
            self._drop_remote(key, remote)
            log.warning("call %s: %s tap not answered by %s: %s", call_id, speaker, node, exc)
            raise Unavailable(
                "the tap could not be answered now; offer it again", code="tap_unavailable"
            ) from None
        if not isinstance(result, dict) or "sdp" not in result:
            self._drop_remote(key, remote)
            refused = result if isinstance(result, dict) else {}
            detail = str(refused.get("detail") or "the gateway cannot use this offer")
            raise BadSdp(detail, code=str(refused.get("error") or "bad_sdp"))
        return str(result["sdp"])

    def set_sink(self, call_id: str, speaker: str, sink: Sink | None) -> bool:
        """Attach (or detach) the consumer of a leg's 16 kHz PCM; False if no such leg."""
        remote = self._remote.get((call_id, speaker))
        if remote is not None:
            remote.sink = sink
            return True
        if self._own((call_id, speaker)) is None:
            return False
        return self.local.set_sink(call_id, speaker, sink)

    def leg(self, call_id: str, speaker: str) -> Leg | RemoteLeg | None:
        """The party's leg, here or on another node (None: no tap)."""
        key = (call_id, speaker)
        return self._remote.get(key) or self._own(key)

    def stats(self, call_id: str) -> dict[str, Any]:
        """Counters of both legs of a call, wherever they are (absent legs are omitted)."""
        out = {
            speaker: stats
            for speaker, stats in self.local.stats(call_id).items()
            if self._own((call_id, speaker)) is not None
        }
        for (cid, speaker), remote in self._remote.items():
            if cid == call_id:
                out[speaker] = remote.stats()
        return out

    async def close_leg(self, call_id: str, speaker: str) -> None:
        self._forget_remote((call_id, speaker))
        await self._close_own((call_id, speaker))

    async def close_call(self, call_id: str) -> None:
        """Close both legs of a call, on whatever nodes they are (idempotent)."""
        speakers = {s for c, s in self._remote if c == call_id} | set(self.local.stats(call_id))
        for speaker in speakers:
            await self.close_leg(call_id, speaker)

    async def close(self) -> None:
        """This node stops: its own legs close (a new holder gets re-offered taps)."""
        self._closing = True
        for task in [self._sender, *self._tasks]:
            if task is not None:
                task.cancel()
        await self.local.close()

    def _own(self, key: Key) -> Leg | None:
        """The holder's own leg of a party (on this node, not one answered for another holder)."""
        leg = self.local.leg(*key)
        served = self._served.get(key)
        return leg if leg is not None and (served is None or served.leg is not leg) else None

    async def _close_own(self, key: Key) -> None:
        if self._own(key) is not None:
            await self.local.close_leg(*key)

    def _forget_remote(self, key: Key) -> None:
        remote = self._remote.pop(key, None)
        if remote is not None:
            self._tell_close(remote.node, key, remote.leg_id)

    def _drop_remote(self, key: Key, remote: RemoteLeg) -> None:
        if self._remote.get(key) is remote:
            del self._remote[key]

    def _tell_close(self, node: str, key: Key, leg_id: str) -> None:
        """Ask `node` to close a leg, without waiting (a dead node has nothing to close)."""
        if self._front is None or self._closing:
            return

        async def tell(front: Front) -> None:
            try:
                await front.ask_node(node, "tap_close", key[0], key[1], leg_id)
            except Exception as exc:
                log.info("call %s: closing the %s tap on %s: %s", key[0], key[1], node, exc)

        task = asyncio.get_running_loop().create_task(tell(self._front))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_media(self, message: dict[str, Any]) -> None:
        """A chunk of a leg's audio (or the end of a leg) from the node that answered it."""
        front = self._front
        if front is None or not front.is_holder():
            return
        key = (str(message.get("call")), str(message.get("speaker")))
        node, leg_id = str(message.get("from")), str(message.get("leg"))
        remote = self._remote.get(key)
        if remote is None or remote.node != node or remote.leg_id != leg_id:
            # Not a leg of ours: its call ended while nobody held the line, or it was answered
            # for an earlier holder (its page re-offers, or has gone). It must not run on.
            if message.get("op") == "pcm" and leg_id not in self._told:
                if len(self._told) >= TOLD_MAX:
                    self._told.clear()
                self._told.add(leg_id)
                self._tell_close(node, key, leg_id)
            return
        if message.get("op") == "gone":  # its peer connection closed or failed there
            del self._remote[key]
            return
        remote.last = message.get("stats") or remote.last
        if remote.sink is not None:
            try:
                remote.sink(base64.b64decode(message.get("b64", "")))
            except Exception:
                log.exception("call %s: %s sink failed; detached", key[0], key[1])
                remote.sink = None

    # ----------------------------------------------------------------- every node's side
    async def _serve_answer(
        self, call_id: str, speaker: str, offer_sdp: str, leg_id: str
    ) -> dict[str, Any]:
        """(Asked by the holder) answer a tap on this node's gateway; its audio goes to the
        holder. A refused offer comes back as a result: the holder tells the page why."""
        key = (call_id, speaker)
        self._served.pop(key, None)
        try:
            sdp = await self.local.answer(call_id, speaker, offer_sdp)
        except HotlineError as exc:
            return {"error": exc.code, "detail": exc.detail}
        leg = self.local.leg(call_id, speaker)
        if leg is None:  # failed at once (and closed)
            return {"error": "bad_sdp", "detail": "the gateway cannot use this offer"}
        self._served[key] = _Served(leg_id, leg)
        self.local.set_sink(call_id, speaker, self._batcher(key, leg_id, leg))

        @leg.pc.on("connectionstatechange")
        async def on_state() -> None:
            if leg.pc.connectionState in ("failed", "closed"):
                await self._drop_served(key, leg)

        return {"sdp": sdp}

    async def _serve_close(self, call_id: str, speaker: str, leg_id: str) -> None:
        """(Asked by the holder) close a leg answered here, if it is still that one."""
        served = self._served.get((call_id, speaker))
        if served is not None and served.leg_id == leg_id:
            await self._drop_served((call_id, speaker), served.leg)

    async def _drop_served(self, key: Key, leg: Leg) -> None:
        served = self._served.get(key)
        if served is None or served.leg is not leg:
            return
        del self._served[key]
        self._queue({"op": "gone", "call": key[0], "speaker": key[1], "leg": served.leg_id})
        if self.local.leg(*key) is leg:
            await self.local.close_leg(*key)

    def _batcher(self, key: Key, leg_id: str, leg: Leg) -> Sink:
        """The leg's sink here: its PCM in 100 ms chunks, queued for the holder."""
        buffer = bytearray()

        def sink(pcm: bytes) -> None:
            buffer.extend(pcm)
            while len(buffer) >= CHUNK_BYTES:  # whole chunks only: each fits a NOTIFY
                chunk = base64.b64encode(buffer[:CHUNK_BYTES]).decode()
                del buffer[:CHUNK_BYTES]
                message = {"op": "pcm", "call": key[0], "speaker": key[1], "leg": leg_id}
                self._queue({**message, "b64": chunk, "stats": leg.stats()})

        return sink

    def _queue(self, message: dict[str, Any]) -> None:
        if self._closing:
            return
        if len(self._outgoing) >= MAX_QUEUED_PER_LEG * max(1, len(self._served)):
            self.dropped_chunks += 1
            if self.dropped_chunks % 100 == 1:
                log.warning("taps: the bus is behind; %d audio chunks dropped", self.dropped_chunks)
            return
        self._outgoing.append(message)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        """One sender, so each leg's chunks arrive in order; each goes to whichever node
        holds the line as it leaves (none: dropped; a dead one: lost, never kept)."""
        front = self._front
        assert front is not None  # only bound gateways serve legs
        while self._outgoing:
            message = {**self._outgoing.popleft(), "from": front.node}
            holder = front.holder
            try:
                if holder == front.node:
                    self._on_media(message)
                elif holder is not None:
                    await front.bus.deliver(media_channel(holder), message)
            except Exception:
                log.exception("taps: sending audio to %s failed", holder)
