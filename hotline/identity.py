"""The spoken identity check: four digits the elder reads aloud, checked against what the
caption engine heard. Pure code.

Digits are read from recognised text in Arabic numerals, Chinese (零〇一二两三四五六七八九幺)
and Sino-Korean (영공일이삼사오육칠팔구) words; the check passes when the four digits appear in
order, next to each other, in one final caption (other words around them are fine).

Only whole recognised words made of numerals count: 이, 사, 오, 구, 일 are also syllables of
ordinary Korean words (이에요, 오후, 이어), and a recogniser that mishears a digit as such a
word must not be read as having said that digit.
"""

from __future__ import annotations

import secrets

OUTCOMES = ("verified", "not_verified", "not_attempted")
DIGITS = 4

_WORDS = {
    **{str(n): str(n) for n in range(10)},
    **dict(zip("零〇一二两三四五六七八九幺", "0012234567891", strict=True)),
    **dict(zip("영공일이삼사오육칠팔구", "00123456789", strict=True)),
}

_PUNCTUATION = ".,;:!?，。；：！？、·-—'\"“”"


def new_challenge() -> str:
    """Four random digits (the first never 0, so they read as a number on any screen)."""
    return str(secrets.randbelow(9) + 1) + "".join(
        str(secrets.randbelow(10)) for _ in range(DIGITS - 1)
    )


def digits_in(text: str) -> str:
    """The digits spoken in a caption, in order: words made only of numerals (others dropped)."""
    out = []
    for word in text.split():
        word = word.strip(_PUNCTUATION)
        if word and all(ch in _WORDS for ch in word):
            out.append("".join(_WORDS[ch] for ch in word))
    return "".join(out)


def matches(challenge: str, heard: str) -> bool:
    """Whether the challenge's digits were heard in order, together."""
    return bool(challenge) and challenge in digits_in(heard)
