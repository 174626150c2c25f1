"""Agent sign-in over HTTP: CSRF, throttling, session cookies, rotation, logout, headers.

Flask's test client against the real app factory and a temp SQLite database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hotline import services as services_mod
from hotline.db import agents as agents_db
from hotline.services import Services
from hotline.web import create_app
from hotline.web.security import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from tests.support import test_config as config_for

PASSWORD = "correct horse battery"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    s = services_mod.build(config_for(tmp_path))
    yield s
    s.speech.close()


@pytest.fixture
def app(services: Services) -> Flask:
    agents_db.add(services.db, "mei", PASSWORD, ["cmn", "yue"], display_name="Mei")
    return create_app(services)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def login_csrf(client: FlaskClient) -> str:
    """Open the sign-in page; returns the form's CSRF token (its cookie is now set)."""
    page = client.get("/agent")
    assert page.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True))
    assert match, "no CSRF field on the sign-in form"
    return match.group(1)


def login(
    client: FlaskClient, username: str = "mei", password: str = PASSWORD, **environ: Any
) -> Any:
    token = login_csrf(client)
    return client.post(
        "/agent/login",
        data={"username": username, "password": password, "csrf": token},
        environ_base=environ or {},
    )


def session_csrf(client: FlaskClient) -> str:
    """The signed-in console's CSRF token (from its boot JSON)."""
    page = client.get("/agent").get_data(as_text=True)
    match = re.search(r'"csrf":\s*"([^"]+)"', page)
    assert match, "not signed in"
    return match.group(1)


def sid(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(SESSION_COOKIE)
    return cookie.value if cookie else None


def test_login_page(client: FlaskClient) -> None:
    page = client.get("/agent?lang=en")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'action="/agent/login"' in html and 'type="password"' in html
    assert "<script>" not in html  # no inline script under the CSP
    cookie = client.get_cookie(LOGIN_CSRF_COOKIE)
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
    # The same token is reused while the browser keeps the cookie (double submit).
    assert login_csrf(client) == login_csrf(client) == cookie.value


def test_login_and_console(client: FlaskClient) -> None:
    response = login(client)
    assert response.status_code == 303 and response.headers["Location"].endswith("/agent")
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None and cookie.value
    assert cookie.http_only and cookie.same_site == "Lax"
    raw = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(SESSION_COOKIE)]
    assert len(raw) == 1 and "HttpOnly" in raw[0] and "SameSite=Lax" in raw[0]
    console = client.get("/agent")
    assert console.status_code == 200 and "Mei" in console.get_data(as_text=True)
    assert session_csrf(client) != client.get_cookie(SESSION_COOKIE).value


@pytest.mark.parametrize(
    ("username", "password"),
    [("mei", "wrong"), ("nobody", PASSWORD), ("mei", ""), ("", ""), ("mei", PASSWORD.upper())],
)
def test_wrong_credentials(client: FlaskClient, username: str, password: str) -> None:
    response = login(client, username, password)
    assert response.status_code == 401
    assert 'data-error="login_failed"' in response.get_data(as_text=True)
    assert sid(client) is None
    assert client.get("/api/ws-token").status_code == 401


@pytest.mark.parametrize("csrf", [None, "", "forged-token"])
def test_login_needs_csrf(client: FlaskClient, csrf: str | None) -> None:
    login_csrf(client)  # the cookie is set; the form field is what is missing or wrong
    data = {"username": "mei", "password": PASSWORD}
    if csrf is not None:
        data["csrf"] = csrf
    response = client.post("/agent/login", data=data)
    assert response.status_code == 403
    assert sid(client) is None


def test_login_csrf_needs_the_cookie_too(app: Flask) -> None:
    token = login_csrf(app.test_client())
    fresh = app.test_client()  # another browser: has the token text but not the cookie
    response = fresh.post(
        "/agent/login", data={"username": "mei", "password": PASSWORD, "csrf": token}
    )
    assert response.status_code == 403


def test_throttle_per_account(client: FlaskClient) -> None:
    for _ in range(5):
        assert login(client, "mei", "wrong").status_code == 401
    response = login(client, "mei", PASSWORD)  # even the right password waits now
    assert response.status_code == 429
    assert 'data-error="login_throttled"' in response.get_data(as_text=True)
    assert sid(client) is None
    # Another address is not: the limit is on (account, address), so a stranger guessing
    # cannot lock the agent out (issue 17, finding 8).
    assert login(client, "mei", PASSWORD, REMOTE_ADDR="10.9.8.7").status_code == 303


def test_throttle_per_address(app: Flask, services: Services) -> None:
    agents_db.add(services.db, "li", PASSWORD, ["cmn"])
    client = app.test_client()
    here = {"REMOTE_ADDR": "10.0.0.5"}
    for i in range(20):
        assert login(client, f"guess{i}", "wrong", **here).status_code == 401
    assert login(client, "li", PASSWORD, **here).status_code == 429
    # The account itself is fine from another address.
    other = app.test_client()
    assert login(other, "li", PASSWORD, REMOTE_ADDR="10.0.0.6").status_code == 303


def test_session_rotated_at_login_replaces_old_cookie(app: Flask) -> None:
    client = app.test_client()
    assert login(client).status_code == 303
    first = sid(client)
    # Sign in again from the same browser (e.g. a stale tab): a fresh session, the old one dies.
    response = client.post(
        "/agent/login",
        data={"username": "mei", "password": PASSWORD, "csrf": session_csrf(client)},
    )
    assert response.status_code == 303
    second = sid(client)
    assert second and second != first
    stale = app.test_client()
    stale.set_cookie(SESSION_COOKIE, first)
    assert stale.get("/api/ws-token").status_code == 401
    assert client.get("/api/ws-token").status_code == 200


def test_planted_session_cookie_is_not_adopted(app: Flask) -> None:
    client = app.test_client()
    client.set_cookie(SESSION_COOKIE, "attacker-chosen-value")
    assert login(client).status_code == 303
    assert sid(client) != "attacker-chosen-value"
    victim = app.test_client()
    victim.set_cookie(SESSION_COOKIE, "attacker-chosen-value")
    assert victim.get("/api/ws-token").status_code == 401


def test_logout_needs_csrf_and_kills_the_session(app: Flask) -> None:
    client = app.test_client()
    assert login(client).status_code == 303
    old = sid(client)
    assert client.post("/agent/logout").status_code == 403
    assert client.post("/agent/logout", data={"csrf": "nope"}).status_code == 403
    assert client.get("/api/ws-token").status_code == 200  # still signed in
    response = client.post("/agent/logout", data={"csrf": session_csrf(client)})
    assert response.status_code == 303
    assert sid(client) is None
    replay = app.test_client()
    replay.set_cookie(SESSION_COOKIE, old)
    assert replay.get("/api/ws-token").status_code == 401
    assert 'action="/agent/login"' in replay.get("/agent").get_data(as_text=True)


def test_ws_token_needs_a_session(client: FlaskClient, services: Services) -> None:
    anonymous = client.get("/api/ws-token")
    assert anonymous.status_code == 401 and anonymous.get_json()["error"] == "unauthorized"
    assert login(client).status_code == 303
    got = client.get("/api/ws-token").get_json()
    payload = services.signer.loads("ws", got["token"], max_age=got["expires_in"])
    agent = agents_db.by_username(services.db, "mei")
    # Bound to this session (its stored hash) and single-use (a nonce), issue 17.
    assert set(payload) == {"agent", "s", "n"} and payload["agent"] == agent.id
    assert (
        services.db.query_one("SELECT agent_id FROM sessions WHERE id_hash = ?", (payload["s"],))[0]
        == agent.id
    )
    assert got["expires_in"] == services.cfg.ws_token_seconds


def test_add_elder_needs_csrf(client: FlaskClient) -> None:
    body = {"name": "王奶奶", "dialect": "cmn", "phone": "13800138000"}
    assert client.post("/api/elders", json=body).status_code in (401, 403)  # not signed in
    assert login(client).status_code == 303
    refused = client.post("/api/elders", json=body)
    assert refused.status_code == 403 and refused.get_json()["error"] == "csrf"
    bad = client.post("/api/elders", json=body, headers={"X-CSRF-Token": "forged"})
    assert bad.status_code == 403
    ok = client.post("/api/elders", json=body, headers={"X-CSRF-Token": session_csrf(client)})
    assert ok.status_code == 201
    made = ok.get_json()
    assert made["elder"]["name"] == "王奶奶" and "/c/" in made["link"]
    assert made["elder"]["phone"] != "13800138000"  # masked in the answer
    status = client.get("/c/" + made["link"].rsplit("/c/", 1)[1]).status_code
    assert status == 200


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 41},
        {"name": "ok", "dialect": "klingon"},
        {"name": "ok", "phone": "12ab"},
        {"name": "ok", "lang": "fr"},
        ["not", "an", "object"],
    ],
)
def test_add_elder_validates(client: FlaskClient, body: Any) -> None:
    assert login(client).status_code == 303
    response = client.post("/api/elders", json=body, headers={"X-CSRF-Token": session_csrf(client)})
    assert response.status_code == 400
    assert response.get_json()["error"] in ("bad_field", "bad_json")


@pytest.mark.parametrize("path", ["/agent", "/call", "/", "/healthz", "/api/ws-token", "/nope"])
def test_security_headers(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}
    script = directives.get("script-src", directives.get("default-src"))
    assert script is not None and "'unsafe-inline'" not in script and "'unsafe-eval'" not in script
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert response.headers["Referrer-Policy"] in ("no-referrer", "same-origin", "strict-origin")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers.get("X-Frame-Options") == "DENY"


def test_error_pages_do_not_leak(client: FlaskClient) -> None:
    for response in (client.get("/c/unknown-token"), client.get("/agent/elders/1/card.svg")):
        text = response.get_data(as_text=True)
        assert response.status_code in (401, 404)
        assert "Traceback" not in text and "werkzeug" not in text.lower()
