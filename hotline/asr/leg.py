"""What both caption paths share for one audio leg: its identity, chunking and status.

`CaptionStream` (in-process, hotline/asr/transcriber.py) and `RemoteStream` (speech workers,
hotline/asr/remote.py) both cut the leg's PCM into CHUNK_SECONDS chunks stamped with their
offset in the stream, and report `captions_status` changes once each.
"""

from __future__ import annotations

import asyncio
import logging

from hotline.asr.events import CaptionEvent, status_event
from hotline.asr.service import EventSink

log = logging.getLogger(__name__)

CHUNK_SECONDS = 0.1  # 0.2 s chunks add ~0.1 s to every partial; 0.4 s is worse on every measure


class Chunker:
    """Cuts mono s16le PCM of any length into CHUNK_SECONDS chunks, each with its offset."""

    def __init__(self, sample_rate: int) -> None:
        self.chunk_bytes = int(sample_rate * CHUNK_SECONDS) * 2
        self.samples = 0  # samples handed out so far (the next chunk's offset)
        self._buf = bytearray()

    def push(self, pcm: bytes) -> list[tuple[int, bytes]]:
        """The whole chunks `pcm` completes, as (offset in samples, chunk)."""
        self._buf += pcm
        out = []
        while len(self._buf) >= self.chunk_bytes:
            chunk = bytes(self._buf[: self.chunk_bytes])
            del self._buf[: self.chunk_bytes]
            out.append((self.samples, chunk))
            self.samples += len(chunk) // 2
        return out

    def rest(self) -> tuple[int, bytes] | None:
        """The incomplete last chunk (at close), or None."""
        if not self._buf:
            return None
        item = (self.samples, bytes(self._buf))
        self.samples += len(self._buf) // 2
        self._buf.clear()
        return item


class CaptionLeg:
    """Base of a caption feed: the leg's identity, its chunker and its captions state."""

    def __init__(
        self,
        dialect: str,
        sample_rate: int,
        on_event: EventSink,
        loop: asyncio.AbstractEventLoop,
        speaker: str,
        call_id: str,
    ) -> None:
        self.dialect = dialect
        self.sample_rate = sample_rate
        self.speaker = speaker
        self.call_id = call_id
        self._on_event = on_event
        self._loop = loop
        self._chunker = Chunker(sample_rate)
        self._state = ""
        self._reason = ""

    def _emit(self, event: CaptionEvent) -> None:
        """Deliver an event to the listener (each path knows from which thread)."""
        raise NotImplementedError

    def _set_state(self, state: str, reason: str = "") -> None:
        """Report a captions_status change (once per change)."""
        if (state, reason) != (self._state, self._reason):
            self._state, self._reason = state, reason
            self._emit(status_event(state, self.dialect, reason))
            log.info("call %s: captions %s %s %s", self.call_id, state, self.dialect, reason)
