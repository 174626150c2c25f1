"""The agent console: sign-in, the console page, the websocket ticket, elders."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, g, make_response, redirect, render_template, request

from hotline.db import agents as agents_db
from hotline.db import audit
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from hotline.db import sessions as sessions_db
from hotline.errors import BadMessage, Forbidden, HotlineError, NotFound
from hotline.i18n import LANGS, subset
from hotline.privacy import mask_phone
from hotline.web import security
from hotline.web.security import login_required, services

bp = Blueprint("agent", __name__)


def _hotline_lang() -> str:
    """The sign-in page speaks the hotline's language (like the console), not the browser's;
    an explicit ?lang= or language cookie still wins."""
    asked = request.args.get("lang") or request.cookies.get("hl_lang")
    return asked if asked in LANGS else services().cfg.default_lang


@bp.get("/agent")
def console() -> Any:
    if g.agent is None:
        g.lang = _hotline_lang()
        return render_template("agent_login.html", csrf=security.login_csrf_token(), error="")
    s = services()
    g.lang = g.agent.lang
    boot = {
        "lang": g.lang,
        "csrf": g.session["csrf"],
        "ws_url": s.cfg.public_ws_url,
        "ws_port": s.ws_port or s.cfg.ws_port,
        "agent": {
            "id": g.agent.id,
            "name": g.agent.display_name,
            "dialects": list(g.agent.dialects),
            "role": g.agent.role,
        },
        "dialects": s.dialect_names(g.lang),
        "strings": subset(
            g.lang,
            (
                "agent.",
                "status.",
                "reason.",
                "guidance.",
                "captions.",
                "callbacks.",
                "wrapup.",
                "context.",
                "hold.",
                "transfer.",
                "identity.",
            ),
        ),
        "topic_strings": subset(g.lang, ("family.topic.",)),
    }
    return render_template("agent.html", boot=boot)


@bp.post("/agent/login")
def login() -> Any:
    s = services()
    username = request.form.get("username", "")[:64]
    password = request.form.get("password", "")[:256]
    address = request.remote_addr or "?"
    try:
        security.throttle_login(username, address)
    except HotlineError as exc:
        return _login_error(exc.code, 429)
    agent = agents_db.check_password(s.db, username, password)
    if agent is None:
        agents_db.record_login_failure(s.db, username, address)
        return _login_error("login_failed", 401)
    # Rotate: drop any session the browser had, issue a fresh one.
    old = request.cookies.get(security.SESSION_COOKIE)
    if old:
        sessions_db.delete(s.db, old)
    sid, _csrf = sessions_db.create(s.db, agent.id)
    audit.record(s.db, f"agent:{agent.id}", "login", detail=address)
    # Supervisors land on the wallboard (its header links to the console).
    response = make_response(
        redirect("/admin" if agent.role == "supervisor" else "/agent", code=303)
    )
    response.set_cookie(
        security.SESSION_COOKIE,
        sid,
        httponly=True,
        samesite="Lax",
        secure=security.secure_cookies(),
        max_age=s.cfg.session_max_hours * 3600,
    )
    response.delete_cookie(security.LOGIN_CSRF_COOKIE)
    return response


def _login_error(code: str, status: int) -> Any:
    g.lang = _hotline_lang()
    html = render_template("agent_login.html", csrf=security.login_csrf_token(), error=code)
    return html, status


@bp.post("/agent/logout")
def logout() -> Any:
    s = services()
    sid = request.cookies.get(security.SESSION_COOKIE)
    if sid:
        sessions_db.delete(s.db, sid)
    if g.agent is not None:
        audit.record(s.db, f"agent:{g.agent.id}", "logout")
        # The session is gone server-side; its sockets go with it (other sessions stay).
        s.close_sockets(g.agent.id, "signed_out", session=g.session["id_hash"])
    response = make_response(redirect("/agent", code=303))
    response.delete_cookie(security.SESSION_COOKIE)
    return response


@bp.get("/api/ws-token")
@login_required()
def ws_token() -> Any:
    """A short-lived signed ticket the console opens its websocket with."""
    token = services().signer.dumps(
        "ws", {"agent": g.agent.id, "s": g.session["id_hash"], "n": secrets.token_urlsafe(12)}
    )
    return {"token": token, "expires_in": services().cfg.ws_token_seconds}


@bp.post("/api/elders")
@login_required()
def add_elder() -> Any:
    """Create an elder and their one-tap link from the console."""
    s = services()
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadMessage("send a JSON object", code="bad_json")
    name = data.get("name")
    dialect = data.get("dialect", "cmn")
    phone = data.get("phone", "")
    lang = data.get("lang", "zh_CN")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 40:
        raise BadMessage("name is required (up to 40 characters)", code="bad_field")
    if not isinstance(dialect, str) or dialect not in s.registry.dialects:
        raise BadMessage("unknown dialect", code="bad_field")
    if not isinstance(phone, str) or (phone and not (phone.isdigit() and 5 <= len(phone) <= 15)):
        raise BadMessage("phone must be 5-15 digits", code="bad_field")
    if lang not in ("zh_CN", "en"):
        raise BadMessage("unknown language", code="bad_field")
    auto = bool(data.get("auto_start", False))
    elder = elders_db.add(s.db, name.strip(), phone=phone, dialect=dialect, lang=lang)
    link = elders_db.new_link(s.db, elder.id, auto_start=auto)
    audit.record(s.db, f"agent:{g.agent.id}", "elder_add", subject=f"elder:{elder.id}")
    base = s.cfg.public_base_url.rstrip("/")
    return {
        "elder": {
            "id": elder.id,
            "name": elder.name,
            "dialect": elder.dialect,
            "phone": mask_phone(elder.phone),
            "card_code": elder.card_code,
        },
        "link": f"{base}/c/{link.token}",
        "card": f"/agent/elders/{elder.id}/card.svg",
    }, 201


@bp.get("/agent/elders/<int:elder_id>/card.svg")
@login_required()
def elder_card(elder_id: int) -> Any:
    """The printable QR card of an elder's newest working link."""
    import segno

    from hotline.web.cards import card_svg

    s = services()
    actor = f"agent:{g.agent.id}"
    subject = f"elder:{elder_id}"
    # The card is the elder's credential (its link rings the hotline as them, its code books
    # calls to their phone): supervisors, the agent who registered the elder, or an agent
    # in a call with the elder right now (to resend it to them); every fetch is audited.
    if not (
        g.agent.role == "supervisor"
        or audit.did(s.db, actor, "elder_add", subject)
        or calls_db.in_call_with(s.db, g.agent.id, elder_id)
    ):
        raise Forbidden("only supervisors, or an agent in a call with this elder")
    elder = elders_db.get(s.db, elder_id)
    links = [lk for lk in elders_db.links_of(s.db, elder_id) if lk.state() == "ok"] if elder else []
    if elder is None or not links:
        raise NotFound("no working link")
    audit.record(s.db, actor, "card_view", subject)
    url = f"{s.cfg.public_base_url.rstrip('/')}/c/{links[-1].token}"
    svg = card_svg(segno.make(url, error="m"), elder.name, elder.lang, elder.card_code)
    return svg, 200, {"Content-Type": "image/svg+xml; charset=utf-8"}
