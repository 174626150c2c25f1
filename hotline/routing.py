"""Routing with no IVR: which waiting caller rings which agent.

Pure code. The longest-idle available agent who speaks the caller's dialect is rung first;
once a caller has waited the overflow time, any available agent will do. An agent who passed
a caller on is skipped for that caller, unless after the overflow time nobody else is left. Callers are served
in line order, so nobody is overtaken by a later caller of the same dialect.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from hotline.queue import Waiter

AVAILABLE = "available"
RINGING = "ringing"
IN_CALL = "in_call"
WRAP_UP = "wrap_up"
AWAY = "away"
STATUSES = (AVAILABLE, RINGING, IN_CALL, WRAP_UP, AWAY)


@dataclass(frozen=True)
class AgentState:
    agent_id: int
    dialects: tuple[str, ...]
    status: str
    idle_since: float


def pick_agent(
    waiter: Waiter, agents: list[AgentState], now: float, overflow_seconds: float
) -> AgentState | None:
    """The agent to ring for this caller, or None."""
    available = [a for a in agents if a.status == AVAILABLE]
    overflowed = now - waiter.arrived_at >= overflow_seconds
    free = [a for a in available if a.agent_id not in waiter.declined_by]
    speakers = [a for a in free if waiter.dialect in a.dialects]
    if not speakers and overflowed:
        speakers = free
    if not speakers and overflowed:
        # Everyone left has passed this caller on: ask again rather than let them starve.
        speakers = [a for a in available if waiter.dialect in a.dialects] or available
    if not speakers:
        return None
    return min(speakers, key=lambda a: (a.idle_since, a.agent_id))


def assign(
    waiters: Iterable[Waiter], agents: list[AgentState], now: float, overflow_seconds: float
) -> list[tuple[str, int]]:
    """Pairs (call_id, agent_id) to ring now, for waiters given in line order."""
    lines: dict[str, list[Waiter]] = {}
    for waiter in waiters:
        lines.setdefault(waiter.dialect, []).append(waiter)
    return assign_lines(lines, agents, now, overflow_seconds)


def assign_lines(
    lines: Mapping[str, Iterable[Waiter]],
    agents: list[AgentState],
    now: float,
    overflow_seconds: float,
) -> list[tuple[str, int]]:
    """Pairs (call_id, agent_id) to ring now; `lines` holds each dialect's waiters in order.

    Callers are considered in line order across dialects (a merge), and each dialect's line
    is walked only as far as it can be served: while an agent of that dialect is free, or
    through callers who have waited long enough to overflow to anyone. So the cost is a
    few waiters per free agent, never the length of the line (a surge of thousands).
    """
    free = [a for a in agents if a.status == AVAILABLE]
    if not free:
        return []
    left: dict[str, int] = {}  # free, untaken agents per dialect
    for a in free:
        for d in a.dialects:
            left[d] = left.get(d, 0) + 1

    def walk(dialect: str, waiters: Iterable[Waiter]) -> Iterator[Waiter]:
        for waiter in waiters:
            if not left.get(dialect) and now - waiter.arrived_at < overflow_seconds:
                if waiter.arrives_in_order:
                    return  # nobody of this dialect is free, and those behind came later
                continue
            yield waiter

    taken: set[int] = set()
    pairs = []
    streams = [walk(d, ws) for d, ws in lines.items()]
    for waiter in heapq.merge(*streams, key=lambda w: w.sort_key):
        if len(taken) == len(free):
            break
        if waiter.ringing_agent is not None:
            continue
        if not left.get(waiter.dialect) and now - waiter.arrived_at < overflow_seconds:
            continue  # nobody of their dialect is free, and it is too early to overflow
        pool = [a for a in free if a.agent_id not in taken]
        agent = pick_agent(waiter, pool, now, overflow_seconds)
        if agent is not None:
            taken.add(agent.agent_id)
            for d in agent.dialects:
                left[d] -= 1
            pairs.append((waiter.call_id, agent.agent_id))
    return pairs


def next_overflow_at(
    lines: Mapping[str, Iterable[Waiter]], overflow_seconds: float, now: float
) -> float | None:
    """When the next not-yet-overflowed waiter reaches the overflow time (to re-route then).

    Each line is walked only to its first caller placed by arrival who has not overflowed:
    those behind arrived later.
    """
    times = []
    for waiters in lines.values():
        for w in waiters:
            if w.ringing_agent is not None or w.arrived_at + overflow_seconds <= now:
                continue
            times.append(w.arrived_at + overflow_seconds)
            if w.arrives_in_order:
                break
    return min(times) if times else None
