"""Transcripts: masked on the way in, readable only by the call's agent or a supervisor, audited."""

from __future__ import annotations

import time

from hotline.db import agents as agents_db
from hotline.db import audit
from hotline.db import calls as calls_db
from hotline.db import transcripts as transcripts_db
from hotline.services import build
from hotline.web import create_app
from tests.support import test_config


def _login(client, username: str, password: str) -> None:
    client.get("/agent")
    csrf = client.get_cookie("hl_login_csrf").value
    r = client.post("/agent/login", data={"username": username, "password": password, "csrf": csrf})
    assert r.status_code == 303


def test_transcript_access_and_audit(tmp_path) -> None:
    services = build(test_config(tmp_path))
    db = services.db
    a1 = agents_db.add(db, "a1", "pw1", ["cmn"])
    agents_db.add(db, "a2", "pw2", ["cmn"])
    agents_db.add(db, "boss", "pw3", ["cmn"], role="supervisor")
    calls_db.create(db, "c1", elder_id=None, dialect="cmn", kind="inbound", arrived_at=time.time())
    calls_db.answered(db, "c1", a1.id, time.time())
    transcripts_db.add_line(
        db, "c1", "caller", "cmn", {"text": "我的电话是 138 1234 5678 身份证 11010519491231002X"}
    )
    stored = transcripts_db.lines(db, "c1")[0]["text"]
    assert "13812345678" not in stored.replace(" ", "") and "5678" in stored
    assert "11010519491231002X" not in stored and "002X" in stored

    app = create_app(services)
    anonymous = app.test_client()
    assert anonymous.get("/api/calls/c1/transcript").status_code == 401
    for user, pw, status in (("a1", "pw1", 200), ("a2", "pw2", 403), ("boss", "pw3", 200)):
        client = app.test_client()
        _login(client, user, pw)
        r = client.get("/api/calls/c1/transcript")
        assert r.status_code == status, (user, r.status_code)
        if status == 200:
            assert r.get_json()["lines"][0]["text"] == stored
    reads = audit.entries(db, action="transcript_read")
    assert {e["actor"] for e in reads} == {
        f"agent:{a1.id}",
        f"agent:{agents_db.by_username(db, 'boss').id}",
    }
    assert audit.entries(db, action="transcript_denied")


def test_retention_purges_old_lines(tmp_path) -> None:
    services = build(test_config(tmp_path))
    db = services.db
    calls_db.create(db, "c1", elder_id=None, dialect="cmn", kind="inbound", arrived_at=time.time())
    transcripts_db.add_line(db, "c1", "caller", "cmn", {"text": "old"})
    transcripts_db.add_line(db, "c1", "caller", "cmn", {"text": "new"})
    db.execute("UPDATE transcripts SET at = at - 91 * 86400 WHERE text = 'old'")
    assert transcripts_db.purge_older_than(db, 90) == 1
    assert [line["text"] for line in transcripts_db.lines(db, "c1")] == ["new"]
