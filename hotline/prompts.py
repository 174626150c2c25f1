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
# The place-in-line prompts are a small fixed set, so that the cache of spoken files stays
# small and a client cannot make the server render (and store) a new file per URL: people
# ahead are said exactly up to 50, then "more than 50"; minutes are rounded up to a step,
# up to "more than 120".
AHEAD_STEPS = tuple(range(0, 51))
MINUTE_STEPS = (*range(1, 11), 15, 20, 30, 45, 60, 90, 120)
MORE = "plus"  # suffix of the open-ended last step ("50plus", "120plus")


def voice_for(lang: str, dialect_voice: str | None) -> str:
    """The espeak-ng voice that can read catalogue text of `lang` in the elder's dialect."""
    if lang == "en":
        return ENGLISH
    if dialect_voice and dialect_voice.startswith("sit/"):
        return dialect_voice  # Chinese voices read Chinese text in their own pronunciation
    return MANDARIN


class Prompts:
    """Makes signed spoken-prompt URLs."""

    def __init__(
        self,
        signer: Signer,
        voices: dict[str, str],
        wording: dict[str, dict[str, str]] | None = None,
        ui_langs: dict[str, str] | None = None,
    ) -> None:
        self.signer = signer
        self.voices = voices  # dialect id -> espeak-ng voice
        self.wording = wording or {}  # dialect id -> catalogue key -> the dialect's own text
        self.ui_langs = ui_langs or {}  # dialect id -> the UI language its wording goes with
        self._urls: dict[tuple[str, str], str] = {}  # queue prompts repeat: sign each once

    def spoken(self, lang: str, dialect: str, key: str, **values: object) -> tuple[str, str]:
        """(text, voice) of a spoken prompt for a page in `lang` and an elder of `dialect`.

        The dialect's own wording (registry `wording`) read by its own voice, when it has the
        key and the page is in the dialect's UI language; otherwise the catalogue's text, read
        by the dialect's voice if that voice reads the language, else the language's voice."""
        own = self.wording.get(dialect, {}).get(key)
        if own is not None and self.ui_langs.get(dialect, LANGS[0]) == lang:
            try:
                return own.format(**values), self.voices[dialect]
            except (KeyError, IndexError, ValueError):
                pass  # checked at load time; never speak a broken template
        return t(lang, key, **values), voice_for(lang, self.voices.get(dialect))

    def url_for_text(self, text: str, lang: str, dialect: str) -> str:
        return self._signed(text, voice_for(lang, self.voices.get(dialect)))

    def _signed(self, text: str, voice: str) -> str:
        url = self._urls.get((text, voice))
        if url is None:
            if len(self._urls) > 20_000:
                self._urls.clear()
            url = "/tts/" + self.signer.dumps("tts", {"t": text, "v": voice}) + ".wav"
            self._urls[(text, voice)] = url
        return url

    def url(self, lang: str, dialect: str, key: str, **values: object) -> str:
        return self._signed(*self.spoken(lang, dialect, key, **values))

    def place_url(self, lang: str, dialect: str, ahead: int, minutes: int) -> str:
        """The spoken place in line (ahead 0: "you are next"), rounded to the fixed set."""
        ahead_part, minutes_part = step(ahead, AHEAD_STEPS), step(minutes, MINUTE_STEPS)
        return f"/tts/place/{lang}/{dialect}/{ahead_part}-{minutes_part}.wav"

    def place_text(
        self, lang: str, dialect: str, ahead: str | int, minutes: str | int
    ) -> tuple[str, str]:
        """(text, voice) of a place URL's parts; ValueError unless they are in the fixed set."""
        if lang not in LANGS or dialect not in self.voices:
            raise ValueError("unknown language or dialect")
        ahead, minutes = str(ahead), str(minutes)
        if ahead not in _AHEAD_PARTS or minutes not in _MINUTE_PARTS:
            raise ValueError("not a place we announce")
        many, long = ahead.endswith(MORE), minutes.endswith(MORE)
        n, m = int(ahead.removesuffix(MORE)), int(minutes.removesuffix(MORE))
        if n == 0:
            return self.spoken(lang, dialect, "caller.say_next")
        key = "caller.say_queue" + ("_many" if many else "") + ("_long" if long else "")
        return self.spoken(lang, dialect, key, ahead=n, minutes=m)

    def decode(self, token: str) -> tuple[str, str]:
        """(text, voice) of a prompt token; raises Unauthorized if forged."""
        payload = self.signer.loads("tts", token)
        return str(payload["t"]), str(payload["v"])


def step(value: int, steps: tuple[int, ...]) -> str:
    """`value` as the URL part of its step: rounded up to the next step (a wait is never
    promised shorter), or "<last>plus" beyond the last step."""
    if value > steps[-1]:
        return f"{steps[-1]}{MORE}"
    return str(next(s for s in steps if s >= value))


_AHEAD_PARTS = frozenset({str(s) for s in AHEAD_STEPS} | {f"{AHEAD_STEPS[-1]}{MORE}"})
_MINUTE_PARTS = frozenset({str(s) for s in MINUTE_STEPS} | {f"{MINUTE_STEPS[-1]}{MORE}"})
