"""Transcripts: masked final caption lines, readable by agents and supervisors, audited."""

from __future__ import annotations

import json
from typing import Any

from hotline.db import Database, now
from hotline.privacy import mask_text


def add_line(db: Database, call_id: str, speaker: str, dialect: str, event: dict[str, Any]) -> None:
    """Store one final caption line; the text is masked again here (defence in depth)."""
    db.execute(
        "INSERT INTO transcripts (call_id, speaker, at, dialect, text, gloss, words, alerts)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            call_id,
            speaker,
            now(),
            dialect,
            mask_text(event.get("text", "")),
            mask_text(event.get("gloss", "")),
            json.dumps(
                [{**w, "w": mask_text(str(w.get("w", "")))} for w in event.get("words", [])],
                ensure_ascii=False,
            ),
            json.dumps(event.get("alerts", []), ensure_ascii=False),
        ),
    )


def lines(db: Database, call_id: str) -> list[dict[str, Any]]:
    rows = db.query("SELECT * FROM transcripts WHERE call_id = ? ORDER BY at, id", (call_id,))
    return [
        {**dict(r), "words": json.loads(r["words"]), "alerts": json.loads(r["alerts"])}
        for r in rows
    ]


def purge_older_than(db: Database, days: float) -> int:
    """Delete transcript lines older than `days`; returns how many."""
    cur = db.execute("DELETE FROM transcripts WHERE at < ?", (now() - days * 86400,))
    return cur.rowcount
