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
    assign_lines,
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
    lines = {"cmn": waiters}
    assert next_overflow_at(lines, OVERFLOW, now=101.0) == 130.0
    # Already overflowed waiters need no timer; the next one does.
    assert next_overflow_at(lines, OVERFLOW, now=131.0) == 140.0
    assert next_overflow_at(lines, OVERFLOW, now=141.0) is None
    waiters[1].ringing_agent = 3
    assert next_overflow_at(lines, OVERFLOW, now=131.0) is None
    assert next_overflow_at({}, OVERFLOW, now=0.0) is None


class Counted:
    """A line that counts how many of its waiters routing looked at."""

    def __init__(self, line: WaitingLine) -> None:
        self.line = line
        self.seen = 0

    def lines(self):
        def count(waiters):
            for w in waiters:
                self.seen += 1
                yield w

        return {d: count(ws) for d, ws in self.line.lines().items()}


def test_routing_walks_a_few_waiters_not_the_whole_line() -> None:
    """Found by bench/surge.py: every arrival walked all 5,000 waiters while an agent of
    another dialect was free (a third of the server's loop)."""
    line = WaitingLine()
    for i in range(5000):
        line.add(f"c{i}", "cmn", 1000.0 + i * 0.01)
    line.add("y0", "yue", 1000.0)
    counted = Counted(line)
    pairs = assign_lines(counted.lines(), [agent(1, "cmn"), agent(2, "yue")], 1001.0, OVERFLOW)
    assert pairs == [("c0", 1), ("y0", 2)] and counted.seen <= 3, counted.seen
    counted = Counted(line)  # the cmn agent is busy now; a yue agent is free, nobody for them
    pairs = assign_lines(
        counted.lines(), [agent(1, "cmn", IN_CALL), agent(3, "yue")], 1001.0, OVERFLOW
    )
    assert pairs == [("y0", 3)] and counted.seen <= 3, counted.seen
    counted = Counted(line)
    assert next_overflow_at(counted.lines(), OVERFLOW, now=1001.0) == 1030.0
    assert counted.seen <= 200, counted.seen  # the ones overflowed already, then one


def test_overflowed_callers_deep_in_the_line_still_overflow() -> None:
    line = WaitingLine()
    for i in range(100):
        line.add(f"c{i}", "cmn", 1000.0 + i)
    line.add_at_head("back", "cmn", 1050.0)  # sent back to the head, arrived mid-way
    # A yue agent is free; callers who waited 30 s (arrived <= 1010) may overflow to them.
    pairs = assign_lines(line.lines(), [agent(9, "yue")], 1040.0, OVERFLOW)
    assert pairs == [("c0", 9)]
