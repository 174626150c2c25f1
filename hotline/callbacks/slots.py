"""Bookable callback slots: hour windows with capacity from agents' shifts (pure, no I/O).

Capacity is exact for agents who speak several dialects: by Hall's theorem, bookings of a
set S of dialects fit the agents iff, for every subset S, the bookings in S are at most
`per_agent_hour` times the number of agents speaking any dialect of S. A slot is offered
for dialect d only while adding one more d booking keeps every such inequality true.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from zoneinfo import ZoneInfo

HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True)
class Shift:
    """An agent's weekly shift: ISO weekday (1 = Monday) and hours [start_hour, end_hour)."""

    agent_id: int
    weekday: int
    start_hour: int
    end_hour: int
    dialects: frozenset[str]

    def covers(self, local: datetime) -> bool:
        return local.isoweekday() == self.weekday and self.start_hour <= local.hour < self.end_hour


@dataclass(frozen=True)
class Slot:
    """One bookable hour: its start (epoch seconds), local start, and free places."""

    start: float
    local: datetime
    free: int


def hour_starts(now: float, tz: ZoneInfo, days: int = 14) -> list[float]:
    """Epoch starts of every local whole hour from the next one up to `days` ahead."""
    local = datetime.fromtimestamp(now, tz)
    first = local.replace(minute=0, second=0, microsecond=0)
    start = first.timestamp()
    if start < now:
        start += HOUR
    # Whole local hours are whole absolute hours apart, even for :30 offsets and DST.
    count = max(0, math.floor((now + days * DAY - start) / HOUR) + 1)
    return [start + i * HOUR for i in range(count)]


def is_hour_start(at: float, tz: ZoneInfo) -> bool:
    local = datetime.fromtimestamp(at, tz)
    return local.minute == 0 and local.second == 0 and local.microsecond == 0


def agents_on_shift(shifts: Iterable[Shift], local: datetime) -> list[frozenset[str]]:
    """The dialect sets of the agents on shift at a local time (each agent once)."""
    found: dict[int, frozenset[str]] = {}
    for s in shifts:
        if s.covers(local):
            found[s.agent_id] = s.dialects
    return list(found.values())


def free_places(
    agents: Sequence[frozenset[str]], booked: Counter[str], dialect: str, per_agent_hour: int
) -> int:
    """How many more `dialect` bookings fit in an hour with these agents and bookings."""
    if per_agent_hour <= 0 or not any(dialect in a for a in agents):
        return 0
    others = sorted(({d for a in agents for d in a} | set(booked)) - {dialect})
    best: int | None = None
    for size in range(len(others) + 1):
        for extra in combinations(others, size):
            group = {dialect, *extra}
            speakers = sum(1 for a in agents if a & group)
            load = sum(booked[d] for d in group)
            room = per_agent_hour * speakers - load
            best = room if best is None else min(best, room)
    return max(0, best or 0)


def available(
    now: float,
    tz: ZoneInfo,
    shifts: Sequence[Shift],
    booked: Iterable[tuple[float, str]],
    dialect: str,
    per_agent_hour: int,
    days: int = 14,
) -> list[Slot]:
    """Every hour in the booking horizon with room for one more `dialect` callback."""
    by_hour: dict[float, Counter[str]] = {}
    for start, d in booked:
        by_hour.setdefault(start, Counter())[d] += 1
    out = []
    for start in hour_starts(now, tz, days):
        local = datetime.fromtimestamp(start, tz)
        agents = agents_on_shift(shifts, local)
        free = free_places(agents, by_hour.get(start, Counter()), dialect, per_agent_hour)
        if free > 0:
            out.append(Slot(start, local, free))
    return out


def free_at(
    start: float,
    tz: ZoneInfo,
    shifts: Sequence[Shift],
    booked: Iterable[tuple[float, str]],
    dialect: str,
    per_agent_hour: int,
) -> int:
    """Free places for `dialect` in the one hour starting at `start`."""
    counts: Counter[str] = Counter(d for s, d in booked if s == start)
    agents = agents_on_shift(shifts, datetime.fromtimestamp(start, tz))
    return free_places(agents, counts, dialect, per_agent_hour)


def parse_weekdays(text: str) -> list[int]:
    """'1-5' or '1,3,6' or '7' -> ISO weekdays; ValueError if out of 1..7."""
    days: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            a, b = (int(x) for x in part.split("-", 1))
            days.update(range(a, b + 1))
        elif part:
            days.add(int(part))
    if not days or not all(1 <= d <= 7 for d in days):
        raise ValueError("weekdays are 1 (Monday) to 7 (Sunday), e.g. 1-5")
    return sorted(days)


def parse_hours(text: str) -> tuple[int, int]:
    """'9-17' -> (9, 17), the shift covering 9:00 to 17:00."""
    a, _, b = text.partition("-")
    start, end = int(a), int(b)
    if not (0 <= start < end <= 24):
        raise ValueError("hours are START-END with 0 <= START < END <= 24, e.g. 9-17")
    return start, end


def next_shift_start(
    shifts: Iterable[Shift], dialect: str, now: float, tz: ZoneInfo
) -> float | None:
    """When the next shift of an agent speaking `dialect` begins after `now` (epoch seconds).

    Without any shift for the dialect, the next shift of anyone: a caller who waited the
    overflow time may be taken by any agent. None when no shift is scheduled at all.
    """
    shifts = list(shifts)
    speakers = [s for s in shifts if dialect in s.dialects] or shifts
    today = datetime.fromtimestamp(now, tz).date()
    best: float | None = None
    for s in speakers:
        for offset in range(8):
            day = today.toordinal() + offset
            date = datetime.fromordinal(day).date()
            if date.isoweekday() != s.weekday:
                continue
            start = datetime(date.year, date.month, date.day, s.start_hour, tzinfo=tz).timestamp()
            if start > now and (best is None or start < best):
                best = start
    return best
