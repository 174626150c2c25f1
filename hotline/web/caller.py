"""The senior's pages: the one-tap link and the generic call page."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, render_template, request

from hotline.db import elders as elders_db
from hotline.errors import LinkExpired, NotFound
from hotline.i18n import subset
from hotline.web.security import services

bp = Blueprint("caller", __name__)


def _caller_page(
    *, link: str, lang: str, dialect: str, name: str, auto_start: bool, hard_of_hearing: bool
) -> Any:
    s = services()
    g.lang = lang
    p = s.prompts
    boot = {
        "link": link,
        "lang": lang,
        "dialect": dialect,
        "auto_start": auto_start,
        "hard_of_hearing": hard_of_hearing,
        "ws_url": s.cfg.public_ws_url,
        "ws_port": s.ws_port or s.cfg.ws_port,
        "timezone": s.cfg.timezone,  # the next staffed time is shown in the hotline's zone
        "strings": subset(lang, ("caller.", "guidance.")),
        "prompts": {
            "intro": p.url(lang, dialect, "caller.say_intro"),
            "allow": p.url(lang, dialect, "caller.say_allow"),
            "connected": p.url(lang, dialect, "caller.say_connected"),
            "requeued": p.url(lang, dialect, "caller.say_requeued"),
            "ended": p.url(lang, dialect, "caller.say_ended"),
            "rate": p.url(lang, dialect, "caller.say_rate"),
            "next": p.url(lang, dialect, "caller.say_next"),
        },
    }
    dialects = {} if link else s.dialect_names(lang)
    return render_template("caller.html", boot=boot, name=name, dialects=dialects)


@bp.get("/c/<token>")
def one_tap(token: str) -> Any:
    """An elder's one-tap link: straight to the big call button (or straight into the call)."""
    s = services()
    link = elders_db.get_link(s.db, token) if len(token) <= 64 else None
    if link is None:
        raise NotFound("unknown link", code="unknown_link")
    state = link.state()
    if state != "ok":
        raise LinkExpired(f"this link is {state}", code=f"link_{state}")
    elder = elders_db.get(s.db, link.elder_id)
    if elder is None:
        raise NotFound("unknown link", code="unknown_link")
    auto = link.auto_start or request.args.get("auto") == "1"
    return _caller_page(
        link=token,
        lang=elder.lang,
        dialect=elder.dialect,
        name=elder.name,
        auto_start=auto,
        hard_of_hearing=elder.hard_of_hearing,
    )


@bp.get("/call")
def generic() -> Any:
    """The call page for anyone without a personal link."""
    dialect = request.args.get("dialect", "")
    if dialect not in services().registry.dialects:
        dialect = ""
    return _caller_page(
        link="", lang=g.lang, dialect=dialect, name="", auto_start=False, hard_of_hearing=False
    )
