"""The streaming caption engine: PCM in on the event loop, caption events out on the loop.

One `CaptionEngine` per server process owns the loaded models (one `vosk.Model` per model
name, shared), a warm pool of recognizers and the "asr" thread pool. Each audio leg gets a
`CaptionStream` from `engine.open(...)`:

    stream = engine.open("ko", on_event, loop, speaker="caller", call_id="c42")
    stream.feed(pcm)           # loop thread, any length of mono s16le at stream.sample_rate
    stream.switch("cmn-sw")    # new recognizer, same stream
    await stream.aclose()      # or stream.close(); flushes the open utterance

`feed()` never blocks: it cuts 0.1 s chunks into the stream's queue and schedules one job
at a time per stream in the pool (so chunks are decoded in order, and one stream cannot hog
a worker: a job decodes one chunk, then requeues itself behind the others: with 6 streams
speaking, 5 chunks per job put partial p95 at 980 ms, one chunk at 788 ms). An energy
gate stops feeding during silence; when the gate closes without an endpoint the utterance
is flushed with FinalResult(). A backlog over ~2 s drops the oldest audio (`stats`).

Events, delivered with `loop.call_soon_threadsafe(on_event, event)`; all text masked:
    {"type": "caption", "speaker", "kind": "partial", "text"}
    {"type": "caption", "speaker", "kind": "final", "text", "gloss", "alerts": [{"phrase",
     "category"}], "words": [{"w", "start", "end", "conf", "low"}], "utterance_start",
     "utterance_end"}   (times in seconds of stream audio since open)
    {"type": "captions_status", "state": "on" | "off", "dialect", "reason"}
Reasons when off: unknown_dialect, no_model_for_dialect, model_not_installed, model_broken,
recognizer_failed, engine_closed. A failure never raises into the caller of feed/switch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hotline.asr.detect import Detection, detect_dialect
from hotline.asr.events import (
    CaptionEvent,
    Timeline,
    final_event,
    is_junk,
    partial_event,
)
from hotline.asr.leg import CHUNK_SECONDS, CaptionLeg
from hotline.asr.models import model_dir, vosk_model_problem
from hotline.asr.pool import Recognizer, RecognizerPool
from hotline.asr.registry import Dialect, ModelSpec, Registry
from hotline.asr.runtime import ModelBroken, ModelCache, RuntimeSettings
from hotline.asr.service import EventSink
from hotline.asr.vad import EnergyGate, GateSettings, rms
from hotline.errors import HotlineError

if TYPE_CHECKING:
    from hotline.config import Config

log = logging.getLogger(__name__)

MAX_BACKLOG_SECONDS = 2.0
BATCH_CHUNKS = 1  # chunks a job decodes before yielding the worker (fairness beats batching)
PARTIAL_MIN_INTERVAL = 0.1
RETRY_SECONDS = 2.0
MAX_FAILURES = 5


class CaptionsUnavailable(HotlineError):
    """Captions cannot run for this dialect; `reason` says why (for captions_status)."""

    status = 503
    code = "captions_unavailable"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class CaptionEngine:
    """Loaded models, warm recognizers and the "asr" pool; one per server process."""

    def __init__(
        self,
        cfg: Config,
        registry: Registry,
        *,
        workers: int = 2,
        deterministic: bool | None = None,
        runtime: RuntimeSettings | None = None,
        gate: GateSettings | None = None,
        vad: bool = True,
    ) -> None:
        self.registry = registry
        self.models_dir = cfg.models_dir or cfg.data_dir / "models"
        base = runtime or RuntimeSettings()

        def settings_for(spec: ModelSpec) -> RuntimeSettings:
            det = spec.deterministic if deterministic is None else deterministic
            beam = spec.beam or base.beam
            return RuntimeSettings(**{**base.__dict__, "deterministic": det, "beam": beam})

        self._cache = ModelCache(self.models_dir, settings_for)
        # Warm-ups run on the pool's own niced thread: a call starting while the pool warms
        # (or tops up) is decoded in the asr threads first instead of queueing behind seconds
        # of warm-up speech.
        self._pool = RecognizerPool(self._cache)
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="asr")
        self._gate = gate or GateSettings()
        self._vad = vad
        self._streams: set[CaptionStream] = set()
        self._lock = threading.Lock()
        self._closed = False

    def available(self, dialect: str) -> tuple[bool, str]:
        """(True, "") when captions can run for the dialect, else (False, reason)."""
        if dialect not in self.registry.dialects:
            return False, "unknown_dialect"
        spec = self.registry.model_of(dialect)
        if spec is None:
            return False, "no_model_for_dialect"
        if self._cache.is_broken(spec.name):
            return False, "model_broken"
        if self._cache.is_loaded(spec.name):
            return True, ""
        path = model_dir(spec, self.models_dir)
        if path is None:
            return False, "model_not_installed"
        if vosk_model_problem(path):
            return False, "model_broken"
        return True, ""

    def open(
        self,
        dialect: str,
        on_event: EventSink,
        loop: asyncio.AbstractEventLoop,
        *,
        speaker: str = "caller",
        call_id: str = "",
    ) -> CaptionStream:
        """A new stream for one audio leg; raises CaptionsUnavailable(reason) up front."""
        if self._closed:
            raise CaptionsUnavailable("engine_closed")
        ok, reason = self.available(dialect)
        if not ok:
            raise CaptionsUnavailable(reason, f"captions unavailable for {dialect}: {reason}")
        spec = self.registry.model_of(dialect)
        assert spec is not None  # available() checked it
        stream = CaptionStream(self, dialect, spec.sample_rate, on_event, loop, speaker, call_id)
        with self._lock:
            self._streams.add(stream)
        stream._start()
        return stream

    def warm(self, dialect: str, n: int, speech: bytes = b"") -> concurrent.futures.Future[int]:
        """Pre-create `n` warmed recognizers in the pool (in the background); never blocks.

        `speech`: mono s16le at the model's rate in the dialect's language (asr/warmup.py);
        each new recognizer decodes it once, so the first calls do not pay for a cold graph.
        """
        spec = self.registry.model_of(dialect)
        if spec is None or self._closed:
            return _done(0)
        return self._pool.warm(spec, n, speech)

    def keep_warm(
        self, dialect: str, n: int, speech: bytes = b""
    ) -> concurrent.futures.Future[int]:
        """warm(), then keep `n` warm recognizers idle: each stream that takes one starts a
        warm replacement in the background (hotline/asr/pool.py)."""
        spec = self.registry.model_of(dialect)
        if spec is None or self._closed:
            return _done(0)
        return self._pool.keep_warm(spec, n, speech)

    def discard_idle(self) -> None:
        """Drop every idle recognizer (the next calls get new ones, or warm() makes some)."""
        self._pool.clear()

    def idle_recognizers(self, dialect: str) -> int:
        """How many warm recognizers wait in the pool for the dialect's model."""
        spec = self.registry.model_of(dialect)
        return self._pool.idle_count(spec.name) if spec else 0

    def score_dialect(self, dialect: str, pcm: bytes, sample_rate: int = 16000) -> Any:
        """(mean word confidence, word count) of the dialect's model on `pcm`, or None; blocks."""
        if not self.available(dialect)[0]:
            return None
        spec = self.registry.model_of(dialect)
        assert spec is not None
        r = self._pool.acquire(spec, sample_rate)
        confs: list[float] = []
        try:
            step = int(sample_rate * CHUNK_SECONDS) * 2
            results = []
            for i in range(0, len(pcm), step):
                if r.accept(pcm[i : i + step]):
                    results.append(json.loads(r.rec.Result()))
            results.append(json.loads(r.rec.FinalResult()))
            for res in results:
                confs += [float(w.get("conf", 0.0)) for w in res.get("result", [])
                          if not is_junk(str(w.get("word", "")))]  # fmt: skip
        finally:
            self._pool.release(r)
        return (sum(confs) / len(confs) if confs else 0.0), len(confs)

    def detect(
        self, pcm: bytes, candidates: Sequence[str], sample_rate: int = 16000
    ) -> concurrent.futures.Future[Detection]:
        """Detect the dialect of the first seconds of `pcm` in the pool; see detect_dialect."""
        memo: dict[str, Any] = {}

        def scorer(dialect: str, audio: bytes) -> Any:
            spec = self.registry.model_of(dialect)
            if spec is None:
                return None
            if spec.name not in memo:  # dialects sharing a model score the same
                memo[spec.name] = self.score_dialect(dialect, audio, sample_rate)
            return memo[spec.name]

        return self._executor.submit(
            detect_dialect, pcm, candidates, scorer, sample_rate=sample_rate
        )

    def close(self) -> None:
        """Close every stream, wait for in-flight decodes and free the models; idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            streams = list(self._streams)
        for s in streams:
            s.close()
        self._pool.close()
        self._executor.shutdown(wait=True, cancel_futures=False)
        self._pool.clear()
        self._cache.clear()

    # Internal, used by streams from worker threads.

    def _submit(self, fn: Callable[[], None]) -> bool:
        try:
            self._executor.submit(fn)
            return True
        except RuntimeError:  # pool shut down
            return False

    def _forget(self, stream: CaptionStream) -> None:
        with self._lock:
            self._streams.discard(stream)


class CaptionStream(CaptionLeg):
    """One audio leg's captions: feed PCM on the loop, events come back on the loop."""

    def __init__(
        self,
        engine: CaptionEngine,
        dialect: str,
        sample_rate: int,
        on_event: EventSink,
        loop: asyncio.AbstractEventLoop,
        speaker: str,
        call_id: str,
    ) -> None:
        super().__init__(dialect, sample_rate, on_event, loop, speaker, call_id)
        self._engine = engine
        self._max_backlog = int(MAX_BACKLOG_SECONDS / CHUNK_SECONDS)
        self._lock = threading.Lock()
        self._queue: deque[tuple[Any, ...]] = deque()
        self._audio_queued = 0
        self._scheduled = False
        self._closing = False
        self._done = threading.Event()
        self._done_waiters: list[asyncio.Future[None]] = []
        # Worker-thread state (only touched inside the one job in flight).
        self._rec: Recognizer | None = None
        self._dialect_info: Dialect | None = None
        self._gate: EnergyGate[tuple[int, bytes]] = EnergyGate(engine._gate)
        self._timeline = Timeline(sample_rate)
        self._open_utterance = False
        self._last_partial = ""
        self._last_partial_at = 0.0
        self._partial_due = False
        self._failures = 0
        self._retry_at = 0.0
        self._stats = {
            "chunks_in": 0, "chunks_fed": 0, "chunks_gated": 0, "dropped": 0, "partials": 0,
            "finals": 0, "errors": 0, "decode_seconds": 0.0, "cpu_seconds": 0.0,
        }  # fmt: skip

    # --- loop-thread API -------------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        """Queue mono s16le PCM of any length; never blocks, drops oldest audio when behind."""
        if self._closing or not pcm:
            return
        with self._lock:
            for offset, chunk in self._chunker.push(pcm):
                self._queue.append(("audio", offset, chunk))
                self._audio_queued += 1
                self._stats["chunks_in"] += 1
            while self._audio_queued > self._max_backlog:
                self._drop_oldest_audio()
            self._schedule()

    def switch(self, dialect: str) -> None:
        """Continue this stream with another dialect's recognizer (status event tells how)."""
        if self._closing:
            return
        with self._lock:
            self._queue.append(("attach", dialect))
            self._schedule()

    def close(self) -> None:
        """Flush the open utterance and return the recognizer to the pool; idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._queue.append(("close",))
            if not self._schedule():
                self._queue.clear()
                self._finish()

    async def aclose(self) -> None:
        """Close, then wait until the last final has been delivered."""
        fut = self._loop.create_future()
        with self._lock:
            if self._done.is_set():
                return
            self._done_waiters.append(fut)
        self.close()
        await fut

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: chunks in/fed/gated/dropped, partials, finals, errors, backlog, rtf, CPU."""
        with self._lock:
            out: dict[str, Any] = dict(self._stats)
            out["backlog_seconds"] = round(self._audio_queued * CHUNK_SECONDS, 2)
        fed = out["chunks_fed"] * CHUNK_SECONDS
        out["rtf"] = round(out["decode_seconds"] / fed, 3) if fed else 0.0
        out["decode_seconds"] = round(out["decode_seconds"], 3)
        out["cpu_seconds"] = round(out["cpu_seconds"], 3)
        return out

    # --- internals ------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            self._queue.append(("attach", self.dialect))
            self._schedule()

    def _drop_oldest_audio(self) -> None:
        for i, item in enumerate(self._queue):
            if item[0] == "audio":
                del self._queue[i]
                self._audio_queued -= 1
                self._stats["dropped"] += 1
                return

    def _schedule(self) -> bool:
        """Submit a job unless one is queued or running (call with the lock held)."""
        if self._scheduled:
            return True
        if not self._engine._submit(self._run):
            return False
        self._scheduled = True
        return True

    def _run(self) -> None:
        """One job in the pool: decode a few queued items in order, then requeue or stop."""
        try:
            for _ in range(BATCH_CHUNKS):
                with self._lock:
                    if not self._queue:
                        break
                    item = self._queue.popleft()
                    if item[0] == "audio":
                        self._audio_queued -= 1
                if item[0] == "audio":
                    self._audio(item[1], item[2])
                    # After every chunk (~0.3 ms): a batch must not hold a partial back.
                    self._maybe_partial()
                elif item[0] == "attach":
                    self._attach(item[1])
                else:
                    self._close_now()
                    return
        except Exception:
            log.exception("call %s: caption job failed", self.call_id)
            self._fail()
        with self._lock:
            self._scheduled = False
            if self._queue and not self._schedule():
                self._queue.clear()
                self._finish()

    def _emit(self, event: CaptionEvent) -> None:
        try:
            self._loop.call_soon_threadsafe(self._on_event, event)
        except RuntimeError:  # loop closed: nobody is listening any more
            pass

    def _attach(self, dialect: str) -> None:
        self._flush()
        self._release()
        self.dialect = dialect
        self._failures, self._retry_at = 0, 0.0
        self._acquire()

    def _acquire(self) -> bool:
        engine = self._engine
        ok, reason = engine.available(self.dialect)
        if not ok:
            self._set_state("off", reason)
            return False
        spec = engine.registry.model_of(self.dialect)
        assert spec is not None
        try:
            self._rec = engine._pool.acquire(spec, self.sample_rate)
            engine._pool.top_up(spec)
        except ModelBroken:
            self._set_state("off", "model_broken")
            return False
        except FileNotFoundError:
            self._set_state("off", "model_not_installed")
            return False
        self._dialect_info = engine.registry.dialect(self.dialect)
        self._gate.reset()
        self._open_utterance = False
        self._set_state("on")
        return True

    def _audio(self, offset: int, chunk: bytes) -> None:
        if self._rec is None:
            if self._state == "off" and self._reason == "recognizer_failed":
                if self._failures < MAX_FAILURES and time.monotonic() >= self._retry_at:
                    self._acquire()
            if self._rec is None:
                return
        if self._engine._vad:
            to_feed, ended = self._gate.push((offset, chunk), rms(chunk))
        else:
            to_feed, ended = [(offset, chunk)], False
        if not to_feed:
            self._stats["chunks_gated"] += 1
        rec = self._rec
        for at, pcm in to_feed:
            self._timeline.fed(rec.fed_samples, at, len(pcm) // 2)
            t0, c0 = time.perf_counter(), time.thread_time()
            endpoint = rec.accept(pcm)
            self._stats["decode_seconds"] += time.perf_counter() - t0
            self._stats["cpu_seconds"] += time.thread_time() - c0
            self._stats["chunks_fed"] += 1
            self._open_utterance = True
            if endpoint:
                self._final(rec.rec.Result())
            else:
                self._partial_due = True
        if ended:
            self._flush(only_if_words=True)

    def _flush(self, only_if_words: bool = False) -> None:
        """Finish the open utterance with FinalResult().

        FinalResult() restarts vosk's feature pipeline (its speaker adaptation), so when the
        gate closes it is only called if words are pending: an utterance already ended by an
        endpoint is left alone, which keeps captions identical to decoding the whole file.
        """
        rec = self._rec
        if rec is None or not self._open_utterance:
            return
        if only_if_words:
            partial = json.loads(rec.rec.PartialResult()).get("partial", "")
            if not any(not is_junk(w) for w in partial.split()):
                return
        self._final(rec.rec.FinalResult())

    def _final(self, raw: str) -> None:
        self._open_utterance = False
        self._partial_due = False
        self._last_partial = ""
        info = self._dialect_info
        event = final_event(
            self.speaker,
            json.loads(raw),
            to_stream_time=lambda s: max(0.0, self._timeline.to_stream(s)),
            lexicon=info.gloss if info else {},
            alerts=info.alerts if info else {},
            rules=info.alert_rules if info else (),
        )
        if event is not None:
            self._stats["finals"] += 1
            self._emit(event)

    def _maybe_partial(self) -> None:
        if not self._partial_due or self._rec is None:
            return
        now = time.monotonic()
        if now - self._last_partial_at < PARTIAL_MIN_INTERVAL:
            return
        self._partial_due = False
        text = json.loads(self._rec.rec.PartialResult()).get("partial", "")
        text = " ".join(w for w in text.split() if not is_junk(w))
        if text and text != self._last_partial:
            self._last_partial, self._last_partial_at = text, now
            self._stats["partials"] += 1
            self._emit(partial_event(self.speaker, text))

    def _release(self) -> None:
        rec, self._rec = self._rec, None
        if rec is not None:
            try:
                self._engine._pool.release(rec)
            except Exception:  # a recognizer that cannot reset is not reused
                log.warning("call %s: recognizer reset failed, discarded", self.call_id)

    def _fail(self) -> None:
        """A recognizer error: drop the recognizer, report, and retry after a pause."""
        self._stats["errors"] += 1
        self._failures += 1
        self._rec = None  # not returned to the pool: its state is unknown
        self._open_utterance = False
        self._retry_at = time.monotonic() + RETRY_SECONDS
        self._set_state("off", "recognizer_failed")

    def _close_now(self) -> None:
        try:
            self._flush()
        except Exception:
            log.exception("call %s: final flush failed", self.call_id)
            self._rec = None
        self._release()
        with self._lock:
            self._queue.clear()
            self._scheduled = False
        self._finish()

    def _finish(self) -> None:
        self._done.set()
        self._engine._forget(self)
        waiters, self._done_waiters = self._done_waiters, []
        for fut in waiters:
            try:
                self._loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:
                pass


def _done(value: int) -> concurrent.futures.Future[int]:
    """A future that already holds `value`."""
    done: concurrent.futures.Future[int] = concurrent.futures.Future()
    done.set_result(value)
    return done


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
