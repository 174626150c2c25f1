"""Decoding for the speech worker: recognizers per stream, in threads or in child processes.

`Recognizers` runs the protocol's operations on vosk recognizers keyed by stream id (pure
vosk, no I/O). `ThreadDecoders` runs them in a thread pool of the worker process, as
vosk-server does; `ProcessDecoders` forks N decoding processes after the model is loaded (the
children share the model's pages copy-on-write) and pins each stream to the least-loaded live
child. Both expose `async call(stream, op, arg) -> str` on the event loop.

Why processes: a decoding process that crashes takes only its own streams, and the GIL is
never shared between the loop and decoding. Measured on a shared machine (4 streams, audio
seconds decoded per wall second): bench/asr_worker.py gave processes 4.05 / 2.78 against
threads 3.48 / 2.16 in two paired rounds (+16 % and +29 %); an earlier ad-hoc run of the
same measurement under heavier load was mixed (3.14 / 2.09 against 3.07 / 4.69). vosk
releases the GIL while decoding, so the gain is modest; processes are the default.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from hotline.asr.pool import Recognizer, RecognizerPool
from hotline.asr.registry import ModelSpec

log = logging.getLogger(__name__)

OPEN, AUDIO, RESET, EOF, CLOSE = "open", "audio", "reset", "eof", "close"
WARM = "warm"  # not a stream operation: how many warm recognizers wait idle


class DecoderGone(Exception):
    """The process decoding a stream died; the stream cannot go on."""


class Recognizers:
    """One recognizer per open stream in this process, taken from and returned to a warm pool."""

    def __init__(self, pool: RecognizerPool, spec: ModelSpec) -> None:
        self._pool = pool
        self._spec = spec
        # id -> (recognizer, poolable, its time base at open in seconds)
        self._streams: dict[int, tuple[Recognizer, bool, float]] = {}

    def warm(self, n: int, speech: bytes, keep: int | None = None) -> None:
        """Create `n` recognizers that decoded `speech` once (a cold one is ~4x slower), now,
        and keep `keep` (default `n`) idle from then on: each stream that takes one starts a
        warm replacement on a niced thread. Call before forking: each decoding process gets
        copies of these and starts its own warm thread when its first stream opens."""
        self._pool.fill(self._spec, n, speech)
        self._pool.keep(self._spec, n if keep is None else keep, speech)

    def idle(self) -> int:
        """Warm recognizers waiting for a stream in this process."""
        return self._pool.idle_count(self._spec.name)

    def handle(self, op: str, sid: int, arg: Any) -> str:
        """Run one operation; returns vosk's JSON answer ("" for open/close)."""
        if op == WARM:
            return str(self.idle())
        if op == OPEN:
            rate, words, alternatives, phrases = arg
            rec, poolable = self._open(float(rate), bool(words), int(alternatives), phrases)
            self._streams[sid] = (rec, poolable, rec.fed_samples / float(rate))
            return ""
        if op == CLOSE:
            self._drop(sid)
            return ""
        rec, _, since = self._streams[sid]
        if op == AUDIO:
            answer = rec.rec.Result() if rec.accept(arg) else rec.rec.PartialResult()
        else:
            answer = rec.rec.FinalResult()
            if op == EOF:
                self._drop(sid)
        return stream_times(str(answer), since)

    def _open(
        self, rate: float, words: bool, alternatives: int, phrases: list[str] | None
    ) -> tuple[Recognizer, bool]:
        import vosk

        if phrases or rate != int(rate):
            model = self._pool.cache.get(self._spec)
            grammar = [json.dumps(phrases, ensure_ascii=False)] if phrases else []
            rec = Recognizer(vosk.KaldiRecognizer(model, rate, *grammar), self._spec.name, 0)
            poolable = False
        else:
            rec = self._pool.acquire(self._spec, int(rate))
            self._pool.top_up(self._spec)
            poolable = True
        rec.rec.SetWords(words)
        rec.rec.SetMaxAlternatives(alternatives)
        return rec, poolable

    def _drop(self, sid: int) -> None:
        entry = self._streams.pop(sid, None)
        if entry is None or not entry[1]:
            return
        rec = entry[0]
        try:
            rec.rec.SetWords(True)
            rec.rec.SetMaxAlternatives(0)
            self._pool.release(rec)
        except Exception:  # a recognizer that cannot reset is not reused
            log.warning("recognizer reset failed, discarded")

    def __len__(self) -> int:
        return len(self._streams)


def stream_times(answer: str, since: float) -> str:
    """vosk's answer with word times counted from the stream's first audio, as vosk-server's
    new recognizer per connection gives them: a pooled recognizer counts from its creation,
    warm-up and earlier streams included (Reset() does not restart its clock)."""
    if not since or "result" not in answer:
        return answer
    obj = json.loads(answer)
    for part in [obj, *obj.get("alternatives", [])]:
        for w in [*part.get("result", []), *part.get("partial_result", [])]:
            for key in ("start", "end"):
                if isinstance(w.get(key), int | float):
                    w[key] = round(w[key] - since, 6)
    return json.dumps(obj, ensure_ascii=False)


class ThreadDecoders:
    """Decode in a thread pool of this process (vosk-server's way; `--workers 0`)."""

    def __init__(self, recognizers: Recognizers, threads: int) -> None:
        self._recs = recognizers
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="decode")
        self._open = 0

    def pids(self) -> list[int]:
        """No decoding processes: threads of this one."""
        return []

    def load(self) -> list[int]:
        """Open streams per decoder (one decoder here)."""
        return [self._open]

    async def warm_idle(self) -> list[int]:
        """Warm recognizers idle per decoder (one decoder here)."""
        return [self._recs.idle()]

    async def call(self, sid: int, op: str, arg: Any = None) -> str:
        """Run `op` for stream `sid` in the pool."""
        if op == OPEN:
            self._open += 1
        elif op in (EOF, CLOSE):
            self._open = max(0, self._open - 1)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._recs.handle, op, sid, arg)

    def close(self) -> None:
        """Stop the pool after running decodes finish."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a `kill -9` of the worker)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed pipe ends the child instead
        pass


def _child_main(conn: Any, others: list[Any], recognizers: Recognizers) -> None:
    """A decoding process: run requests from the parent in order until the pipe closes."""
    _die_with_parent()
    for other in others:  # parent-side pipe ends inherited by fork: keep EOF detectable
        other.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        rid, op, sid, arg = request
        try:
            conn.send((rid, True, recognizers.handle(op, sid, arg)))
        except (BrokenPipeError, OSError):
            return
        except Exception as exc:  # one stream's failure must not end the others
            log.exception("decode %s failed for stream %s", op, sid)
            conn.send((rid, False, f"{type(exc).__name__}: {exc}"))


class _Child:
    """The parent's handle on one decoding process: its pipe, reader thread and streams."""

    def __init__(self, proc: Any, conn: Any) -> None:
        self.proc = proc
        self.conn = conn
        self.streams: set[int] = set()
        self.pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[str]]] = {}
        self.alive = True
        self.lock = threading.Lock()


class ProcessDecoders:
    """N forked decoding processes; each stream is pinned to the least-loaded live one."""

    def __init__(self, recognizers: Recognizers, n: int) -> None:
        ctx = multiprocessing.get_context("fork")  # share the loaded model copy-on-write
        self._children: list[_Child] = []
        self._ids = itertools.count()
        self._where: dict[int, _Child] = {}
        for _ in range(n):
            parent, child = ctx.Pipe()
            others = [c.conn for c in self._children] + [parent]
            proc = ctx.Process(target=_child_main, args=(child, others, recognizers), daemon=True)
            proc.start()
            child.close()
            self._children.append(_Child(proc, parent))
        for c in self._children:
            threading.Thread(target=self._reader, args=(c,), daemon=True, name="decoder").start()

    def pids(self) -> list[int]:
        """Process ids of the decoding children."""
        return [c.proc.pid for c in self._children]

    def load(self) -> list[int]:
        """Open streams per live decoding process."""
        return [len(c.streams) for c in self._children if c.alive]

    async def warm_idle(self) -> list[int]:
        """Warm recognizers idle per live decoding process."""
        live = [c for c in self._children if c.alive]
        answers = await asyncio.gather(
            *(self._request(c, WARM, -1) for c in live), return_exceptions=True
        )
        return [int(a) for a in answers if isinstance(a, str)]

    async def call(self, sid: int, op: str, arg: Any = None) -> str:
        """Send `op` for stream `sid` to its process and await the answer."""
        if op == OPEN:
            live = [c for c in self._children if c.alive]
            if not live:
                raise DecoderGone("no decoding process left")
            child = min(live, key=lambda c: len(c.streams))
            child.streams.add(sid)
            self._where[sid] = child
        child = self._where.get(sid)  # type: ignore[assignment]
        if child is None or not child.alive:
            raise DecoderGone("decoding process died")
        if op in (EOF, CLOSE):
            child.streams.discard(sid)
            self._where.pop(sid, None)
        return await self._request(child, op, sid, arg)

    async def _request(self, child: _Child, op: str, sid: int, arg: Any = None) -> str:
        """Send one request to a decoding process and await its answer."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()
        rid = next(self._ids)
        with child.lock:
            child.pending[rid] = (loop, fut)
        try:
            child.conn.send((rid, op, sid, arg))
        except (BrokenPipeError, OSError) as exc:
            with child.lock:
                child.pending.pop(rid, None)
            raise DecoderGone("decoding process died") from exc
        return await fut

    def _reader(self, child: _Child) -> None:
        while True:
            try:
                rid, ok, answer = child.conn.recv()
            except (EOFError, OSError):
                break
            with child.lock:
                entry = child.pending.pop(rid, None)
            if entry is not None:
                exc = None if ok else RuntimeError(answer)
                _settle_threadsafe(entry[0], entry[1], answer, exc)
        child.alive = False
        log.error("decoding process %s ended; its streams are closed", child.proc.pid)
        with child.lock:
            pending, child.pending = child.pending, {}
        for loop, fut in pending.values():
            _settle_threadsafe(loop, fut, "", DecoderGone("decoding process died"))

    def close(self) -> None:
        """Stop every child and reap it (each child holds copies of its elders' pipes, so a
        closed pipe alone would not end them all)."""
        for c in self._children:
            if c.proc.is_alive():
                c.proc.terminate()
        for c in self._children:
            c.proc.join(timeout=3)
            if c.proc.is_alive():
                os.kill(c.proc.pid, signal.SIGKILL)
                c.proc.join(timeout=3)
            c.conn.close()


def _settle_threadsafe(
    loop: asyncio.AbstractEventLoop, fut: asyncio.Future[str], value: str, exc: Exception | None
) -> None:
    def settle() -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # loop closed
        pass


Decoders = ThreadDecoders | ProcessDecoders
DecoderFactory = Callable[[Recognizers], Decoders]
