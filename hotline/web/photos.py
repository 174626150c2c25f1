"""Registered photos over HTTP (identity check): added by the family from their booking's
manage page, or by the agent of a call in progress with the elder's consent; shown only to
that agent or a supervisor. Every read, refusal and addition is audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, g, make_response, redirect, request

from hotline import photos
from hotline.db import audit
from hotline.errors import Forbidden, NotFound
from hotline.web.security import login_required, services

bp = Blueprint("photos", __name__)


def _folder() -> Path:
    return Path(services().cfg.data_dir) / "photos"


def _may_see(elder_id: int) -> None:
    """The agent of a call in progress with this elder, or a supervisor; audited refusal."""
    if g.agent.role == "supervisor":
        return
    calls = services().live_snapshot().get("calls", [])
    if any(c.get("agent_id") == g.agent.id and c.get("elder_id") == elder_id for c in calls):
        return
    audit.record(services().db, f"agent:{g.agent.id}", "photo_denied", f"elder:{elder_id}")
    raise Forbidden("only the agent of a call with this elder, or a supervisor")


@bp.get("/api/elders/<int:elder_id>/photo")
@login_required()
def photo(elder_id: int) -> Any:
    """The elder's registered photo (audited as photo_read)."""
    _may_see(elder_id)
    s = services()
    audit.record(s.db, f"agent:{g.agent.id}", "photo_read", f"elder:{elder_id}")
    found = photos.read(s.db, _folder(), elder_id)
    if found is None:
        raise NotFound("no registered photo", code="no_photo")
    response = make_response(found[0])
    response.headers["Content-Type"] = found[1]
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/api/elders/<int:elder_id>/photo")
@login_required()
def add_photo(elder_id: int) -> Any:
    """The agent registers a still from the live video, with the elder's consent."""
    _may_see(elder_id)
    s = services()
    consent = request.args.get("consent") == "1"
    photos.store(s.db, _folder(), elder_id, request.get_data(), f"agent:{g.agent.id}", consent)
    audit.record(s.db, f"agent:{g.agent.id}", "photo_add", f"elder:{elder_id}", "consent")
    return {"elder_id": elder_id, "stored": True}, 201


@bp.post("/family/b/<token>/photo")
def family_photo(token: str) -> Any:
    """The family adds the elder's photo from their booking's manage page."""
    from hotline.web.family import callback_service

    s = services()
    booking = callback_service().open_manage(token)
    if not booking.elder_id:
        raise NotFound("this booking has no elder record", code="no_elder")
    upload = request.files.get("photo")
    data = upload.read(photos.MAX_BYTES + 1) if upload else b""
    consent = request.form.get("consent") == "1"
    photos.store(s.db, _folder(), booking.elder_id, data, f"family:{booking.id}", consent)
    audit.record(s.db, f"family:{booking.id}", "photo_add", f"elder:{booking.elder_id}")
    return redirect(f"/family/b/{token}?done=photo", code=303)
