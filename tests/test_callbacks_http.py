"""The family pages and the agents' callback API through the real Flask app and SQLite."""

from __future__ import annotations

import dataclasses
import re
import shutil
import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from hotline import services
from hotline.callbacks.notify import LoggingSmsGateway, Mailer
from hotline.callbacks.service import MANAGE_PURPOSE, CallbackService
from hotline.db import agents as agents_db
from hotline.db import audit
from hotline.db import callbacks as store
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from hotline.db import sessions as sessions_db
from hotline.web import create_app
from tests.support import test_config

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2030, 1, 7, 8, 20, tzinfo=TZ).timestamp()  # a Monday morning
TABLES = ("callbacks", "elders", "links", "callback_attempts", "wrapups")


def at(day: int, hour: int) -> int:
    return int(datetime(2030, 1, day, hour, tzinfo=TZ).timestamp())


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Env:
    app: Any
    client: FlaskClient
    svc: CallbackService
    clock: Clock
    s: Any
    ann: Any
    bob: Any

    def snapshot(self) -> dict[str, list[tuple]]:
        return {t: [tuple(r) for r in self.s.db.query(f"SELECT * FROM {t}")] for t in TABLES}

    def use(self, **cfg: Any) -> None:
        """Swap in a service with changed settings (same clock, same database)."""
        self.svc = CallbackService(
            self.s.db,
            dataclasses.replace(self.s.cfg, **cfg),
            self.clock,
            signer=self.s.signer,
            sms=LoggingSmsGateway(),
            mailer=self.svc.mailer,
        )
        self.app.extensions["callbacks"] = self.svc


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database with two agents and a week of shifts, copied for each test
    (password hashing is deliberately slow, so it happens once)."""
    folder = tmp_path_factory.mktemp("template")
    s = services.build(test_config(folder))
    ann = agents_db.add(s.db, "ann", "pw", ["cmn", "yue"], display_name="Ann")
    agents_db.add(s.db, "bob", "pw", ["cmn"], display_name="Bob", lang="en")
    agents_db.add(s.db, "sue", "pw", ["cmn"], role="supervisor")
    with s.db.transaction():
        for day in range(1, 8):
            store.add_shift(s.db, ann.id, day, 9, 17, NOW)
    s.db.close()
    return folder / "hotline.sqlite3"


def make_env(tmp_path: Path, template: Path, **cfg: Any) -> Env:
    shutil.copy(template, tmp_path / "hotline.sqlite3")
    s = services.build(test_config(tmp_path, **cfg))
    clock = Clock(NOW)
    app = create_app(s)
    svc = CallbackService(s.db, s.cfg, clock, signer=s.signer, sms=LoggingSmsGateway())
    app.extensions["callbacks"] = svc
    ann = agents_db.by_username(s.db, "ann")
    bob = agents_db.by_username(s.db, "bob")
    return Env(app, app.test_client(), svc, clock, s, ann, bob)


@pytest.fixture
def env(tmp_path: Path, template_db: Path) -> Iterator[Env]:
    yield make_env(tmp_path, template_db)


def open_form(client: FlaskClient, lang: str = "zh_CN") -> dict[str, Any]:
    r = client.get(f"/family?lang={lang}")
    assert r.status_code == 200
    html = r.data.decode()
    return {
        "csrf": re.search(r'name="csrf" value="([^"]+)"', html).group(1),
        "idem": re.search(r'name="idem" value="([^"]+)"', html).group(1),
        "slots": [int(v) for v in re.findall(r'<option value="(\d+)"', html)],
    }


def book(client: FlaskClient, lang: str = "zh_CN", form: dict | None = None, **changes: Any) -> Any:
    form = form or open_form(client, lang)
    data = {
        "csrf": form["csrf"],
        "idem": form["idem"],
        "name": "张阿姨",
        "phone": "13812345678",
        "dialect": "cmn",
        "topic": "anti_fraud",
        "note": "她最近接到奇怪的电话",
        "slot": [str(at(8, 10)), str(at(8, 11))],
        "contact": "son@example.com",
    }
    data.update(changes)
    return client.post(f"/family/book?lang={lang}", data=data)


def manage_token(location: str) -> str:
    return location.split("/family/b/")[1].split("?")[0]


def login(env: Env, agent: Any) -> tuple[FlaskClient, dict[str, str]]:
    sid, csrf = sessions_db.create(env.s.db, agent.id)
    client = env.app.test_client()
    client.set_cookie("hl_session", sid)
    return client, {"X-CSRF-Token": csrf}


# --- booking -------------------------------------------------------------------------------


def test_form_offers_only_hours_with_capacity(env: Env) -> None:
    slots = open_form(env.client)["slots"]
    assert slots[0] == at(7, 9) and at(7, 17) not in slots and at(8, 8) not in slots
    assert len(slots) == 14 * 8
    assert env.client.get("/family/slots?dialect=ko").json["days"] == []


def test_booking_is_committed_and_shown_with_code_card_and_calendar(env: Env) -> None:
    form = open_form(env.client)
    r = book(env.client, form=form)
    assert r.status_code == 303
    (b,) = store.all_bookings(env.s.db)
    assert (b.status, b.kind, b.slot_start, b.alternates) == (
        "booked",
        "family",
        at(8, 10),
        (at(8, 11),),
    )
    elder = elders_db.get(env.s.db, b.elder_id)
    assert elder.name == "张阿姨" and elder.phone == "13812345678"
    assert b.new_link_token and elders_db.get_link(env.s.db, b.new_link_token)
    page = env.client.get(r.headers["Location"]).data.decode()
    assert b.code in page and "预约好了" in page and "10:00" in page
    token = manage_token(r.headers["Location"])
    card = env.client.get(f"/family/b/{token}/card.svg")
    assert (
        card.status_code == 200 and b"<svg" in card.data and elder.card_code.encode() in card.data
    )
    ics = env.client.get(f"/family/b/{token}/booking.ics")
    assert ics.headers["Content-Type"].startswith("text/calendar")
    assert "DTSTART:20300108T020000Z" in ics.data.decode()
    # A double submit (same idempotency key) returns the same booking.
    again = book(env.client, form=form)
    assert again.status_code == 303
    # Same booking; the token itself may differ (it is signed with the second it was made in).
    again_token = manage_token(again.headers["Location"])
    opened = [env.s.signer.loads(MANAGE_PURPOSE, t)["b"] for t in (token, again_token)]
    assert opened == [b.id, b.id]
    assert len(store.all_bookings(env.s.db)) == 1


def test_existing_elder_by_card_code_gets_no_new_link(env: Env) -> None:
    elder = elders_db.add(env.s.db, "王奶奶", phone="13600000000", dialect="yue")
    elders_db.new_link(env.s.db, elder.id)
    r = book(env.client, card_code=elder.card_code, name="", phone="", dialect="yue")
    assert r.status_code == 303
    (b,) = store.all_bookings(env.s.db)
    assert b.elder_id == elder.id and b.phone == "13600000000" and b.new_link_token is None
    assert "card.svg" not in env.client.get(r.headers["Location"]).data.decode()


def fill(env: Env, slot: int, n: int) -> None:
    for i in range(n):
        r = book(env.client, phone=f"1390000000{i}", slot=[str(slot)])
        assert r.status_code == 303


@pytest.mark.parametrize(
    ("changes", "status", "zh", "en"),
    [
        ({"slot": [str(at(7, 8))]}, 422, "已经过去", "already passed"),
        ({"slot": [str(at(22, 10))]}, 422, "14 天以内", "14 days ahead"),
        ({"phone": "12ab"}, 422, "手机号不对", "phone number is not right"),
        ({"note": "长" * 201}, 422, "最多 200", "at most 200"),
        ({"contact": "not an address"}, 422, "手机号或邮箱", "phone number or e-mail"),
        ({"topic": "weather"}, 422, "要帮什么忙", "need help with"),
        (
            {"card_code": "9999999999", "name": ""},
            404,
            "没找到这个卡号",
            "could not find that card",
        ),
        ({"idem": ""}, 422, "页面已过期", "page expired"),
    ],
)
@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_bad_input_is_explained_and_changes_nothing(
    env: Env, changes: dict, status: int, zh: str, en: str, lang: str
) -> None:
    before = env.snapshot()
    r = book(env.client, lang, **changes)
    assert r.status_code == status
    html = r.data.decode()
    assert (zh if lang == "zh_CN" else en) in html
    assert 'role="alert"' in html
    assert env.snapshot() == before


def test_slot_just_filled(env: Env) -> None:
    fill(env, at(8, 10), 3)
    before = env.snapshot()
    form = open_form(env.client)
    assert at(8, 10) not in form["slots"]
    r = book(env.client, form=form, phone="13700000000", slot=[str(at(8, 10))])
    assert r.status_code == 409 and "刚刚这个时间被约满了" in r.data.decode()
    assert env.snapshot() == before
    # With a second choice that still has room, the booking takes that one.
    r = book(env.client, phone="13700000000", slot=[str(at(8, 10)), str(at(8, 12))])
    assert r.status_code == 303
    assert store.by_idem(env.s.db, _last_idem(env)).slot_start == at(8, 12)


def _last_idem(env: Env) -> str:
    return env.s.db.query_one("SELECT idem_key FROM callbacks ORDER BY id DESC")[0]


def test_missing_csrf_is_refused(env: Env) -> None:
    before = env.snapshot()
    form = open_form(env.client)
    form["csrf"] = "forged"
    r = book(env.client, form=form)
    assert r.status_code == 403
    assert env.snapshot() == before


def test_rate_limits_per_address_and_per_phone(env: Env) -> None:
    env.use(callback_bookings_per_address_hour=4)
    for i in range(3):
        assert book(env.client, slot=[str(at(8, 10 + i))]).status_code == 303
    before = env.snapshot()
    r = book(env.client, slot=[str(at(8, 14))])
    assert r.status_code == 429 and "已有 3 个没完成的预约" in r.data.decode()
    assert env.snapshot() == before
    assert book(env.client, phone="13500000000", slot=[str(at(8, 14))]).status_code == 303
    r = book(env.client, "en", phone="13500000001", slot=[str(at(8, 15))])
    assert r.status_code == 429 and "Too many bookings" in r.data.decode()
    env.clock.now += 3601
    assert book(env.client, phone="13500000001", slot=[str(at(8, 15))]).status_code == 303


# --- manage link ---------------------------------------------------------------------------


def booked_token(env: Env, **changes: Any) -> str:
    r = book(env.client, **changes)
    assert r.status_code == 303
    return manage_token(r.headers["Location"])


def post_manage(env: Env, token: str, action: str, lang: str = "zh_CN", **data: Any) -> Any:
    csrf = open_form(env.client)["csrf"]
    return env.client.post(f"/family/b/{token}/{action}?lang={lang}", data={"csrf": csrf, **data})


def test_reschedule_and_cancel(env: Env) -> None:
    token = booked_token(env)
    r = post_manage(env, token, "reschedule", slot=[str(at(9, 15))])
    assert r.status_code == 303 and "done=rescheduled" in r.headers["Location"]
    (b,) = store.all_bookings(env.s.db)
    assert (b.slot_start, b.due_at) == (at(9, 15), at(9, 15))
    page = env.client.get(r.headers["Location"]).data.decode()
    assert "时间已改好" in page and "15:00" in page
    before = env.snapshot()
    r = post_manage(env, token, "reschedule", "en", slot=[str(at(7, 8))])
    assert r.status_code == 422 and "already passed" in r.data.decode()
    assert env.snapshot() == before
    fill(env, at(10, 9), 3)
    before = env.snapshot()
    r = post_manage(env, token, "reschedule", slot=[str(at(10, 9))])
    assert r.status_code == 409 and env.snapshot() == before
    r = post_manage(env, token, "cancel")
    assert r.status_code == 303
    assert store.get(env.s.db, b.id).status == "cancelled"
    before = env.snapshot()
    r = post_manage(env, token, "cancel", "en")
    assert r.status_code == 409 and "has ended" in r.data.decode()
    assert env.snapshot() == before
    ics = env.client.get(f"/family/b/{token}/booking.ics").data.decode()
    assert "STATUS:CANCELLED" in ics


def test_forged_expired_and_revoked_links(env: Env) -> None:
    token = booked_token(env)
    before = env.snapshot()
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for t in (forged, "nonsense", "x" * 5000):
        r = env.client.get(f"/family/b/{t}?lang=en")
        assert r.status_code == 404 and "This link is not right" in r.data.decode()
        assert post_manage(env, t, "cancel").status_code == 404
    assert env.snapshot() == before
    env.clock.now = at(8, 10) + 31 * 86400
    r = env.client.get(f"/family/b/{token}")
    assert r.status_code == 410 and "已过期" in r.data.decode()
    assert post_manage(env, token, "cancel").status_code == 410
    assert env.snapshot() == before
    env.clock.now = NOW
    assert post_manage(env, token, "revoke").status_code == 200
    r = env.client.get(f"/family/b/{token}")
    assert r.status_code == 410 and "已经关掉" in r.data.decode()
    assert store.all_bookings(env.s.db)[0].status == "booked"


# --- agents --------------------------------------------------------------------------------


def test_agent_list_claim_phone_and_attempts(env: Env) -> None:
    token = booked_token(env, slot=[str(at(7, 9))])
    (b,) = store.all_bookings(env.s.db)
    ann, ann_h = login(env, env.ann)
    bob, bob_h = login(env, env.bob)
    assert env.client.get("/api/callbacks").status_code == 401
    env.clock.now = at(7, 9) + 60
    assert [x.id for x in env.svc.claim_due()] == [b.id]
    groups = ann.get("/api/callbacks").json["groups"]
    (item,) = groups["due_now"]
    assert item["elder"] == {"name": "张阿姨", "phone": "*******5678"}
    assert item["topic"] == "anti_fraud" and item["note"] and item["previous_calls"] == 0
    assert ann.post(f"/api/callbacks/{b.id}/claim").status_code == 403  # no CSRF header
    assert ann.post(f"/api/callbacks/{b.id}/claim", headers=ann_h).status_code == 200
    before = env.snapshot()
    r = bob.post(f"/api/callbacks/{b.id}/claim", headers=bob_h)
    assert r.status_code == 409 and r.json["detail"] == "Ann has already claimed this callback."
    assert bob.get(f"/api/callbacks/{b.id}/phone").status_code == 403
    assert env.snapshot() == before
    r = ann.get(f"/api/callbacks/{b.id}/phone")
    assert r.json["phone"] == "13812345678"
    assert audit.entries(env.s.db, action="callback_phone")[0]["actor"] == f"agent:{env.ann.id}"
    r = ann.post(f"/api/callbacks/{b.id}/attempt", json={"result": "maybe"}, headers=ann_h)
    assert r.status_code == 422 and r.json["detail"] == "请选一个结果。"
    r = ann.post(f"/api/callbacks/{b.id}/attempt", json={"result": "no_answer"}, headers=ann_h)
    assert r.json["status"] == "booked" and r.json["attempts"] == 1
    page = env.client.get(f"/family/b/{token}").data.decode()
    assert "已打过 1 次" in page
    env.clock.now += 15 * 60
    env.svc.claim_due()
    ann.post(f"/api/callbacks/{b.id}/claim", headers=ann_h)
    r = ann.post(
        f"/api/callbacks/{b.id}/attempt",
        json={"result": "rescheduled", "reschedule_to": "2030-01-09T16:30"},
        headers=ann_h,
    )
    assert r.json["status"] == "booked"
    assert r.json["due_at"] == datetime(2030, 1, 9, 16, 30, tzinfo=TZ).timestamp()


def make_call(env: Env, call_id: str, agent: Any, elder_id: int, fraud: bool = False) -> None:
    calls_db.create(
        env.s.db, call_id, elder_id=elder_id, dialect="cmn", kind="callback", arrived_at=NOW
    )
    calls_db.answered(env.s.db, call_id, agent.id, NOW + 1)
    if fraud:
        env.s.db.execute("UPDATE calls SET fraud_flag = 1 WHERE id = ?", (call_id,))


WRAP = {
    "problem": "以为是银行来电，要转账",
    "action": "讲清楚是诈骗，没转账",
    "next_step": "明天再回访",
    "next_owner": "agent",
    "outcome_code": "fraud_stopped",
}


def test_wrapup_rules_and_what_the_family_sees(env: Env) -> None:
    token = booked_token(env, slot=[str(at(7, 9))])
    (b,) = store.all_bookings(env.s.db)
    ann, ann_h = login(env, env.ann)
    bob, bob_h = login(env, env.bob)
    env.clock.now = at(7, 9) + 60
    ann.post(f"/api/callbacks/{b.id}/claim", headers=ann_h)
    make_call(env, "call-cb-1", env.ann, b.elder_id, fraud=True)
    ann.post(
        f"/api/callbacks/{b.id}/attempt",
        json={"result": "reached", "call_id": "call-cb-1"},
        headers=ann_h,
    )
    before = env.snapshot()
    url = "/api/calls/call-cb-1/wrapup"
    r = bob.post(url, json={**WRAP, "share_with_family": True}, headers=bob_h)
    assert r.status_code == 403
    r = ann.post(url, json={**WRAP, "share_with_family": True}, headers=ann_h)
    assert r.status_code == 422 and r.json["field"] == "follow_up"
    r = ann.post(url, json={**WRAP, "outcome_code": "great"}, headers=ann_h)
    assert r.status_code == 422
    r = ann.post(url, json={**WRAP, "follow_up": {"when": "2030-02-01T10:00"}}, headers=ann_h)
    assert r.status_code == 422
    assert ann.post("/api/calls/nope/wrapup", json=WRAP, headers=ann_h).status_code == 404
    assert env.snapshot() == before
    page = env.client.get(f"/family/b/{token}").data.decode()
    assert "已打通" in page and "没转账" not in page
    body = {
        **WRAP,
        "share_with_family": False,
        "follow_up": {"when": "2030-01-08T10:00", "topic": "anti_fraud"},
    }
    r = ann.post(url, json=body, headers=ann_h)
    assert r.status_code == 200 and r.json["follow_up_callback_id"]
    follow = store.get(env.s.db, r.json["follow_up_callback_id"])
    assert (follow.kind, follow.phone, follow.status) == ("follow_up", "13812345678", "booked")
    assert "没转账" not in env.client.get(f"/family/b/{token}").data.decode()
    # The elder agreed to share: the family sees the summary (never a transcript).
    r = ann.post(url, json={**body, "share_with_family": True}, headers=ann_h)
    assert r.json["follow_up_callback_id"] == follow.id  # booked once
    page = env.client.get(f"/family/b/{token}").data.decode()
    assert "讲清楚是诈骗，没转账" in page and "明天再回访" in page
    # A supervisor may wrap up any call; a non-fraud call needs no follow-up.
    sup = agents_db.by_username(env.s.db, "sue")
    make_call(env, "call-2", env.ann, b.elder_id)
    s_client, s_h = login(env, sup)
    r = s_client.post(
        "/api/calls/call-2/wrapup", json={**WRAP, "outcome_code": "solved"}, headers=s_h
    )
    assert r.status_code == 200
    r = ann.post(
        "/api/calls/call-cb-1/wrapup",
        json={**WRAP, "no_follow_up_reason": "family will handle it"},
        headers=ann_h,
    )
    assert r.status_code == 200


# --- e-mail --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_confirmation_email_through_real_smtp(tmp_path: Path, template_db: Path) -> None:
    from email import message_from_bytes, policy

    from aiosmtpd.controller import Controller

    class Sink:
        def __init__(self) -> None:
            self.messages: list[Any] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.messages.append(envelope)
            return "250 OK"

    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        env = make_env(
            tmp_path, template_db, smtp_host="127.0.0.1", smtp_port=port, smtp_from="hl@example.org"
        )
        env.svc.mailer = Mailer(env.s.cfg)
        r = book(env.client, "en")
        assert r.status_code == 303
    finally:
        controller.stop()
    (envelope,) = sink.messages
    assert envelope.rcpt_tos == ["son@example.com"]
    msg = message_from_bytes(envelope.content, policy=policy.default)
    (b,) = store.all_bookings(env.s.db)
    assert b.code in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    assert manage_token(r.headers["Location"]) in text and "2030-01-08 10:00" in text
    (ics,) = [p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert "DTSTART:20300108T020000Z" in ics.get_content()
