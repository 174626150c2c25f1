"""Automatic dialect detection: run candidate models on the first seconds, keep the surest.

Pure ranking over a scorer, so it is testable without models; `CaptionEngine.detect` runs it
with real recognizers. A scorer returns (mean word confidence, word count) for a dialect, or
None when that dialect cannot be scored (no model).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Scorer = Callable[[str, bytes], "tuple[float, int] | None"]


@dataclass(frozen=True)
class Detection:
    """The chosen dialect (None when no candidate is convincing) and every score."""

    best: str | None
    scores: dict[str, tuple[float, int]] = field(default_factory=dict)


def detect_dialect(
    pcm: bytes,
    candidates: Sequence[str],
    scorer: Scorer,
    *,
    sample_rate: int = 16000,
    seconds: float = 4.0,
    min_words: int = 2,
    min_confidence: float = 0.5,
) -> Detection:
    """Score each candidate on the first `seconds` of mono s16le `pcm`; best mean confidence wins."""
    head = pcm[: int(seconds * sample_rate) * 2]
    scores: dict[str, tuple[float, int]] = {}
    for dialect in dict.fromkeys(candidates):
        try:
            score = scorer(dialect, head)
        except Exception:
            log.exception("dialect detection: scoring %s failed", dialect)
            continue
        if score is not None:
            scores[dialect] = (float(score[0]), int(score[1]))
    eligible = [
        (conf, words, -i, d)
        for i, d in enumerate(scores)
        if scores[d][1] >= min_words and scores[d][0] >= min_confidence
        for conf, words in [scores[d]]
    ]
    # Highest confidence, then more words, then the earlier (preferred) candidate.
    best = max(eligible)[3] if eligible else None
    return Detection(best=best, scores=scores)
