"""A role matrix: anonymous, caller (one-tap link), family (manage link), agent, another agent
and supervisor against every page, API and websocket action; each gets exactly what it should,
and every transcript read is in the audit log."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hotline.db import agents as agents_db
from hotline.db import audit, now
from hotline.db import callbacks as store
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from hotline.db import transcripts as transcripts_db
from hotline.web import create_app
from tests.support import Client, ServerThread, agent_ticket
from tests.support import test_config as config_for

PW = "role-matrix-password"
SECRET_LINE = "我的卡号 6222 0212 3456 7890 123 密码不要说"


class World:
    """One server: two agents, a supervisor, two elders, a finished call of agent A's with a
    transcript, a family booking; HTTP clients for every role."""

    def __init__(self, srv: ServerThread) -> None:
        self.srv = srv
        db = srv.db
        self.a = agents_db.add(db, "agent_a", PW, ["cmn"], display_name="A")
        self.b = agents_db.add(db, "agent_b", PW, ["cmn"], display_name="B")
        self.sup = agents_db.add(db, "boss", PW, ["cmn"], role="supervisor")
        for day in range(1, 8):
            store.add_shift(db, self.a.id, day, 0, 24, now())
        self.elder = elders_db.add(db, "王奶奶", phone="13800138000", dialect="cmn")
        self.other = elders_db.add(db, "李爷爷", phone="13911112222", dialect="cmn")
        self.link = elders_db.new_link(db, self.elder.id).token
        self.other_link = elders_db.new_link(db, self.other.id).token
        self.call = "rolecall00000001"
        calls_db.create(
            db, self.call, elder_id=self.other.id, dialect="cmn", kind="inbound", arrived_at=now()
        )
        calls_db.answered(db, self.call, self.a.id, now())
        calls_db.ended(db, self.call, outcome="completed", ended_by="agent", at=now())
        transcripts_db.add_line(db, self.call, "caller", "cmn", {"text": SECRET_LINE})
        self.app: Flask = create_app(srv.services)
        self.clients = {"anonymous": self.app.test_client(), "caller": self.app.test_client()}
        for role, user in (("agent", "agent_a"), ("other_agent", "agent_b"), ("super", "boss")):
            self.clients[role] = self.signed_in(user)
        self.csrf = {r: self.csrf_of(c) for r, c in self.clients.items() if r not in ("anonymous",)}
        family = self.app.test_client()
        page = family.get("/family?lang=en").get_data(as_text=True)
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        slot = re.findall(r'<option value="(\d+)"', page)[1]
        r = family.post(
            "/family/book?lang=en",
            data={
                "csrf": token,
                "idem": "role-matrix-booking-1",
                "name": "王奶奶",
                "phone": "13800138000",
                "dialect": "cmn",
                "topic": "other",
                "slot": slot,
                "contact": "family@example.com",
            },
        )
        assert r.status_code == 303, r.status_code
        self.manage = r.headers["Location"].split("?")[0]
        self.booking = store.all_bookings(db)[-1].id
        self.clients["family"] = family

    def signed_in(self, user: str) -> FlaskClient:
        client = self.app.test_client()
        page = client.get("/agent").get_data(as_text=True)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        r = client.post("/agent/login", data={"username": user, "password": PW, "csrf": csrf})
        assert r.status_code == 303
        return client

    @staticmethod
    def csrf_of(client: FlaskClient) -> str:
        page = client.get("/agent").get_data(as_text=True)
        m = re.search(r'"csrf":\s*"([^"]+)"', page)
        return m.group(1) if m else ""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    srv = ServerThread(config_for(Path(tmp_path_factory.mktemp("roles"))))
    yield World(srv)
    srv.stop()


ROLES = ["anonymous", "caller", "family", "agent", "other_agent", "super"]

# (path, expected status per role in ROLES order). "C" is the call id; "B" the booking id.
READS: list[tuple[str, tuple[int, ...]]] = [
    ("/api/calls/C/transcript", (401, 401, 401, 200, 403, 200)),
    ("/api/calls/C", (401, 401, 401, 200, 403, 200)),
    ("/api/ws-token", (401, 401, 401, 200, 200, 200)),
    ("/api/callbacks", (401, 401, 401, 200, 200, 200)),
    ("/api/callbacks/B/phone", (401, 401, 401, 403, 403, 403)),
    ("/api/admin/wallboard", (401, 401, 401, 403, 403, 200)),
    ("/api/admin/calls", (401, 401, 401, 403, 403, 200)),
    ("/api/admin/calls/C", (401, 401, 401, 403, 403, 200)),
    ("/api/admin/agents", (401, 401, 401, 403, 403, 200)),
    ("/agent/elders/E/card.svg", (401, 401, 401, 403, 403, 200)),
]


def _path(world: World, path: str) -> str:
    return (
        path.replace("C", world.call, 1)
        .replace("/B/", f"/{world.booking}/")
        .replace("/E/", f"/{world.elder.id}/")
        if "/C" in path or "/B/" in path or "/E/" in path
        else path
    )


@pytest.mark.parametrize(("path", "expected"), READS, ids=[p for p, _ in READS])
def test_read_matrix(world: World, path: str, expected: tuple[int, ...]) -> None:
    got = {}
    for role in ROLES:
        r = world.clients[role].get(_path(world, path))
        got[role] = r.status_code
        body = r.get_data(as_text=True)
        if r.status_code != 200:
            assert "6222" not in body and "王奶奶" not in body and "李爷爷" not in body, role
    assert got == dict(zip(ROLES, expected, strict=True))


def test_admin_pages_only_for_supervisors(world: World) -> None:
    for role in ROLES:
        r = world.clients[role].get("/admin")
        if role == "super":
            assert r.status_code == 200
        else:
            assert r.status_code in (302, 303, 401, 403), (role, r.status_code)
            assert "李爷爷" not in r.get_data(as_text=True)


def test_every_transcript_read_is_audited(world: World) -> None:
    db = world.srv.db
    before = len(audit.entries(db, action="transcript_read", limit=10_000))
    reads = 0
    for role in ("agent", "super", "agent", "super"):
        r = world.clients[role].get(f"/api/calls/{world.call}/transcript")
        assert r.status_code == 200
        reads += 1
        text = r.get_json()["lines"][0]["text"]
        assert "6222021234567890123" not in text.replace(" ", "")  # stored masked
    r = world.clients["super"].get(f"/api/admin/calls/{world.call}")
    if r.status_code == 200 and "6222" in r.get_data(as_text=True):
        reads += 1  # the admin call view shows the transcript: it must be audited too
    after = audit.entries(db, action="transcript_read", limit=10_000)
    assert len(after) - before == reads
    assert all(e["subject"] == f"call:{world.call}" for e in after[: len(after) - before])
    denied = audit.entries(db, action="transcript_denied", limit=10_000)
    world.clients["other_agent"].get(f"/api/calls/{world.call}/transcript")
    assert len(audit.entries(db, action="transcript_denied", limit=10_000)) == len(denied) + 1


def test_callers_and_family_see_only_their_own(world: World) -> None:
    caller_page = world.clients["caller"].get(f"/c/{world.link}").get_data(as_text=True)
    assert "王奶奶" in caller_page
    assert "李爷爷" not in caller_page and "6222" not in caller_page
    assert "13800138000" not in caller_page  # not even their own number on the page
    family_page = world.clients["family"].get(world.manage).get_data(as_text=True)
    assert "李爷爷" not in family_page and "13911112222" not in family_page
    assert "6222" not in family_page and "13800138000" not in family_page
    for path in ("/api/calls/x/transcript", f"/api/callbacks/{world.booking}/phone"):
        assert world.clients["family"].get(path).status_code == 401


def test_phone_only_for_the_claiming_agent_and_audited(world: World) -> None:
    db = world.srv.db
    headers = {"X-CSRF-Token": world.csrf["agent"]}
    store.update(db, world.booking, ("booked",), status="queued", queued_at=time.time())
    r = world.clients["agent"].post(f"/api/callbacks/{world.booking}/claim", headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    r = world.clients["agent"].get(f"/api/callbacks/{world.booking}/phone")
    assert r.status_code == 200 and r.get_json()["phone"] == "13800138000"
    assert world.clients["other_agent"].get(f"/api/callbacks/{world.booking}/phone").status_code
    assert audit.entries(db, action="callback_phone")
    other = world.clients["other_agent"].get(f"/api/callbacks/{world.booking}/phone")
    assert other.status_code == 403


def test_wrapup_only_for_the_calls_agent_or_supervisor(world: World) -> None:
    body = {
        "problem": "p",
        "action": "a",
        "next_step": "n",
        "next_owner": "agent",
        "outcome_code": "solved",
        "share_with_family": False,
        "no_follow_up_reason": "done",
    }
    for role, allowed in (("anonymous", False), ("other_agent", False), ("agent", True)):
        headers = {"X-CSRF-Token": world.csrf.get(role, "")}
        r = world.clients[role].post(f"/api/calls/{world.call}/wrapup", json=body, headers=headers)
        if allowed:
            assert r.status_code in (200, 422), (role, r.status_code, r.get_data(as_text=True))
        else:
            assert r.status_code in (401, 403), (role, r.status_code)


# ----------------------------------------------------------------- websocket actions
AGENT_ONLY = ["accept", "decline", "status", "ready", "caption_dialect", "guide_start"]
SUPERVISOR_ONLY = ["monitor"]


def test_websocket_role_matrix(world: World) -> None:
    srv = world.srv

    def url(agent_id: int) -> str:
        return f"{srv.ws}?role=agent&token={agent_ticket(srv, agent_id)}"

    async def scenario() -> dict[str, Any]:
        a = await Client.open(url(world.a.id))
        await a.expect("hello")
        await a.send({"type": "status", "status": "available"})
        b = await Client.open(url(world.b.id))
        await b.expect("hello")
        sup = await Client.open(url(world.sup.id))
        await sup.expect("hello")
        caller = await Client.open(f"{srv.ws}?role=caller&link={world.link}")
        await caller.expect("hello")
        await caller.send({"type": "call"})
        ring = await a.expect("ring")
        call_id = ring["call_id"]
        await a.send({"type": "accept", "call_id": call_id})
        await caller.expect("connected")
        out: dict[str, Any] = {}
        for kind in AGENT_ONLY + SUPERVISOR_ONLY:
            await caller.send({"type": kind, "call_id": call_id, "dialect": "cmn", "on": True})
            out[f"caller:{kind}"] = (await caller.expect("error"))["code"]
        for kind, extra in (
            ("monitor", {}),
            ("caption_dialect", {"dialect": "cmn"}),
            ("guide_start", {"script_id": "x"}),
            ("accept", {}),
            ("hangup", {}),
            ("signal", {"data": {"candidate": None}}),
        ):
            await b.send({"type": kind, "call_id": call_id, **extra})
            out[f"other_agent:{kind}"] = (await b.expect("error"))["code"]
        await sup.send({"type": "monitor", "call_id": call_id})
        out["super:monitor"] = (await sup.expect("monitoring"))["call_id"] == call_id
        await sup.send({"type": "hangup", "call_id": call_id})
        out["super:hangup"] = (await sup.expect("error"))["code"]
        out["call_state"] = srv.switchboard.calls[call_id].state  # on the server loop here
        # Nobody outside the call saw its signalling or the elder's name.
        await caller.send({"type": "signal", "data": {"candidate": None}})
        await a.expect("signal")
        await asyncio.sleep(0.2)
        out["b_saw"] = [m["type"] for m in b.seen if m.get("call_id") == call_id]
        out["b_names"] = "王奶奶" in str(b.seen)
        await a.send({"type": "hangup", "call_id": call_id})
        await caller.expect("ended")
        for c in (a, b, sup, caller):
            await c.close()
        return out

    out = srv.call(scenario())
    for kind in AGENT_ONLY + SUPERVISOR_ONLY:
        assert out[f"caller:{kind}"] == "unknown_type", (kind, out)
    assert out["other_agent:monitor"] == "forbidden"
    for kind in ("caption_dialect", "guide_start"):
        assert out[f"other_agent:{kind}"] in ("not_in_call", "forbidden"), out
    assert out["other_agent:accept"] == "already_answered"
    assert out["other_agent:hangup"] == "no_call"
    assert out["other_agent:signal"] == "not_your_call"
    assert out["super:monitor"] is True
    assert out["super:hangup"] == "no_call"
    assert out["call_state"] == "connected"
    assert "signal" not in out["b_saw"]
