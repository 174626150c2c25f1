"""The waiting line: who waits, in which order, and how long each is likely to wait.

Pure code: no I/O, no asyncio. Order is (priority, key): a higher priority first, then the
smaller key. A caller's key is their arrival sequence; a caller sent back to the head of the
line (their agent dropped) gets a key below everyone's, so they are next.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field

NORMAL = 0
PRIORITY = 1  # scheduled callbacks, fraud follow-ups


@dataclass
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


class WaitingLine:
    """Callers waiting for an agent, kept in serving order."""

    def __init__(self) -> None:
        self._waiters: dict[str, Waiter] = {}
        self._seq = itertools.count(1)
        self._head = 0.0

    def __len__(self) -> int:
        return len(self._waiters)

    def __contains__(self, call_id: str) -> bool:
        return call_id in self._waiters

    def add(self, call_id: str, dialect: str, arrived_at: float, priority: int = NORMAL) -> Waiter:
        """Put a caller at the back of their priority class."""
        waiter = Waiter(call_id, dialect, arrived_at, priority, key=float(next(self._seq)))
        self._waiters[call_id] = waiter
        return waiter

    def add_at_head(
        self, call_id: str, dialect: str, arrived_at: float, priority: int = NORMAL
    ) -> Waiter:
        """Put a caller in front of everyone of their priority class."""
        self._head -= 1.0
        waiter = Waiter(call_id, dialect, arrived_at, priority, key=self._head)
        self._waiters[call_id] = waiter
        return waiter

    def get(self, call_id: str) -> Waiter | None:
        return self._waiters.get(call_id)

    def remove(self, call_id: str) -> Waiter | None:
        return self._waiters.pop(call_id, None)

    def ordered(self) -> list[Waiter]:
        """Every waiter, next to be served first."""
        return sorted(self._waiters.values(), key=lambda w: w.sort_key)

    def positions(self) -> dict[str, int]:
        """1-based place of every waiter among those of their dialect (1 = next).

        Agents are rung by dialect, so a Cantonese caller waits behind Cantonese callers
        (priority callbacks first), not behind everyone in the building.
        """
        seen: dict[str, int] = {}
        out = {}
        for w in self.ordered():
            seen[w.dialect] = seen.get(w.dialect, 0) + 1
            out[w.call_id] = seen[w.dialect]
        return out


def estimate_wait(
    position: int, handle_seconds: list[float], agents_serving: int, default: float
) -> int:
    """Seconds until the caller at `position` (1 = next) is likely answered.

    Agents free up at a rate of `agents / mean handle time`; the caller at place p is
    answered after p such releases. With no agent logged in for them, `agents` counts as 1.
    """
    if position <= 0:
        return 0
    mean = statistics.fmean(handle_seconds) if handle_seconds else default
    return int(round(position * mean / max(1, agents_serving)))
