"""Wallboard and report figures from a fixed set of call rows (values checked by hand)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest

from hotline.reports import charts
from hotline.reports import wallboard as wb

D = 1_700_000_000.0  # start of "today" in these tests
SVG = "{http://www.w3.org/2000/svg}"


def call(n: int, **kw: object) -> dict:
    row = {
        "id": f"c{n}",
        "kind": "inbound",
        "arrived_at": D + n * 60,
        "answered_at": None,
        "ended_at": D + n * 60 + 300,
        "wait_seconds": None,
        "talk_seconds": None,
        "outcome": "completed",
        "agent_id": None,
        "fraud_flag": 0,
        "rating": None,
    }
    row.update(kw)
    if row["wait_seconds"] is not None and row["answered_at"] is None:
        row["answered_at"] = row["arrived_at"] + row["wait_seconds"]
    return row


ROWS = [
    call(1, wait_seconds=5, talk_seconds=100, agent_id=1, rating="good"),
    call(2, wait_seconds=15, talk_seconds=200, agent_id=1, rating="ok"),  # exactly 15 s: within
    call(3, wait_seconds=18, talk_seconds=300, agent_id=2, rating="bad"),
    call(4, wait_seconds=40, talk_seconds=60, agent_id=2, rating="good", fraud_flag=1),
    call(5, outcome="abandoned"),
    call(6, outcome="caller_dropped"),
    call(7, outcome="interrupted"),  # a server stop: not the line's fault, not counted
    call(8, ended_at=None, outcome=None),  # still waiting: not counted yet
    call(9, answered_at=D + 9 * 60 + 10, agent_id=3),  # no stored wait: taken from the stamps
]


def test_service_summary_by_hand() -> None:
    s = wb.service_summary(ROWS, [20, 15])
    # handled = 5 answered (1,2,3,4,9) + 2 who gave up (5,6) = 7
    assert (s["calls"], s["handled"], s["answered"], s["abandoned"]) == (9, 7, 5, 2)
    assert s["within"] == {"20": 4, "15": 3}  # 5,15,18,10 s / 5,15,10 s
    assert s["service_level"] == {"20": round(4 / 7, 4), "15": round(3 / 7, 4)}
    assert s["asa_seconds"] == 17.6  # (5+15+18+40+10)/5
    assert s["abandon_rate"] == round(2 / 7, 4)
    assert s["fraud_calls"] == 1


def test_service_summary_empty_day_has_no_rates() -> None:
    s = wb.service_summary([call(1, ended_at=None, outcome=None)], [20])
    assert s["handled"] == 0
    assert s["service_level"] == {"20": None}
    assert s["asa_seconds"] is None and s["abandon_rate"] is None


def test_outbound_calls_do_not_count_towards_service_level() -> None:
    rows = [*ROWS, call(10, kind="callback", wait_seconds=500)]
    assert wb.service_summary(rows, [20])["handled"] == 7


def test_satisfaction_and_per_agent() -> None:
    assert wb.satisfaction(ROWS) == {"good": 2, "ok": 1, "bad": 1}
    agents = wb.per_agent(ROWS, {1: "Mei", 2: "Lan", 3: "Bo"})
    assert [(a["name"], a["answered"], a["talk_seconds"]) for a in agents] == [
        ("Lan", 2, 180),
        ("Mei", 2, 150),
        ("Bo", 1, None),
    ]
    assert agents[0]["ratings"] == {"good": 1, "ok": 0, "bad": 1}


def test_wait_histogram_and_per_hour() -> None:
    hist = dict(wb.wait_histogram(ROWS))
    assert list(hist.values()) == [2, 2, 0, 1, 0, 0, 0]  # 5,10 | 15,18 | - | 40
    assert list(hist)[0] == "0s–10s" and list(hist)[-1] == ">5m"
    hours = wb.per_hour([D, D + 3599, D + 3600, D + 86400, D - 1], D)
    assert len(hours) == 24 and hours[:3] == [2, 1, 0] and sum(hours) == 3


def test_daily_service_level() -> None:
    day2 = call(1, arrived_at=D + 86400 + 60, wait_seconds=30)
    day2["answered_at"] = day2["arrived_at"] + 30
    levels = wb.daily_service_level([*ROWS, day2], [D, D + 86400, D + 2 * 86400], 20)
    assert levels == [round(4 / 7, 4), 0.0, None]


def test_callbacks_due_and_overdue() -> None:
    now = D + 50_000

    def b(status: str, due: float) -> SimpleNamespace:
        return SimpleNamespace(status=status, due_at=due)

    bookings = [
        b("booked", now - 10),  # due
        b("booked", now - 3600),  # due, overdue
        b("queued", now - 20 * 60),  # due, overdue
        b("claimed", now - 3600),  # someone is on it
        b("held", now - 3600),  # a caller keeping their place in line
        b("booked", now + 3600),  # later today
        b("booked", now + 10_000),  # tomorrow
    ]
    assert wb.callbacks_due(bookings, now, now + 7200) == {
        "due": 3,
        "overdue": 2,
        "later_today": 1,
    }


def test_live_board_leaves_supervisors_out() -> None:
    snap = {
        "line": {
            "waiting": {"cmn": 2, "yue": 1},
            "longest_wait": {"cmn": 40, "yue": 5},
            "total_waiting": 3,
        },
        "agents": [
            {"id": 1, "role": "agent", "status": "available", "dialects": ["cmn", "yue"]},
            {"id": 2, "role": "agent", "status": "in_call", "dialects": ["cmn"]},
            {"id": 3, "role": "supervisor", "status": "away", "dialects": ["cmn"]},
        ],
        "calls": [
            {
                "call_id": "x",
                "state": "connected",
                "dialect": "cmn",
                "elder": "王",
                "agent_id": 2,
                "waited_seconds": 70,
            }
        ],
    }
    board = wb.live_board(snap)
    assert board["total_waiting"] == 3 and board["longest_wait"] == 40
    assert board["agents"] == {"available": 1, "in_call": 1} and board["agents_online"] == 2
    assert board["dialects"] == [
        {
            "dialect": "cmn",
            "waiting": 2,
            "longest_wait": 40,
            "agents": {"available": 1, "in_call": 1},
        },
        {"dialect": "yue", "waiting": 1, "longest_wait": 5, "agents": {"available": 1}},
    ]
    assert board["calls"][0]["seconds"] == 70
    assert wb.live_board({})["total_waiting"] == 0


def test_script_usage_and_not_found_steps() -> None:
    answers = [
        {"call_id": "a", "script_id": "pay", "step_id": "s1", "answer": "help"},
        {"call_id": "a", "script_id": "pay", "step_id": "s1", "answer": "done"},
        {"call_id": "b", "script_id": "pay", "step_id": "s2", "answer": "help"},
        {"call_id": "c", "script_id": "video", "step_id": "s1", "answer": "done"},
    ]
    assert wb.script_usage(answers) == [("pay", 2), ("video", 1)]
    report = {
        "pay": [
            {"step_id": "s1", "help": 3, "help_rate": 0.5},
            {"step_id": "s2", "help": 1, "help_rate": 1.0},
        ],
        "video": [{"step_id": "s1", "help": 0, "help_rate": 0.0}],
    }
    steps = wb.not_found_steps(report)
    assert [(e["script_id"], e["step_id"]) for e in steps] == [("pay", "s1"), ("pay", "s2")]


@pytest.mark.parametrize(
    "value,expected", [(0, 1), (3, 5), (7, 10), (18, 20), (24, 25), (101, 200)]
)
def test_nice_axis_maximum(value: float, expected: float) -> None:
    assert charts.nice_max(value) == expected


def test_bar_chart_is_valid_svg_with_escaped_labels() -> None:
    svg = charts.bar_chart(
        "calls <today>",
        ["0", "1", "2"],
        [charts.Series("today", [3, None, 1]), charts.Series("week", [2, 2, 2], solid=False)],
    )
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title").text == "calls <today>"
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("stroke-width") == "3"]
    assert len(bars) == 5 + 2  # 2 + 3 bars, plus 2 legend swatches (None is no bar)
    assert "style" not in svg  # presentation attributes only (strict CSP)
    sizes = {int(t.get("font-size")) for t in root.iter(f"{SVG}text")}
    assert min(sizes) >= 28  # readable from a distance


def test_line_and_hbar_charts() -> None:
    svg = charts.line_chart("sl", ["a", "b", "c", "d"], [0.5, None, 0.9, 1.0], target=0.8)
    root = ET.fromstring(svg)
    assert len(list(root.iter(f"{SVG}polyline"))) == 1  # the gap splits the line; 1 lone dot
    assert len(list(root.iter(f"{SVG}circle"))) == 3
    empty = ET.fromstring(charts.hbar_chart("none", [], empty="暂无数据"))
    assert any(t.text == "暂无数据" for t in empty.iter(f"{SVG}text"))
    long = charts.hbar_chart("x", [("一个非常非常长的引导脚本标题会被截断显示出来吧对吧对吧", 3.0)])
    assert "…" in long


@pytest.mark.parametrize("peak,expected", [(0, 4), (3, 4), (5, 8), (9, 12), (17, 20), (60, 80)])
def test_count_axis_has_whole_number_ticks(peak: float, expected: float) -> None:
    assert charts.count_axis(peak) == expected
