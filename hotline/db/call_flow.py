"""Holds and transfers of a call: totals on the call's row, each one on its timeline."""

from __future__ import annotations

from typing import Any

from hotline.db import Database
from hotline.db import calls as calls_db


def add_hold(db: Database, call_id: str, seconds: float) -> None:
    """Add one hold's duration to the call's total (its start and end are on the timeline)."""
    db.execute("UPDATE calls SET hold_seconds = hold_seconds + ? WHERE id = ?", (seconds, call_id))


def transferred(
    db: Database, call_id: str, detail: dict[str, Any], to_agent: int, at: float
) -> None:
    """The call now belongs to the agent it was transferred to (they write its wrap-up)."""
    db.execute(
        "UPDATE calls SET agent_id = ?, transfers = transfers + 1 WHERE id = ?",
        (to_agent, call_id),
    )
    calls_db.event(db, call_id, "transfer_done", detail, at=at)


def transfer_abandoned(db: Database, call_id: str, why: str, at: float) -> None:
    """A transfer still ringing when the call ended or a party dropped."""
    calls_db.event(db, call_id, "transfer_failed", {"reason": why}, at=at)


def consult_started(db: Database, call_id: str, to_agent: int, at: float) -> None:
    """Warm transfer: the target answered and talks with the first agent (elder on hold)."""
    calls_db.event(db, call_id, "consult", {"to": to_agent}, at=at)
