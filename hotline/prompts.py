"""Spoken prompts: catalogue text in the caller's language, spoken in their dialect's voice.

A prompt is a signed URL (/tts/<token>.wav) carrying the text and the voice, so only the
server decides what is spoken; the browser fetches it and Flask renders it once (cached).

The place-in-line announcement is the one prompt sent thousands of times a second in a
surge, so it has a plain URL instead (/tts/place/<lang>/<dialect>/<ahead>-<minutes>.wav):
its text is a fixed catalogue string with two bounded integers, so nothing needs signing.
"""

from __future__ import annotations

from hotline.i18n import LANGS, t
from hotline.tokens import Signer

MANDARIN = "sit/cmn-latn-pinyin"
ENGLISH = "gmw/en-us"
MAX_AHEAD = 1_000_000
MAX_MINUTES = 100_000


def voice_for(lang: str, dialect_voice: str | None) -> str:
    """The espeak-ng voice that can read catalogue text of `lang` in the elder's dialect."""
    if lang == "en":
        return ENGLISH
    if dialect_voice and dialect_voice.startswith("sit/"):
        return dialect_voice  # Chinese voices read Chinese text in their own pronunciation
    return MANDARIN


class Prompts:
    """Makes signed spoken-prompt URLs."""

    def __init__(self, signer: Signer, voices: dict[str, str]) -> None:
        self.signer = signer
        self.voices = voices  # dialect id -> espeak-ng voice
        self._urls: dict[tuple[str, str], str] = {}  # queue prompts repeat: sign each once

    def url_for_text(self, text: str, lang: str, dialect: str) -> str:
        voice = voice_for(lang, self.voices.get(dialect))
        url = self._urls.get((text, voice))
        if url is None:
            if len(self._urls) > 20_000:
                self._urls.clear()
            url = "/tts/" + self.signer.dumps("tts", {"t": text, "v": voice}) + ".wav"
            self._urls[(text, voice)] = url
        return url

    def url(self, lang: str, dialect: str, key: str, **values: object) -> str:
        return self.url_for_text(t(lang, key, **values), lang, dialect)

    def place_url(self, lang: str, dialect: str, ahead: int, minutes: int) -> str:
        """The spoken place in line (ahead 0: "you are next")."""
        return f"/tts/place/{lang}/{dialect}/{ahead}-{minutes}.wav"

    def place_text(self, lang: str, dialect: str, ahead: int, minutes: int) -> tuple[str, str]:
        """(text, voice) of a place URL's parts; ValueError if they are not ones we make."""
        if lang not in LANGS or dialect not in self.voices:
            raise ValueError("unknown language or dialect")
        if not (0 <= ahead <= MAX_AHEAD and 1 <= minutes <= MAX_MINUTES):
            raise ValueError("out of range")
        if ahead == 0:
            text = t(lang, "caller.say_next")
        else:
            text = t(lang, "caller.say_queue", ahead=ahead, minutes=minutes)
        return text, voice_for(lang, self.voices.get(dialect))

    def decode(self, token: str) -> tuple[str, str]:
        """(text, voice) of a prompt token; raises Unauthorized if forged."""
        payload = self.signer.loads("tts", token)
        return str(payload["t"]), str(payload["v"])
