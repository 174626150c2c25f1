"""The family's pages: book a callback without an account, then manage it by a private link.

The agents' JSON API for callbacks and wrap-ups is a nested blueprint from
`hotline.callbacks.agent_api`, registered here so the app factory needs no change.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import segno
from flask import Blueprint, g, redirect, render_template, request

from hotline.callbacks import agent_api
from hotline.callbacks.booking import TOPICS, BookingError, parse_form, parse_windows
from hotline.callbacks.service import CallbackService
from hotline.callbacks.slots import Slot
from hotline.db import Database
from hotline.db import elders as elders_db
from hotline.db.callbacks import Booking
from hotline.i18n import subset, t
from hotline.web import security
from hotline.web.cards import card_svg
from hotline.web.security import services

bp = Blueprint("family", __name__)
bp.register_blueprint(agent_api.bp)


callback_service = agent_api.service_of


def _csrf() -> str:
    if g.get("session") is not None:
        return g.session["csrf"]
    return security.login_csrf_token()


def _day_label(svc: CallbackService, d: date, lang: str) -> str:
    """'今天 1月7日 周一' / 'Tomorrow Tue 8/1' / '1月9日 周三'."""
    delta = (d - svc.local(svc.clock()).date()).days
    weekday = t(lang, f"family.weekday.{d.isoweekday()}")
    label = t(lang, "family.date", month=d.month, day=d.day, weekday=weekday)
    if delta in (0, 1):
        label = t(lang, "family.today" if delta == 0 else "family.tomorrow") + " " + label
    return label


def _day_short(svc: CallbackService, d: date, lang: str) -> str:
    """'今天' / 'Tomorrow' / '12月2日': short enough for a time choice on a phone."""
    delta = (d - svc.local(svc.clock()).date()).days
    if delta in (0, 1):
        return t(lang, "family.today" if delta == 0 else "family.tomorrow")
    return t(lang, "family.date_short", month=d.month, day=d.day)


def _when(svc: CallbackService, start: float, lang: str) -> str:
    local, end = svc.local(start), svc.local(start + 3600)
    return f"{_day_label(svc, local.date(), lang)} {local:%H:%M}–{end:%H:%M}"


def _tz_label(lang: str) -> str:
    tz = services().cfg.timezone
    return t(lang, "family.tz_shanghai") if tz == "Asia/Shanghai" else tz


def _days(svc: CallbackService, found: list[Slot], lang: str) -> list[dict[str, Any]]:
    """Free hours grouped by local day, labelled for the page."""
    days: dict[Any, dict[str, Any]] = {}
    for slot in found:
        d = slot.local.date()
        if d not in days:
            days[d] = {
                "date": d.isoformat(),
                "label": _day_label(svc, d, lang),
                "short": _day_short(svc, d, lang),
                "hours": [],
            }
        end = datetime.fromtimestamp(slot.start + 3600, svc.tz)
        days[d]["hours"].append(
            {
                "start": int(slot.start),
                "label": f"{slot.local:%H:%M}–{end:%H:%M}",
                "free": t(lang, "family.free", n=slot.free),
            }
        )
    return list(days.values())


def _availability(svc: CallbackService, dialect: str, found: list[Slot]) -> str:
    """'ok', 'full' (helpers scheduled but every hour booked) or 'no_helpers' (nobody who
    speaks the dialect has a shift): the family is told which, before filling anything in."""
    if found:
        return "ok"
    return "full" if any(dialect in s.dialects for s in svc.shifts()) else "no_helpers"


def _form_page(
    status: int = 200, error: BookingError | None = None, values: dict[str, Any] | None = None
) -> Any:
    s = services()
    svc = callback_service()
    lang = g.lang
    dialects = s.dialect_names(lang)
    values = dict(values or {})
    dialect = values.get("dialect") or request.args.get("dialect") or "cmn"
    if dialect not in dialects:
        dialect = "cmn"
    values["dialect"] = dialect
    chosen = {str(v) for v in values.get("slots", [])}
    message = t(lang, error.key, **error.values) if error else ""
    boot = {"lang": lang, "strings": subset(lang, ("family.",)), "note_max": 200}
    boot["tz"] = _tz_label(lang)
    found = svc.available(dialect)
    return (
        render_template(
            "family.html",
            boot=boot,
            csrf=_csrf(),
            idem=values.get("idem") or secrets.token_urlsafe(18),
            dialects=dialects,
            topics=TOPICS,
            days=_days(svc, found, lang),
            availability=_availability(svc, dialect, found),
            values=values,
            chosen=chosen,
            error=message,
            error_field=error.field if error else "",
            tz=_tz_label(lang),
        ),
        status,
    )


@bp.get("/family")
def form() -> Any:
    """The booking form (no account needed)."""
    return _form_page()


@bp.get("/family/slots")
def slot_list() -> Any:
    """Free hours for one dialect, for the form's script to refresh the choices."""
    dialect = request.args.get("dialect", "cmn")
    if dialect not in services().registry.dialects:
        dialect = "cmn"
    svc = callback_service()
    found = svc.available(dialect)
    return {
        "dialect": dialect,
        "days": _days(svc, found, g.lang),
        "availability": _availability(svc, dialect, found),
    }


@bp.post("/family/book")
def book() -> Any:
    """Commit a booking, then show it; a repeated submit shows the same booking."""
    s = services()
    svc = callback_service()
    values: dict[str, Any] = {k: request.form.get(k, "") for k in request.form if k != "slot"}
    values["slots"] = request.form.getlist("slot")
    try:
        req = parse_form(
            request.form,
            request.form.getlist("slot"),
            now=svc.clock(),
            tz=svc.tz,
            dialects=list(s.registry.dialects),
            lang=g.lang,
        )
        booked = svc.book(req, request.remote_addr or "?")
    except BookingError as exc:
        return _form_page(exc.status, exc, values)
    return redirect(_manage_path(svc, booked.booking, new="1"), code=303)


def _manage_path(svc: CallbackService, booking: Booking, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {**params, "lang": g.lang}.items())
    return f"/family/b/{svc.manage_token(booking)}?{query}"


def _message(exc: BookingError) -> Any:
    text = t(g.lang, exc.key, **exc.values)
    return render_template("family_message.html", message=text, code=exc.code), exc.status


def _with_booking(view: Callable[[Booking, str], Any]) -> Callable[[str], Any]:
    """A manage-link page: the view gets the link's booking, or the family is told why not."""

    @functools.wraps(view)
    def page(token: str) -> Any:
        try:
            booking = callback_service().open_manage(token)
        except BookingError as exc:
            return _message(exc)
        return view(booking, token)

    return page


def _manage_page(
    booking: Booking, token: str, status: int = 200, error: str = "", notice: str = ""
) -> Any:
    s = services()
    svc = callback_service()
    lang = g.lang
    elder = elders_db.get(s.db, booking.elder_id) if booking.elder_id else None
    start = booking.slot_start or booking.due_at
    card_url = ""
    link_url = ""
    if booking.new_link_token and _link_ok(s.db, booking.new_link_token):
        card_url = f"/family/b/{token}/card.svg"
        link_url = f"{s.cfg.public_base_url.rstrip('/')}/c/{booking.new_link_token}"
    # The elder's card was revoked and no working link is left: say so (new cards come
    # from staff; a booking never issues one for an existing elder).
    card_withdrawn = elder is not None and not any(
        lk.state() == "ok" for lk in elders_db.links_of(s.db, elder.id)
    )
    days = _days(svc, svc.available(booking.dialect), lang) if booking.status == "booked" else []
    boot = {"lang": lang, "strings": subset(lang, ("family.",)), "manage_url": request.url}
    return (
        render_template(
            "family_manage.html",
            boot=boot,
            b=booking,
            token=token,
            csrf=_csrf(),
            elder_name=elder.name if elder else "",
            when=_when(svc, start, lang),
            dialect=s.dialect_names(lang).get(booking.dialect, booking.dialect),
            view=svc.family_view(booking),
            new=request.args.get("new") == "1",
            card_url=card_url,
            card_withdrawn=card_withdrawn,
            link_url=link_url,
            days=days,
            error=error,
            notice=notice,
            changeable=booking.status == "booked" and booking.attempts == 0,
            cancellable=booking.status in ("booked", "queued", "held"),
        ),
        status,
    )


def _link_ok(db: Database, token: str) -> bool:
    link = elders_db.get_link(db, token)
    return link is not None and link.state() == "ok"


@bp.get("/family/b/<token>")
@_with_booking
def manage(booking: Booking, token: str) -> Any:
    """The private manage page: status, change time, cancel, calendar file, shared summary."""
    done = request.args.get("done", "")
    notice = (
        t(g.lang, f"family.done_{done}") if done in ("rescheduled", "cancelled", "photo") else ""
    )
    return _manage_page(booking, token, notice=notice)


@bp.post("/family/b/<token>/join")
@_with_booking
def join_call(booking: Booking, token: str) -> Any:
    """The family member joins the elder's call in progress (as the agent's link would)."""
    url = services().family_join_link(booking.elder_id) if booking.elder_id else None
    if url is None:
        return _manage_page(booking, token, 409, error=t(g.lang, "family.join_not_in_call"))
    return redirect("/j/" + url.rsplit("/j/", 1)[1], code=303)


@bp.post("/family/b/<token>/reschedule")
@_with_booking
def reschedule(booking: Booking, token: str) -> Any:
    svc = callback_service()
    try:
        windows = parse_windows(request.form.getlist("slot"), svc.clock(), svc.tz)
        svc.reschedule(booking, windows)
    except BookingError as exc:
        return _manage_page(booking, token, exc.status, error=t(g.lang, exc.key, **exc.values))
    return redirect(_manage_path(svc, svc.get(booking.id), done="rescheduled"), code=303)


@bp.post("/family/b/<token>/cancel")
@_with_booking
def cancel(booking: Booking, token: str) -> Any:
    svc = callback_service()
    try:
        svc.cancel(booking)
    except BookingError as exc:
        return _manage_page(booking, token, exc.status, error=t(g.lang, exc.key, **exc.values))
    return redirect(_manage_path(svc, booking, done="cancelled"), code=303)


@bp.post("/family/b/<token>/revoke")
@_with_booking
def revoke(booking: Booking, token: str) -> Any:
    callback_service().revoke_manage(booking)
    return render_template("family_message.html", message=t(g.lang, "family.done_revoked"), code="")


@bp.get("/family/b/<token>/booking.ics")
@_with_booking
def ics(booking: Booking, token: str) -> Any:
    """The booking as an RFC 5545 calendar file."""
    body = callback_service().ics(booking)
    return (
        body,
        200,
        {
            "Content-Type": "text/calendar; charset=utf-8",
            "Content-Disposition": f'attachment; filename="callback-{booking.code}.ics"',
        },
    )


@bp.get("/family/b/<token>/card.svg")
@_with_booking
def card(booking: Booking, token: str) -> Any:
    """The printable QR card of the one-tap link this booking created."""
    s = services()
    if not booking.new_link_token or not _link_ok(s.db, booking.new_link_token):
        return _message(BookingError("family.err_link_bad", status=404))
    elder = elders_db.get(s.db, booking.elder_id or 0)
    url = f"{s.cfg.public_base_url.rstrip('/')}/c/{booking.new_link_token}"
    svg = card_svg(
        segno.make(url, error="m"),
        elder.name if elder else "",
        elder.lang if elder else g.lang,
        elder.card_code if elder else "",
    )
    return svg, 200, {"Content-Type": "image/svg+xml; charset=utf-8"}
