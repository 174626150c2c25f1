"""Property-based fuzzing of every JSON and form endpoint through Flask's test client.

/api/elders, /family/book, /family/b/<token>/*, /api/callbacks/*, /api/calls/*/wrapup,
/agent/login: random types, sizes, encodings, missing and extra fields, huge numbers, deep
nesting, invalid UTF-8. Properties: never a 500, and a refused request (4xx) changes nothing
(database row counts before == after). The app answers a health check afterwards.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline import services as services_mod
from hotline.db import agents as agents_db
from hotline.db import callbacks as store
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from hotline.db import now
from hotline.web import create_app
from tests.support import test_config as config_for

# Cases per endpoint group (8,200 in all; FUZZ_SCALE=0.1 for a quick look, 10 for a long run).
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))


def cases(n: int) -> settings:
    return settings(
        max_examples=max(1, int(n * SCALE)),
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )


TABLES = [
    "agents",
    "elders",
    "links",
    "calls",
    "callbacks",
    "callback_attempts",
    "wrapups",
    "sessions",
]
PASSWORD = "correct horse battery"

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.text(alphabet="0123456789", min_size=1, max_size=25),
    st.sampled_from(["cmn", "yue", "ko", "zh_CN", "en", "reached", "no_answer", "rescheduled"]),
    st.sampled_from(["wrong_number", "2030-01-01T10:00", "other", "health", "done", "x" * 300]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
FORM_VALUE = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789 -+", max_size=25),
    st.sampled_from(["cmn", "yue", "other", "health", "a@b.cn", "13800138000", "0", "1"]),
    st.just("x" * 5000),
)


def json_body(fields: list[str]) -> st.SearchStrategy[Any]:
    known = st.dictionaries(st.sampled_from(fields), JSON, max_size=len(fields))
    extra = st.dictionaries(st.text(max_size=6), JSON, max_size=2)
    return st.one_of(
        st.builds(lambda k, e: {**e, **k}, known, extra),
        JSON,
        st.binary(max_size=40),  # not JSON / not UTF-8
        st.just(b"[" * 50_000 + b"]" * 50_000),
        st.just(b'{"name": ' + b"9" * 5000 + b"}"),
        st.just(b'{"a":' * 300 + b"1" + b"}" * 300),
    )


def form_body(fields: list[str]) -> st.SearchStrategy[Any]:
    known = st.dictionaries(st.sampled_from(fields), FORM_VALUE, max_size=len(fields))
    extra = st.dictionaries(st.text(max_size=6), FORM_VALUE, max_size=2)
    return st.one_of(
        st.builds(lambda k, e: {**e, **k}, known, extra),
        st.binary(max_size=60),  # raw body, possibly invalid UTF-8
    )


class App:
    """One app, one signed-in agent, a booking and a call to aim at."""

    def __init__(self, tmp: Path) -> None:
        cfg = config_for(
            tmp, callback_bookings_per_address_hour=10**9, callback_open_per_phone=10**9
        )
        self.services = services_mod.build(cfg)
        db = self.services.db
        agent = agents_db.add(db, "fuzzer", PASSWORD, ["cmn", "yue"])
        for day in range(1, 8):
            store.add_shift(db, agent.id, day, 0, 24, now())
        self.agent_id = agent.id
        self.app = create_app(self.services)
        self.client = self.app.test_client()
        page = self.client.get("/agent").get_data(as_text=True)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        r = self.client.post(
            "/agent/login", data={"username": "fuzzer", "password": PASSWORD, "csrf": csrf}
        )
        assert r.status_code == 303
        self.csrf = re.search(r'"csrf":\s*"([^"]+)"', self.client.get("/agent").get_data(True))[1]
        self.anon = self.app.test_client()
        page = self.anon.get("/family?lang=en").get_data(as_text=True)
        self.family_csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        self.slots = re.findall(r'<option value="(\d+)"', page)
        elder = elders_db.add(db, "王奶奶", phone="13800138000", dialect="cmn")
        calls_db.create(
            db, "fuzzcall0001", elder_id=elder.id, dialect="cmn", kind="inbound", arrived_at=now()
        )
        calls_db.answered(db, "fuzzcall0001", self.agent_id, now())
        calls_db.ended(db, "fuzzcall0001", outcome="completed", ended_by="agent", at=now())
        r = self.anon.post(
            "/family/book?lang=en",
            data={
                "csrf": self.family_csrf,
                "idem": "fuzz-booking-000001",
                "name": "王奶奶",
                "phone": "13800138000",
                "dialect": "cmn",
                "topic": "other",
                "slot": self.slots[3],
                "contact": "a@b.cn",
            },
        )
        assert r.status_code == 303, r.get_data(as_text=True)[:500]
        self.manage = r.headers["Location"].split("?")[0]

    def counts(self) -> dict[str, int]:
        db = self.services.db
        return {t: db.query_one(f"SELECT COUNT(*) FROM {t}")[0] for t in TABLES}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    a = App(Path(tmp_path_factory.mktemp("fuzz-http")))
    yield a
    a.services.speech.close()


def send(client: FlaskClient, method: str, path: str, body: Any, kind: str, csrf: str) -> Any:
    headers = {"X-CSRF-Token": csrf}
    if kind == "json":
        if isinstance(body, bytes):
            return client.open(
                path, method=method, data=body, headers=headers, content_type="application/json"
            )
        return client.open(path, method=method, json=body, headers=headers)
    if isinstance(body, bytes):
        return client.open(
            path,
            method=method,
            data=body,
            headers=headers,
            content_type="application/x-www-form-urlencoded",
        )
    return client.open(path, method=method, data={**body, "csrf": csrf}, headers=headers)


def check(app: App, client: FlaskClient, path: str, body: Any, kind: str, csrf: str) -> int:
    before = app.counts()
    response = send(client, "POST", path, body, kind, csrf)
    assert response.status_code != 500, (path, body, response.get_data(as_text=True)[:300])
    assert response.status_code < 500, (path, response.status_code)
    if response.status_code >= 400:
        assert app.counts() == before, (path, body, response.status_code)
    return response.status_code


ELDER_FIELDS = ["name", "dialect", "phone", "lang", "auto_start"]
BOOK_FIELDS = ["idem", "card_code", "name", "phone", "dialect", "topic", "note", "slot"]
BOOK_FIELDS += ["contact"]
ATTEMPT_FIELDS = ["result", "reschedule_to", "call_id"]
WRAPUP_FIELDS = ["problem", "action", "next_step", "next_owner", "outcome_code"]
WRAPUP_FIELDS += ["share_with_family", "follow_up", "no_follow_up_reason"]


@cases(1500)
@given(body=json_body(ELDER_FIELDS))
def test_fuzz_api_elders(app: App, body: Any) -> None:
    check(app, app.client, "/api/elders", body, "json", app.csrf)


@cases(300)
@given(body=form_body(BOOK_FIELDS))
def test_fuzz_family_book(app: App, body: Any) -> None:
    if isinstance(body, dict) and "idem" in body:
        body["idem"] = "fuzz" + str(abs(hash(body["idem"])))[:20].rjust(16, "0")
    check(app, app.anon, "/family/book?lang=en", body, "form", app.family_csrf)


@cases(1500)
@given(
    action=st.sampled_from(["reschedule", "cancel"]),
    token=st.one_of(st.just("OWN"), st.text(max_size=80), st.just("x" * 3000)),
    body=form_body(["slot"]),
)
def test_fuzz_family_manage(app: App, action: str, token: str, body: Any) -> None:
    path = app.manage if token == "OWN" else "/family/b/" + token.replace("/", "%2F")
    status = check(app, app.anon, f"{path}/{action}", body, "form", app.family_csrf)
    assert status in (200, 303, 308, 400, 403, 404, 405, 409, 410, 413, 422), status


@cases(300)
@given(token=st.one_of(st.text(max_size=80), st.binary(max_size=40).map(lambda b: b.hex())))
def test_fuzz_family_revoke_and_reads(app: App, token: str) -> None:
    path = "/family/b/" + token.replace("/", "%2F").replace("?", "%3F").replace("#", "%23")
    for suffix in ("", "/booking.ics", "/card.svg"):
        r = app.anon.get(path + suffix)
        assert r.status_code < 500, (path, r.status_code)
    check(app, app.anon, path + "/revoke", {}, "form", app.family_csrf)


@cases(2500)
@given(
    booking=st.one_of(st.integers(min_value=0, max_value=2**40), st.just(1)),
    action=st.sampled_from(["claim", "attempt", "phone"]),
    body=json_body(ATTEMPT_FIELDS),
)
def test_fuzz_api_callbacks(app: App, booking: int, action: str, body: Any) -> None:
    if action == "phone":
        r = app.client.get(f"/api/callbacks/{booking}/phone")
        assert r.status_code < 500
        return
    check(app, app.client, f"/api/callbacks/{booking}/{action}", body, "json", app.csrf)


@cases(2000)
@given(
    call_id=st.one_of(st.just("fuzzcall0001"), st.text(max_size=80)),
    body=json_body(WRAPUP_FIELDS),
)
def test_fuzz_api_wrapup(app: App, call_id: str, body: Any) -> None:
    safe = call_id.replace("/", "%2F").replace("?", "%3F").replace("#", "%23") or "x"
    check(app, app.client, f"/api/calls/{safe}/wrapup", body, "json", app.csrf)


@cases(100)
@given(body=form_body(["username", "password", "csrf"]))
def test_fuzz_agent_login(app: App, body: Any) -> None:
    client = app.app.test_client()
    page = client.get("/agent").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    before = app.counts()
    r = send(client, "POST", "/agent/login", body, "form", csrf)
    assert r.status_code < 500
    if r.status_code != 303:
        after = app.counts()
        assert after == before


def test_still_answers(app: App) -> None:
    assert app.client.get("/healthz").status_code == 200
    assert app.client.get("/api/ws-token").status_code == 200


DEEP = b"[" * 50_000 + b"]" * 50_000


@pytest.mark.parametrize(
    "path", ["/api/elders", "/api/callbacks/1/attempt", "/api/calls/fuzzcall0001/wrapup"]
)
def test_deeply_nested_json_is_a_400(app: App, path: str) -> None:
    """Regression (found here, fixed in ad37a40): RecursionError escaped get_json -> 500."""
    before = app.counts()
    r = app.client.post(
        path, data=DEEP, content_type="application/json", headers={"X-CSRF-Token": app.csrf}
    )
    assert app.counts() == before
    assert r.status_code == 400, r.status_code


@pytest.mark.parametrize("dialect", [[], {}, ["cmn"]])
def test_unhashable_dialect_is_a_400(app: App, dialect: Any) -> None:
    """Regression (found here, fixed in ad37a40): a list/object dialect was a TypeError 500."""
    before = app.counts()
    r = app.client.post(
        "/api/elders", json={"name": "x", "dialect": dialect}, headers={"X-CSRF-Token": app.csrf}
    )
    assert app.counts() == before
    assert r.status_code == 400, r.status_code
