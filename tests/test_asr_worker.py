"""`hotline asr-worker` speaks the vosk-server protocol, message by message, as a real process.

The client here is written from vosk-server's own test client (websocket/test.py): a config
text frame, binary PCM in 0.2 s chunks each answered by one `{"partial"}` or final
`{"text", "result"}` object, then the literal `{"eof" : 1}` answered by the last final, after
which the server closes normally. Bad clients get a close code and a reason; other streams go on.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.asr_helpers import (
    deterministic_model,
    file_decode_text,
    make_speech_wav,
    read_pcm,
    word_similarity,
)
from tests.asr_workers import WorkerProcess, start_workers
from tests.support import SLOW, wait_until

CHUNK = 6400  # 0.2 s of 16 kHz s16 mono, as vosk-server's clients send
CLOSE_WAIT = 20.0 * SLOW


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """Two Korean sentences with pauses (utterances end, finals come)."""
    tmp = tmp_path_factory.mktemp("speech")
    parts = []
    for i, text in enumerate(["안녕하세요 도와주세요", "비밀번호를 잊어버렸어요"]):
        said = make_speech_wav(text, tmp / f"s{i}.wav")
        padded = tmp / f"p{i}.wav"
        subprocess.run(["sox", str(said), str(padded), "pad", "0.3", "1.0"], check=True)
        parts.append(str(padded))
    out = tmp / "speech.wav"
    subprocess.run(["sox", *parts, str(out)], check=True)
    return out, read_pcm(out)[0]


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One worker: 2 decoding processes (one warm recognizer each, kept), 3 streams at most,
    silent clients closed after 3 s."""
    data = tmp_path_factory.mktemp("worker")
    # A short warm-up (not the test's sentences): only keep-warm's plumbing is under test.
    warm = make_speech_wav("여보세요", data / "warm.wav")
    args = ["--workers", "2", "--max-streams", "3", "--idle-seconds", "3", "--warm", "1"]
    args += ["--warm-speech", str(warm)]
    (w,) = start_workers(data, 1, *args, "--deterministic")
    yield w
    w.stop()


async def vosk_session(url: str, pcm: bytes) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """The vosk-server test client: (answers per chunk, answer to eof, close code)."""
    async with connect(url) as ws:
        await ws.send('{ "config" : { "sample_rate" : 16000 } }')
        answers = []
        for i in range(0, len(pcm), CHUNK):
            await ws.send(pcm[i : i + CHUNK])
            answers.append(json.loads(await ws.recv()))
        await ws.send('{"eof" : 1}')
        last = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), CLOSE_WAIT)
        return answers, last, ws.close_code or 0


async def closed_with(ws: Any) -> tuple[int, str]:
    """Wait for the server to close; (code, reason)."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), CLOSE_WAIT)
    return ws.close_code or 0, ws.close_reason or ""


def test_a_stream_taking_a_warm_recognizer_gets_it_replaced(
    worker: WorkerProcess, speech: tuple[Path, bytes]
) -> None:
    """Keep-warm: while a stream holds a decoding process's warm recognizer, that process
    warms a replacement in the background, so the next stream does not start cold.

    First in the file: the worker's pools are as it started them (a closed stream gives its
    recognizer back, so later the pools hold more than they keep).
    """
    _, pcm = speech
    wait_until(lambda: _health(worker.url)["warm"] == [1, 1], 120, "one warm recognizer each")

    async def scenario() -> None:
        async with connect(worker.url) as ws:
            deadline = asyncio.get_running_loop().time() + 120 * SLOW
            for i in itertools.cycle(range(0, len(pcm), CHUNK)):  # audio goes on, as in a call
                await ws.send(pcm[i : i + CHUNK])  # the first opens the stream (takes one)
                await ws.recv()
                health = await asyncio.to_thread(_health, worker.url)
                assert health["streams"] == 1
                if health["warm"] == [1, 1]:
                    break
                assert asyncio.get_running_loop().time() < deadline, health
            await ws.send('{"eof" : 1}')
            await ws.recv()

    asyncio.run(scenario())


def test_protocol_message_by_message(worker: WorkerProcess, speech: tuple[Path, bytes]) -> None:
    """One answer per chunk, vosk's shapes, finals equal a direct decode; eof ends normally."""
    wav, pcm = speech
    answers, last, code = asyncio.run(vosk_session(worker.url, pcm))
    assert len(answers) == (len(pcm) + CHUNK - 1) // CHUNK
    for a in answers:
        assert set(a) in ({"partial"}, {"text", "result"}, {"text"}), a
    assert any(a.get("partial") for a in answers), "no partial was ever non-empty"
    finals = [a for a in answers if "text" in a] + [last]
    assert "text" in last
    for final in finals:
        for w in final.get("result", []):
            assert set(w) == {"conf", "start", "end", "word"}
    heard = " ".join(f["text"] for f in finals if f["text"]).split()
    direct = file_decode_text(wav, chunk_seconds=0.2)
    assert direct, "the model heard nothing in the direct decode"
    assert word_similarity(" ".join(heard), direct) >= 0.9, (heard, direct)
    assert code == 1000
    # Word times count from the stream's first audio (vosk-server's new recognizer per
    # connection), though this worker's recognizers are pooled and warmed (their own clock
    # runs from creation): the same as a direct decode of the file.
    starts = [w["start"] for f in finals for w in f.get("result", [])]
    assert starts and abs(starts[0] - _first_word_start(pcm)) < 0.05, starts


def _first_word_start(pcm: bytes) -> float:
    """When a new deterministic recognizer hears the first word of `pcm` (0.2 s chunks)."""
    import vosk

    rec = vosk.KaldiRecognizer(deterministic_model(), 16000)
    rec.SetWords(True)
    results = []
    for i in range(0, len(pcm), CHUNK):
        if rec.AcceptWaveform(pcm[i : i + CHUNK]):
            results.append(json.loads(rec.Result()))
    results.append(json.loads(rec.FinalResult()))
    return next(w["start"] for r in results for w in r.get("result", []))


def test_bad_clients_get_a_clear_close_and_others_go_on(
    worker: WorkerProcess, speech: tuple[Path, bytes]
) -> None:
    """Garbage, text instead of audio, a wrong rate, a model path, silence: each closed alone."""
    _, pcm = speech

    async def bad(frames: list[str | bytes]) -> tuple[int, str]:
        async with connect(worker.url) as ws:
            for f in frames:
                await ws.send(f)
            return await closed_with(ws)

    async def keep_talking(good: Any, stop: asyncio.Event) -> int:
        """The good stream speaks in real time (0.2 s per chunk) until told to stop."""
        answered = 0
        while not stop.is_set():
            for i in range(0, len(pcm), CHUNK):
                await good.send(pcm[i : i + CHUNK])
                assert set(json.loads(await good.recv())) & {"partial", "text"}
                answered += 1
                try:
                    await asyncio.wait_for(stop.wait(), 0.2)
                    return answered
                except TimeoutError:
                    pass
        return answered

    async def scenario() -> None:
        async with connect(worker.url) as good:
            await good.send('{ "config" : { "sample_rate" : 16000 } }')
            stop = asyncio.Event()
            talking = asyncio.create_task(keep_talking(good, stop))
            cases: dict[str, tuple[list[str | bytes], int, str]] = {
                "odd bytes": ([b"\x01\x02\x03"], 1003, "16-bit"),
                "not json": (["hello"], 1003, "not JSON"),
                "text instead of audio": (['{"text": "hi"}'], 1003, "expected"),
                "rate": (['{"config": {"sample_rate": 1000}}'], 1003, "sample_rate"),
                "rate type": (['{"config": {"sample_rate": "fast"}}'], 1003, "sample_rate"),
                "model path": (['{"config": {"model": "/etc"}}'], 1008, "model"),
                "late config": ([b"\0\0" * 1600, '{"config": {}}'], 1008, "before the audio"),
            }
            for name, (frames, code, reason) in cases.items():
                got = await bad(frames)
                assert got[0] == code and reason in got[1], (name, got)
            # Sending nothing at all: closed after --idle-seconds.
            async with connect(worker.url) as silent:
                code, reason = await closed_with(silent)
                assert code == 1008 and "no data" in reason
            stop.set()
            assert await talking > 0  # the good stream was answered all along
            await good.send('{"eof" : 1}')
            assert "text" in json.loads(await good.recv())

    asyncio.run(scenario())


def test_cap_refuses_more_streams_with_a_reason(worker: WorkerProcess) -> None:
    """Three streams are served; a fourth is closed with 1013 "worker full"; health shows it."""

    async def scenario() -> None:
        held = [await connect(worker.url) for _ in range(3)]
        try:
            for ws in held:  # each really holds a recognizer
                await ws.send(b"\0\0" * 1600)
                assert "partial" in json.loads(await ws.recv())
            health = await asyncio.to_thread(_health, worker.url)
            assert health["streams"] == 3 and health["max_streams"] == 3
            async with connect(worker.url) as extra:
                code, reason = await closed_with(extra)
            assert code == 1013 and "worker full" in reason
        finally:
            for ws in held:
                await ws.close()

    asyncio.run(scenario())


def _health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.replace("ws://", "http://") + "/health", timeout=10) as r:
        return json.loads(r.read())


def test_a_dead_decoding_process_closes_only_its_streams(
    worker: WorkerProcess, speech: tuple[Path, bytes]
) -> None:
    """kill -9 of one decoding process: its stream gets 1011, new streams use the other one.

    Last in the file: the module's worker keeps one decoding process afterwards.
    """
    _, pcm = speech

    async def scenario() -> None:
        a, b = await connect(worker.url), await connect(worker.url)
        for ws in (a, b):
            await ws.send(pcm[:CHUNK])
            await ws.recv()
        pids = (await asyncio.to_thread(_health, worker.url))["decoder_pids"]
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGKILL)
        # Both streams go on chunk by chunk together (neither idles into the 3 s idle close
        # while the other one is served).
        codes: dict[Any, int] = {}
        for i in [*range(CHUNK, len(pcm), CHUNK), -1]:
            for ws in (a, b):
                if ws in codes:
                    continue
                try:
                    await ws.send(pcm[i : i + CHUNK] if i >= 0 else '{"eof" : 1}')
                    await asyncio.wait_for(ws.recv(), CLOSE_WAIT)
                    if i < 0:
                        codes[ws] = 1000
                except ConnectionClosed:
                    codes[ws] = ws.close_code or 0
        assert sorted(codes.values()) == [1000, 1011], codes
        answers, last, code = await vosk_session(worker.url, pcm[: CHUNK * 10])
        assert code == 1000 and "text" in last

    asyncio.run(scenario())
