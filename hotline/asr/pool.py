"""Warm vosk recognizers: the pool both caption paths take them from.

A new KaldiRecognizer of a lookahead model composes its decoding graph as it decodes and is
~4x slower on its first speech (hotline/asr/warmup.py), so recognizers are pooled, cleaned
between calls and warmed with speech before the first call needs them. `keep_warm` keeps a
number of warm recognizers idle: each one a stream takes starts a warm replacement on a
niced background thread (a cold recognizer's first speech took up to 7 s per 0.1 s chunk in
a real call, so every leg beyond the warm ones lagged seconds). The in-process engine
(hotline/asr/transcriber.py) and each decoding process of a speech worker
(hotline/asr/decoders.py) own one pool each. The warm threads start on first use, so a pool
warmed synchronously before a fork gives each child its own copies and its own threads.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hotline.asr.leg import CHUNK_SECONDS
from hotline.asr.registry import ModelSpec
from hotline.asr.runtime import ModelCache

log = logging.getLogger(__name__)

MAX_IDLE_PER_MODEL = 16
WARM_SECONDS = 0.5  # of noise, when a dialect has no warm-up speech
WARM_NICE = 10  # warm-ups yield the CPU to live decoding
WARM_THREADS = min(2, os.cpu_count() or 1)  # a recognizer warms in ~6 CPU-s: two at a time


@dataclass
class Recognizer:
    """A KaldiRecognizer and the audio it has consumed since creation (its time base)."""

    rec: Any
    model: str
    rate: int
    fed_samples: int = 0

    def accept(self, pcm: bytes) -> bool:
        """Decode `pcm`; True at an endpoint (the final is in `rec.Result()`)."""
        done = bool(self.rec.AcceptWaveform(pcm))
        self.fed_samples += len(pcm) // 2
        return done


def quiet_noise(nbytes: int) -> bytes:
    """Quiet noise (about -60 dBFS), mono s16le."""
    rnd = random.Random(0)
    return b"".join(rnd.randint(-40, 40).to_bytes(2, "little", signed=True)
                    for _ in range(nbytes // 2))  # fmt: skip


def clean(r: Recognizer) -> None:
    """Return a recognizer to a fresh state, speaker adaptation included.

    Reset() alone keeps vosk's feature pipeline (CMVN and i-vector state of the last caller)
    unless the utterance was finalized first; FinalResult() then Reset() starts clean, so the
    next call decodes exactly as a new recognizer would and nothing of a caller carries over.
    """
    r.rec.FinalResult()
    r.rec.Reset()


def background_priority() -> None:
    """Lower this thread's CPU priority (Linux nices threads one by one; elsewhere a no-op)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WARM_NICE)


class RecognizerPool:
    """Idle, cleaned recognizers per (model, rate), warmed with speech and kept topped up."""

    def __init__(self, cache: ModelCache) -> None:
        self.cache = cache
        self._idle: dict[tuple[str, int], list[Recognizer]] = {}
        self._lock = threading.Lock()
        self._keep: dict[str, tuple[ModelSpec, int, bytes]] = {}  # model -> (spec, idle, speech)
        self._topping: set[str] = set()
        self._warmer: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False

    def acquire(self, spec: ModelSpec, rate: int) -> Recognizer:
        """An idle recognizer, or a new (cold) one; see `top_up` for replacing it."""
        with self._lock:
            idle = self._idle.get((spec.name, rate))
            if idle:
                return idle.pop()
        return self.create(spec, rate)

    def create(
        self,
        spec: ModelSpec,
        rate: int,
        warm: bool = False,
        speech: bytes = b"",
        stop: Callable[[], bool] = lambda: False,
    ) -> Recognizer:
        """A new recognizer; `warm` decodes `speech` (or noise) first, chunk by chunk, unless
        `stop()` turns true (closing: the half-warm recognizer is still valid)."""
        import vosk

        r = Recognizer(vosk.KaldiRecognizer(self.cache.get(spec), rate), spec.name, rate)
        r.rec.SetWords(True)
        if warm:
            step = int(rate * CHUNK_SECONDS) * 2
            audio = speech or quiet_noise(int(rate * WARM_SECONDS) * 2)
            for i in range(0, len(audio), step):
                if stop():
                    break
                if r.accept(audio[i : i + step]):
                    r.rec.Result()
            clean(r)
        return r

    def release(self, r: Recognizer) -> None:
        """Clean a recognizer and keep it for the next stream (up to MAX_IDLE_PER_MODEL)."""
        clean(r)
        with self._lock:
            idle = self._idle.setdefault((r.model, r.rate), [])
            if len(idle) < MAX_IDLE_PER_MODEL:
                idle.append(r)

    def put(self, r: Recognizer) -> None:
        """Add a clean recognizer to the idle ones."""
        with self._lock:
            self._idle.setdefault((r.model, r.rate), []).append(r)

    def idle_count(self, model: str) -> int:
        """Idle recognizers of a model, any rate."""
        with self._lock:
            return sum(len(v) for (m, _), v in self._idle.items() if m == model)

    def fill(self, spec: ModelSpec, n: int, speech: bytes = b"") -> int:
        """Create `n` warm recognizers now, in this thread (before a fork, or in the warmer)."""
        made = 0
        while made < n and not self._closed:
            self.put(self.create(spec, spec.sample_rate, True, speech, self._closing))
            made += 1
        return made

    def warm(self, spec: ModelSpec, n: int, speech: bytes = b"") -> concurrent.futures.Future[int]:
        """`fill` on the niced background threads, one recognizer per job (two warm at once
        on two cores); never blocks. The future holds how many were made."""
        jobs = [self._background(lambda: self.fill(spec, 1, speech)) for _ in range(n)]
        total: concurrent.futures.Future[int] = concurrent.futures.Future()
        if not jobs:
            total.set_result(0)
            return total

        def done(_: concurrent.futures.Future[int]) -> None:
            if all(j.done() for j in jobs) and not total.done():
                made = sum(j.result() for j in jobs if not j.cancelled() and not j.exception())
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    total.set_result(made)

        for job in jobs:
            job.add_done_callback(done)
        return total

    def keep(self, spec: ModelSpec, n: int, speech: bytes = b"") -> None:
        """From now on `top_up` keeps `n` warm recognizers of the model idle (0: stop)."""
        with self._lock:
            if n > 0:
                self._keep[spec.name] = (spec, n, speech)
            else:
                self._keep.pop(spec.name, None)

    def keep_warm(
        self, spec: ModelSpec, n: int, speech: bytes = b""
    ) -> concurrent.futures.Future[int]:
        """`keep`, then warm `n` now in the background."""
        self.keep(spec, n, speech)
        return self.warm(spec, n, speech)

    def top_up(self, spec: ModelSpec) -> None:
        """Warm replacements in the background while the idle pool is below `keep`'s level
        (call after taking a recognizer); never blocks, one top-up per model at a time."""
        with self._lock:
            want = self._keep.get(spec.name)
            if want is None or spec.name in self._topping or self._closed:
                return
            self._topping.add(spec.name)
        _, n, speech = want

        def job() -> int:
            made = 0
            try:
                while not self._closed and self.idle_count(spec.name) < n:
                    made += self.fill(spec, 1, speech)
            except Exception:
                log.warning("warming a spare recognizer for %s failed", spec.name, exc_info=True)
            finally:
                with self._lock:
                    self._topping.discard(spec.name)
            return made

        self._background(job)

    def clear(self) -> None:
        """Drop every idle recognizer."""
        with self._lock:
            self._idle.clear()

    def close(self) -> None:
        """Stop warming (a warm-up in progress stops at its next chunk), drop idle ones."""
        self._closed = True
        with self._lock:
            warmer, self._warmer = self._warmer, None
        if warmer is not None:
            warmer.shutdown(wait=True, cancel_futures=False)
        self.clear()

    def _closing(self) -> bool:
        return self._closed

    def _background(self, job: Callable[[], int]) -> concurrent.futures.Future[int]:
        """Run `job` on the warm threads, created on first use (so after any fork)."""
        with self._lock:
            if self._warmer is None and not self._closed:
                self._warmer = concurrent.futures.ThreadPoolExecutor(
                    WARM_THREADS, thread_name_prefix="asr-warm", initializer=background_priority
                )
            warmer = self._warmer
        try:
            if warmer is None:
                raise RuntimeError("closed")
            return warmer.submit(job)
        except RuntimeError:  # closed: nothing to warm
            with self._lock:
                self._topping.clear()
            done: concurrent.futures.Future[int] = concurrent.futures.Future()
            done.set_result(0)
            return done
