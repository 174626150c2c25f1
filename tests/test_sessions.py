"""Sessions and links beyond tests/test_web_auth.py: Secure cookies under TLS, idle and absolute
timeouts, CSRF on every state-changing route, the websocket origin check, revocable and
expiring one-tap and manage links, and security headers on every page."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from hotline import services as services_mod
from hotline.callbacks.service import MANAGE_PURPOSE
from hotline.db import agents as agents_db
from hotline.db import callbacks as store
from hotline.db import elders as elders_db
from hotline.db import now
from hotline.services import Services
from hotline.web import create_app
from hotline.web.security import SESSION_COOKIE
from tests.support import ServerThread
from tests.support import test_config as config_for
from tests.test_web_auth import PASSWORD, login, session_csrf, sid


def make(tmp: Path, **overrides: Any) -> tuple[Services, Flask]:
    s = services_mod.build(config_for(tmp, **overrides))
    agent = agents_db.add(s.db, "mei", PASSWORD, ["cmn"], display_name="Mei")
    agents_db.add(s.db, "boss", PASSWORD, ["cmn"], role="supervisor")
    for day in range(1, 8):
        store.add_shift(s.db, agent.id, day, 0, 24, now())
    return s, create_app(s)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[Services, Flask]]:
    s, app = make(tmp_path, session_idle_minutes=30, session_max_hours=8)
    yield s, app
    s.speech.close()


def set_cookie_header(response: Any, name: str) -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(name + "="))


# ----------------------------------------------------------------- cookies under TLS
def test_cookie_secure_when_the_request_is_https(web: tuple[Services, Flask]) -> None:
    _, app = web
    client = app.test_client()
    page = client.get("/agent", base_url="https://localhost").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    response = client.post(
        "/agent/login",
        data={"username": "mei", "password": PASSWORD, "csrf": csrf},
        base_url="https://localhost",
    )
    header = set_cookie_header(response, SESSION_COOKIE)
    assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header


def test_cookie_secure_when_the_public_url_is_https(tmp_path: Path) -> None:
    s, app = make(tmp_path, public_base_url="https://hotline.example.org")
    try:
        client = app.test_client()
        page = client.get("/agent")
        login_cookie = set_cookie_header(page, "hl_login_csrf")
        assert "Secure" in login_cookie and "HttpOnly" in login_cookie
        response = login(client)
        assert "Secure" in set_cookie_header(response, SESSION_COOKIE)
    finally:
        s.speech.close()


def test_cookie_not_secure_on_plain_http(web: tuple[Services, Flask]) -> None:
    _, app = web
    response = login(app.test_client())
    assert "Secure" not in set_cookie_header(response, SESSION_COOKIE)


# ----------------------------------------------------------------- timeouts
def _age_session(s: Services, cookie: str, *, idle: float = 0, age: float = 0) -> None:
    from hotline.tokens import digest

    s.db.execute(
        "UPDATE sessions SET last_seen = last_seen - ?, created_at = created_at - ?"
        " WHERE id_hash = ?",
        (idle, age, digest(cookie)),
    )


def test_idle_timeout(web: tuple[Services, Flask]) -> None:
    s, app = web
    client = app.test_client()
    assert login(client).status_code == 303
    cookie = sid(client)
    _age_session(s, cookie, idle=29 * 60)
    assert client.get("/api/ws-token").status_code == 200  # 29 idle minutes: still fine
    _age_session(s, cookie, idle=31 * 60)
    assert client.get("/api/ws-token").status_code == 401
    assert s.db.query_one("SELECT COUNT(*) FROM sessions")[0] == 0  # gone for good


def test_absolute_timeout_even_when_active(web: tuple[Services, Flask]) -> None:
    s, app = web
    client = app.test_client()
    assert login(client).status_code == 303
    cookie = sid(client)
    _age_session(s, cookie, age=8 * 3600 - 60)
    assert client.get("/api/ws-token").status_code == 200
    _age_session(s, cookie, age=120)  # 8 h + 1 min after login, though active a moment ago
    assert client.get("/api/ws-token").status_code == 401


def test_logout_then_the_old_csrf_token_is_useless(web: tuple[Services, Flask]) -> None:
    _, app = web
    client = app.test_client()
    assert login(client).status_code == 303
    old_csrf, old_sid = session_csrf(client), sid(client)
    assert client.post("/agent/logout", data={"csrf": old_csrf}).status_code == 303
    replay = app.test_client()
    replay.set_cookie(SESSION_COOKIE, old_sid)
    body = {"name": "x", "dialect": "cmn"}
    r = replay.post("/api/elders", json=body, headers={"X-CSRF-Token": old_csrf})
    assert r.status_code in (401, 403)


# ----------------------------------------------------------------- CSRF on every change
def _fill(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: "1" if "id" in m.group(1) else "x", rule)


def state_changing_routes(app: Flask) -> list[str]:
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.methods & {"POST", "PUT", "PATCH", "DELETE"}:
            routes.append(_fill(rule.rule))
    return sorted(set(routes))


def test_csrf_required_on_every_state_changing_route(web: tuple[Services, Flask]) -> None:
    s, app = web
    client = app.test_client()
    assert login(client, "boss").status_code == 303
    routes = state_changing_routes(app)
    assert "/agent/logout" in routes and "/family/book" in routes and "/api/elders" in routes
    before = {
        t: s.db.query_one(f"SELECT COUNT(*) FROM {t}")[0]
        for t in ("agents", "elders", "links", "callbacks", "audit_log", "wrapups")
    }
    for path in routes:
        for headers in ({}, {"X-CSRF-Token": "forged"}):
            r = client.post(path, data={"x": "1"}, headers=headers)
            assert r.status_code == 403, (path, r.status_code)
        anonymous = app.test_client().post(path, data={"csrf": "x"})
        assert anonymous.status_code == 403, (path, anonymous.status_code)
    after = {t: s.db.query_one(f"SELECT COUNT(*) FROM {t}")[0] for t in before}
    assert after == before


# ----------------------------------------------------------------- websocket origin
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    srv = ServerThread(config_for(tmp_path_factory.mktemp("origin")))
    yield srv
    srv.stop()


async def handshake(url: str, origin: str | None) -> int:
    try:
        ws = await connect(url, origin=origin)  # type: ignore[arg-type]
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://localhost.evil.example",
        "http://127.0.0.1.evil.example",
        "null",
        "file://",
    ],
)
def test_websocket_refuses_other_sites(live: ServerThread, origin: str) -> None:
    assert asyncio.run(handshake(f"{live.ws}?role=caller", origin)) == 403


@pytest.mark.parametrize("origin", [None, "http://localhost:8080", "http://127.0.0.1:9999"])
def test_websocket_accepts_own_origins(live: ServerThread, origin: str | None) -> None:
    assert asyncio.run(handshake(f"{live.ws}?role=caller", origin)) == 101


# ----------------------------------------------------------------- links
def test_one_tap_link_revoked_and_expired(live: ServerThread) -> None:
    db = live.db
    elder = elders_db.add(db, "王奶奶", dialect="cmn")
    ok = elders_db.new_link(db, elder.id).token
    gone = elders_db.new_link(db, elder.id).token
    old = elders_db.new_link(db, elder.id, expires_at=time.time() - 1).token
    elders_db.revoke_link(db, gone)
    app = create_app(live.services)
    client = app.test_client()
    assert client.get(f"/c/{ok}").status_code == 200
    assert client.get(f"/c/{gone}").status_code == 410
    assert client.get(f"/c/{old}").status_code == 410

    async def ws_codes() -> list[str]:
        from tests.support import Client

        codes = []
        for token in (gone, old):
            c = await Client.open(f"{live.ws}?role=caller&link={token}")
            codes.append((await c.expect("error"))["code"])
            await c.close()
        return codes

    assert asyncio.run(ws_codes()) == ["link_revoked", "link_expired"]


def test_manage_link_revocable_and_expiring(web: tuple[Services, Flask]) -> None:
    s, app = web
    family = app.test_client()
    page = family.get("/family?lang=en").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    slot = re.findall(r'<option value="(\d+)"', page)[2]
    form = {
        "csrf": csrf,
        "idem": "session-test-000001",
        "name": "王奶奶",
        "phone": "13800138000",
        "dialect": "cmn",
        "topic": "other",
        "slot": slot,
        "contact": "a@b.cn",
    }
    r = family.post("/family/book?lang=en", data=form)
    assert r.status_code == 303
    manage = r.headers["Location"].split("?")[0]
    assert family.get(manage).status_code == 200
    booking = store.all_bookings(s.db)[-1]
    expired = s.signer.dumps(
        MANAGE_PURPOSE, {"b": booking.id, "n": booking.manage_nonce, "e": time.time() - 1}
    )
    assert family.get(f"/family/b/{expired}").status_code == 410
    assert family.get(manage + "x").status_code == 404  # forged
    assert family.post(manage + "/revoke", data={"csrf": csrf}).status_code == 200
    assert family.get(manage).status_code == 410
    assert family.post(manage + "/cancel", data={"csrf": csrf}).status_code == 410
    assert store.get(s.db, booking.id).status == "booked"  # the booking itself stays


# ----------------------------------------------------------------- headers everywhere
def test_security_headers_on_every_page(web: tuple[Services, Flask]) -> None:
    s, app = web
    client = app.test_client()
    assert login(client, "boss").status_code == 303
    elder = elders_db.add(s.db, "王奶奶", dialect="cmn")
    token = elders_db.new_link(s.db, elder.id).token
    pages = ["/", "/call", f"/c/{token}", "/family", "/agent", "/admin", "/healthz", "/nope"]
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and "<" not in rule.rule and not rule.rule.startswith("/static"):
            pages.append(rule.rule)
    for path in sorted(set(pages)):
        r = client.get(path)
        csp = r.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp, path
        script = re.search(r"script-src ([^;]+)", csp)
        assert script and "'unsafe-inline'" not in script.group(1), path
        assert r.headers.get("Referrer-Policy") == "no-referrer", path
        assert r.headers.get("X-Content-Type-Options") == "nosniff", path
        if r.mimetype == "text/html":
            html = r.get_data(as_text=True)
            inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")", html)
            assert not inline, (path, "inline script")
            assert not re.search(r"\son[a-z]+=\"", html), (path, "inline event handler")
