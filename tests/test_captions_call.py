"""Captions through a real call: an aiortc peer speaks into the gateway tap; the agent reads it.

Fidelity: the in-call final text (after Opus, resampling, gating) must match what the same
deterministic model produces from the same WAV decoded directly.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from hotline.db import agents as agents_db
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from hotline.db import transcripts as transcripts_db
from tests.asr_helpers import file_decode_text, make_speech_wav, word_similarity
from tests.support import SLOW, Client, ServerThread, test_config


@pytest.fixture
def ko_server(tmp_path: Path):
    srv = ServerThread(test_config(tmp_path, captions_deterministic=True, caption_warm=1))
    engine = srv.running.captions.engine
    deadline = time.monotonic() + 60 * SLOW
    while engine.idle_recognizers("ko") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)  # the model loads once, in the background, at start
    yield srv
    srv.stop()


def speech_file(tmp_path: Path) -> Path:
    """Korean sentences with pauses between them (so utterances end and finals come)."""
    parts = []
    for i, text in enumerate(
        ["안녕하세요 도와주세요", "주문을 찾을 수 없어요", "환불을 받고 싶어요"]
    ):
        part = make_speech_wav(text, tmp_path / f"s{i}.wav")
        parts.append(str(part))
    out = tmp_path / "speech.wav"
    # sox: join the sentences with 1.2 s of silence after each.
    cmd = ["sox"]
    for p in parts:
        cmd += [p]
    subprocess.run([*cmd, str(tmp_path / "joined.wav")], check=True)
    subprocess.run(["sox", str(tmp_path / "joined.wav"), str(out), "pad", "0.5", "1.5"], check=True)
    return out


async def connect_call(srv: ServerThread, agent_id: int, link: str) -> tuple[Client, Client, str]:
    ticket = srv.services.signer.dumps("ws", {"agent": agent_id})
    agent = await Client.open(f"{srv.ws}?role=agent&token={ticket}")
    await agent.expect("hello")
    await agent.send({"type": "status", "status": "available"})
    caller = await Client.open(f"{srv.ws}?role=caller&link={link}")
    await caller.expect("hello")
    await caller.send({"type": "call"})
    ring = await agent.expect("ring")
    await agent.send({"type": "accept", "call_id": ring["call_id"]})
    await caller.expect("connected")
    return agent, caller, ring["call_id"]


async def speak_into_tap(caller: Client, wav: Path):
    """An aiortc peer playing `wav` (real time) into the gateway; returns (pc, player)."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaPlayer

    player = MediaPlayer(str(wav))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(player.audio)
    await pc.setLocalDescription(await pc.createOffer())
    await caller.send({"type": "tap_offer", "sdp": pc.localDescription.sdp})
    answer = await caller.expect("tap_answer")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    return pc, player


def test_caption_fidelity_through_the_gateway(ko_server: ServerThread, tmp_path: Path) -> None:
    srv = ko_server
    agent_row = agents_db.add(srv.db, "kim", "pw", ["ko"])
    elder = elders_db.add(srv.db, "김할머니", dialect="ko", phone="13812345678")
    link = elders_db.new_link(srv.db, elder.id).token
    wav = speech_file(tmp_path)
    expected = file_decode_text(wav)
    assert expected, "the model heard nothing in the file"

    async def scenario() -> tuple[list[dict], str]:
        agent, caller, call_id = await connect_call(srv, agent_row.id, link)
        pc, _player = await speak_into_tap(caller, wav)
        await agent.expect("captions_status", state="on", timeout=20)
        finals: list[dict] = []
        partials = 0
        status = None
        deadline = asyncio.get_running_loop().time() + 30 * SLOW
        while asyncio.get_running_loop().time() < deadline:
            try:
                msg = await agent.expect("caption", timeout=4)
            except TimeoutError:
                if finals:
                    break
                continue
            if msg["kind"] == "final":
                finals.append(msg)
            else:
                partials += 1
        status = [m for m in agent.seen if m["type"] == "captions_status"]
        assert partials > 0
        assert status and status[-1]["state"] == "on", status
        await pc.close()
        await agent.send({"type": "hangup", "call_id": call_id})
        await agent.expect("ended")
        return finals, call_id

    finals, call_id = srv.call(scenario(), timeout=60)
    got = " ".join(f["text"] for f in finals)
    similarity = word_similarity(got, expected)
    assert similarity >= 0.8, (got, expected, similarity)
    for f in finals:
        assert all({"w", "start", "end", "conf"} <= set(w) for w in f["words"])
    stored = transcripts_db.lines(srv.db, call_id)
    assert [line["text"] for line in stored] == [f["text"] for f in finals]
    assert calls_db.get(srv.db, call_id)["outcome"] == "completed"
