"""The guidance state machine, its websocket edge, and the "not found" report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hotline.errors import BadMessage, Forbidden, HotlineError
from hotline.guidance.loader import load_library
from hotline.guidance.messages import apply_message, state_messages
from hotline.guidance.model import Library
from hotline.guidance.report import report
from hotline.guidance.session import GuidanceSession

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "hotline" / "guidance" / "scripts"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def library() -> Library:
    lib, errors = load_library(SCRIPTS)
    assert not errors
    return lib


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def session(library: Library, clock: Clock) -> GuidanceSession:
    return GuidanceSession(library, clock=clock)


def code_of(exc: pytest.ExceptionInfo[HotlineError]) -> str:
    return exc.value.code


def test_start_and_done_walks_the_main_path(session: GuidanceSession, clock: Clock) -> None:
    first = session.start("find-hidden-order")
    assert first.id == "open-me"
    view = session.caller_view("zh_CN")
    assert (view["number"], view["total"], view["mode"]) == (1, 5, "step")
    assert view["text"] == "点右下角的「我的」。"
    assert view["picture_url"] == "/guidance/pictures/shop-home.svg"
    assert view["highlight"] == {"x": 0.767, "y": 0.897, "w": 0.217, "h": 0.094}
    assert view["alt"]
    clock.now += 12
    row = session.answer(view["seq"], "done", "open-me")
    assert (row.step_id, row.answer, row.seconds) == ("open-me", "done", 12.0)
    snap = session.snapshot()
    assert snap["step_id"] == "all-orders" and snap["number"] == 2
    assert snap["steps"][0]["state"] == "done" and snap["steps"][0]["seconds"] == 12.0
    for _ in range(4):
        session.answer(session.seq, "done")
    assert session.caller_view()["mode"] == "finished"
    assert [s["state"] for s in session.snapshot()["steps"]] == ["done"] * 5 + ["pending"]


def test_dialect_and_language_wording(session: GuidanceSession) -> None:
    session.start("find-hidden-order")
    assert session.caller_view("zh_CN", "yue")["text"] == "撳右下角嘅「我的」。"
    assert session.caller_view("zh_CN", "yue")["dialect"] == "yue"
    assert session.caller_view("zh_CN", "wuu")["text"] == "点右下角的「我的」。"
    assert session.caller_view("en", "yue")["text"] == "Tap “Me” at the bottom right."


def test_push_back_skip(session: GuidanceSession) -> None:
    session.start("apply-refund")
    session.push("reason")
    assert session.snapshot()["number"] == 5
    session.back()
    assert session.step_id == "tap-refund"
    session.skip()
    assert session.step_id == "reason"
    assert session.states["tap-refund"].state == "skipped"
    with pytest.raises(HotlineError) as exc:
        session.push("nope")
    assert code_of(exc) == "no_such_step"
    session.push("open-me")
    with pytest.raises(HotlineError) as exc:
        session.back()
    assert code_of(exc) == "no_previous"
    session.push("submit")
    session.skip()
    assert session.mode == "finished"
    session.back()
    assert session.step_id == "submit"


def test_help_shows_hint_then_branches_then_returns(session: GuidanceSession) -> None:
    session.start("find-hidden-order")
    session.push("open-menu")
    session.answer(session.seq, "help")
    view = session.caller_view("zh_CN")
    assert view["is_hint"] and view["step_id"] == "open-menu"
    assert view["text"].startswith("在最上面一行")
    session.answer(session.seq, "help")  # second help: the on_help branch
    view = session.caller_view("zh_CN")
    assert view["step_id"] == "list-bottom" and view["detour"]
    assert view["number"] == 3  # a detour keeps the number of the step it came from
    assert session.states["open-menu"].help_count == 2
    session.answer(session.seq, "done")
    assert session.step_id == "open-menu" and session.mode == "step"


def test_help_without_hint_or_branch_calls_the_agent(session: GuidanceSession) -> None:
    session.start("apply-refund")
    session.push("submit")  # no hint, no on_help
    session.answer(session.seq, "help")
    assert session.caller_view()["waiting_for_agent"]
    assert session.snapshot()["waiting_for_agent"]
    session.free_text("我来帮您")
    assert not session.snapshot()["waiting_for_agent"]


def test_stale_and_not_current_answers_change_nothing(session: GuidanceSession) -> None:
    session.start("elder-mode")
    old = session.seq
    session.push("settings")
    before = session.snapshot()
    with pytest.raises(HotlineError) as exc:
        session.answer(old, "done")
    assert code_of(exc) == "stale_step"
    with pytest.raises(HotlineError) as exc:
        session.answer(session.seq + 5, "done")
    assert code_of(exc) == "not_current"
    with pytest.raises(HotlineError) as exc:
        session.answer(session.seq, "done", step_id="open-me")
    assert code_of(exc) == "not_current"
    with pytest.raises(HotlineError) as exc:
        session.answer(session.seq, "maybe")
    assert code_of(exc) == "bad_answer"
    assert session.snapshot() == before


def test_answers_before_start_are_refused(session: GuidanceSession) -> None:
    with pytest.raises(HotlineError) as exc:
        session.answer(0, "done")
    assert code_of(exc) == "not_current"
    with pytest.raises(HotlineError) as exc:
        session.push("open-me")
    assert code_of(exc) == "no_guidance"
    with pytest.raises(HotlineError) as exc:
        session.start("no-such-script")
    assert code_of(exc) == "no_such_script"


def test_shown_and_listening_states(session: GuidanceSession) -> None:
    session.start("share-location")
    assert session.snapshot()["steps"][0]["state"] == "sent"
    session.answer(session.seq, "shown")
    assert session.snapshot()["steps"][0]["state"] == "shown"
    seq = session.seq
    session.answer(seq, "listening")
    assert session.snapshot()["steps"][0]["state"] == "listening"
    assert session.seq == seq  # acknowledgements do not change the caller's view


@pytest.mark.parametrize(
    "text",
    ["", "   ", "<b>bold</b>", "a&amp;b", "bell\x07", "字" * 61, "x" * 141, "\n".join("abcdefg")],
)
def test_free_text_is_validated(session: GuidanceSession, text: str) -> None:
    with pytest.raises(HotlineError) as exc:
        session.free_text(text)
    assert code_of(exc) == "bad_text"
    assert session.seq == 0


def test_free_text_shows_and_returns(session: GuidanceSession) -> None:
    session.start("answer-video-call")
    session.free_text("  看屏幕下面  ")
    view = session.caller_view()
    assert view["is_free_text"] and view["text"] == "看屏幕下面" and view["picture_url"] is None
    row = session.answer(session.seq, "done")
    assert row.step_id is None
    assert session.mode == "step" and session.step_id == "answer"
    session2 = GuidanceSession(session.library)
    session2.free_text("hello, " + "x" * 100)  # works without a script
    session2.answer(session2.seq, "done")
    assert session2.mode == "idle"


def test_snapshot_is_json_and_restores_after_reconnect(
    session: GuidanceSession, library: Library, clock: Clock
) -> None:
    session.start("change-pay-password")
    session.answer(session.seq, "done")
    session.push("security")
    session.answer(session.seq, "help")
    session.answer(session.seq, "help")  # hint, then the via-settings detour
    clock.now += 5
    snap = json.loads(json.dumps(session.snapshot()))
    view = session.caller_view("zh_CN", "yue")
    again = GuidanceSession.restore(library, snap, clock=clock)
    assert again.caller_view("zh_CN", "yue") == view
    assert again.snapshot() == snap
    again.answer(snap["seq"], "done")
    assert again.step_id == "security"


def test_messages_edge(session: GuidanceSession) -> None:
    apply_message(session, {"type": "guide_start", "script_id": "elder-mode"}, "agent")
    with pytest.raises(Forbidden):
        apply_message(session, {"type": "guide_skip"}, "caller")
    with pytest.raises(Forbidden):
        apply_message(session, {"type": "guide_answer", "seq": 1, "answer": "done"}, "agent")
    with pytest.raises(BadMessage):
        apply_message(session, {"type": "guide_push", "step_id": 3}, "agent")
    with pytest.raises(BadMessage):
        apply_message(session, {"type": "guide_answer", "seq": True, "answer": "done"}, "caller")
    row = apply_message(
        session, {"type": "guide_answer", "seq": session.seq, "answer": "done"}, "caller"
    )
    assert row is not None and row.to_row()["script_id"] == "elder-mode"
    apply_message(session, {"type": "guide_text", "text": "好"}, "agent")
    apply_message(session, {"type": "guide_back"}, "agent")
    apply_message(session, {"type": "guide_stop"}, "agent")
    agent_msg, caller_msg = state_messages(session)
    assert agent_msg["type"] == caller_msg["type"] == "guide_state"
    assert caller_msg["view"]["mode"] == "idle" and agent_msg["snapshot"]["script_id"] is None


def test_report_orders_steps_by_not_found(library: Library) -> None:
    rows = [
        {"script_id": "apply-refund", "step_id": "reason", "answer": "shown"},
        {"script_id": "apply-refund", "step_id": "reason", "answer": "help"},
        {"script_id": "apply-refund", "step_id": "reason", "answer": "help"},
        {"script_id": "apply-refund", "step_id": "open-me", "answer": "shown"},
        {"script_id": "apply-refund", "step_id": "open-me", "answer": "help"},
        {"script_id": "apply-refund", "step_id": "open-me", "answer": "done", "seconds": 4},
        {"script_id": "apply-refund", "step_id": "open-me", "answer": "done", "seconds": 10},
        {"script_id": "apply-refund", "step_id": "submit", "answer": "listening"},
        {"script_id": "gone", "step_id": "x", "answer": "help"},
        {"script_id": None, "step_id": None, "answer": "done"},
    ]
    out = report(rows)
    assert [e["step_id"] for e in out["apply-refund"]] == ["reason", "open-me"]
    reason, open_me = out["apply-refund"]
    assert (reason["help"], reason["help_rate"]) == (2, 1.0)
    assert (open_me["help"], open_me["done"], open_me["median_seconds_to_done"]) == (1, 2, 7.0)
    assert out["gone"][0]["help"] == 1
    full = report(rows, library)
    assert len(full["apply-refund"]) == 6 and full["apply-refund"][0]["step_id"] == "reason"
    assert full["elder-mode"][0]["help_rate"] is None
    assert report([]) == {}


def test_session_rows_feed_the_report(session: GuidanceSession, clock: Clock) -> None:
    rows = []
    session.start("refund-progress")
    rows.append(session.answer(session.seq, "help").to_row())
    clock.now += 3
    rows.append(session.answer(session.seq, "done").to_row())
    out = report(rows)
    assert out["refund-progress"][0] == {
        "step_id": "open-me",
        "shown": 0,
        "done": 1,
        "help": 1,
        "help_rate": 0.5,
        "median_seconds_to_done": 3.0,
    }


def test_demo_fixture_is_current() -> None:
    from hotline.guidance.demo import fixture

    stored = json.loads((ROOT / "static" / "guidance" / "demo-fixture.json").read_text())
    assert stored == json.loads(json.dumps(fixture(), ensure_ascii=False))
