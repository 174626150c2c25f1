"""Captions from two real `hotline asr-worker` processes: balance, failover, faults, wiring.

The workers are real processes on loopback ports; the faulty workers (one that hangs, one
that answers garbage, one that speaks another protocol) are tiny websocket servers in the
test, because no real vosk-server misbehaves on cue. Waits are polls with deadlines; the
failover gap is measured and printed, never asserted (the machine is shared).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from hotline.asr.farm import WorkerFarm, WorkersSettingError, parse_workers
from hotline.asr.registry import load_registry
from hotline.db import agents as agents_db
from hotline.db import elders as elders_db
from hotline.db import transcripts as transcripts_db
from tests.asr_helpers import REGISTRY, make_speech_wav, read_pcm
from tests.asr_workers import WorkerProcess, start_workers
from tests.support import SLOW, ServerThread, connect_call, test_config
from tests.test_captions_call import speak_into_tap, speech_file

STEP = 3200  # 0.1 s of 16 kHz s16 mono


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """Three Korean sentences, each followed by a pause (finals come at each pause)."""
    tmp = tmp_path_factory.mktemp("speech")
    parts = []
    for i, text in enumerate(
        ["안녕하세요 도와주세요", "비밀번호를 잊어버렸어요", "오늘 병원에 가야 해요"]
    ):
        said = make_speech_wav(text, tmp / f"s{i}.wav")
        padded = tmp / f"p{i}.wav"
        subprocess.run(["sox", str(said), str(padded), "pad", "0.3", "1.0"], check=True)
        parts.append(str(padded))
    out = tmp / "speech.wav"
    subprocess.run(["sox", *parts, str(out)], check=True)
    return out, read_pcm(out)[0]


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two workers, one decoding process each, deterministic decoding, no warm-up (cheaper)."""
    data = tmp_path_factory.mktemp("workers")
    ws = start_workers(data, 2, "--workers", "1", "--warm", "0", "--deterministic")
    yield ws
    for w in ws:
        w.stop()


@pytest.fixture(scope="module")
def registry() -> Any:
    return load_registry(REGISTRY)


class Collector:
    """Events of one stream, with a poll that has a deadline."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def finals(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("kind") == "final"]

    def states(self) -> list[str]:
        return [e["state"] for e in self.events if e["type"] == "captions_status"]

    async def until(self, check: Any, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout * SLOW
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met; events: {self.events[-5:]}")
            await asyncio.sleep(0.05)


async def speak(stream: Any, pcm: bytes, stop_at: Any = None) -> None:
    """Feed `pcm` at real time, in 0.1 s pieces, as the gateway's sink would."""
    t0 = time.monotonic()
    for i in range(0, len(pcm), STEP):
        stream.feed(pcm[i : i + STEP])
        delay = t0 + (i + STEP) / 32000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing audio like a microphone, not synchronisation


def test_settings_are_validated(registry: Any) -> None:
    assert parse_workers("", registry) == {}
    got = parse_workers('{"ko": ["ws://a:1", "ws://a:1", "ws://b:2"]}', registry)
    assert got == {"ko": ("ws://a:1", "ws://b:2")}
    for bad in ("[1]", "{", '{"xx": ["ws://a"]}', '{"ko": ["http://a"]}', '{"ko": [1]}'):
        with pytest.raises(WorkersSettingError):
            parse_workers(bad, registry)


def test_streams_are_balanced_and_each_gets_captions(
    workers: list[WorkerProcess], speech: tuple[Path, bytes], registry: Any
) -> None:
    """Four streams opened together: two on each worker (fidelity: test_asr_worker.py)."""
    pcm = speech[1][: 32000 * 4]  # the first sentence and its pause
    farm = WorkerFarm(registry, {"ko": [w.url for w in workers]})

    async def scenario() -> tuple[list[int], list[Collector]]:
        loop = asyncio.get_running_loop()
        sinks = [Collector() for _ in range(4)]
        streams = [farm.open("ko", s, loop, call_id=f"c{i}") for i, s in enumerate(sinks)]
        talking = asyncio.gather(*(speak(st, pcm) for st in streams))
        for sink in sinks:
            await sink.until(lambda sink=sink: "on" in sink.states())
        load = [w.open_streams for w in farm.workers.values()]
        await talking
        await asyncio.gather(*(st.aclose() for st in streams))
        return load, sinks

    load, sinks = asyncio.run(scenario())
    assert load == [2, 2]
    for sink in sinks:
        assert sink.states() == ["on"]
        assert sink.finals() and all(f["text"] for f in sink.finals())
    assert all(w.open_streams == 0 for w in farm.workers.values())


async def _fault_server(kind: str) -> tuple[Any, str]:
    """A websocket server that misbehaves: answers garbage, or speaks binary."""
    from websockets.asyncio.server import serve

    async def handler(ws: Any) -> None:
        async for _message in ws:
            await ws.send("{not json" if kind == "garbage" else b"\x00\x01")

    server = await serve(handler, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    return server, f"ws://127.0.0.1:{port}"


def test_faulty_workers_are_skipped_and_no_worker_turns_captions_off(
    workers: list[WorkerProcess], speech: tuple[Path, bytes], registry: Any
) -> None:
    """Garbage and wrong-protocol workers first in the list, then a real worker that hangs
    (SIGSTOP) mid-stream: the stream ends up on the other real worker with captions; a
    dialect without workers and an unreachable worker report why."""
    _, pcm = speech
    hung = workers[0]

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        faults = [await _fault_server(k) for k in ("garbage", "binary")]
        urls = [u for _, u in faults] + [w.url for w in workers]
        farm = WorkerFarm(registry, {"ko": urls})
        sink = Collector()
        stream = farm.open("ko", sink, loop, call_id="faults")
        talking = asyncio.create_task(speak(stream, pcm))
        await sink.until(lambda: any(e.get("kind") == "partial" for e in sink.events))
        assert stream.stats["worker"] == hung.url
        os.kill(hung.proc.pid, signal.SIGSTOP)
        try:
            await sink.until(lambda: stream.stats["worker"] == workers[1].url)
        finally:
            os.kill(hung.proc.pid, signal.SIGCONT)
        await talking
        await stream.aclose()
        assert sink.finals()
        assert stream.stats["reconnects"] == 3
        assert "reconnecting" in sink.states() and sink.states()[-1] == "on"
        errors = {w["url"]: w["last_error"] for w in farm.health() if w["failures"]}
        assert set(errors) == set(urls[:3]), errors
        assert "not vosk-server" in errors[urls[0]] and "not vosk-server" in errors[urls[1]]
        assert "no pong" in errors[hung.url]
        for server, _ in faults:
            server.close()

        assert farm.available("cmn") == (False, "no_worker_for_dialect")
        closed = WorkerFarm(registry, {"ko": [urls[0]]})  # that server is gone now
        sink = Collector()
        stream = closed.open("ko", sink, loop, call_id="none")
        stream.feed(pcm[: STEP * 5])
        await sink.until(lambda: "off" in sink.states())
        assert sink.events[-1]["reason"] == "no_asr_worker"
        await stream.aclose()

    asyncio.run(scenario())


def test_captions_in_a_real_call_come_from_a_worker(
    workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """HOTLINE_ASR_WORKERS: the hotline decodes nothing; masking, transcripts stay here."""
    urls = json.dumps({"ko": [workers[1].url]})
    srv = ServerThread(test_config(tmp_path / "data", asr_workers=urls))
    try:
        agent_row = agents_db.add(srv.db, "kim", "pw", ["ko"])
        elder = elders_db.add(srv.db, "김할머니", dialect="ko", phone="13812345678")
        link = elders_db.new_link(srv.db, elder.id).token
        wav = speech_file(tmp_path)

        async def scenario() -> tuple[list[dict], str]:
            agent, caller, call_id = await connect_call(srv, agent_row.id, link)
            pc, _player = await speak_into_tap(caller, wav)
            await agent.expect("captions_status", state="on", timeout=30 * SLOW)
            final: dict[str, Any] = {}
            while final.get("kind") != "final":
                final = await agent.expect("caption", timeout=30 * SLOW)
            await pc.close()
            await agent.send({"type": "hangup", "call_id": call_id})
            await agent.expect("ended")
            return [final], call_id

        finals, call_id = srv.call(scenario(), timeout=90 * SLOW)
        assert finals[0]["text"] and "utterance_end" in finals[0]
        deadline = time.monotonic() + 10 * SLOW
        while not transcripts_db.lines(srv.db, call_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert transcripts_db.lines(srv.db, call_id)[0]["text"] == finals[0]["text"]
        farm = srv.running.captions.engine
        assert isinstance(farm, WorkerFarm) and farm.health()[0]["failures"] == 0
    finally:
        srv.stop()


def test_a_worker_killed_mid_utterance_is_replaced(
    workers: list[WorkerProcess], speech: tuple[Path, bytes], registry: Any
) -> None:
    """kill -9 of the stream's worker while a sentence is being spoken: "reconnecting", then
    the other worker goes on from the replayed audio; no final twice. Last: it kills one."""
    _, pcm = speech
    farm = WorkerFarm(registry, {"ko": [w.url for w in workers]})

    async def scenario() -> tuple[Collector, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        sink = Collector()
        stream = farm.open("ko", sink, loop, call_id="kill")
        talking = asyncio.create_task(speak(stream, pcm))
        await sink.until(lambda: any(e.get("kind") == "partial" for e in sink.events))
        victim = next(w for w in workers if w.url == stream.stats["worker"])
        await asyncio.to_thread(victim.kill)
        await sink.until(lambda: sink.states()[-1:] == ["on"] and "reconnecting" in sink.states())
        await talking
        await stream.aclose()
        return sink, stream.stats

    sink, stats = asyncio.run(scenario())
    print(f"failover gap after kill -9: {stats['failover_gaps_ms']} ms")
    assert sink.states() == ["on", "reconnecting", "on"]
    assert len(stats["failover_gaps_ms"]) == 1
    finals = sink.finals()
    assert finals and stats["finals"] == len(finals)
    spans = [(f["utterance_start"], f["utterance_end"]) for f in finals]
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end - 0.05, spans  # no final covers audio already captioned
