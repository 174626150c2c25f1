"""Call records over HTTP: a call's timeline and its (masked) transcript, access audited."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from hotline.db import audit
from hotline.db import calls as calls_db
from hotline.db import transcripts as transcripts_db
from hotline.errors import Forbidden, NotFound
from hotline.web.security import login_required, services

bp = Blueprint("calls", __name__)


def _readable_call(call_id: str) -> dict[str, Any]:
    """The call row if the signed-in agent may read it: its own agent, or a supervisor."""
    call = calls_db.get(services().db, call_id) if len(call_id) <= 64 else None
    if call is None:
        raise NotFound("no such call")
    if g.agent.role != "supervisor" and call["agent_id"] != g.agent.id:
        audit.record(services().db, f"agent:{g.agent.id}", "transcript_denied", f"call:{call_id}")
        raise Forbidden("only the call's agent or a supervisor may read this")
    return call


@bp.get("/api/calls/<call_id>/transcript")
@login_required()
def transcript(call_id: str) -> Any:
    """The masked transcript of a call; every read is written to the audit log."""
    call = _readable_call(call_id)
    s = services()
    audit.record(s.db, f"agent:{g.agent.id}", "transcript_read", f"call:{call_id}")
    return {"call_id": call["id"], "lines": transcripts_db.lines(s.db, call_id)}


@bp.get("/api/calls/<call_id>")
@login_required()
def call_record(call_id: str) -> Any:
    """A call's row and timeline (no transcript)."""
    call = _readable_call(call_id)
    call.pop("rejoin_hash", None)
    return {"call": call, "events": calls_db.events(services().db, call_id)}
