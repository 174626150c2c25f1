"""Stored guidance answers."""

from __future__ import annotations

from typing import Any

from hotline.db import Database


def record_answer(db: Database, call_id: str, row: dict[str, Any]) -> None:
    """Store one caller answer (an AnswerRow's `to_row()`)."""
    db.execute(
        "INSERT INTO guidance_answers (call_id, script_id, step_id, answer, seq, at, seconds)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            call_id,
            row["script_id"],
            row["step_id"],
            row["answer"],
            row["seq"],
            row["at"],
            row["seconds"],
        ),
    )


def answers(
    db: Database, *, script_id: str | None = None, call_id: str | None = None
) -> list[dict[str, Any]]:
    sql, params = "SELECT * FROM guidance_answers WHERE 1=1", []
    if script_id:
        sql += " AND script_id = ?"
        params.append(script_id)
    if call_id:
        sql += " AND call_id = ?"
        params.append(call_id)
    return [dict(r) for r in db.query(sql + " ORDER BY at, id", params)]
