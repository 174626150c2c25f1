"""The gateway's audio legs: one audio-only aiortc peer per party of a call.

Each browser sends its microphone here on a second RTCPeerConnection (the "tap"); video
never comes here. A leg decodes Opus, resamples to 16 kHz mono s16, keeps counters (frames,
RMS level) and hands the PCM to a sink (the caption stream), if one is attached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aioice.ice
import av
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from hotline.errors import BadSdp
from hotline.live.messages import check_sdp

log = logging.getLogger(__name__)

RATE = 16000
Sink = Callable[[bytes], None]


def use_loopback_candidates() -> None:
    """Make aioice offer 127.0.0.1 only (it never offers loopback by default).

    This replaces a function of aioice's (bounded in pyproject.toml, checked by
    tests/test_canaries.py): if an aioice upgrade renames it, fail loudly here rather than
    gather no loopback candidate and leave every test call unconnected.
    """
    if not callable(getattr(aioice.ice, "get_host_addresses", None)):
        raise RuntimeError(
            "aioice.ice.get_host_addresses is gone: this aioice cannot be limited to loopback"
        )
    aioice.ice.get_host_addresses = _loopback_addresses  # type: ignore[assignment]


def _loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """The host addresses aioice gathers candidates from, under HOTLINE_ICE_LOOPBACK."""
    return ["127.0.0.1"]


@dataclass
class Leg:
    """One party's microphone arriving at the gateway."""

    call_id: str
    speaker: str  # "caller" or "agent"
    pc: RTCPeerConnection
    created: float = field(default_factory=time.monotonic)
    connected_at: float | None = None
    frames: int = 0
    samples: int = 0
    rms: float = 0.0
    peak_rms: float = 0.0
    sink: Sink | None = None
    task: asyncio.Task[None] | None = None

    def stats(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "seconds": round(self.samples / RATE, 2),
            "rms": round(self.rms, 1),
            "peak_rms": round(self.peak_rms, 1),
            "state": self.pc.connectionState,
            "connect_ms": None
            if self.connected_at is None
            else round((self.connected_at - self.created) * 1000),
        }


class Taps(Protocol):
    """What the switchboard and captions use of a gateway: `Gateway` on a single node,
    `hotline.cluster.media.ClusterGateway` in a cluster."""

    tracks: Counter[str]

    @property
    def open_legs(self) -> int: ...
    async def answer(
        self, call_id: str, speaker: str, offer_sdp: str, node: str | None = None
    ) -> str: ...
    def set_sink(self, call_id: str, speaker: str, sink: Sink | None) -> bool: ...
    def leg(self, call_id: str, speaker: str) -> Any | None: ...
    def stats(self, call_id: str) -> dict[str, Any]: ...
    async def close_leg(self, call_id: str, speaker: str) -> None: ...
    async def close_call(self, call_id: str) -> None: ...
    async def close(self) -> None: ...


class Gateway:
    """Owns every audio leg; closes them with their call."""

    def __init__(self, ice_servers: list[dict[str, Any]] | None = None) -> None:
        self._ice = [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in (ice_servers or [])
        ]
        self._legs: dict[tuple[str, str], Leg] = {}
        # Tracks received, by kind: the plan keeps video out of Python (answer() refuses a
        # tap offer with video), and tests check that no "video" is ever counted here.
        self.tracks: Counter[str] = Counter()

    @property
    def open_legs(self) -> int:
        return len(self._legs)

    async def answer(
        self, call_id: str, speaker: str, offer_sdp: str, node: str | None = None
    ) -> str:
        """Answer a tap offer; replaces this party's previous leg. Raises BadSdp.

        (`node`, the node holding the party's socket, matters only in a cluster.)"""
        check_sdp(offer_sdp)
        if "m=audio" not in offer_sdp:
            raise BadSdp("the tap offer has no audio")
        if "m=video" in offer_sdp:
            raise BadSdp("the tap takes audio only")
        await self.close_leg(call_id, speaker)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice))
        leg = Leg(call_id, speaker, pc)
        self._legs[(call_id, speaker)] = leg

        @pc.on("track")
        def on_track(track: Any) -> None:
            self.tracks[track.kind] += 1
            if track.kind != "audio":
                return
            leg.task = asyncio.get_running_loop().create_task(self._consume(leg, track))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected" and leg.connected_at is None:
                leg.connected_at = time.monotonic()
            elif pc.connectionState == "failed":
                await self.close_leg(call_id, speaker)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self.close_leg(call_id, speaker)
            raise BadSdp(f"the gateway cannot use this offer: {type(exc).__name__}") from None
        return pc.localDescription.sdp

    async def _consume(self, leg: Leg, track: Any) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        try:
            while True:
                frame = await track.recv()
                leg.frames += 1
                for out in resampler.resample(frame):
                    pcm = bytes(out.planes[0])[: out.samples * 2]
                    leg.samples += out.samples
                    if leg.frames % 5 == 0:
                        leg.rms = _rms(pcm)
                        leg.peak_rms = max(leg.peak_rms, leg.rms)
                    if leg.sink is not None:
                        try:
                            leg.sink(pcm)
                        except Exception:
                            log.exception(
                                "call %s: %s sink failed; detached", leg.call_id, leg.speaker
                            )
                            leg.sink = None
        except (MediaStreamError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("call %s: %s leg reader failed", leg.call_id, leg.speaker)

    def set_sink(self, call_id: str, speaker: str, sink: Sink | None) -> bool:
        """Attach (or detach) the consumer of a leg's 16 kHz PCM; False if no such leg."""
        leg = self._legs.get((call_id, speaker))
        if leg is None:
            return False
        leg.sink = sink
        return True

    def leg(self, call_id: str, speaker: str) -> Leg | None:
        return self._legs.get((call_id, speaker))

    def stats(self, call_id: str) -> dict[str, Any]:
        """Counters of both legs of a call (absent legs are omitted)."""
        return {
            speaker: leg.stats() for (cid, speaker), leg in self._legs.items() if cid == call_id
        }

    async def close_leg(self, call_id: str, speaker: str) -> None:
        leg = self._legs.pop((call_id, speaker), None)
        if leg is None:
            return
        if leg.task is not None:
            leg.task.cancel()
        with contextlib.suppress(Exception):
            await leg.pc.close()

    async def close_call(self, call_id: str) -> None:
        """Close both legs of a call (idempotent)."""
        for cid, speaker in [k for k in self._legs if k[0] == call_id]:
            await self.close_leg(cid, speaker)

    async def close(self) -> None:
        for cid, speaker in list(self._legs):
            await self.close_leg(cid, speaker)


def _rms(pcm: bytes) -> float:
    samples = array("h")
    samples.frombytes(pcm)
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))
