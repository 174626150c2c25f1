"""The vosk-server websocket protocol, as pure parsing and validation of client frames.

What a client sends (alphacep/vosk-server `websocket/asr_server.py`, which Jitsi's Jigasi
and the official `alphacep/kaldi-*` containers speak):

    text   {"config": {"sample_rate": 16000, "words": true, "max_alternatives": 0,
                       "phrase_list": [...]}}         optional, before the audio; no answer
    binary 16-bit little-endian mono PCM, any length   answered by ONE text frame: vosk's
                                                       `{"partial": ...}` or, at an endpoint,
                                                       its final `{"text": ..., "result": [...]}`
    text   {"reset" : 1}                                answered by the final; stream goes on
    text   {"eof" : 1}                                  answered by the final; stream ends

vosk-server compares the eof text literally; we parse it as JSON so `{"eof":1}` works too.
Anything else is refused with a close code and a reason (see `Refused`), never a crash.
A client-given model path (vosk-server's `config.model`) is refused: models come from the
registry only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

EOF = '{"eof" : 1}'  # exactly as vosk-server's clients send it
RESET = '{"reset" : 1}'
MIN_RATE, MAX_RATE = 8000, 48000
MAX_ALTERNATIVES = 10
MAX_PHRASES = 2000

# Close codes (RFC 6455): 1003 unsupported data, 1008 policy, 1011 server error, 1013 later.
UNSUPPORTED = 1003
POLICY = 1008
SERVER_ERROR = 1011
TRY_LATER = 1013


class Refused(Exception):
    """A client frame the worker will not accept; the stream is closed with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class StreamConfig:
    """A stream's recognizer settings, from the defaults and the client's config frame."""

    sample_rate: float = 16000.0
    words: bool = True
    max_alternatives: int = 0
    phrase_list: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Frame:
    """One parsed client frame: kind is "config", "audio", "reset" or "eof"."""

    kind: str
    audio: bytes = b""
    config: dict[str, Any] | None = None


def parse_frame(message: str | bytes) -> Frame:
    """Classify a client frame; raises Refused for anything the protocol does not allow."""
    if isinstance(message, bytes | bytearray | memoryview):
        data = bytes(message)
        if len(data) % 2:
            raise Refused(UNSUPPORTED, "audio must be 16-bit PCM: odd number of bytes")
        return Frame("audio", audio=data)
    try:
        obj = json.loads(message)
    except ValueError:
        raise Refused(UNSUPPORTED, "text frame is not JSON: send audio as binary frames") from None
    if isinstance(obj, dict) and isinstance(obj.get("config"), dict):
        return Frame("config", config=obj["config"])
    if obj == {"eof": 1}:
        return Frame("eof")
    if obj == {"reset": 1}:
        return Frame("reset")
    raise Refused(UNSUPPORTED, 'expected {"config": {...}}, {"eof" : 1}, {"reset" : 1} or audio')


def apply_config(cfg: StreamConfig, given: dict[str, Any]) -> StreamConfig:
    """The stream config after a client's config frame; raises Refused on bad values."""
    if "model" in given:
        raise Refused(POLICY, "this worker serves one installed model; config.model refused")
    out = StreamConfig(cfg.sample_rate, cfg.words, cfg.max_alternatives, cfg.phrase_list)
    if "sample_rate" in given:
        rate = given["sample_rate"]
        if isinstance(rate, bool) or not isinstance(rate, int | float | str):
            raise Refused(UNSUPPORTED, "sample_rate must be a number") from None
        try:
            out.sample_rate = float(rate)
        except ValueError:
            raise Refused(UNSUPPORTED, "sample_rate must be a number") from None
        if not MIN_RATE <= out.sample_rate <= MAX_RATE:
            raise Refused(UNSUPPORTED, f"sample_rate must be {MIN_RATE}-{MAX_RATE} Hz")
    if "words" in given:
        out.words = bool(given["words"])
    if "max_alternatives" in given:
        n = given["max_alternatives"]
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_ALTERNATIVES:
            raise Refused(UNSUPPORTED, f"max_alternatives must be 0-{MAX_ALTERNATIVES}")
        out.max_alternatives = n
    if "phrase_list" in given:
        phrases = given["phrase_list"]
        if (
            not isinstance(phrases, list)
            or len(phrases) > MAX_PHRASES
            or not all(isinstance(p, str) for p in phrases)
        ):
            raise Refused(UNSUPPORTED, f"phrase_list must be a list of <= {MAX_PHRASES} strings")
        out.phrase_list = phrases or None
    return out


def config_frame(sample_rate: int, words: bool = True) -> str:
    """The first text frame a client sends."""
    return json.dumps({"config": {"sample_rate": sample_rate, "words": int(words)}})


@dataclass(frozen=True)
class Answer:
    """One worker answer: kind "partial" or "final" (text, the parsed object)."""

    kind: str
    text: str
    obj: dict[str, Any]


def parse_answer(message: str | bytes) -> Answer:
    """Parse a worker's text frame; raises ValueError when it is not the vosk-server shape."""
    if not isinstance(message, str):
        raise ValueError("binary frame from a speech worker")
    obj = json.loads(message)
    if not isinstance(obj, dict):
        raise ValueError("answer is not a JSON object")
    if "partial" in obj and isinstance(obj["partial"], str):
        return Answer("partial", obj["partial"], obj)
    if "text" in obj and isinstance(obj["text"], str):
        return Answer("final", obj["text"], obj)
    alternatives = obj.get("alternatives")
    if isinstance(alternatives, list):  # max_alternatives > 0: the best one is first
        best = alternatives[0] if alternatives and isinstance(alternatives[0], dict) else {}
        return Answer("final", str(best.get("text", "")), {**best, "text": best.get("text", "")})
    raise ValueError("answer has neither partial nor text")
