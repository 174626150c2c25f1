"""The caption service as the live side sees it: two implementations, one interface.

`CaptionEngine` (hotline/asr/transcriber.py) decodes in this process (the embedded default);
`WorkerFarm` (hotline/asr/farm.py) streams each leg to speech workers on the vosk-server
protocol (`HOTLINE_ASR_WORKERS`). Both deliver the same events (hotline/asr/events.py):
masked `caption` partials/finals with glosses, alerts and stream times, and
`captions_status`, on the loop through `on_event`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from hotline.asr.detect import Detection
from hotline.asr.events import CaptionEvent
from hotline.asr.registry import Registry

EventSink = Callable[[CaptionEvent], None]


class CaptionFeed(Protocol):
    """One audio leg's captions: feed PCM on the loop, events come back on the loop."""

    sample_rate: int

    def feed(self, pcm: bytes) -> None:
        """Queue mono s16le PCM; never blocks."""

    def switch(self, dialect: str) -> None:
        """Go on with another dialect's recognizer."""

    def close(self) -> None:
        """Flush the open utterance and end; idempotent."""

    async def aclose(self) -> None:
        """Close, then wait until the last final was delivered."""

    @property
    def stats(self) -> dict[str, Any]:
        """Counters for /metrics and the bench."""


class CaptionService(Protocol):
    """Where captions are decoded: opens feeds, says why captions cannot run."""

    registry: Registry

    def available(self, dialect: str) -> tuple[bool, str]:
        """(True, "") when captions can run for the dialect, else (False, reason)."""

    def open(
        self,
        dialect: str,
        on_event: EventSink,
        loop: asyncio.AbstractEventLoop,
        *,
        speaker: str = "caller",
        call_id: str = "",
    ) -> CaptionFeed:
        """A new feed for one leg; raises CaptionsUnavailable(reason) up front."""

    def detect(
        self, pcm: bytes, candidates: Sequence[str], sample_rate: int = 16000
    ) -> concurrent.futures.Future[Detection]:
        """Guess the dialect of `pcm` among `candidates`."""

    def close(self) -> None:
        """Close every feed and free resources; idempotent, callable from any thread."""
