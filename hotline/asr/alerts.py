"""Alert spotting: fraud and distress phrases in caption text.

Pure. Matching ignores whitespace and case, because recognisers for Chinese put spaces
between words ("安全 账户") and because a phrase may span two recognised words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

CATEGORIES = ("fraud", "distress")


def _compact(text: str) -> str:
    return "".join(text.split()).lower()


def spot_alerts(text: str, phrases: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """Every alert phrase found in the text as `{"phrase", "category"}`, in text order."""
    if not text:
        return []
    haystack = _compact(text)
    hits: list[tuple[int, int, str, str]] = []
    for category in CATEGORIES:
        for phrase in phrases.get(category, ()):
            needle = _compact(phrase)
            at = haystack.find(needle) if needle else -1
            while at >= 0:
                hits.append((at, at + len(needle), phrase, category))
                at = haystack.find(needle, at + 1)
    # Longest first, so a phrase inside a longer hit ("救命" in "救命呀") is not reported.
    hits.sort(key=lambda h: (h[0] - h[1], h[0]))
    kept: list[tuple[int, int, str, str]] = []
    for hit in hits:
        if not any(k[0] <= hit[0] and hit[1] <= k[1] for k in kept):
            kept.append(hit)
    out: list[dict[str, str]] = []
    for _, _, phrase, category in sorted(kept):
        alert = {"phrase": phrase, "category": category}
        if alert not in out:
            out.append(alert)
    return out
