"""The console's pages over HTTP: the sign-in page speaks the hotline's language,
supervisors land on the wallboard, and pages people read show words, not codes."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hotline import services as services_mod
from hotline.db import agents as agents_db
from hotline.db import callbacks as callbacks_db
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from hotline.services import Services
from hotline.web import create_app
from tests.support import test_config as config_for

PASSWORD = "correct horse battery"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    s = services_mod.build(config_for(tmp_path))
    agents_db.add(s.db, "boss", PASSWORD, ["cmn"], display_name="Boss", role="supervisor")
    agents_db.add(s.db, "mei", PASSWORD, ["cmn"], display_name="Mei")
    yield s
    s.speech.close()


@pytest.fixture
def app(services: Services) -> Flask:
    return create_app(services)


def sign_in(client: FlaskClient, username: str) -> str:
    page = client.get("/agent").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = client.post(
        "/agent/login", data={"username": username, "password": PASSWORD, "csrf": token}
    )
    assert r.status_code == 303
    return r.headers["Location"]


def test_login_page_speaks_the_hotlines_language(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/agent", headers={"Accept-Language": "en-US,en;q=0.9"})
    html = page.get_data(as_text=True)
    assert '<html lang="zh-CN">' in html and "登录" in html
    # An explicit choice still wins.
    assert '<html lang="en">' in client.get("/agent?lang=en").get_data(as_text=True)


def test_wrong_password_page_keeps_the_hotlines_language(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/agent").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = client.post(
        "/agent/login",
        data={"username": "mei", "password": "nope", "csrf": token},
        headers={"Accept-Language": "en"},
    )
    assert r.status_code == 401 and '<html lang="zh-CN">' in r.get_data(as_text=True)


def test_supervisor_lands_on_the_wallboard_agent_on_the_console(app: Flask) -> None:
    assert sign_in(app.test_client(), "boss").endswith("/admin")
    assert sign_in(app.test_client(), "mei").endswith("/agent")


def test_wallboard_links_to_the_console(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "boss")
    assert 'href="/agent"' in client.get("/admin").get_data(as_text=True)


def test_call_page_shows_words_not_codes(app: Flask, services: Services) -> None:
    db = services.db
    mei = agents_db.by_username(db, "mei")
    elder = elders_db.add(db, "李奶奶", dialect="cmn")
    t0 = time.time() - 600
    calls_db.create(db, "c1", elder_id=elder.id, dialect="cmn", kind="inbound", arrived_at=t0)
    calls_db.answered(db, "c1", mei.id, t0 + 5)
    calls_db.requeued(db, "c1", "agent_dropped", t0 + 20)
    calls_db.answered(db, "c1", mei.id, t0 + 30)
    calls_db.ended(db, "c1", outcome="completed", ended_by="agent", at=t0 + 120)
    values = {
        "agent_id": mei.id,
        "problem": "退款",
        "action": "教她查",
        "next_step": "明天再看",
        "next_owner": "elder",
        "outcome_code": "solved",
    }
    callbacks_db.save_wrapup(db, "c1", values, t0 + 130)
    client = app.test_client()
    sign_in(client, "boss")
    html = client.get("/admin/calls/c1").get_data(as_text=True)
    shown = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", shown)
    for code in ("solved", "elder", "completed", "(agent)", "agent_dropped"):
        assert code not in text, code
    assert "解决了" in text and "客服挂断" in text and "客服掉线" in text


def test_reports_count_transfers_and_hold_time(app: Flask, services: Services) -> None:
    from hotline.db import call_flow

    db = services.db
    mei = agents_db.by_username(db, "mei")
    boss = agents_db.by_username(db, "boss")
    t0 = time.time() - 600
    calls_db.create(db, "t1", elder_id=None, dialect="cmn", kind="inbound", arrived_at=t0)
    calls_db.answered(db, "t1", boss.id, t0 + 5)
    call_flow.add_hold(db, "t1", 42.0)
    call_flow.transferred(db, "t1", {"from": boss.id, "to": mei.id}, mei.id, t0 + 60)
    calls_db.ended(db, "t1", outcome="completed", ended_by="agent", at=t0 + 120)
    client = app.test_client()
    sign_in(client, "boss")
    html = client.get("/admin/reports").get_data(as_text=True)
    assert "30 天内转接 1 次" in html
    row = re.search(r"<tr><td>Mei</td>.*?</tr>", html)
    assert row is not None and "<td>42</td><td>1</td>" in row.group(0)
    events = [e["kind"] for e in calls_db.events(db, "t1")]
    assert "transfer_done" in events
    assert calls_db.get(db, "t1")["agent_id"] == mei.id


def test_every_call_state_has_words_on_the_wallboard() -> None:
    from hotline.i18n import t
    from hotline.live import switchboard as sb

    states = (sb.WAITING, sb.RINGING, sb.CONNECTED, sb.HELD, sb.ON_HOLD, sb.TRANSFERRING)
    for lang in ("zh_CN", "en"):
        for state in (*states, sb.CALLING_ELDER):
            key = f"admin.call_state.{state}"
            assert t(lang, key) != key, (lang, key)
