"""The waiting line (hotline/queue.py): serving order, positions and the wait estimate."""

from __future__ import annotations

import pytest

from hotline.queue import NORMAL, PRIORITY, WaitingLine, estimate_wait


def ids(line: WaitingLine) -> list[str]:
    return [w.call_id for w in line.ordered()]


def test_first_come_first_served() -> None:
    line = WaitingLine()
    for i, cid in enumerate("abc"):
        line.add(cid, "cmn", arrived_at=100.0 + i)
    assert ids(line) == ["a", "b", "c"]
    assert line.positions() == {"a": 1, "b": 2, "c": 3}
    assert len(line) == 3 and "b" in line and "z" not in line


def test_order_follows_arrival_sequence_not_clock() -> None:
    # A caller restored with an older arrival time still queues by the order they were added.
    line = WaitingLine()
    line.add("late", "cmn", arrived_at=500.0)
    line.add("early", "cmn", arrived_at=100.0)
    assert ids(line) == ["late", "early"]


def test_priority_callers_go_first_and_keep_their_own_order() -> None:
    line = WaitingLine()
    line.add("n1", "cmn", 1.0)
    line.add("p1", "cmn", 2.0, priority=PRIORITY)
    line.add("n2", "cmn", 3.0)
    line.add("p2", "cmn", 4.0, priority=PRIORITY)
    assert ids(line) == ["p1", "p2", "n1", "n2"]
    assert line.positions()["n1"] == 3


def test_requeued_caller_goes_to_head_of_their_class() -> None:
    line = WaitingLine()
    line.add("a", "cmn", 1.0)
    line.add("b", "cmn", 2.0)
    line.add("p", "cmn", 3.0, priority=PRIORITY)
    line.add_at_head("back", "cmn", 0.5, priority=NORMAL)
    assert ids(line) == ["p", "back", "a", "b"]
    # A second requeue goes in front of the first one.
    line.add_at_head("back2", "cmn", 0.7)
    assert ids(line) == ["p", "back2", "back", "a", "b"]


def test_requeue_of_priority_caller_goes_before_other_priority_callers() -> None:
    line = WaitingLine()
    line.add("p1", "cmn", 1.0, priority=PRIORITY)
    line.add_at_head("p0", "cmn", 0.0, priority=PRIORITY)
    line.add_at_head("n0", "cmn", 0.0)
    assert ids(line) == ["p0", "p1", "n0"]


def test_remove_moves_everyone_up() -> None:
    line = WaitingLine()
    for cid in "abcd":
        line.add(cid, "cmn", 1.0)
    assert line.remove("b") is not None
    assert line.remove("b") is None
    assert line.positions() == {"a": 1, "c": 2, "d": 3}
    assert line.get("b") is None and line.get("c") is not None


def test_readding_a_caller_replaces_the_old_entry() -> None:
    line = WaitingLine()
    line.add("a", "cmn", 1.0)
    line.add("b", "cmn", 2.0)
    line.add_at_head("b", "cmn", 2.0)
    assert ids(line) == ["b", "a"]
    assert len(line) == 2


def test_waiter_remembers_dialect_and_arrival() -> None:
    line = WaitingLine()
    w = line.add("a", "yue", 42.0)
    assert (w.dialect, w.arrived_at, w.ringing_agent, w.declined_by) == ("yue", 42.0, None, set())


@pytest.mark.parametrize(
    ("position", "handles", "agents", "default", "expected"),
    [
        (0, [100.0], 1, 240.0, 0),  # not waiting (ringing or connected)
        (-1, [], 3, 240.0, 0),
        (1, [], 1, 240.0, 240),  # no history: the default handle time
        (3, [], 1, 240.0, 720),
        (1, [60.0, 120.0], 1, 240.0, 90),  # mean of recent handle times
        (4, [60.0, 120.0], 2, 240.0, 180),  # agents share the line
        (2, [100.0], 0, 240.0, 200),  # nobody logged in counts as one agent
        (1, [10.0], 4, 240.0, 2),  # rounded, 2.5 -> 2 (banker's rounding is fine)
    ],
)
def test_estimate_wait(
    position: int, handles: list[float], agents: int, default: float, expected: int
) -> None:
    assert estimate_wait(position, handles, agents, default) == expected


def test_estimate_wait_grows_with_position_and_shrinks_with_agents() -> None:
    one = [estimate_wait(p, [120.0], 1, 240.0) for p in range(1, 6)]
    assert one == sorted(one) and len(set(one)) == 5
    assert estimate_wait(5, [120.0], 5, 240.0) < estimate_wait(5, [120.0], 1, 240.0)
