"""One leg's captions decoded by a remote speech worker (vosk-server protocol), with failover.

A `RemoteStream` is what `WorkerFarm.open()` (hotline/asr/farm.py) returns. Failover: a
worker that closes, refuses, hangs (audio waiting, nothing answered for `HANG_SECONDS` and
no pong to a ping within `PING_SECONDS`; a busy worker still pongs and is given up to
`STALL_SECONDS`), or answers something that is not vosk-server JSON is marked down; the
stream says `captions_status` "reconnecting", connects to another worker of the dialect,
replays the audio it kept since the last final (at most `REPLAY_SECONDS`), and goes on.
Finals that end before the last one delivered are dropped, so none is duplicated. With no
worker reachable the stream reports captions off (`no_asr_worker`) and keeps trying.
Silence is not sent (the energy gate of in-process captions, hotline/asr/vad.py): a worker
decodes only speech and its hangover; when the gate closes with words pending,
`{"reset" : 1}` asks for the final. Word times are mapped back to stream time across gaps.
Nothing here raises into the event loop: each stream's task is its own error boundary.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hotline.asr.events import (
    CaptionEvent,
    Timeline,
    clean_text,
    final_event,
    partial_event,
)
from hotline.asr.leg import CHUNK_SECONDS, CaptionLeg
from hotline.asr.service import EventSink
from hotline.asr.vad import EnergyGate, rms
from hotline.asr.vosk_protocol import EOF, RESET, Answer, config_frame, parse_answer

if TYPE_CHECKING:
    from hotline.asr.farm import WorkerFarm

log = logging.getLogger(__name__)

REPLAY_SECONDS = 2.0
MAX_BACKLOG_SECONDS = 2.0
MAX_INFLIGHT = 8  # chunks sent, not answered: under the websockets max_queue (16), or a
# busy worker stops reading the socket and cannot answer pings
HANG_SECONDS = 2.0  # no answer this long while audio waits: ping the worker
PING_SECONDS = 2.0  # no pong within this: hung (a busy worker's loop still pongs)
STALL_SECONDS = 15.0  # alive but answering nothing this long: useless, fail over anyway
CONNECT_SECONDS = 1.5
RETRY_SECONDS = 1.0
CLOSE_SECONDS = 5.0
HEARTBEAT_SECONDS = 10.0  # while the gate holds silence back: one chunk, so no idle close


class _WorkerFailed(Exception):
    """The worker this stream used failed (closed, refused, hung or spoke garbage)."""


@dataclass
class WorkerState:
    """What this node knows of one worker."""

    url: str
    open_streams: int = 0
    down_until: float = 0.0
    failures: int = 0
    last_error: str = ""


async def close_streams(streams: list[RemoteStream]) -> None:
    """Close streams together; cancel those not done within CLOSE_SECONDS."""
    for stream in streams:
        stream.close()
    tasks = {s._task for s in streams if s._task is not None}
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)


@dataclass
class _Connection:
    """One connection of a stream to a worker, and what it has been sent."""

    ws: Any
    worker: WorkerState
    timeline: Timeline
    fed_samples: int = 0
    inflight: deque[float] = field(default_factory=deque)  # send times of unanswered chunks
    last_answer: float = 0.0
    answered: int = 0


class RemoteStream(CaptionLeg):
    """One leg's captions decoded by a worker; fails over to another on any worker fault."""

    def __init__(
        self,
        farm: WorkerFarm,
        dialect: str,
        sample_rate: int,
        on_event: EventSink,
        loop: asyncio.AbstractEventLoop,
        speaker: str,
        call_id: str,
        gate: bool = True,
    ) -> None:
        super().__init__(dialect, sample_rate, on_event, loop, speaker, call_id)
        self._farm = farm
        self._queue: deque[tuple[int, bytes]] = deque()  # (stream offset, pcm) not sent yet
        self._history: deque[tuple[int, bytes]] = deque()  # sent, kept for a replay
        self._gate: EnergyGate[tuple[int, bytes]] | None = EnergyGate() if gate else None
        self._last_sent_at = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._switch_to = ""
        self._task: asyncio.Task[None] | None = None
        self._conn: _Connection | None = None
        self._last_final_end = -1.0  # stream seconds
        self._last_partial = ""
        self._lost_at = 0.0  # when the last worker stopped answering (for the gap)
        self._stats: dict[str, Any] = {
            "chunks_in": 0, "chunks_sent": 0, "dropped": 0, "partials": 0, "finals": 0,
            "duplicates_dropped": 0, "reconnects": 0, "errors": 0, "failover_gaps_ms": [],
            "replayed_chunks": 0, "chunks_gated": 0,
        }  # fmt: skip

    # --- loop API ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the stream's task (its owner and error boundary)."""
        self._task = self._loop.create_task(self._run(), name=f"captions-{self.call_id}")

    def feed(self, pcm: bytes) -> None:
        """Queue mono s16le PCM; never blocks; drops the oldest audio beyond 2 s of backlog."""
        if self._closing or not pcm:
            return
        for item in self._chunker.push(pcm):
            self._gated(item)
            self._stats["chunks_in"] += 1
        while len(self._queue) > MAX_BACKLOG_SECONDS / CHUNK_SECONDS:
            self._queue.popleft()
            self._stats["dropped"] += 1
        self._wake.set()

    def _gated(self, item: tuple[int, bytes]) -> None:
        """Queue what the gate lets through; a reset marker (-1, b"") when it closes."""
        if self._gate is None:
            self._queue.append(item)
            return
        to_feed, ended = self._gate.push(item, rms(item[1]))
        if not to_feed and item[0] - self._last_sent_at > HEARTBEAT_SECONDS * self.sample_rate:
            to_feed = [item]  # a worker closes clients that send nothing for long
        if to_feed:
            self._last_sent_at = to_feed[-1][0]
        else:
            self._stats["chunks_gated"] += 1
        self._queue.extend(to_feed)
        if ended:
            self._queue.append((-1, b""))

    def switch(self, dialect: str) -> None:
        """Go on with a worker of another dialect (the open utterance is flushed first)."""
        if self._closing or dialect == self.dialect:
            return
        self._switch_to = dialect
        self._wake.set()

    def close(self) -> None:
        """Send `{"eof" : 1}` after the queued audio, deliver the last final, disconnect."""
        if self._closing:
            return
        self._closing = True
        rest = self._chunker.rest()
        if rest is not None:
            self._queue.append(rest)
        self._wake.set()

    async def aclose(self) -> None:
        """Close, then wait until the last final was delivered."""
        self.close()
        if self._task is not None:
            await asyncio.wait({self._task})

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: chunks in/sent/dropped, partials, finals, reconnects, failover gaps."""
        out = dict(self._stats)
        out["failover_gaps_ms"] = list(out["failover_gaps_ms"])
        out["backlog_seconds"] = round(len(self._queue) * CHUNK_SECONDS, 2)
        out["worker"] = self._conn.worker.url if self._conn else ""
        return out

    # --- the task ----------------------------------------------------------------------

    async def _run(self) -> None:
        tried: set[str] = set()
        try:
            while True:
                if self._switch_to:
                    self.dialect, self._switch_to = self._switch_to, ""
                    tried.clear()
                worker = self._farm.pick(self.dialect, tried)
                if worker is None:
                    if not await self._wait_for_workers(tried):
                        return
                    continue
                tried.add(worker.url)
                worker.open_streams += 1  # counted from the pick: streams opened together spread
                try:
                    await self._serve(worker)
                except _WorkerFailed as exc:
                    self._farm.mark_down(worker, str(exc))
                    self._stats["errors"] += 1
                    if self._lost_at == 0.0:  # the gap runs from detection to the next answer
                        self._lost_at = time.monotonic()
                    self._set_state("reconnecting", "worker_lost")
                    self._stats["reconnects"] += 1
                    self._rewind()
                    continue
                finally:
                    self._conn = None
                    worker.open_streams -= 1
                if self._closing and not self._queue:
                    return
                tried.clear()  # a switch: start afresh with the new dialect's workers
        except Exception:  # the boundary: captions fail, the call goes on
            log.exception("call %s: remote captions failed", self.call_id)
            self._set_state("off", "recognizer_failed")
        finally:
            self._farm._forget(self)

    async def _wait_for_workers(self, tried: set[str]) -> bool:
        """No worker left to try: captions off, retry after a pause; False when closing."""
        self._set_state("off", "no_asr_worker")
        self._lost_at = 0.0
        if self._closing:
            return False
        await asyncio.sleep(RETRY_SECONDS)  # a retry pause, not synchronisation
        while len(self._queue) > REPLAY_SECONDS / CHUNK_SECONDS:
            self._queue.popleft()  # audio nobody decoded; keep a replay's worth
            self._stats["dropped"] += 1
        tried.clear()
        return not self._closing

    def _rewind(self) -> None:
        """Put the audio to replay (since the last final, at most 2 s) back in the queue."""
        keep_from = self._chunker.samples - int(REPLAY_SECONDS * self.sample_rate)
        final_at = int(self._last_final_end * self.sample_rate)
        start = max(keep_from, final_at)
        replay = [(at, pcm) for at, pcm in self._history if at + len(pcm) // 2 > start]
        self._history.clear()
        self._queue.extendleft(reversed(replay))
        self._stats["replayed_chunks"] += len(replay)

    async def _serve(self, worker: WorkerState) -> None:
        """Stream to one worker until closed, switched, or it fails (_WorkerFailed)."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        try:
            ws = await asyncio.wait_for(
                connect(worker.url, open_timeout=CONNECT_SECONDS, close_timeout=1.0, compression=None, max_size=1 << 20),
                CONNECT_SECONDS * 2,
            )  # fmt: skip
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise _WorkerFailed(f"connect: {type(exc).__name__}: {exc}") from None
        conn = _Connection(ws, worker, Timeline(self.sample_rate))
        self._conn = conn
        receiver = asyncio.create_task(self._receive(conn))
        try:
            await ws.send(config_frame(self.sample_rate))
            if not self._lost_at:
                self._set_state("on")  # connected (after a failure: on at the first answer)
            await self._send_loop(conn, receiver)
        except ConnectionClosed as exc:
            if not receiver.done():
                raise _WorkerFailed(f"closed: {exc}") from None
        except OSError as exc:
            raise _WorkerFailed(f"send: {exc}") from None
        finally:
            if not receiver.done():
                receiver.cancel()
            await asyncio.wait({receiver})
            failure = receiver.exception() if not receiver.cancelled() else None
            if failure is None:
                await ws.close()
            else:  # a hung worker would hold a closing handshake for seconds
                ws.transport.abort()
        if failure is not None:
            raise failure

    async def _send_loop(self, conn: _Connection, receiver: asyncio.Task[None]) -> None:
        """Send queued chunks (pipelined up to MAX_INFLIGHT), then eof or a switch."""
        while not receiver.done():
            if self._switch_to or (self._closing and not self._queue):
                await conn.ws.send(EOF)
                conn.inflight.append(time.monotonic())
                await asyncio.wait({receiver})  # bounded by the receiver's hang detection
                return
            if self._queue and self._queue[0][0] < 0:  # the gate closed
                self._queue.popleft()
                if self._last_partial:  # words pending: ask for the final now
                    await conn.ws.send(RESET)
                    conn.inflight.append(time.monotonic())
                continue
            if self._queue and len(conn.inflight) < MAX_INFLIGHT:
                at, pcm = self._queue.popleft()
                conn.timeline.fed(conn.fed_samples, at, len(pcm) // 2)
                conn.fed_samples += len(pcm) // 2
                conn.inflight.append(time.monotonic())
                self._history.append((at, pcm))
                while len(self._history) > REPLAY_SECONDS / CHUNK_SECONDS:
                    self._history.popleft()
                await conn.ws.send(pcm)
                self._stats["chunks_sent"] += 1
                continue
            self._wake.clear()
            waker = asyncio.create_task(self._wake.wait())
            await asyncio.wait({waker, receiver}, timeout=0.25, return_when="FIRST_COMPLETED")
            waker.cancel()

    async def _receive(self, conn: _Connection) -> None:
        """Read answers; a hang, garbage or an unexpected close raises _WorkerFailed."""
        from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

        while True:
            try:
                message = await asyncio.wait_for(conn.ws.recv(), 0.25)
            except TimeoutError:
                waiting_since = max(conn.inflight[0], conn.last_answer) if conn.inflight else 0
                waited = time.monotonic() - waiting_since if waiting_since else 0.0
                if waited > STALL_SECONDS:
                    raise _WorkerFailed(f"no answer for {STALL_SECONDS:g} s") from None
                if waited > HANG_SECONDS and not await self._alive(conn):
                    raise _WorkerFailed(f"no answer for {HANG_SECONDS:g} s, no pong") from None
                continue
            except ConnectionClosedOK as exc:
                if conn.inflight:  # closed with audio unanswered: not a clean end
                    raise _WorkerFailed(f"closed: {exc}") from None
                return
            except ConnectionClosed as exc:
                raise _WorkerFailed(f"closed: {exc}") from None
            try:
                answer = parse_answer(message)
            except ValueError as exc:
                raise _WorkerFailed(f"not vosk-server JSON: {exc}") from None
            if conn.inflight:
                conn.inflight.popleft()
            conn.last_answer = time.monotonic()
            conn.answered += 1
            if conn.answered == 1:
                self._first_answer()
            self._answer(conn, answer)
            if not conn.inflight and (self._switch_to or (self._closing and not self._queue)):
                return  # the eof's final came: this connection is done

    async def _alive(self, conn: _Connection) -> bool:
        """Hung or just busy? A worker whose loop answers a ping is busy decoding: wait on."""
        try:
            pong = await conn.ws.ping()
            await asyncio.wait_for(pong, PING_SECONDS)
            return True
        except Exception:  # a timeout or a closed connection: hung or gone
            return False

    def _first_answer(self) -> None:
        """The new worker answered: the failover gap ends here, and captions are on."""
        if self._lost_at:
            gap = (time.monotonic() - self._lost_at) * 1000
            self._stats["failover_gaps_ms"].append(round(gap))
            log.info("call %s: captions back after %.0f ms", self.call_id, gap)
            self._lost_at = 0.0
        self._set_state("on")

    def _answer(self, conn: _Connection, answer: Answer) -> None:
        if answer.kind == "partial":
            text = clean_text(answer.text)
            if text and text != self._last_partial:
                self._last_partial = text
                self._stats["partials"] += 1
                self._emit(partial_event(self.speaker, text))
            return
        self._last_partial = ""
        info = self._farm.registry.dialects.get(self.dialect)
        event = final_event(
            self.speaker,
            answer.obj,
            to_stream_time=lambda s: max(0.0, conn.timeline.to_stream(s)),
            lexicon=info.gloss if info else {},
            alerts=info.alerts if info else {},
            rules=info.alert_rules if info else (),
        )
        if event is None:
            return
        end = event.get("utterance_end")
        if isinstance(end, int | float):
            if end <= self._last_final_end + 0.05:
                self._stats["duplicates_dropped"] += 1  # replayed audio already captioned
                return
            self._last_final_end = float(end)
        self._stats["finals"] += 1
        self._emit(event)

    def _emit(self, event: CaptionEvent) -> None:
        try:
            self._on_event(event)
        except Exception:  # a listener's bug must not end the stream
            log.exception("call %s: caption listener failed", self.call_id)
