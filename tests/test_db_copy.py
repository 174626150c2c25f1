"""`hotline db migrate` and `hotline db copy --to postgresql://…` from a populated SQLite site."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hotline import cli
from hotline.db import (
    Database,
    agents,
    audit,
    callbacks,
    calls,
    elders,
    guidance,
    open_database,
    photos,
    reports,
    sessions,
    transcripts,
)
from hotline.db.copy import tables
from tests.engines import present

# Every table of the schema this test fills (a table added later is still copied and counted).
FILLED = {
    "agents", "elders", "links", "calls", "call_events", "audit_log", "login_failures",
    "sessions", "guidance_answers", "shifts", "callbacks", "callback_attempts", "wrapups",
    "transcripts", "script_settings",
    "card_failures", "elder_photos",
}  # fmt: skip


def populate(db: Database) -> dict[str, object]:
    """A small site: two agents, elders with links, calls with events, bookings, everything."""
    t0 = time.time() - 3600
    ann = agents.add(db, "ann", "pw", ["cmn", "yue"], display_name="安")
    agents.add(db, "sue", "pw", ["cmn"], role="supervisor")
    agents.record_login_failure(db, "ann", "10.0.0.9")
    sessions.create(db, ann.id)
    zhang = elders.add(db, "张阿姨", phone="13812345678")
    elders.add(db, "김할머니", dialect="ko")
    link = elders.new_link(db, zhang.id, auto_start=True)
    for i in range(30):
        cid = f"call-{i:02d}"
        calls.create(
            db, cid, elder_id=zhang.id, dialect="cmn", kind="inbound", arrived_at=t0 + i,
            rejoin_hash=f"h{i}",
        )  # fmt: skip
        calls.rang(db, cid, ann.id, t0 + i + 1.25)
        calls.answered(db, cid, ann.id, t0 + i + 2.5)
        calls.ended(db, cid, outcome="resolved", ended_by="agent", at=t0 + i + 60.125)
    calls.event(db, "call-00", "alert", {"category": "fraud", "phrase": "转账"})
    transcripts.add_line(db, "call-00", "caller", "cmn", {"text": "你好 13812345678"})
    guidance.record_answer(
        db, "call-00", {"script_id": "wifi", "step_id": "s1", "answer": "yes", "seq": 1,
                        "at": t0, "seconds": 1.5},
    )  # fmt: skip
    callbacks.add_shift(db, ann.id, 1, 9, 17, t0)
    bid = callbacks.insert(
        db,
        {"code": "ABC234", "kind": "family", "status": "booked", "elder_id": zhang.id,
         "phone": "13812345678", "dialect": "cmn", "slot_start": t0 + 7200, "due_at": t0 + 7200,
         "alternates": (t0 + 10800,), "created_at": t0, "updated_at": t0},
    )  # fmt: skip
    callbacks.add_attempt(db, bid, at=t0, agent_id=ann.id, result="no_answer", call_id="call-01")
    callbacks.save_wrapup(
        db, "call-01", {"agent_id": ann.id, "outcome_code": "resolved", "problem": "wifi"}, t0
    )
    reports.set_script_enabled(db, "tv", False, "sue")
    audit.record(db, "sue", "transcript.read", "call-00")
    elders.record_card_failure(db, "10.0.0.9", t0)
    photos.add(db, zhang.id, "photos/zhang.jpg", "image/jpeg", "sue", True)
    for n in (1, 2):  # callers still waiting: the line a node restores from `calls`
        calls.create(db, f"waiting-{n}", elder_id=zhang.id, dialect="cmn", kind="inbound",
                     arrived_at=t0 + n, rejoin_hash=f"h{n}", priority=0)  # fmt: skip
    return {"link": link.token, "booking": bid, "elder": zhang.id}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, object]]:
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_SECRET_KEY", "k")
    monkeypatch.delenv("HOTLINE_DATABASE_URL", raising=False)
    path = tmp_path / "hotline.sqlite3"
    db = Database(path)
    db.migrate()
    facts = populate(db)
    db.close()
    return path, facts


def test_copy_moves_every_table_verified_and_refuses_a_second_time(
    site: tuple[Path, dict[str, object]], pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, facts = site
    source = Database(path)
    found = {name for name, _pk in tables(source)}
    assert FILLED <= found
    empty = [n for n in FILLED if present(source.query_one(f"SELECT COUNT(*) FROM {n}"))[0] == 0]
    assert not empty, f"populate() must fill {empty}"

    assert cli.main(["db", "copy", "--to", pg_url]) == 0
    out = capsys.readouterr().out
    assert '"copied":' in out and "calls: 32 rows, 3 spot-checked" in out

    target = open_database(pg_url)
    for name in found:  # counts, independently of the command's own check
        q = f"SELECT COUNT(*) FROM {name}"
        assert present(target.query_one(q))[0] == present(source.query_one(q))[0], name
    # Spot checks through the domain functions, on the copy.
    link = elders.get_link(target, str(facts["link"]))
    assert link is not None and link.auto_start and link.elder_id == facts["elder"]
    booking = callbacks.by_code(target, "ABC234")
    assert booking == callbacks.get(source, int(str(facts["booking"])))
    assert calls.get(target, "call-07") == calls.get(source, "call-07")
    assert calls.events(target, "call-00") == calls.events(source, "call-00")
    assert transcripts.lines(target, "call-00") == transcripts.lines(source, "call-00")
    assert agents.check_password(target, "ann", "pw") is not None
    # The waiting line (open calls, in arrival order) is the same on the copy.
    waiting = [c["id"] for c in calls.open_calls(target)]
    assert waiting[-2:] == ["waiting-1", "waiting-2"]
    assert waiting == [c["id"] for c in calls.open_calls(source)]
    # Identity sequences moved past the copied ids: new rows get fresh ones.
    assert agents.add(target, "new", "pw", ["cmn"]).id == 3

    # A second copy into the now non-empty target is refused and changes nothing.
    assert cli.main(["db", "copy", "--to", pg_url]) == 1
    assert "not empty" in capsys.readouterr().err
    assert present(target.query_one("SELECT COUNT(*) FROM calls"))[0] == 32


def test_db_migrate_on_postgresql_then_nothing_to_do(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_SECRET_KEY", "k")
    monkeypatch.setenv("HOTLINE_DATABASE_URL", pg_url)
    assert cli.main(["db", "migrate"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("PostgreSQL:") and "0001_core.sql" in first
    assert cli.main(["db", "migrate"]) == 0
    assert "0 migration(s) applied" in capsys.readouterr().out
    assert not (tmp_path / "hotline.sqlite3").exists()  # cluster mode never opens the file


def test_copy_refuses_a_target_that_is_not_postgresql(
    site: tuple[Path, dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["db", "copy", "--to", "/tmp/other.sqlite3"]) == 2
    assert "postgresql://" in capsys.readouterr().err
