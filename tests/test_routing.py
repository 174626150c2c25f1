"""Routing (hotline/routing.py): who rings whom, with no IVR."""

from __future__ import annotations

from hotline.queue import Waiter, WaitingLine
from hotline.routing import (
    AVAILABLE,
    AWAY,
    IN_CALL,
    RINGING,
    WRAP_UP,
    AgentState,
    assign,
    next_overflow_at,
    pick_agent,
)

OVERFLOW = 30.0


def agent(agent_id: int, dialects: str = "cmn", status: str = AVAILABLE, idle: float = 0.0):
    return AgentState(agent_id, tuple(dialects.split(",")), status, idle)


def waiter(call_id: str = "c1", dialect: str = "cmn", arrived: float = 100.0) -> Waiter:
    return Waiter(call_id, dialect, arrived)


def test_dialect_match_beats_idle_time() -> None:
    agents = [agent(1, "cmn", idle=1.0), agent(2, "yue", idle=0.0)]
    assert pick_agent(waiter(dialect="yue"), agents, 101.0, OVERFLOW).agent_id == 2
    assert pick_agent(waiter(dialect="cmn"), agents, 101.0, OVERFLOW).agent_id == 1


def test_multi_dialect_agent_serves_each_dialect() -> None:
    agents = [agent(7, "cmn,yue,wuu")]
    for dialect in ("cmn", "yue", "wuu"):
        assert pick_agent(waiter(dialect=dialect), agents, 101.0, OVERFLOW).agent_id == 7


def test_longest_idle_first() -> None:
    agents = [agent(1, idle=50.0), agent(2, idle=10.0), agent(3, idle=30.0)]
    assert pick_agent(waiter(), agents, 101.0, OVERFLOW).agent_id == 2


def test_idle_tie_breaks_on_agent_id() -> None:
    agents = [agent(9, idle=10.0), agent(4, idle=10.0)]
    assert pick_agent(waiter(), agents, 101.0, OVERFLOW).agent_id == 4


def test_only_available_agents_are_rung() -> None:
    busy = [agent(i, status=s) for i, s in enumerate((RINGING, IN_CALL, WRAP_UP, AWAY), 1)]
    assert pick_agent(waiter(), busy, 101.0, OVERFLOW) is None
    assert pick_agent(waiter(), [*busy, agent(5, idle=99.0)], 101.0, OVERFLOW).agent_id == 5


def test_no_speaker_waits_until_overflow() -> None:
    agents = [agent(1, "cmn")]
    w = waiter(dialect="yue", arrived=100.0)
    assert pick_agent(w, agents, 100.0 + OVERFLOW - 0.01, OVERFLOW) is None
    assert pick_agent(w, agents, 100.0 + OVERFLOW, OVERFLOW).agent_id == 1


def test_overflow_still_prefers_longest_idle() -> None:
    agents = [agent(1, "cmn", idle=20.0), agent(2, "wuu", idle=5.0)]
    assert pick_agent(waiter(dialect="yue"), agents, 200.0, OVERFLOW).agent_id == 2


def test_overflowed_caller_still_prefers_a_free_speaker() -> None:
    agents = [agent(1, "cmn", idle=1.0), agent(2, "yue", idle=50.0)]
    assert pick_agent(waiter(dialect="yue"), agents, 500.0, OVERFLOW).agent_id == 2


def test_busy_speaker_does_not_block_overflow() -> None:
    # The only Cantonese speaker is in a call: after the overflow wait anyone free will do.
    agents = [agent(1, "yue", status=IN_CALL), agent(2, "cmn")]
    assert pick_agent(waiter(dialect="yue"), agents, 100.0 + OVERFLOW, OVERFLOW).agent_id == 2


def test_declined_or_timed_out_agent_is_skipped() -> None:
    w = waiter()
    w.declined_by.add(1)
    agents = [agent(1, idle=0.0), agent(2, idle=10.0)]
    assert pick_agent(w, agents, 101.0, OVERFLOW).agent_id == 2
    w.declined_by.add(2)
    assert pick_agent(w, agents, 101.0, OVERFLOW) is None
    # ... until the overflow time: then rather ask again than let the caller starve.
    assert pick_agent(w, agents, 100.0 + OVERFLOW * 2, OVERFLOW).agent_id == 1


def test_two_callers_never_get_the_same_agent() -> None:
    waiters = [waiter("a"), waiter("b")]
    assert assign(waiters, [agent(1)], 101.0, OVERFLOW) == [("a", 1)]
    pairs = assign(waiters, [agent(1, idle=5.0), agent(2, idle=1.0)], 101.0, OVERFLOW)
    assert pairs == [("a", 2), ("b", 1)]


def test_callers_served_in_line_order() -> None:
    line = WaitingLine()
    for cid in ("first", "second", "third"):
        line.add(cid, "cmn", 100.0)
    line.add_at_head("requeued", "cmn", 50.0)
    pairs = assign(line.ordered(), [agent(1), agent(2, idle=3.0)], 101.0, OVERFLOW)
    assert pairs == [("requeued", 1), ("first", 2)]


def test_later_caller_of_other_dialect_is_not_blocked() -> None:
    # Line order is per fit: a yue caller ahead does not hold up a cmn caller behind them.
    waiters = [waiter("yue1", "yue"), waiter("cmn1", "cmn")]
    assert assign(waiters, [agent(1, "cmn")], 101.0, OVERFLOW) == [("cmn1", 1)]


def test_overflowed_caller_ahead_takes_the_agent_first() -> None:
    waiters = [waiter("yue1", "yue", arrived=0.0), waiter("cmn1", "cmn", arrived=90.0)]
    assert assign(waiters, [agent(1, "cmn")], 100.0, OVERFLOW) == [("yue1", 1)]


def test_waiters_already_ringing_are_skipped() -> None:
    ringing = waiter("a")
    ringing.ringing_agent = 1
    pairs = assign([ringing, waiter("b")], [agent(1, status=RINGING), agent(2)], 101.0, OVERFLOW)
    assert pairs == [("b", 2)]


def test_nothing_to_assign() -> None:
    assert assign([], [agent(1)], 0.0, OVERFLOW) == []
    assert assign([waiter()], [], 0.0, OVERFLOW) == []


def test_next_overflow_at() -> None:
    waiters = [waiter("a", arrived=100.0), waiter("b", arrived=110.0)]
    assert next_overflow_at(waiters, OVERFLOW, now=101.0) == 130.0
    # Already overflowed waiters need no timer; the next one does.
    assert next_overflow_at(waiters, OVERFLOW, now=131.0) == 140.0
    assert next_overflow_at(waiters, OVERFLOW, now=141.0) is None
    waiters[1].ringing_agent = 3
    assert next_overflow_at(waiters, OVERFLOW, now=131.0) is None
    assert next_overflow_at([], OVERFLOW, now=0.0) is None
