"""Pure callback decisions: slot capacity, the booking form, scheduling and retries."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hotline.callbacks import scheduler, slots
from hotline.callbacks.booking import BookingError, normalize_phone, parse_form
from hotline.callbacks.ics import calendar
from hotline.callbacks.service import CallbackService
from hotline.config import Config
from hotline.db import agents as agents_db
from hotline.db import callbacks as store
from hotline.db import elders as elders_db
from hotline.db import open_database

TZ = ZoneInfo("Asia/Shanghai")
# Monday 2030-01-07 08:20 in Shanghai.
NOW = datetime(2030, 1, 7, 8, 20, tzinfo=TZ).timestamp()
CMN = frozenset({"cmn"})
BOTH = frozenset({"cmn", "yue"})


def at(day: int, hour: int) -> float:
    return datetime(2030, 1, day, hour, tzinfo=TZ).timestamp()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- slots ---------------------------------------------------------------------------------


def test_hour_starts_cover_the_next_14_days_on_whole_local_hours() -> None:
    starts = slots.hour_starts(NOW, TZ)
    assert starts[0] == at(7, 9)
    assert starts[-1] <= NOW + 14 * slots.DAY < starts[-1] + slots.HOUR
    assert all(slots.is_hour_start(s, TZ) for s in starts)
    assert len(starts) == 14 * 24


def test_half_hour_zone_still_gets_whole_local_hours() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    assert all(slots.is_hour_start(s, kolkata) for s in slots.hour_starts(NOW, kolkata, days=2))


def test_capacity_is_agents_on_shift_times_per_hour_minus_booked() -> None:
    shifts = [slots.Shift(1, 1, 9, 17, CMN), slots.Shift(2, 1, 9, 12, CMN)]
    found = {s.start: s.free for s in slots.available(NOW, TZ, shifts, [], "cmn", 3, days=1)}
    assert found[at(7, 9)] == 6
    assert found[at(7, 12)] == 3
    assert at(7, 17) not in found and at(7, 8) not in found
    booked = [(at(7, 9), "cmn")] * 5
    found = {s.start: s.free for s in slots.available(NOW, TZ, shifts, booked, "cmn", 3, days=1)}
    assert found[at(7, 9)] == 1
    booked.append((at(7, 9), "cmn"))
    found = {s.start: s.free for s in slots.available(NOW, TZ, shifts, booked, "cmn", 3, days=1)}
    assert at(7, 9) not in found


def test_no_speaker_of_the_dialect_means_no_slot() -> None:
    shifts = [slots.Shift(1, 1, 9, 17, CMN)]
    assert slots.available(NOW, TZ, shifts, [], "yue", 3, days=1) == []


def test_multi_dialect_agent_is_not_counted_twice() -> None:
    # One agent speaks both: 3 callbacks in total per hour, whatever the mix.
    agents = [BOTH]
    assert slots.free_places(agents, Counter(), "cmn", 3) == 3
    assert slots.free_places(agents, Counter({"yue": 2}), "cmn", 3) == 1
    assert slots.free_places(agents, Counter({"yue": 3}), "cmn", 3) == 0
    # A Mandarin-only agent adds Mandarin room but no Cantonese room.
    agents = [BOTH, CMN]
    assert slots.free_places(agents, Counter({"cmn": 3}), "yue", 3) == 3
    assert slots.free_places(agents, Counter({"cmn": 4}), "yue", 3) == 2


@pytest.mark.parametrize(
    ("text", "days"), [("1-5", [1, 2, 3, 4, 5]), ("1,3,7", [1, 3, 7]), ("6", [6])]
)
def test_parse_weekdays(text: str, days: list[int]) -> None:
    assert slots.parse_weekdays(text) == days


@pytest.mark.parametrize("text", ["0", "8", "1-9", ""])
def test_parse_weekdays_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        slots.parse_weekdays(text)


def test_parse_hours() -> None:
    assert slots.parse_hours("9-17") == (9, 17)
    for bad in ("17-9", "9-25", "x"):
        with pytest.raises(ValueError):
            slots.parse_hours(bad)


# --- booking form --------------------------------------------------------------------------


def form(**changes: str) -> dict[str, str]:
    base = {
        "idem": "k" * 24,
        "name": "张阿姨",
        "phone": "138 1234 5678",
        "dialect": "cmn",
        "topic": "anti_fraud",
        "note": "",
        "contact": "son@example.com",
    }
    base.update(changes)
    return base


def parse(f: dict[str, str], windows: list[str] | None = None) -> object:
    windows = [str(int(at(8, 10)))] if windows is None else windows
    return parse_form(f, windows, now=NOW, tz=TZ, dialects=["cmn", "yue"], lang="zh_CN")


def test_good_form_parses() -> None:
    req = parse(form())
    assert req.phone == "13812345678" and req.windows == (at(8, 10),)


@pytest.mark.parametrize(
    ("changes", "windows", "key"),
    [
        ({"idem": "short"}, None, "family.err_form_expired"),
        ({"name": ""}, None, "family.err_name"),
        ({"phone": "12"}, None, "family.err_phone"),
        ({"phone": "abc1234567"}, None, "family.err_phone"),
        ({"dialect": "xx"}, None, "family.err_dialect"),
        ({"topic": "weather"}, None, "family.err_topic"),
        ({"note": "字" * 201}, None, "family.err_note_long"),
        ({"contact": "nobody"}, None, "family.err_contact"),
        ({"card_code": "12ab56", "name": ""}, None, "family.err_card"),
        ({}, [], "family.err_no_window"),
        ({}, [str(int(at(7, 8)))], "family.err_window_past"),
        ({}, [str(int(NOW + 15 * slots.DAY))], "family.err_window_far"),
        ({}, [str(int(at(8, 10)) + 1800)], "family.err_bad_window"),
        ({}, ["nan"], "family.err_bad_window"),
    ],
)
def test_bad_form_names_the_problem(changes: dict, windows: list[str] | None, key: str) -> None:
    with pytest.raises(BookingError) as info:
        parse(form(**changes), windows)
    assert info.value.key == key


def test_normalize_phone() -> None:
    assert normalize_phone("+86 138-1234-5678") == "+8613812345678"
    assert normalize_phone("１３８１２３４５６７８") is None  # full-width digits are refused


# --- scheduling and retries ----------------------------------------------------------------


def make_service(tmp_path: Path, target: str, clock: Clock, **cfg: object) -> CallbackService:
    """A callback service on a store at `target` (each test runs on SQLite and PostgreSQL)."""
    config = Config.from_env(env={}, data_dir=tmp_path, secret_key="k", **cfg)
    db = open_database(target)
    db.migrate()
    return CallbackService(db, config, clock)


def booked(svc: CallbackService, due: float, phone: str = "13800000000") -> int:
    elder = elders_db.add(svc.db, "李伯", phone=phone)
    return store.insert(
        svc.db,
        {
            "code": store.new_code(svc.db),
            "kind": "family",
            "status": "booked",
            "elder_id": elder.id,
            "phone": phone,
            "dialect": "cmn",
            "slot_start": due,
            "due_at": due,
            "created_at": svc.clock(),
            "updated_at": svc.clock(),
        },
    )


def test_due_is_the_pure_twin_of_claim_due(tmp_path: Path, engine_target: str) -> None:
    clock = Clock(NOW)
    svc = make_service(tmp_path, engine_target, clock)
    ids = [booked(svc, at(7, 9), f"1380000000{i}") for i in range(3)]
    later = booked(svc, at(7, 10), "13900000000")
    everything = store.all_bookings(svc.db)
    assert scheduler.due(everything, at(7, 9)) == [store.get(svc.db, i) for i in ids]
    assert [b.id for b in svc.claim_due(at(7, 9))] == ids
    assert svc.claim_due(at(7, 9)) == []  # fires once
    assert [b.id for b in svc.claim_due(at(7, 11))] == [later]


def test_claim_due_fires_once_across_a_restart(tmp_path: Path, engine_target: str) -> None:
    clock = Clock(NOW)
    svc = make_service(tmp_path, engine_target, clock)
    first = booked(svc, at(7, 9))
    # "Restart": a fresh service on the same file, after the booking fell due while down.
    again = make_service(tmp_path, engine_target, clock)
    fired = again.claim_due(at(7, 12))
    assert [b.id for b in fired] == [first]
    assert make_service(tmp_path, engine_target, clock).claim_due(at(7, 13)) == []
    assert [b.id for b in again.queued()] == [first]


def test_no_answer_retries_then_tells_the_family(tmp_path: Path, engine_target: str) -> None:
    clock = Clock(at(7, 9))
    svc = make_service(tmp_path, engine_target, clock)
    agent = agents_db.add(svc.db, "ann", "pw", ["cmn"])
    bid = booked(svc, at(7, 9))
    store.update(svc.db, bid, ("booked",), family_contact="13711112222")
    for n in range(1, 3):
        assert [b.id for b in svc.claim_due()] == [bid]
        svc.claim(bid, agent.id)
        b = svc.record_attempt(bid, agent.id, "no_answer")
        assert (b.status, b.attempts, b.due_at) == ("booked", n, clock.now + 15 * 60)
        assert svc.claim_due() == []  # not due before the retry time
        clock.now += 15 * 60
    svc.claim_due()
    svc.claim(bid, agent.id)
    b = svc.record_attempt(bid, agent.id, "no_answer")
    assert (b.status, b.attempts) == ("failed", 3)
    assert svc.sms.sent and "****" in svc.sms.sent[0][0]  # the stand-in only logs, masked
    clock.now += 3600
    assert svc.claim_due() == []


def test_after_attempt_outcomes() -> None:
    policy = scheduler.RetryPolicy()
    b = store.Booking(
        1,
        "C",
        "family",
        "claimed",
        1,
        "1",
        "cmn",
        "",
        "",
        NOW,
        (),
        NOW,
        0,
        1,
        NOW,
        NOW,
        "",
        "zh_CN",
        "n",
        None,
        None,
        None,
        NOW,
        NOW,
    )
    assert scheduler.after_attempt(b, "reached", NOW, policy).status == "done"
    wrong = scheduler.after_attempt(b, "wrong_number", NOW, policy)
    assert wrong.status == "failed" and wrong.notify_family
    moved = scheduler.after_attempt(b, "rescheduled", NOW, policy, NOW + 7200)
    assert (moved.status, moved.due_at, moved.attempts) == ("booked", NOW + 7200, 0)
    with pytest.raises(ValueError):
        scheduler.after_attempt(b, "rescheduled", NOW, policy)


def test_keep_place_is_held_then_fires_once(tmp_path: Path, engine_target: str) -> None:
    clock = Clock(NOW)
    svc = make_service(tmp_path, engine_target, clock)
    elder = elders_db.add(svc.db, "王奶奶", phone="13600000000", dialect="yue")
    bid = svc.request_from_waiting_caller("call-1", elder.id, eta_seconds=120)
    assert svc.request_from_waiting_caller("call-1", elder.id) == bid  # idempotent
    assert store.get(svc.db, bid).status == "held"
    assert svc.claim_due(NOW + 300) == []  # the live line still holds the place
    fired = svc.turn_reached("call-1")
    assert fired is not None and fired.id == bid and fired.status == "queued"
    assert svc.turn_reached("call-1") is None
    # If the line was lost (restart), the held place fires after its grace.
    other = svc.request_from_waiting_caller("call-2", elder.id, eta_seconds=60)
    assert [b.id for b in svc.claim_due(NOW + 60 + 601)] == [other]


def test_abandoned_offer_needs_a_number(tmp_path: Path, engine_target: str) -> None:
    svc = make_service(tmp_path, engine_target, Clock(NOW))
    with_phone = elders_db.add(svc.db, "A", phone="13500000000")
    without = elders_db.add(svc.db, "B")
    bid = svc.abandoned("c1", with_phone.id)
    assert bid is not None and svc.abandoned("c1", with_phone.id) == bid
    assert svc.abandoned("c2", without.id) is None
    assert [b.id for b in svc.claim_due(NOW)] == [bid]


def test_group_for_agents() -> None:
    policy = scheduler.RetryPolicy()

    def b(i: int, due: float, slot: float | None, status: str = "booked") -> store.Booking:
        return store.Booking(
            i,
            "C",
            "family",
            status,
            1,
            "1",
            "cmn",
            "",
            "",
            slot,
            (),
            due,
            0,
            None,
            None,
            None,
            "",
            "zh_CN",
            "n",
            None,
            None,
            None,
            NOW,
            NOW,
        )

    groups = scheduler.group(
        [
            b(1, at(7, 8), at(7, 8)),
            b(2, at(7, 7), at(7, 7)),
            b(3, at(7, 15), at(7, 15)),
            b(4, at(9, 9), at(9, 9)),
            b(5, at(7, 8), None, "cancelled"),
        ],
        NOW,
        TZ,
        policy,
    )
    assert [[x.id for x in groups[k]] for k in ("due_now", "overdue", "today", "later")] == [
        [1],
        [2],
        [3],
        [4],
    ]


def test_ics_is_rfc5545() -> None:
    text = calendar(
        uid="x@h",
        start=at(8, 10),
        end=at(8, 11),
        summary="回电, 测试; 很长" * 10,
        description="d",
        stamp=NOW,
    )
    lines = text.split("\r\n")
    assert text.endswith("\r\n") and lines[0] == "BEGIN:VCALENDAR"
    assert "DTSTART:20300108T020000Z" in lines
    assert all(len(line.encode()) <= 75 for line in lines)
    assert "\\," in text and "\\;" in text
