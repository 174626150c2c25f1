"""Typed call events: handlers of the exact type, in subscription order, each on its own."""

from __future__ import annotations

import logging

import pytest

from hotline.live.events import CallEvent, Ended, Events, Tapped
from hotline.live.switchboard import LiveCall


def _call(call_id: str = "c0ffee") -> LiveCall:
    return LiveCall(call_id=call_id, dialect="ko", lang="zh_CN", arrived_at=0.0, rejoin_hash="")


def test_handlers_run_in_subscription_order() -> None:
    events, seen = Events(), []
    events.subscribe(Ended, lambda ev: seen.append(("first", ev.outcome)))
    events.subscribe(Ended, lambda ev: seen.append(("second", ev.by)))
    events.subscribe(Ended, lambda ev: seen.append(("third", ev.call.call_id)))
    events.emit(Ended(_call(), "completed", "agent"))
    assert seen == [("first", "completed"), ("second", "agent"), ("third", "c0ffee")]


def test_only_handlers_of_the_exact_type_run() -> None:
    events, seen = Events(), []
    events.subscribe(Tapped, lambda ev: seen.append(f"tapped {ev.speaker}"))
    events.subscribe(CallEvent, lambda ev: seen.append("base"))  # not a catch-all
    events.emit(Ended(_call(), "completed", "caller"))
    assert seen == []
    events.emit(Tapped(_call(), "agent"))
    assert seen == ["tapped agent"]
    events.emit(CallEvent(_call()))
    assert seen == ["tapped agent", "base"]


def test_a_failing_handler_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events, seen = Events(), []

    def broken(ev: Ended) -> None:
        raise RuntimeError("boom")

    events.subscribe(Ended, lambda ev: seen.append("before"))
    events.subscribe(Ended, broken)
    events.subscribe(Ended, lambda ev: seen.append("after"))
    with caplog.at_level(logging.ERROR, logger="hotline.live.events"):
        events.emit(Ended(_call("dead10cc"), "completed", "agent"))
    assert seen == ["before", "after"]
    [record] = caplog.records
    assert "call dead10cc" in record.getMessage() and "Ended" in record.getMessage()
    assert record.exc_info is not None and "boom" in str(record.exc_info[1])


def test_no_subscriber_is_fine() -> None:
    Events().emit(Tapped(_call(), "caller"))  # nobody listens: nothing happens, no error
