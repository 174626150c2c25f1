"""UI string catalogues: one JSON file per language (zh_CN first, en second)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

LANGS = ("zh_CN", "en")


@cache
def catalogue(lang: str) -> dict[str, str]:
    """All strings of one language; unknown languages fall back to zh_CN."""
    if lang not in LANGS:
        lang = LANGS[0]
    text = (resources.files("hotline.i18n") / f"{lang}.json").read_text(encoding="utf-8")
    return json.loads(text)


def t(lang: str, key: str, **values: object) -> str:
    """One string, formatted with `values`; a missing key shows itself, never crashes."""
    text = catalogue(lang).get(key) or catalogue(LANGS[0]).get(key) or key
    try:
        return text.format(**values) if values else text
    except (KeyError, IndexError, ValueError):
        return text


def subset(lang: str, prefixes: tuple[str, ...]) -> dict[str, str]:
    """The strings whose keys start with one of `prefixes`, for a page's script."""
    cat = catalogue(lang)
    return {k: v for k, v in cat.items() if k.startswith(prefixes)}
