"""The agents' JSON API for callbacks and wrap-ups (session + X-CSRF-Token header).

A nested blueprint, registered by `hotline.web.family`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from hotline.callbacks import wrapup
from hotline.callbacks.booking import BookingError
from hotline.callbacks.service import CallbackService
from hotline.db import audit
from hotline.errors import BadMessage, HotlineError
from hotline.i18n import t
from hotline.web.security import login_required

bp = Blueprint("callbacks_api", __name__)


def service_of() -> CallbackService:
    """The app's one CallbackService (tests may put their own, with a fake clock, first)."""
    ext = current_app.extensions
    if "callbacks" not in ext:
        s = current_app.config["SERVICES"]
        ext["callbacks"] = CallbackService(s.db, s.cfg, signer=s.signer)
    return ext["callbacks"]


def _lang() -> str:
    return g.agent.lang if g.get("agent") is not None else g.get("lang", "zh_CN")


@bp.errorhandler(BookingError)
def _booking_error(exc: BookingError) -> Any:
    detail = t(_lang(), exc.key, **exc.values)
    return jsonify({"error": exc.code, "field": exc.field, "detail": detail}), exc.status


@bp.errorhandler(HotlineError)
def _hotline_error(exc: HotlineError) -> Any:
    return jsonify({"error": exc.code, "detail": exc.detail}), exc.status


def _json() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadMessage("send a JSON object", code="bad_json")
    return data


@bp.get("/api/callbacks")
@login_required()
def listing() -> Any:
    """Open callbacks grouped due_now / overdue / today / later (phones masked)."""
    return {"groups": service_of().agent_list(g.agent.id, _lang())}


@bp.post("/api/callbacks/<int:booking_id>/claim")
@login_required()
def claim(booking_id: int) -> Any:
    booking = service_of().claim(booking_id, g.agent.id, _lang())
    return {"id": booking.id, "status": booking.status, "claimed_by": booking.claimed_by}


@bp.post("/api/callbacks/<int:booking_id>/attempt")
@login_required()
def attempt(booking_id: int) -> Any:
    """Record a call attempt: reached | no_answer | wrong_number | rescheduled."""
    svc = service_of()
    data = _json()
    result = data.get("result")
    when = data.get("reschedule_to")
    at = None
    if result == "rescheduled":
        at = wrapup.parse_when(when, svc.clock(), svc.tz) if when is not None else None
        if at is None:
            raise BookingError("callbacks.err_when", "reschedule_to")
    call_id = data.get("call_id")
    if call_id is not None and (not isinstance(call_id, str) or len(call_id) > 64):
        raise BookingError("wrapup.err_field", "call_id")
    booking = svc.record_attempt(
        booking_id, g.agent.id, str(result), call_id=call_id, reschedule_to=at, lang=_lang()
    )
    return {
        "id": booking.id,
        "status": booking.status,
        "attempts": booking.attempts,
        "due_at": booking.due_at,
    }


@bp.get("/api/callbacks/<int:booking_id>/phone")
@login_required()
def phone(booking_id: int) -> Any:
    """The unmasked number, only for the claiming agent; every look is audited."""
    svc = service_of()
    number = svc.phone_for(booking_id, g.agent.id, _lang())
    audit.record(svc.db, f"agent:{g.agent.id}", "callback_phone", subject=f"callback:{booking_id}")
    return {"id": booking_id, "phone": number}


@bp.post("/api/calls/<call_id>/wrapup")
@login_required()
def save_wrapup(call_id: str) -> Any:
    """The wrap-up of a call by its agent or a supervisor (fraud calls need a follow-up)."""
    data = _json()
    is_sup = g.agent.role == "supervisor"
    return wrapup.save(service_of(), call_id, g.agent.id, is_sup, data), 200
