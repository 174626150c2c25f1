"""Dialect glosses: insert the Mandarin gloss after each dialect word, like 啥子〔什么〕.

Pure text functions. Recognisers for Chinese put spaces between words ("啥子 东西"), so a
lexicon entry matches with optional whitespace between its characters; the longest entry
wins where entries overlap, and text already followed by its gloss is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

OPEN, CLOSE = "〔", "〕"


@lru_cache(maxsize=64)
def _pattern(entries: tuple[str, ...]) -> re.Pattern[str] | None:
    if not entries:
        return None
    words = sorted(entries, key=len, reverse=True)
    alternatives = (r"\s*".join(re.escape(ch) for ch in word if not ch.isspace()) for word in words)
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.IGNORECASE)


def _compact(text: str) -> str:
    return "".join(text.split()).lower()


def gloss_text(text: str, lexicon: Mapping[str, str]) -> str:
    """The text with `〔gloss〕` inserted after every lexicon word it contains."""
    if not text or not lexicon:
        return text
    pattern = _pattern(tuple(sorted(lexicon)))
    if pattern is None:
        return text
    by_key = {_compact(k): v for k, v in lexicon.items()}

    def replace(match: re.Match[str]) -> str:
        word = match.group(0)
        gloss = by_key.get(_compact(word))
        if not gloss or _compact(gloss) == _compact(word):
            return word
        following = text[match.end() : match.end() + len(OPEN)]
        if following == OPEN:
            return word
        return f"{word}{OPEN}{gloss}{CLOSE}"

    return pattern.sub(replace, text)


def glossed_words(text: str, lexicon: Mapping[str, str]) -> list[tuple[str, str]]:
    """The (dialect word, gloss) pairs found in the text, in order of appearance."""
    if not text or not lexicon:
        return []
    pattern = _pattern(tuple(sorted(lexicon)))
    if pattern is None:
        return []
    by_key = {_compact(k): (k, v) for k, v in lexicon.items()}
    return [by_key[_compact(m.group(0))] for m in pattern.finditer(text)]
