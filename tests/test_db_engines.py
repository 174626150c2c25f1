"""Every query in hotline/db, run on both engines (SQLite file and a real PostgreSQL)."""

from __future__ import annotations

import inspect
import sqlite3
import time

import pytest

from hotline.db import (
    Database,
    agents,
    audit,
    call_flow,
    callbacks,
    calls,
    dialect,
    elders,
    guidance,
    history,
    photos,
    reports,
    sessions,
    transcripts,
)
from tests.engines import present

# Every public function of the domain modules is called below; a new one must be added here
# with a test on both engines (the guard test fails otherwise).
COVERED = {
    "agents": "add get by_username all_agents set_password check_password record_login_failure"
    " recent_login_failures update",
    "audit": "record entries did",
    "callbacks": "add_shift remove_shift shifts new_code insert get by_idem by_code all_bookings"
    " active_bookings recent_by_address open_of_kind open_by_phone_from open_by_phone booked_slots claim_due fire_one claim"
    " update add_attempt attempts_of previous_calls agent_names get_wrapup save_wrapup"
    " shared_wrapup_for",
    "calls": "create rang answered ended requeued event add_events get events"
    " recent_handle_seconds open_calls close_interrupted flag_fraud rate in_call_with"
    " ended_by_rejoin",
    "elders": "add get get_many by_card_code all_elders new_link get_link links_of revoke_link"
    " rotate_card_code lengthen_card_codes record_card_failure card_failures",
    "guidance": "record_answer answers",
    "reports": "ping calls_between arrivals_between alerts_between guidance_answers_between"
    " search_calls call_names outcomes latency_histogram calls_by_outcome callbacks_by_status"
    " ratings_total disabled_scripts set_script_enabled find_elders",
    "sessions": "create lookup delete alive delete_for_agent",
    "transcripts": "add_line lines purge_older_than",
    "call_flow": "add_hold transferred transfer_abandoned consult_started",
    "history": "past_calls calls_since fraud_flags open_callbacks",
    "photos": "add latest older_than delete",
}


# The store's own machinery (not domain queries): tested by the tests below and test_db_copy.
MACHINERY = {"dialect", "postgres", "copy", "cli"}


def test_every_store_function_is_covered_on_both_engines() -> None:
    import importlib
    import pkgutil

    import hotline.db as package

    found = {m.name for m in pkgutil.iter_modules(package.__path__)} - MACHINERY
    assert found == set(COVERED), f"add {sorted(found - set(COVERED))} to COVERED (and test them)"
    for module in (importlib.import_module(f"hotline.db.{n}") for n in sorted(found)):
        name = module.__name__.rsplit(".", 1)[1]
        public = {
            n
            for n, f in inspect.getmembers(module, inspect.isfunction)
            if not n.startswith("_") and f.__module__ == module.__name__
        }
        missing = public - set(COVERED[name].split())
        assert not missing, f"hotline.db.{name}: add {sorted(missing)} to test_db_engines.py"


def test_agents_elders_links_sessions_audit(store: Database) -> None:
    ann = agents.add(store, "ann", "pw1", ["cmn", "yue"], display_name="安")
    bob = agents.add(store, "bob", "pw2", ["cmn"], role="supervisor")
    assert bob.id != ann.id and present(agents.get(store, ann.id)) == ann
    assert agents.by_username(store, "bob") == bob
    assert [a.username for a in agents.all_agents(store)] == ["ann", "bob"]
    assert agents.check_password(store, "ann", "pw1") == ann
    assert agents.check_password(store, "ann", "nope") is None
    assert agents.check_password(store, "nobody", "pw1") is None
    agents.set_password(store, ann.id, "new")
    assert agents.check_password(store, "ann", "new") == ann
    assert agents.update(store, ann.id, dialects=["yue"], disabled=True)
    assert present(agents.get(store, ann.id)).dialects == ("yue",)
    assert agents.check_password(store, "ann", "new") is None  # disabled
    assert not agents.update(store, 999, role="agent")
    agents.record_login_failure(store, "ann", "10.0.0.1")
    agents.record_login_failure(store, "bob", "10.0.0.1")
    assert agents.recent_login_failures(store, "ann", "10.0.0.1", 60) == (1, 2)
    with pytest.raises(sqlite3.IntegrityError):  # one error type on both engines
        agents.add(store, "ann", "x", ["cmn"])

    e = elders.add(store, "张阿姨", phone="13812345678", hard_of_hearing=True)
    assert elders.get(store, e.id) == e and e.hard_of_hearing
    assert elders.get_many(store, {e.id, 999}) == {e.id: e} and elders.get_many(store, set()) == {}
    assert elders.by_card_code(store, e.card_code) == e
    assert [x.id for x in elders.all_elders(store)] == [e.id]
    link = elders.new_link(store, e.id, auto_start=True, expires_at=time.time() + 60)
    assert present(elders.get_link(store, link.token)) == link and link.state() == "ok"
    assert elders.links_of(store, e.id) == [link]
    assert elders.revoke_link(store, link.token) and not elders.revoke_link(store, link.token)
    old_code = e.card_code
    new_code = elders.rotate_card_code(store, e.id)
    assert new_code != old_code and present(elders.by_card_code(store, new_code)).id == e.id
    store.execute("UPDATE elders SET card_code = ? WHERE id = ?", ("234567", e.id))
    assert elders.lengthen_card_codes(store) == 1 and elders.lengthen_card_codes(store) == 0
    assert len(present(elders.get(store, e.id)).card_code) == elders.CARD_DIGITS
    elders.record_card_failure(store, "10.0.0.1", 100.0)
    elders.record_card_failure(store, "10.0.0.2", 200.0)
    assert elders.card_failures(store, "10.0.0.1", 50.0) == (1, 2)
    assert elders.card_failures(store, "10.0.0.1", 150.0) == (0, 1)
    assert present(elders.get_link(store, link.token)).state() == "revoked"

    sid, csrf = sessions.create(store, bob.id)
    found = present(sessions.lookup(store, sid, 60, 3600))
    assert found is not None and found["csrf"] == csrf and found["agent_id"] == bob.id
    assert sessions.alive(store, found["id_hash"], bob.id, 60, 3600)
    assert not sessions.alive(store, found["id_hash"], ann.id, 60, 3600)
    other, _ = sessions.create(store, bob.id)
    assert sessions.delete_for_agent(store, bob.id, keep=found["id_hash"]) == 1
    assert sessions.lookup(store, other, 60, 3600) is None
    assert sessions.lookup(store, sid, 60, 3600) is not None
    sessions.delete(store, sid)
    assert sessions.lookup(store, sid, 60, 3600) is None

    audit.record(store, "bob", "transcript.read", "c1", "100% sure")  # a literal % survives
    audit.record(store, "bob", "login")
    assert [x["action"] for x in audit.entries(store)] == ["login", "transcript.read"]
    assert audit.entries(store, action="transcript.read")[0]["detail"] == "100% sure"
    assert audit.did(store, "bob", "transcript.read", "c1")
    assert not audit.did(store, "ann", "transcript.read", "c1")


def _call(store: Database, call_id: str, elder_id: int | None, at: float, **kw) -> None:
    calls.create(
        store, call_id, elder_id=elder_id, dialect=kw.get("dialect", "cmn"), kind="inbound",
        arrived_at=at, rejoin_hash="h", priority=kw.get("priority", 0),
    )  # fmt: skip


def test_calls_events_reports_transcripts_guidance(store: Database) -> None:
    ann = agents.add(store, "ann", "pw", ["cmn"], display_name="Ann")
    e = elders.add(store, "Wang_Li 100%")
    t0 = 1_800_000_000.0
    _call(store, "c1", e.id, t0)
    _call(store, "c2", None, t0 + 1, dialect="yue")
    _call(store, "c3", e.id, t0 + 2)
    calls.rang(store, "c1", ann.id, t0 + 3)
    calls.answered(store, "c1", ann.id, t0 + 4)
    calls.event(store, "c1", "alert", {"category": "fraud", "phrase": "转账"}, at=t0 + 5)
    calls.flag_fraud(store, "c1")
    calls.ended(store, "c1", outcome="resolved", ended_by="agent", at=t0 + 64)
    calls.ended(store, "c1", outcome="other", ended_by="caller", at=t0 + 99)  # ignored
    c1 = present(calls.get(store, "c1"))
    assert (c1["wait_seconds"], c1["talk_seconds"], c1["outcome"]) == (4.0, 60.0, "resolved")
    assert c1["arrived_at"] == t0  # full double precision on both engines
    kinds = [x["kind"] for x in calls.events(store, "c1")]
    assert kinds == ["ring", "answer", "alert", "end", "end"]  # the row closed once, both logged
    assert calls.events(store, "c1")[2]["detail"]["phrase"] == "转账"
    assert calls.rate(store, "c1", "good") and not calls.rate(store, "c1", "bad")
    assert calls.recent_handle_seconds(store) == [60.0]
    assert calls.in_call_with(store, ann.id, e.id) is False  # c1 ended; c3 not answered yet
    calls.answered(store, "c3", ann.id, t0 + 10)
    assert calls.in_call_with(store, ann.id, e.id)
    calls.requeued(store, "c3", "agent_dropped", t0 + 11)
    assert present(calls.get(store, "c3"))["answered_at"] is None
    calls.event(store, "c2", "callback_requested", {}, at=t0 + 12)
    assert [(c["id"], c["callback_requested"]) for c in calls.open_calls(store)] == [
        ("c2", True), ("c3", False),
    ]  # fmt: skip
    assert calls.close_interrupted(store, t0 + 20) == 2 and calls.open_calls(store) == []
    # A rejoin secret's call, if it was answered and ended since: c1 (c2, c3 never answered).
    assert present(calls.ended_by_rejoin(store, "h", t0))["id"] == "c1"
    assert calls.ended_by_rejoin(store, "h", t0 + 65) is None  # it ended before that
    assert calls.ended_by_rejoin(store, "other", t0) is None
    calls.add_events(store, [("c1", t0 + 100, "note", {"by": "é"}), ("c2", t0 + 101, "note", {})])
    assert calls.events(store, "c1")[-1]["detail"] == {"by": "é"}
    assert [x["kind"] for x in calls.events(store, "c2")][-1] == "note"

    assert reports.ping(store)
    assert [c["id"] for c in reports.calls_between(store, t0, t0 + 2)] == ["c1", "c2"]
    assert reports.arrivals_between(store, t0, t0 + 10) == [t0, t0 + 1, t0 + 2]
    assert reports.alerts_between(store, t0, t0 + 10)[0]["category"] == "fraud"
    assert {c["id"] for c in reports.search_calls(store, elder="wang_li")} == {"c1", "c3"}
    assert reports.search_calls(store, elder="Wang%") == []  # % is matched literally
    assert [c["id"] for c in reports.search_calls(store, elder=str(e.id), alert="fraud")] == ["c1"]
    assert reports.search_calls(store, alert="distress") == []
    hit = reports.search_calls(store, agent_id=ann.id, outcome="resolved", rating="good")
    assert [(c["id"], c["agent_name"], c["alerts"]) for c in hit] == [("c1", "Ann", 1)]
    assert [c["id"] for c in reports.search_calls(store, dialect="yue", start=t0, end=t0 + 5)] == [
        "c2"
    ]
    assert reports.call_names(store, "c1")["elder_name"] == "Wang_Li 100%"
    assert reports.outcomes(store) == ["interrupted", "resolved"]
    counts, n, total = reports.latency_histogram(store, "answer", (1.0, 5.0))
    assert (counts, n, total) == ([0, 1], 1, 4.0)
    assert reports.calls_by_outcome(store) == {"resolved": 1, "interrupted": 2}
    assert reports.ratings_total(store) == {"good": 1}
    reports.set_script_enabled(store, "wifi", False, "bob")
    reports.set_script_enabled(store, "tv", False, "bob")
    reports.set_script_enabled(store, "tv", True, "bob")
    assert reports.disabled_scripts(store) == {"wifi"}
    assert [x["id"] for x in reports.find_elders(store, "WANG")] == [e.id]

    guidance.record_answer(
        store, "c1", {"script_id": "wifi", "step_id": "s1", "answer": "yes", "seq": 1,
                      "at": t0 + 6, "seconds": 2.5},
    )  # fmt: skip
    assert guidance.answers(store, script_id="wifi", call_id="c1")[0]["seconds"] == 2.5
    assert len(reports.guidance_answers_between(store, t0, t0 + 10)) == 1

    transcripts.add_line(store, "c1", "caller", "cmn", {"text": "我的电话是13812345678"})
    (line,) = transcripts.lines(store, "c1")
    assert "13812345678" not in line["text"] and line["words"] == []
    assert transcripts.purge_older_than(store, 1) == 0
    assert transcripts.purge_older_than(store, -1) == 1


def test_bookings_shifts_wrapups(store: Database) -> None:
    ann = agents.add(store, "ann", "pw", ["cmn", "yue"])
    e = elders.add(store, "李伯", phone="13800000000")
    now = 1_900_000_000.0
    sid = callbacks.add_shift(store, ann.id, 1, 9, 17, now)
    assert [(s.username, s.dialects) for s in callbacks.shifts(store)] == [
        ("ann", frozenset({"cmn", "yue"}))
    ]

    def book(code: str, due: float, status: str = "booked", **kw) -> int:
        values = {"code": code, "kind": "family", "status": status, "elder_id": e.id,
                  "phone": "13800000000", "dialect": "cmn", "slot_start": due, "due_at": due,
                  "alternates": (due + 3600,), "created_at": now, "updated_at": now,
                  "address": "1.2.3.4", **kw}  # fmt: skip
        return callbacks.insert(store, values)

    code = callbacks.new_code(store)
    a = book(code, now + 60, idem_key="k1")
    b = book("BBBBBB", now + 120)
    h = book("HHHHHH", now + 30, status="held")
    assert a and b and a != b
    assert present(callbacks.get(store, a)).alternates == (now + 3660,)
    assert (
        present(callbacks.by_idem(store, "k1")).id == a
        and present(callbacks.by_code(store, code)).id == a
    )
    assert [x.id for x in callbacks.all_bookings(store)] == [a, b, h]
    assert [x.id for x in callbacks.active_bookings(store)] == [h, a, b]
    assert callbacks.recent_by_address(store, "1.2.3.4", now - 1) == 3
    assert callbacks.open_by_phone(store, "13800000000") == 3
    assert callbacks.open_by_phone_from(store, "13800000000", "1.2.3.4") == 3
    assert callbacks.open_by_phone_from(store, "13800000000", "5.6.7.8") == 0
    assert callbacks.open_of_kind(store, e.id, "family") == a
    assert callbacks.open_of_kind(store, e.id, "abandoned") is None
    assert sorted(callbacks.booked_slots(store, now, now + 100)) == [
        (now + 30, "cmn"),
        (now + 60, "cmn"),
    ]
    assert [x.id for x in callbacks.claim_due(store, now + 60, 600)] == [a]
    assert callbacks.claim_due(store, now + 60, 600) == []
    fired = callbacks.fire_one(store, h, now + 10, "held")
    assert fired is not None and fired.status == "queued" and fired.due_at == now + 10
    assert callbacks.fire_one(store, h, now + 10, "held") is None
    assert callbacks.claim(store, a, ann.id, now + 61) and not callbacks.claim(store, a, ann.id, 0)
    assert callbacks.update(store, b, ("booked",), note="call after 3", alternates=())
    assert not callbacks.update(store, b, ("done",), note="x")
    callbacks.add_attempt(store, a, at=now + 70, agent_id=ann.id, result="reached", call_id="c9")
    assert callbacks.attempts_of(store, a)[0]["result"] == "reached"
    calls.create(store, "c9", elder_id=e.id, dialect="cmn", kind="callback", arrived_at=now)
    assert (
        callbacks.previous_calls(store, [e.id]) == {e.id: 1}
        and callbacks.previous_calls(store, []) == {}
    )
    assert callbacks.agent_names(store, [ann.id]) == {ann.id: "ann"}
    assert callbacks.agent_names(store, []) == {}
    values = {"agent_id": ann.id, "problem": "wifi", "outcome_code": "resolved",
              "share_with_family": 1}  # fmt: skip
    callbacks.save_wrapup(store, "c9", values, now + 80)
    callbacks.save_wrapup(store, "c9", {**values, "problem": "tv"}, now + 90)
    w = present(callbacks.get_wrapup(store, "c9"))
    assert (w["problem"], w["created_at"], w["updated_at"]) == ("tv", now + 80, now + 90)
    assert present(callbacks.shared_wrapup_for(store, a))["call_id"] == "c9"
    assert reports.callbacks_by_status(store) == {"claimed": 1, "booked": 1, "queued": 1}
    assert callbacks.remove_shift(store, sid) and not callbacks.remove_shift(store, sid)
    with store.transaction():  # nested use joins the outer transaction on both engines
        with store.transaction():
            book("NESTED", now)
    with pytest.raises(RuntimeError), store.transaction():
        book("ROLLED", now)
        raise RuntimeError("rolled back")
    assert callbacks.by_code(store, "ROLLED") is None and callbacks.by_code(store, "NESTED")


def test_migrate_is_idempotent(store: Database) -> None:
    assert store.migrate() == []
    names = [r[0] for r in store.query("SELECT name FROM schema_migrations ORDER BY name")]
    assert names[:5] == [
        "0001_core.sql", "0002_guidance.sql", "0003_callbacks.sql", "0004_transcripts.sql",
        "0005_admin.sql",
    ]  # fmt: skip


def test_an_existing_sqlite_site_migrates_in_place(tmp_path, monkeypatch) -> None:
    import hotline.db as db_mod

    every = db_mod.migration_files()
    path = tmp_path / "hotline.sqlite3"
    monkeypatch.setattr(db_mod, "migration_files", lambda: every[:5])  # a site at 0005
    old = Database(path)
    assert old.migrate() == [name for name, _ in every[:5]]
    elder = elders.add(old, "张阿姨")
    old.close()
    monkeypatch.undo()
    site = Database(path)  # the same file, this version
    assert site.migrate() == [name for name, _ in every[5:]]
    assert "0010_drop_cluster_line.sql" in [name for name, _ in every[5:]]
    assert elders.get(site, elder.id) == elder
    site.close()


def test_a_table_rebuilt_by_a_migration_keeps_handing_out_new_ids(
    store: Database, monkeypatch
) -> None:
    """The SQLite way to change a column (copy rows with their ids into a new table) works on
    PostgreSQL too: the identity sequence moves past the copied ids."""
    import hotline.db as db_mod

    agents.add(store, "ann", "pw", ["cmn"])
    rebuild = [
        "CREATE TABLE audit_log_new (id INTEGER PRIMARY KEY, at REAL NOT NULL, actor TEXT NOT NULL,"
        " action TEXT NOT NULL, subject TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '')",
        "INSERT INTO audit_log_new (id, at, actor, action) VALUES (41, 1.0, 'x', 'old')",
        "DROP TABLE audit_log",
        "ALTER TABLE audit_log_new RENAME TO audit_log",
    ]
    every = db_mod.migration_files()
    monkeypatch.setattr(db_mod, "migration_files", lambda: [*every, ("9999_rebuild.sql", rebuild)])
    assert store.migrate() == ["9999_rebuild.sql"]
    audit.record(store, "bob", "new")
    ids = [e["id"] for e in audit.entries(store)]
    assert ids[1] == 41 and ids[0] > 41


def test_console_history_holds_transfers_photos(store: Database) -> None:
    ann = agents.add(store, "ann", "pw", ["cmn"], display_name="Ann")
    bob = agents.add(store, "bob", "pw", ["cmn"])
    e = elders.add(store, "王伯")
    t0 = 1_800_000_000.0
    for n, cid in enumerate(("old", "mid", "now")):
        calls.create(store, cid, elder_id=e.id, dialect="cmn", kind="inbound", arrived_at=t0 + n)
        calls.answered(store, cid, ann.id, t0 + n + 0.5)
    call_flow.add_hold(store, "mid", 12.5)
    call_flow.add_hold(store, "mid", 2.5)
    call_flow.consult_started(store, "mid", bob.id, t0 + 2)
    call_flow.transferred(store, "mid", {"from": ann.id}, bob.id, t0 + 3)
    call_flow.transfer_abandoned(store, "old", "ended", t0 + 4)
    mid = present(calls.get(store, "mid"))
    assert (mid["hold_seconds"], mid["transfers"], mid["agent_id"]) == (15.0, 1, bob.id)
    assert [x["kind"] for x in calls.events(store, "mid")][-2:] == ["consult", "transfer_done"]
    calls.flag_fraud(store, "old")
    calls.ended(store, "old", outcome="resolved", ended_by="agent", at=t0 + 60)
    calls.ended(store, "mid", outcome="resolved", ended_by="agent", at=t0 + 70)
    callbacks.save_wrapup(
        store, "mid", {"agent_id": bob.id, "outcome_code": "x", "problem": "tv"}, t0
    )
    calls.event(store, "mid", "identity", {"ok": True})
    past = history.past_calls(store, e.id, exclude="now")
    assert [(c["call_id"], c["problem"]) for c in past] == [("mid", "tv"), ("old", None)]
    assert past[0]["identity"] is not None and past[0]["agent"] is not None
    assert history.calls_since(store, e.id, t0 + 1) == 2
    assert history.fraud_flags(store, e.id) == {"count": 1, "last_at": t0}
    bid = callbacks.insert(
        store, {"code": "HIST22", "kind": "follow_up", "status": "booked", "elder_id": e.id,
                "dialect": "cmn", "due_at": t0 + 99, "created_at": t0, "updated_at": t0},
    )  # fmt: skip
    assert [c["id"] for c in history.open_callbacks(store, e.id)] == [bid]
    assert [c["id"] for c in reports.search_calls(store, elder=str(e.id))][:1] == ["now"]

    first = photos.add(store, e.id, "photos/a.jpg", "image/jpeg", "sue", True)
    second = photos.add(store, e.id, "photos/b.jpg", "image/jpeg", "sue", False)
    assert second > first and present(photos.latest(store, e.id))["path"] == "photos/b.jpg"
    assert photos.older_than(store, 1) == [] and len(photos.older_than(store, -1)) == 2
    photos.delete(store, second)
    assert present(photos.latest(store, e.id))["id"] == first


# --- the translation itself (pure) ---------------------------------------------------------


def test_translation_of_the_portable_subset() -> None:
    q = dialect.query
    assert q("SELECT * FROM t WHERE a = ? AND b LIKE ? ESCAPE '\\'") == (
        "SELECT * FROM t WHERE a = %s AND b ILIKE %s ESCAPE '\\'"
    )
    assert q("SELECT '?', '100%' -- what's this\nFROM t WHERE x = ?") == (
        "SELECT '?', '100%%' \nFROM t WHERE x = %s"
    )
    assert q("SELECT json_extract(ev.detail, '$.category') FROM ev") == (
        "SELECT (ev.detail::jsonb ->> 'category') FROM ev"
    )
    assert q("INSERT OR IGNORE INTO t (a) VALUES (?)") == (
        "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"
    )
    ddl = dialect.ddl("-- agents' table\nCREATE TABLE t (id INTEGER PRIMARY KEY, at REAL, b BLOB)")
    assert ddl == (
        "CREATE TABLE t (id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
        " at DOUBLE PRECISION, b BYTEA)"
    )
    assert q("SELECT IFNULL(a, 0), CAST(b AS REAL) FROM t") == (
        "SELECT COALESCE(a, 0), CAST(b AS DOUBLE PRECISION) FROM t"
    )
    assert dialect.insert_table("INSERT INTO calls (id) VALUES (?)") == "calls"
    assert dialect.insert_table("INSERT INTO calls (id) VALUES (?) RETURNING *") is None


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT OR REPLACE INTO t VALUES (?)",
        "SELECT * FROM t ORDER BY rowid",
        "SELECT strftime('%s', 'now')",
        "UPDATE t SET a = MIN(a, ?)",
        "PRAGMA foreign_keys=ON",
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT)",
        "SELECT group_concat(name) FROM t",
        "SELECT instr(name, 'a') FROM t",
    ],
)
def test_sqlite_only_syntax_is_refused_loudly(sql: str) -> None:
    with pytest.raises(dialect.NotPortable):
        dialect.query(sql)
