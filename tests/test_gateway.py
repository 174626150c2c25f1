"""The gateway's audio legs with real aiortc peers playing generated WAVs.

In-process through `Gateway.answer()`, and end to end through a connected call's `tap_offer`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from hotline.calls.gateway import RATE, Gateway, use_loopback_candidates
from hotline.errors import BadSdp, HotlineError
from tests.media import AudioPeer, ToneTrack, wav_rms, write_speech_wav, write_tone_wav
from tests.support import SLOW, ServerThread
from tests.test_call_ws import add_agent, connect_call, open_agent, open_caller, run

LOUD = 200.0  # RMS well above silence (s16); the WAVs used here are ~2,000-9,000


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wav") / "speech.wav"
    return write_speech_wav(path, "Hello, this is a test call to the elder hotline. " * 3)


@pytest.fixture(scope="module")
def silent_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tone_wav(tmp_path_factory.mktemp("wav") / "silence.wav", amplitude=0.0)


async def until(check: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `check()` until it returns something truthy."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def tap_directly(gw: Gateway, peer: AudioPeer, call_id: str, speaker: str) -> None:
    answer = await gw.answer(call_id, speaker, await peer.offer())
    assert "m=audio" in answer and "m=video" not in answer
    await peer.accept(answer)
    await peer.wait_connected(10 * SLOW)


def test_speech_wav_is_speech(speech_wav: Path) -> None:
    assert wav_rms(speech_wav) > LOUD


def test_gateway_hears_a_wav(speech_wav: Path) -> None:
    use_loopback_candidates()

    async def scenario() -> None:
        gw = Gateway()
        peer = AudioPeer.from_wav(speech_wav)
        pcm: list[bytes] = []
        try:
            await tap_directly(gw, peer, "call-1", "caller")
            assert gw.set_sink("call-1", "caller", pcm.append)
            leg = gw.leg("call-1", "caller")
            assert leg is not None
            await until(lambda: leg.frames >= 50 and leg.peak_rms > LOUD, what="loud frames")
            stats = gw.stats("call-1")
            assert set(stats) == {"caller"}
            assert stats["caller"]["state"] == "connected"
            assert stats["caller"]["connect_ms"] is not None
            assert stats["caller"]["seconds"] > 0.5
            # 16 kHz mono s16 reaches the sink in whole samples.
            await until(lambda: sum(map(len, pcm)) >= RATE, what="one second of PCM")
            assert all(len(chunk) % 2 == 0 for chunk in pcm)
            assert gw.tracks == {"audio": 1}  # no video reached the gateway
            assert gw.open_legs == 1
        finally:
            await peer.close()
            await gw.close()
        assert gw.open_legs == 0 and gw.stats("call-1") == {}

    run(scenario())


def test_silence_reads_as_silence(silent_wav: Path) -> None:
    use_loopback_candidates()

    async def scenario() -> None:
        gw = Gateway()
        peer = AudioPeer.from_wav(silent_wav)
        try:
            await tap_directly(gw, peer, "quiet", "agent")
            leg = gw.leg("quiet", "agent")
            await until(lambda: leg.frames >= 30, what="frames")
            assert leg.peak_rms < 50
        finally:
            await peer.close()
            await gw.close()

    run(scenario())


def test_two_legs_and_replacement() -> None:
    use_loopback_candidates()

    async def scenario() -> None:
        gw = Gateway()
        peers = [AudioPeer(ToneTrack(440)), AudioPeer(ToneTrack(660)), AudioPeer(ToneTrack(880))]
        try:
            await tap_directly(gw, peers[0], "c", "caller")
            await tap_directly(gw, peers[1], "c", "agent")
            assert set(gw.stats("c")) == {"caller", "agent"} and gw.open_legs == 2
            # A new tap from the same party replaces its old leg.
            first = gw.leg("c", "caller")
            await tap_directly(gw, peers[2], "c", "caller")
            assert gw.leg("c", "caller") is not first and gw.open_legs == 2
            await until(lambda: all(s["frames"] > 20 for s in gw.stats("c").values()), what="both")
            await gw.close_call("c")
            await gw.close_call("c")  # idempotent
            assert gw.open_legs == 0
            assert set(gw.tracks) == {"audio"}
        finally:
            for peer in peers:
                await peer.close()
            await gw.close()

    run(scenario())


@pytest.mark.parametrize(
    "sdp",
    [
        "not sdp",
        "v=0\r\ns=-\r\n",
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",  # no ICE credentials, no fingerprint
    ],
)
def test_gateway_refuses_bad_offers(sdp: str) -> None:
    async def scenario() -> None:
        gw = Gateway()
        # Plain non-SDP text is refused by the shared check (a BadMessage with the same code).
        with pytest.raises(HotlineError) as info:
            await gw.answer("x", "caller", sdp)
        assert info.value.code == "bad_sdp"
        assert gw.open_legs == 0

    run(scenario())


def test_gateway_refuses_a_video_tap() -> None:
    from aiortc.mediastreams import VideoStreamTrack

    async def scenario() -> None:
        gw = Gateway()
        peer = AudioPeer(ToneTrack())
        peer.pc.addTrack(VideoStreamTrack())
        try:
            with pytest.raises(BadSdp):
                await gw.answer("v", "caller", await peer.offer())
            assert gw.open_legs == 0 and not gw.tracks  # refused before any track arrived
        finally:
            await peer.close()

    run(scenario())


def test_tap_offer_through_a_connected_call(server: ServerThread, speech_wav: Path) -> None:
    agent_id = add_agent(server)
    gateway = server.running.gateway

    async def scenario() -> None:
        agent = await open_agent(server, agent_id)
        caller = await open_caller(server)
        call_id, _ = await connect_call(caller, agent, "cmn")
        caller_peer = AudioPeer.from_wav(speech_wav)
        agent_peer = AudioPeer(ToneTrack(300))
        try:
            await caller.send({"type": "tap_offer", "sdp": await caller_peer.offer()})
            answer = await caller.expect("tap_answer", call_id=call_id)
            await caller_peer.accept(answer["sdp"])
            await agent.send(
                {"type": "tap_offer", "call_id": call_id, "sdp": await agent_peer.offer()}
            )
            answer = await agent.expect("tap_answer", call_id=call_id)
            await agent_peer.accept(answer["sdp"])
            await caller_peer.wait_connected(10 * SLOW)
            await agent_peer.wait_connected(10 * SLOW)

            def heard() -> dict[str, Any] | None:
                stats = server.run(lambda: gateway.stats(call_id))
                both = set(stats) == {"caller", "agent"}
                loud = both and all(
                    s["frames"] >= 50 and s["peak_rms"] > LOUD for s in stats.values()
                )
                return stats if loud else None

            stats = await until(heard, what="both legs heard")
            assert stats["caller"]["state"] == stats["agent"]["state"] == "connected"
            # The console gets the counters once a second.
            level = await agent.expect("tap_level", call_id=call_id, timeout=5)
            assert level["caller"]["frames"] > 0
            assert server.run(lambda: set(gateway.tracks)) == {"audio"}
            # The caller drops: their leg closes; the agent's stays until the call ends.
            await caller.close()
            await agent.expect("caller_away", call_id=call_id)
            await until(lambda: set(server.run(lambda: gateway.stats(call_id))) == {"agent"})
            await agent.send({"type": "hangup", "call_id": call_id})
            await agent.expect("ended", call_id=call_id)
            await until(lambda: server.run(lambda: gateway.open_legs) == 0, what="legs closed")
        finally:
            await caller_peer.close()
            await agent_peer.close()

    run(scenario())
