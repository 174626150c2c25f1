"""Agent sessions, CSRF, login throttling and security headers for the Flask side."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, current_app, g, request

from hotline.db import agents as agents_db
from hotline.db import sessions as sessions_db
from hotline.errors import Forbidden, TooMany, Unauthorized

SESSION_COOKIE = "hl_session"
LOGIN_CSRF_COOKIE = "hl_login_csrf"
FAIL_WINDOW = 15 * 60
PUBLIC_CACHEABLE = ("/static/", "/tts/")


def services() -> Any:
    return current_app.config["SERVICES"]


def load_session() -> None:
    """Attach the signed-in agent (if any) to `g` for this request."""
    g.agent, g.session = None, None
    sid = request.cookies.get(SESSION_COOKIE, "")
    if not sid:
        return
    s = services()
    row = sessions_db.lookup(
        s.db, sid, s.cfg.session_idle_minutes * 60, s.cfg.session_max_hours * 3600
    )
    if row is None:
        return
    agent = agents_db.get(s.db, row["agent_id"])
    if agent is None or agent.disabled:
        return
    g.agent, g.session = agent, row


def login_required(role: str | None = None) -> Callable:
    """Require a signed-in agent (and optionally the supervisor role)."""

    def wrap(fn: Callable) -> Callable:
        @wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            if g.agent is None:
                raise Unauthorized("please sign in")
            if role == "supervisor" and g.agent.role != "supervisor":
                raise Forbidden("supervisors only")
            return fn(*args, **kwargs)

        return inner

    return wrap


def check_csrf() -> None:
    """Every state-changing request carries the session's CSRF token (form or header)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf", "")
    if g.session is not None:
        expected = g.session["csrf"]
    else:
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not sent or not hmac.compare_digest(str(sent), str(expected)):
        raise Forbidden("the form expired; please reload the page", code="csrf")


def login_csrf_token(response: Response | None = None) -> str:
    """The pre-login double-submit token (cookie + form field)."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    g.set_login_csrf = token
    return token


def throttle_login(username: str, address: str) -> None:
    """Pause sign-in for (this account from this address) or for this address: a stranger
    guessing an agent's password locks out themselves, not the agent."""
    cfg = services().cfg
    fails_pair, fails_addr = agents_db.recent_login_failures(
        services().db, username, address, FAIL_WINDOW
    )
    if (
        fails_pair >= cfg.login_failures_per_account_address
        or fails_addr >= cfg.login_failures_per_address
    ):
        raise TooMany("too many wrong passwords; wait 15 minutes", code="login_throttled")


def secure_cookies() -> bool:
    return request.is_secure or services().cfg.public_base_url.startswith("https:")


def add_headers(response: Response) -> Response:
    """Security headers on every response: strict CSP with no inline scripts."""
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; connect-src 'self' ws: wss:; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self)")
    if not request.path.startswith(PUBLIC_CACHEABLE):
        # Pages and APIs carry personal data (names, links, bookings, tickets): never kept
        # by a browser or a proxy cache. Static files and spoken prompts are the same for all.
        response.headers["Cache-Control"] = "no-store"
    token = g.get("set_login_csrf")
    if token and request.cookies.get(LOGIN_CSRF_COOKIE) != token:
        response.set_cookie(
            LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=secure_cookies()
        )
    return response
