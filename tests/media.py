"""Real aiortc peers for tests and benches: play a WAV (or a cheap tone) into the gateway.

peer = AudioPeer.from_wav(path)          # or AudioPeer(ToneTrack())
sdp = await peer.offer()                 # complete offer (aiortc gathers all candidates)
await peer.accept(answer_sdp)
await peer.wait_connected()
await peer.close()
"""

from __future__ import annotations

import asyncio
import fractions
import math
import shutil
import subprocess
import wave
from array import array
from pathlib import Path
from typing import Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaPlayer

RATE = 48000
FRAME = 960  # 20 ms at 48 kHz, what Opus carries per packet


def write_tone_wav(
    path: Path, seconds: float = 3.0, freq: float = 440.0, amplitude: float = 0.3, rate: int = RATE
) -> Path:
    """A mono s16 sine tone (amplitude 0 gives silence)."""
    n = int(seconds * rate)
    peak = int(32767 * amplitude)
    samples = array("h", (int(peak * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def write_speech_wav(path: Path, text: str, voice: str = "en") -> Path:
    """Speech from espeak-ng, resampled to 48 kHz mono with sox (a tone if either is missing)."""
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if not espeak or not sox:
        return write_tone_wav(path)
    raw = path.with_suffix(".raw.wav")
    subprocess.run([espeak, "-v", voice, "-w", str(raw), text], check=True, timeout=30)
    subprocess.run([sox, str(raw), "-r", str(RATE), "-c", "1", str(path)], check=True, timeout=30)
    raw.unlink(missing_ok=True)
    return path


def wav_rms(path: Path) -> float:
    """RMS of a s16 WAV's samples (to compare with what the gateway measured)."""
    with wave.open(str(path), "rb") as src:
        samples = array("h")
        samples.frombytes(src.readframes(src.getnframes()))
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


class ToneTrack(MediaStreamTrack):
    """A cheap live audio source: one pre-computed 20 ms frame, paced in real time."""

    kind = "audio"

    def __init__(self, freq: float = 440.0, amplitude: float = 0.3) -> None:
        super().__init__()
        # Whole cycles per frame so repeating the frame stays a clean tone.
        cycles = max(1, round(freq * FRAME / RATE))
        peak = int(32767 * amplitude)
        pcm = array(
            "h", (int(peak * math.sin(2 * math.pi * cycles * i / FRAME)) for i in range(FRAME))
        )
        self._pcm = pcm.tobytes()
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            self._pts += FRAME
            delay = self._start + self._pts / RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(self._pcm)
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


class AudioPeer:
    """An audio-only aiortc peer that offers one track (what a browser's tap does)."""

    def __init__(self, track: MediaStreamTrack, player: Any = None) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = track
        self._player = player
        self.pc.addTrack(track)
        self._connected = asyncio.Event()
        self._failed = asyncio.Event()

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            if self.pc.connectionState == "connected":
                self._connected.set()
            elif self.pc.connectionState in ("failed", "closed"):
                self._failed.set()

    @classmethod
    def from_wav(cls, path: Path, loop: bool = True) -> AudioPeer:
        player = MediaPlayer(str(path), loop=loop)
        assert player.audio is not None, f"no audio in {path}"
        return cls(player.audio, player)

    async def offer(self) -> str:
        """The complete SDP offer (all candidates gathered)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def wait_connected(self, timeout: float = 10.0) -> None:
        _, pending = await asyncio.wait(
            [
                asyncio.ensure_future(self._connected.wait()),
                asyncio.ensure_future(self._failed.wait()),
            ],
            timeout=timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        for task in pending:
            task.cancel()
        if not self._connected.is_set():
            raise TimeoutError(f"peer not connected: {self.pc.connectionState}")

    @property
    def state(self) -> str:
        return self.pc.connectionState

    async def close(self) -> None:
        await self.pc.close()
        if self._player is not None and getattr(self._player, "audio", None) is not None:
            self._player.audio.stop()
