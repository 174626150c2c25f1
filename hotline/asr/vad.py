"""An energy voice-activity gate: which 0.1 s chunks reach the recognizer, and when to flush.

Pure Python over `array` (no numpy). A chunk is speech when its RMS is above both a fixed
floor and a multiple of the recent noise floor (the minimum RMS over the last few seconds),
so a steady hum does not hold the gate open. The gate keeps a little pre-roll so word onsets
are not clipped, keeps feeding trailing silence for a hangover so the recognizer's own
endpointing can fire, then closes and tells the caller to flush the utterance (FIELD-NOTES:
without a flush, finals come seconds late once feeding stops).
"""

from __future__ import annotations

import math
import sys
from array import array
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


def rms(pcm: bytes) -> float:
    """Root-mean-square amplitude of mono s16le PCM (0 for empty input)."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if not samples:
        return 0.0
    if sys.byteorder == "big":
        samples.byteswap()
    return math.sqrt(sum(s * s for s in samples) / len(samples))


@dataclass(frozen=True)
class GateSettings:
    """Thresholds of the energy gate, in chunks of the stream's chunk length (0.1 s)."""

    min_rms: float = 200.0  # about -44 dBFS: quieter is never speech
    noise_ratio: float = 3.0  # speech is ~10 dB above the recent noise floor
    noise_window: int = 50  # chunks over which the noise floor is the minimum RMS
    preroll: int = 3  # silent chunks fed before the first speech chunk (at least)
    # Trailing silence fed before the gate closes: longer than endpoint rule3 (0.6 s), so the
    # recognizer's own endpoint ends the utterance and no FinalResult() reset is needed.
    hangover: int = 8
    # Skipped audio is a multiple of this many chunks: 0.3 s = 30 frames keeps the phase of
    # the model's 3-frame subsampling, so gating does not shift the decoder's frame grid.
    quantum: int = 3


class EnergyGate(Generic[T]):
    """Decides, chunk by chunk, what to feed; items are opaque (e.g. (offset, pcm) pairs)."""

    def __init__(self, settings: GateSettings | None = None) -> None:
        self.settings = settings or GateSettings()
        self._recent: deque[float] = deque(maxlen=self.settings.noise_window)
        q = max(self.settings.quantum, 1)
        self._preroll: deque[T] = deque(maxlen=max(self.settings.preroll, 0) + q - 1 or None)
        self._held = 0  # chunks withheld since the gate last closed
        self._open = False
        self._hang = 0

    @property
    def is_open(self) -> bool:
        """True while speech or its hangover is being fed."""
        return self._open

    def is_speech(self, level: float) -> bool:
        """Whether a chunk of this RMS counts as speech, given the recent noise floor."""
        noise = min(self._recent) if self._recent else 0.0
        return level > max(self.settings.min_rms, noise * self.settings.noise_ratio)

    def push(self, item: T, level: float) -> tuple[list[T], bool]:
        """Chunks to feed now (pre-roll first), and whether the utterance just ended."""
        speech = self.is_speech(level)
        self._recent.append(level)
        if not self._open:
            if not speech:
                self._held += 1
                if self._preroll.maxlen:
                    self._preroll.append(item)
                return [], False
            self._open, self._hang = True, self.settings.hangover
            q = max(self.settings.quantum, 1)
            want = min(self._held, self.settings.preroll + (self._held - self.settings.preroll) % q)
            out = list(self._preroll)[-want:] if want else []
            self._preroll.clear()
            self._held = 0
            return out + [item], False
        if speech:
            self._hang = self.settings.hangover
            return [item], False
        self._hang -= 1
        if self._hang <= 0:
            self._open = False
            return [item], True
        return [item], False

    def reset(self) -> None:
        """Forget the pre-roll and close the gate (noise history is kept)."""
        self._preroll.clear()
        self._held = 0
        self._open, self._hang = False, 0
