"""Captions from a farm of speech workers on the vosk-server protocol (`HOTLINE_ASR_WORKERS`).

Each tapped leg is streamed to the least-loaded healthy worker of its dialect (by the streams
this node holds open on each; a worker that failed is skipped for `DOWN_SECONDS`). Workers
may be ours (`hotline asr-worker`) or official vosk-server containers: only the protocol is
assumed. Masking, glosses, alerts and stream times are made on this side from the worker's
vosk JSON by the same functions as in-process captions (hotline/asr/events.py). The stream
itself, its failover and its silence gate: hotline/asr/remote.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from hotline.asr.detect import Detection
from hotline.asr.registry import Registry
from hotline.asr.remote import CLOSE_SECONDS, RemoteStream, WorkerState, close_streams
from hotline.asr.service import EventSink
from hotline.asr.transcriber import CaptionsUnavailable

log = logging.getLogger(__name__)

DOWN_SECONDS = 10.0


class WorkersSettingError(ValueError):
    """`HOTLINE_ASR_WORKERS` is not a JSON object of dialect -> list of ws:// URLs."""


def parse_workers(raw: str, registry: Registry) -> dict[str, tuple[str, ...]]:
    """The dialect -> worker URLs map from the setting's JSON; {} when empty."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise WorkersSettingError(f"HOTLINE_ASR_WORKERS is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise WorkersSettingError("HOTLINE_ASR_WORKERS must be a JSON object")
    out: dict[str, tuple[str, ...]] = {}
    for dialect, urls in value.items():
        if dialect not in registry.dialects:
            raise WorkersSettingError(f"HOTLINE_ASR_WORKERS: unknown dialect {dialect!r}")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not all(
            isinstance(u, str) and u.startswith(("ws://", "wss://")) for u in urls
        ):
            raise WorkersSettingError(
                f"HOTLINE_ASR_WORKERS[{dialect!r}] must be a list of ws:// or wss:// URLs"
            )
        out[dialect] = tuple(dict.fromkeys(urls))
    return out


class WorkerFarm:
    """Caption feeds decoded by remote speech workers; the `CaptionService` of a farm."""

    def __init__(
        self, registry: Registry, workers: Mapping[str, Sequence[str]], *, vad: bool = True
    ) -> None:
        self.registry = registry
        self.vad = vad
        self.urls = {d: tuple(u) for d, u in workers.items() if u}
        self.workers: dict[str, WorkerState] = {
            url: WorkerState(url) for urls in self.urls.values() for url in urls
        }
        self._streams: set[RemoteStream] = set()
        self._closed = False

    def available(self, dialect: str) -> tuple[bool, str]:
        """(True, "") when the dialect has workers configured, else (False, reason)."""
        if self._closed:
            return False, "engine_closed"
        if dialect not in self.registry.dialects:
            return False, "unknown_dialect"
        if not self.urls.get(dialect):
            return False, "no_worker_for_dialect"
        return True, ""

    def open(
        self,
        dialect: str,
        on_event: EventSink,
        loop: asyncio.AbstractEventLoop,
        *,
        speaker: str = "caller",
        call_id: str = "",
    ) -> RemoteStream:
        """A new remote feed for one leg (it connects in the background)."""
        ok, reason = self.available(dialect)
        if not ok:
            raise CaptionsUnavailable(reason, f"captions unavailable for {dialect}: {reason}")
        spec = self.registry.model_of(dialect)
        rate = spec.sample_rate if spec else 16000
        stream = RemoteStream(self, dialect, rate, on_event, loop, speaker, call_id, self.vad)
        self._streams.add(stream)
        stream.start()
        return stream

    def pick(self, dialect: str, exclude: set[str]) -> WorkerState | None:
        """The least-loaded healthy worker of the dialect not in `exclude` (down ones last)."""
        now = time.monotonic()
        candidates = [self.workers[u] for u in self.urls.get(dialect, ()) if u not in exclude]
        if not candidates:
            return None
        order = {u: i for i, u in enumerate(self.urls[dialect])}
        return min(
            candidates,
            key=lambda w: (w.down_until > now, w.open_streams, w.failures, order[w.url]),
        )

    def mark_down(self, worker: WorkerState, error: str) -> None:
        """Skip this worker for new streams for a while."""
        worker.down_until = time.monotonic() + DOWN_SECONDS
        worker.failures += 1
        worker.last_error = error
        log.warning("speech worker %s down: %s", worker.url, error)

    def detect(
        self, pcm: bytes, candidates: Sequence[str], sample_rate: int = 16000
    ) -> concurrent.futures.Future[Detection]:
        """Workers serve one model each: no detection here (the agent picks the dialect)."""
        done: concurrent.futures.Future[Detection] = concurrent.futures.Future()
        done.set_result(Detection(best=None))
        return done

    def health(self) -> list[dict[str, Any]]:
        """Per worker: open streams from this node, down or not, failures, last error."""
        now = time.monotonic()
        return [
            {"url": w.url, "open_streams": w.open_streams, "down": w.down_until > now,
             "failures": w.failures, "last_error": w.last_error}
            for w in self.workers.values()
        ]  # fmt: skip

    def close(self) -> None:
        """Close every stream and wait (from another thread) for their last finals; idempotent.

        On the loop itself it cannot wait: the streams then finish on their own.
        """
        self._closed = True
        streams = list(self._streams)
        if not streams:
            return
        loop = streams[0]._loop
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop or loop.is_closed():
            for stream in streams:
                stream.close()
            return
        done = asyncio.run_coroutine_threadsafe(close_streams(streams), loop)
        try:
            done.result(CLOSE_SECONDS * 2)
        except Exception:  # shutting down anyway: never let a stream hold the exit
            log.warning("speech worker streams did not close in time")

    def _forget(self, stream: RemoteStream) -> None:
        self._streams.discard(stream)
