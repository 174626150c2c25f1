"""The waiting line: who waits, in which order, and how long each is likely to wait.

Pure code: no I/O, no asyncio. Order is (priority, key): a higher priority first, then the
smaller key. A caller's key is their arrival sequence; a caller sent back to the head of the
line (their agent dropped) gets a key below everyone's, so they are next.

So within a priority class, the callers with a positive key stand in the order they arrived
(they are added as they arrive, and a restart restores them oldest first): routing relies on
this to stop walking a line at the first caller who has not waited long enough to overflow.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field

NORMAL = 0
PRIORITY = 1  # scheduled callbacks, fraud follow-ups


@dataclass(slots=True)
class Waiter:
    call_id: str
    dialect: str
    arrived_at: float
    priority: int = NORMAL
    key: float = 0.0
    ringing_agent: int | None = None
    declined_by: set[int] = field(default_factory=set)

    @property
    def sort_key(self) -> tuple[int, float]:
        return (-self.priority, self.key)

    @property
    def arrives_in_order(self) -> bool:
        """Whether everyone behind this waiter in their line arrived after them: a normal
        caller placed by arrival (not sent back to the head, not a priority task)."""
        return self.priority == NORMAL and self.key > 0


class WaitingLine:
    """Callers waiting for an agent, kept in serving order as they come and go.

    One sorted list per dialect (places in line count within a dialect), kept sorted with
    bisect: an arrival or a departure costs O(log n) to find plus a list insert, never a
    sort of the whole line, so a surge of thousands of callers stays cheap.
    """

    def __init__(self) -> None:
        self._waiters: dict[str, Waiter] = {}
        self._by_dialect: dict[str, list[tuple[tuple[int, float], str]]] = {}
        self._seq = itertools.count(1)
        self._head = 0.0

    def __len__(self) -> int:
        return len(self._waiters)

    def __contains__(self, call_id: str) -> bool:
        return call_id in self._waiters

    def add(self, call_id: str, dialect: str, arrived_at: float, priority: int = NORMAL) -> Waiter:
        """Put a caller at the back of their priority class."""
        return self._insert(
            Waiter(call_id, dialect, arrived_at, priority, key=float(next(self._seq)))
        )

    def add_at_head(
        self, call_id: str, dialect: str, arrived_at: float, priority: int = NORMAL
    ) -> Waiter:
        """Put a caller in front of everyone of their priority class."""
        self._head -= 1.0
        return self._insert(Waiter(call_id, dialect, arrived_at, priority, key=self._head))

    def _insert(self, waiter: Waiter) -> Waiter:
        self.remove(waiter.call_id)
        self._waiters[waiter.call_id] = waiter
        bisect.insort(
            self._by_dialect.setdefault(waiter.dialect, []), (waiter.sort_key, waiter.call_id)
        )
        return waiter

    def get(self, call_id: str) -> Waiter | None:
        return self._waiters.get(call_id)

    def remove(self, call_id: str) -> Waiter | None:
        waiter = self._waiters.pop(call_id, None)
        if waiter is not None:
            entries = self._by_dialect[waiter.dialect]
            del entries[bisect.bisect_left(entries, (waiter.sort_key, call_id))]
            if not entries:
                del self._by_dialect[waiter.dialect]
        return waiter

    def ordered(self) -> list[Waiter]:
        """Every waiter, next to be served first (a merge of the per-dialect lines)."""
        merged = heapq.merge(*self._by_dialect.values())
        return [self._waiters[call_id] for _, call_id in merged]

    def lines(self) -> dict[str, Iterator[Waiter]]:
        """Each dialect's waiters, lazily, next to be served first (walk without copying)."""
        return {
            dialect: (self._waiters[call_id] for _, call_id in entries)
            for dialect, entries in self._by_dialect.items()
        }

    def oldest_arrival(self, dialect: str) -> float | None:
        """When the longest-waiting caller of the dialect arrived (without a full scan)."""
        oldest = None
        for _, call_id in self._by_dialect.get(dialect, ()):
            waiter = self._waiters[call_id]
            if oldest is None or waiter.arrived_at < oldest:
                oldest = waiter.arrived_at
            if waiter.arrives_in_order:
                break  # everyone behind arrived later still
        return oldest

    def position(self, call_id: str) -> int:
        """1-based place among the callers of the same dialect (0 if not waiting)."""
        waiter = self._waiters.get(call_id)
        if waiter is None:
            return 0
        entries = self._by_dialect[waiter.dialect]
        return bisect.bisect_left(entries, (waiter.sort_key, call_id)) + 1

    def positions(self) -> dict[str, int]:
        """1-based place of every waiter among those of their dialect (1 = next).

        Agents are rung by dialect, so a Cantonese caller waits behind Cantonese callers
        (priority callbacks first), not behind everyone in the building.
        """
        return {
            call_id: i
            for entries in self._by_dialect.values()
            for i, (_, call_id) in enumerate(entries, start=1)
        }

    def dialects(self) -> dict[str, int]:
        """How many wait, per dialect."""
        return {d: len(entries) for d, entries in self._by_dialect.items()}


def estimate_wait(
    position: int, handle_seconds: list[float], agents_serving: int, default: float
) -> int:
    """Seconds until the caller at `position` (1 = next) is likely answered.

    Agents free up at a rate of `agents / mean handle time`; the caller at place p is
    answered after p such releases. With no agent logged in for them, `agents` counts as 1.
    """
    return wait_at(position, mean_handle_seconds(handle_seconds, default), agents_serving)


def mean_handle_seconds(handle_seconds: list[float], default: float) -> float:
    """The mean of recent handle times, or `default` without any."""
    return statistics.fmean(handle_seconds) if handle_seconds else default


def wait_at(position: int, mean_handle: float, agents_serving: int) -> int:
    """estimate_wait with the mean handle time already known (once per round of updates)."""
    if position <= 0:
        return 0
    return int(round(position * mean_handle / max(1, agents_serving)))


# The caller's line states besides "ringing": an estimate is given only while someone serves.
WAITING = "waiting"  # agents who could take the caller are serving: the estimate holds
PAUSED = "paused"  # such agents are signed in but all away: no estimate until one is back
UNSTAFFED = "unstaffed"  # nobody who could take the caller is signed in at all


def honest_wait(
    position: int, mean_handle: float, serving: int, signed_in: int
) -> tuple[str, int | None]:
    """(state, eta seconds or None): a wait is estimated only from agents actually serving.

    `serving` and `signed_in` count the agents who could take this caller (their dialect, or
    anyone once the caller has waited the overflow time); signed-in includes the away ones.
    """
    if signed_in <= 0:
        return UNSTAFFED, None
    if serving <= 0:
        return PAUSED, None
    return WAITING, wait_at(position, mean_handle, serving)
