"""Transfer and escalation: who a call may be handed to. Pure code.

A transfer names a target: one agent (`agent`), any agent who speaks a dialect (`dialect`),
or the supervisors (`supervisor`, the L1 -> L2 escalation). Only an agent who is signed in
and available can be rung; of several, the longest idle is rung (as routing does). When the
target exists and is signed in but busy, a cold transfer waits for it at the head (`pick`
returns None; `assign_waiting` rings the target as soon as one is free, before the line);
a warm transfer is refused then. When nobody fits at all (offline, no such agent, nobody on
duty speaks the dialect), the request is refused with a typed error and the call carries on
unchanged: the elder is never left waiting for nobody.
"""

from __future__ import annotations

from dataclasses import dataclass

from hotline.errors import BadMessage, Conflict, NotFound
from hotline.routing import AVAILABLE

KINDS = ("agent", "dialect", "supervisor")
COLD, WARM = "cold", "warm"
NOTE_MAX = 500


@dataclass(frozen=True)
class Target:
    """What the transferring agent asked for."""

    kind: str
    agent_id: int | None = None
    dialect: str | None = None


@dataclass(frozen=True)
class OnDuty:
    """An agent signed in right now, as transfer sees them."""

    agent_id: int
    role: str
    dialects: tuple[str, ...]
    status: str
    idle_since: float


def parse_target(
    kind: object, agent_id: object, dialect: object, known_dialects: set[str]
) -> Target:
    """Validate the request's target fields; raises BadMessage."""
    if kind not in KINDS:
        raise BadMessage("to must be agent, dialect or supervisor", code="bad_field")
    if kind == "agent":
        if not isinstance(agent_id, int) or isinstance(agent_id, bool):
            raise BadMessage("a transfer to an agent needs agent_id", code="missing_field")
        return Target("agent", agent_id=agent_id)
    if kind == "dialect":
        if not isinstance(dialect, str) or dialect not in known_dialects:
            raise BadMessage("unknown dialect", code="bad_field")
        return Target("dialect", dialect=dialect)
    return Target("supervisor")


@dataclass(frozen=True)
class Waiting:
    """A cold transfer waiting at the head for its busy target."""

    call_id: str
    target: Target
    from_agent: int
    arrived_at: float  # when the elder first called: earlier callers are served first


def fits(target: Target, agent: OnDuty, from_agent: int) -> bool:
    """Whether this agent is (one of) the transfer's target (never the transferring agent)."""
    if agent.agent_id == from_agent:
        return False
    if target.kind == "agent":
        return agent.agent_id == target.agent_id
    if target.kind == "dialect":
        return target.dialect in agent.dialects
    return agent.role == "supervisor"


def pick(
    target: Target, on_duty: list[OnDuty], me: int, exists: bool = True, may_wait: bool = False
) -> OnDuty | None:
    """The agent to ring for this transfer; raises a typed error when there is none.

    `exists` says whether a named agent who is not on duty has an account at all. With
    `may_wait` (a cold transfer), a target who is signed in but busy or away gives None:
    the call waits for them at the head."""
    others = [a for a in on_duty if a.agent_id != me]
    if may_wait:
        signed_in = [a for a in others if fits(target, a, me)]
        if signed_in and not any(a.status == AVAILABLE for a in signed_in):
            return None
    if target.kind == "agent":
        if target.agent_id == me:
            raise Conflict("you cannot transfer a call to yourself", code="self_transfer")
        named = [a for a in others if a.agent_id == target.agent_id]
        if not named:
            if not exists:
                raise NotFound("no such agent", code="no_such_agent")
            raise Conflict("that agent is not signed in", code="agent_offline")
        if named[0].status != AVAILABLE:
            raise Conflict("that agent is busy", code="agent_busy")
        return named[0]
    if target.kind == "dialect":
        free = [a for a in others if target.dialect in a.dialects and a.status == AVAILABLE]
        if not free:
            raise Conflict(
                "nobody on duty who speaks this dialect is free", code="no_agent_for_dialect"
            )
    else:
        free = [a for a in others if a.role == "supervisor" and a.status == AVAILABLE]
        if not free:
            raise Conflict("no supervisor is free", code="no_supervisor_available")
    return min(free, key=lambda a: (a.idle_since, a.agent_id))


def assign_waiting(waiting: list[Waiting], free: list[OnDuty]) -> list[tuple[str, int]]:
    """Pairs (call_id, agent_id) to ring now: transfers waiting for their target are served
    before the line, the elder who called first first; the longest-idle fitting agent."""
    taken: set[int] = set()
    pairs = []
    for w in sorted(waiting, key=lambda w: (w.arrived_at, w.call_id)):
        pool = [
            a
            for a in free
            if a.status == AVAILABLE and a.agent_id not in taken and fits(w.target, a, w.from_agent)
        ]
        if pool:
            chosen = min(pool, key=lambda a: (a.idle_since, a.agent_id))
            taken.add(chosen.agent_id)
            pairs.append((w.call_id, chosen.agent_id))
    return pairs
