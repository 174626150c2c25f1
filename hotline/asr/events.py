"""Caption events built from vosk results: junk filtered, numbers masked, glossed, alerted.

Pure functions and one small class, so what leaves the engine can be tested without vosk.
Every text that goes into an event passes through `hotline.privacy.mask_text` here.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NotRequired, TypedDict

from hotline.asr.alert_rules import AlertRule, spot_rules
from hotline.asr.alerts import spot_alerts
from hotline.asr.lexicon import gloss_text
from hotline.privacy import mask_text

LOW_CONFIDENCE = 0.6
# Tokens the Korean model emits for noise (FIELD-NOTES), and vosk's unknown-word markers.
_JUNK = re.compile(r"^(\[[^\]]*\]|<[^>]*>|[-‐–—_.·]+)$")
_DIGITISH = re.compile(r"[0-9０-９零〇一幺二两三四五六七八九十百千万]")


class Word(TypedDict):
    """One word of a final caption: masked text, confidence, and stream times when known."""

    w: str
    conf: float
    low: bool
    start: NotRequired[float]
    end: NotRequired[float]


class PartialCaption(TypedDict):
    type: Literal["caption"]
    speaker: str
    kind: Literal["partial"]
    text: str


class FinalCaption(TypedDict):
    type: Literal["caption"]
    speaker: str
    kind: Literal["final"]
    text: str
    gloss: str
    words: list[Word]
    alerts: list[dict[str, str]]
    utterance_start: float | None
    utterance_end: float | None


class CaptionStatus(TypedDict):
    type: Literal["captions_status"]
    state: str
    dialect: str
    reason: str


# What a caption stream emits (typed shapes of the `caption` and `captions_status` messages).
CaptionEvent = PartialCaption | FinalCaption | CaptionStatus


def is_junk(word: str) -> bool:
    """True for tokens that are noise markers rather than words (`[0]`, `[10]`, `-`)."""
    return not word.strip() or bool(_JUNK.match(word.strip()))


def clean_text(text: str) -> str:
    """Text with junk tokens removed and whitespace collapsed (not masked)."""
    return " ".join(w for w in text.split() if not is_junk(w))


def mask_words(words: Sequence[str]) -> list[str]:
    """Words safe to show: when masking changes the joined text, numeric words become stars."""
    joined = " ".join(words)
    if mask_text(joined) == joined:
        return list(words)
    return ["*" * len(w) if _DIGITISH.search(w) else mask_text(w) for w in words]


def partial_event(speaker: str, text: str) -> PartialCaption:
    """A `caption` partial event (text masked)."""
    return {"type": "caption", "speaker": speaker, "kind": "partial", "text": mask_text(text)}


def final_event(
    speaker: str,
    result: Mapping[str, Any],
    *,
    to_stream_time: Any,
    lexicon: Mapping[str, str],
    alerts: Mapping[str, Sequence[str]],
    rules: Sequence[AlertRule] = (),
) -> FinalCaption | None:
    """A `caption` final event from a vosk Result() dict, or None when it holds no words."""
    raw = [w for w in result.get("result") or [] if isinstance(w, Mapping) and "word" in w]
    kept = [w for w in raw if not is_junk(str(w["word"]))]
    if not kept and result.get("text"):
        # SetWords was off or the result had no timing: fall back to the plain text.
        words_text = clean_text(str(result["text"])).split()
        kept = [{"word": w} for w in words_text]
    if not kept:
        return None
    shown = mask_words([str(w["word"]) for w in kept])
    text = " ".join(shown)
    words: list[Word] = []
    for w, masked in zip(kept, shown, strict=True):
        conf = float(w.get("conf", 1.0))
        entry: Word = {"w": masked, "conf": round(conf, 3), "low": conf < LOW_CONFIDENCE}
        if "start" in w and "end" in w:
            entry["start"] = round(to_stream_time(float(w["start"])), 3)
            entry["end"] = round(to_stream_time(float(w["end"])), 3)
        words.append(entry)
    timed = [w for w in raw if "start" in w and "end" in w]
    start = round(to_stream_time(float(timed[0]["start"])), 3) if timed else None
    end = round(to_stream_time(float(timed[-1]["end"])), 3) if timed else None
    return {
        "type": "caption",
        "speaker": speaker,
        "kind": "final",
        "text": text,
        "gloss": gloss_text(text, lexicon),
        "words": words,
        "alerts": alerts_in(text, alerts, rules),
        "utterance_start": start,
        "utterance_end": end,
    }


def alerts_in(
    text: str, phrases: Mapping[str, Sequence[str]], rules: Sequence[AlertRule]
) -> list[dict[str, str]]:
    """Literal phrase alerts, then rule alerts whose phrase is not already reported."""
    found = spot_alerts(text, phrases)
    seen = {a["phrase"] for a in found}
    return found + [a for a in spot_rules(text, rules) if a["phrase"] not in seen]


def status_event(state: str, dialect: str, reason: str = "") -> CaptionStatus:
    """A `captions_status` event: state "on" or "off", with the reason when off."""
    return {"type": "captions_status", "state": state, "dialect": dialect, "reason": reason}


class Timeline:
    """Maps recognizer time (seconds of audio it consumed) to stream time across gated gaps."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._fed: list[int] = []  # recognizer sample offset where each segment starts
        self._stream: list[int] = []  # stream sample offset of the same point
        self._next_stream = -1

    def fed(self, fed_at: int, stream_at: int, samples: int) -> None:
        """Record that `samples` samples from stream offset `stream_at` went in at `fed_at`."""
        if stream_at != self._next_stream:
            self._fed.append(fed_at)
            self._stream.append(stream_at)
            if len(self._fed) > 512:  # old segments are long final; keep the mapping small
                del self._fed[:256], self._stream[:256]
        self._next_stream = stream_at + samples

    def to_stream(self, seconds: float) -> float:
        """Stream time in seconds of a recognizer timestamp."""
        x = int(round(seconds * self.rate))
        i = bisect.bisect_right(self._fed, x) - 1
        if i < 0:
            return (self._stream[0] - (self._fed[0] - x)) / self.rate if self._fed else seconds
        return (self._stream[i] + x - self._fed[i]) / self.rate
