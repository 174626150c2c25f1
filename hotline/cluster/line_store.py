"""The line and agents' states behind one typed interface, in memory or in the store.

The state machine (docs/cluster.md), after Twilio TaskRouter's tasks and reservations:

    pending --reserve--> reserved --accept--> assigned --wrap--> wrapping --finish--> done
       ^                  |  (expires_at, by the database clock)
       +--decline/expire--+        assigned --requeue_at_head--> pending (front of the line)
    pending/reserved --leave--> done

An expired or declined reservation returns the caller to pending with the same place.
`queue.py` and `routing.py` stay pure: `route()` asks them which pairs to ring on a snapshot
of the line, then tries each reservation; one that another node won first is skipped.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Protocol

from hotline import routing
from hotline.db import Database
from hotline.db import line as line_db
from hotline.db.line import (
    ASSIGNED,
    DONE,
    PENDING,
    RESERVED,
    WAITING_STATES,
    WRAPPING,
    AgentRow,
    Entry,
    LineError,
)
from hotline.queue import Waiter

__all__ = ["AgentRow", "Entry", "LineError", "LineStore", "MemoryLineStore", "SqlLineStore"]


class LineStore(Protocol):
    """Where the line lives: one process's memory, or the database every node shares."""

    def arrive(
        self, call_id: str, dialect: str, arrived_at: float, priority: int = 0,
        *, at_head: bool = False,
    ) -> Entry: ...  # fmt: skip
    def get(self, call_id: str) -> Entry | None: ...
    def waiting(self) -> list[Entry]: ...
    def positions(self) -> dict[str, int]: ...
    def reserve(self, call_id: str, agent_id: int, ttl: float) -> Entry: ...
    def reserve_next(self, agent_id: int, ttl: float, overflow_seconds: float) -> Entry | None: ...
    def accept(self, call_id: str, agent_id: int) -> Entry: ...
    def decline(self, call_id: str, agent_id: int) -> Entry: ...
    def expire(self) -> list[Entry]: ...
    def wrap(self, call_id: str) -> Entry: ...
    def finish(self, call_id: str) -> Entry: ...
    def requeue_at_head(self, call_id: str) -> Entry: ...
    def leave(self, call_id: str) -> Entry | None: ...
    def agent_login(self, agent_id: int, dialects: tuple[str, ...]) -> AgentRow: ...
    def set_available(self, agent_id: int, available: bool) -> AgentRow: ...
    def agents(self) -> list[AgentRow]: ...
    def away_unless_on(self, live_nodes: set[str]) -> list[int]: ...
    def now(self) -> float: ...


class SqlLineStore:
    """The line in the store (SQLite: one node; PostgreSQL: every node of a cluster)."""

    def __init__(self, db: Database, node: str = "") -> None:
        self.db = db
        self.node = node

    def arrive(
        self, call_id: str, dialect: str, arrived_at: float, priority: int = 0,
        *, at_head: bool = False,
    ) -> Entry:  # fmt: skip
        return line_db.arrive(
            self.db, call_id, dialect, arrived_at, priority, self.node, at_head=at_head
        )

    def get(self, call_id: str) -> Entry | None:
        return line_db.get(self.db, call_id)

    def waiting(self) -> list[Entry]:
        return line_db.waiting(self.db)

    def positions(self) -> dict[str, int]:
        return line_db.positions(self.db)

    def reserve(self, call_id: str, agent_id: int, ttl: float) -> Entry:
        return line_db.reserve(self.db, call_id, agent_id, ttl)

    def reserve_next(self, agent_id: int, ttl: float, overflow_seconds: float) -> Entry | None:
        return line_db.reserve_next(self.db, agent_id, ttl, overflow_seconds)

    def accept(self, call_id: str, agent_id: int) -> Entry:
        return line_db.accept(self.db, call_id, agent_id)

    def decline(self, call_id: str, agent_id: int) -> Entry:
        return line_db.decline(self.db, call_id, agent_id)

    def expire(self) -> list[Entry]:
        return line_db.expire(self.db)

    def wrap(self, call_id: str) -> Entry:
        return line_db.wrap(self.db, call_id)

    def finish(self, call_id: str) -> Entry:
        return line_db.finish(self.db, call_id)

    def requeue_at_head(self, call_id: str) -> Entry:
        return line_db.requeue_at_head(self.db, call_id)

    def leave(self, call_id: str) -> Entry | None:
        return line_db.leave(self.db, call_id)

    def agent_login(self, agent_id: int, dialects: tuple[str, ...]) -> AgentRow:
        return line_db.agent_login(self.db, agent_id, dialects, self.node)

    def set_available(self, agent_id: int, available: bool) -> AgentRow:
        return line_db.set_available(self.db, agent_id, available)

    def agents(self) -> list[AgentRow]:
        return line_db.agents(self.db)

    def away_unless_on(self, live_nodes: set[str]) -> list[int]:
        return line_db.away_unless_on(self.db, live_nodes)

    def now(self) -> float:
        """The database's clock (every node of a cluster reads the same one)."""
        return line_db.db_now(self.db)


class MemoryLineStore:
    """The same state machine in one process's memory (the embedded single node, tests)."""

    def __init__(self, clock: Callable[[], float] = time.time, node: str = "") -> None:
        self.clock = clock
        self.node = node
        self._entries: dict[str, Entry] = {}
        self._agents: dict[int, AgentRow] = {}
        self._arrival = itertools.count(1)
        self._head = itertools.count(-1, -1)

    def arrive(
        self, call_id: str, dialect: str, arrived_at: float, priority: int = 0,
        *, at_head: bool = False,
    ) -> Entry:  # fmt: skip
        if call_id in self._entries:
            raise LineError("duplicate", "this caller is already in the line")
        place = float(next(self._head) if at_head else next(self._arrival))
        entry = Entry(
            call_id, dialect, arrived_at, priority, place, PENDING, None, None, frozenset(),
            self.node,
        )  # fmt: skip
        self._entries[call_id] = entry
        return entry

    def get(self, call_id: str) -> Entry | None:
        return self._entries.get(call_id)

    def waiting(self) -> list[Entry]:
        found = [e for e in self._entries.values() if e.state in WAITING_STATES]
        return sorted(found, key=lambda e: (-e.priority, e.place))

    def positions(self) -> dict[str, int]:
        seen: dict[str, int] = {}
        out = {}
        for e in self.waiting():
            seen[e.dialect] = seen.get(e.dialect, 0) + 1
            out[e.call_id] = seen[e.dialect]
        return out

    def _set(self, entry: Entry, **changes: object) -> Entry:
        entry = replace(entry, **changes)  # type: ignore[arg-type]
        self._entries[entry.call_id] = entry
        return entry

    def _set_agent(self, agent_id: int, **changes: object) -> None:
        if agent_id in self._agents:
            self._agents[agent_id] = replace(self._agents[agent_id], **changes)  # type: ignore[arg-type]

    def reserve(self, call_id: str, agent_id: int, ttl: float) -> Entry:
        entry = self._entries.get(call_id)
        if entry is None or entry.state != PENDING:
            raise LineError("not_pending", "this caller is not waiting (rung or answered)")
        a = self._agents.get(agent_id)
        if a is None or a.status != routing.AVAILABLE:
            raise LineError("agent_busy", "the agent is not available (rung by another node?)")
        self._set_agent(agent_id, status=routing.RINGING, call_id=call_id)
        return self._set(entry, state=RESERVED, agent_id=agent_id, expires_at=self.clock() + ttl)

    def reserve_next(self, agent_id: int, ttl: float, overflow_seconds: float) -> Entry | None:
        a = self._agents.get(agent_id)
        if a is None or a.status != routing.AVAILABLE:
            raise LineError("agent_busy", "the agent is not available")
        t = self.clock()
        for e in self.waiting():
            if e.state != PENDING or agent_id in e.declined_by:
                continue
            if e.dialect in a.dialects or e.arrived_at <= t - overflow_seconds:
                return self.reserve(e.call_id, agent_id, ttl)
        return None

    def accept(self, call_id: str, agent_id: int) -> Entry:
        entry = self._entries.get(call_id)
        if entry is None or entry.state == DONE:
            raise LineError("no_call", "no such call")
        expired = entry.expires_at is None or entry.expires_at <= self.clock()
        if entry.state != RESERVED or entry.agent_id != agent_id or expired:
            raise LineError("not_ringing", "this call is not ringing you (expired or taken)")
        self._set_agent(agent_id, status=routing.IN_CALL)
        return self._set(entry, state=ASSIGNED, expires_at=None)

    def _unreserve(self, entry: Entry, declined: bool) -> Entry:
        declined_by = entry.declined_by | {entry.agent_id} if declined else entry.declined_by
        return self._set(
            entry, state=PENDING, agent_id=None, expires_at=None,
            declined_by=frozenset(a for a in declined_by if a is not None),
        )  # fmt: skip

    def decline(self, call_id: str, agent_id: int) -> Entry:
        entry = self._entries.get(call_id)
        if entry is None or entry.state != RESERVED or entry.agent_id != agent_id:
            raise LineError("not_ringing", "this call is not ringing you")
        self._set_agent(agent_id, status=routing.AVAILABLE, call_id=None)
        return self._unreserve(entry, declined=True)

    def expire(self) -> list[Entry]:
        t = self.clock()
        out = []
        for e in list(self._entries.values()):
            if e.state == RESERVED and e.expires_at is not None and e.expires_at <= t:
                if e.agent_id is not None:
                    self._set_agent(e.agent_id, status=routing.AWAY, call_id=None)
                out.append(self._unreserve(e, declined=False))
        return out

    def _move(self, call_id: str, want: str, to: str, agent_status: str | None, code: str) -> Entry:
        entry = self._entries.get(call_id)
        if entry is None or entry.state != want:
            raise LineError(code, f"this call is not {want}")
        if entry.agent_id is not None and agent_status is not None:
            extra: dict[str, object] = {"status": agent_status}
            if agent_status == routing.AVAILABLE:
                extra.update(call_id=None, idle_since=self.clock())
            self._set_agent(entry.agent_id, **extra)
        return self._set(entry, state=to)

    def wrap(self, call_id: str) -> Entry:
        return self._move(call_id, ASSIGNED, WRAPPING, routing.WRAP_UP, "not_in_call")

    def finish(self, call_id: str) -> Entry:
        return self._move(call_id, WRAPPING, DONE, routing.AVAILABLE, "not_wrapping")

    def requeue_at_head(self, call_id: str) -> Entry:
        entry = self._move(call_id, ASSIGNED, PENDING, None, "not_in_call")
        return self._set(entry, agent_id=None, place=float(next(self._head)))

    def leave(self, call_id: str) -> Entry | None:
        entry = self._entries.get(call_id)
        if entry is None or entry.state not in WAITING_STATES:
            return entry
        if entry.state == RESERVED and entry.agent_id is not None:
            self._set_agent(entry.agent_id, status=routing.AVAILABLE, call_id=None)
        return self._set(entry, state=DONE)

    def agent_login(self, agent_id: int, dialects: tuple[str, ...]) -> AgentRow:
        old = self._agents.get(agent_id)
        row = (
            replace(old, dialects=dialects, node=self.node)
            if old
            else AgentRow(agent_id, dialects, routing.AWAY, self.clock(), None, self.node)
        )
        self._agents[agent_id] = row
        return row

    def set_available(self, agent_id: int, available: bool) -> AgentRow:
        a = self._agents.get(agent_id)
        if a is None or a.status not in (routing.AVAILABLE, routing.AWAY):
            raise LineError("agent_busy", "the agent is ringing or in a call")
        status = routing.AVAILABLE if available else routing.AWAY
        idle = self.clock() if available and a.status != routing.AVAILABLE else a.idle_since
        self._agents[agent_id] = replace(a, status=status, idle_since=idle)
        return self._agents[agent_id]

    def agents(self) -> list[AgentRow]:
        return [self._agents[k] for k in sorted(self._agents)]

    def away_unless_on(self, live_nodes: set[str]) -> list[int]:
        if not live_nodes:
            return []
        gone = [
            a.agent_id
            for a in self._agents.values()
            if a.status == routing.AVAILABLE and a.node not in live_nodes
        ]
        for agent_id in gone:
            self._set_agent(agent_id, status=routing.AWAY)
        return sorted(gone)

    def now(self) -> float:
        return self.clock()


# --- routing on a snapshot (the pure decisions, unchanged) ---------------------------------


def waiter_of(entry: Entry) -> Waiter:
    """A stored entry as the pure queue's Waiter (its place is the Waiter's key)."""
    return Waiter(
        entry.call_id, entry.dialect, entry.arrived_at, entry.priority, key=entry.place,
        ringing_agent=entry.agent_id if entry.state == RESERVED else None,
        declined_by=set(entry.declined_by),
    )  # fmt: skip


def lines_of(entries: list[Entry]) -> dict[str, Iterator[Waiter]]:
    """Each dialect's waiters in serving order (what routing.assign_lines walks)."""
    by: dict[str, list[Waiter]] = {}
    for e in entries:  # `waiting()` is already in serving order
        by.setdefault(e.dialect, []).append(waiter_of(e))
    return {d: iter(ws) for d, ws in by.items()}


def route(
    store: LineStore, now: float, ttl: float, overflow_seconds: float
) -> list[tuple[str, int]]:
    """One routing round: routing.assign_lines on a snapshot, then each ring reserved.

    A pair another node reserved first (LineError) is skipped; the next round, prompted by
    that node's "line moved" tick, sees the new state.
    """
    agents = [
        routing.AgentState(a.agent_id, a.dialects, a.status, a.idle_since) for a in store.agents()
    ]
    pairs = routing.assign_lines(lines_of(store.waiting()), agents, now, overflow_seconds)
    rung = []
    for call_id, agent_id in pairs:
        try:
            store.reserve(call_id, agent_id, ttl)
        except LineError:
            continue
        rung.append((call_id, agent_id))
    return rung
