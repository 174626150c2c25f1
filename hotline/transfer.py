"""Transfer and escalation: who a call may be handed to. Pure code.

A transfer names a target: one agent (`agent`), any agent who speaks a dialect (`dialect`),
or the supervisors (`supervisor`, the L1 -> L2 escalation). Only an agent who is signed in
and available can be rung; of several, the longest idle is rung (as routing does). When
nobody fits, the request is refused with a typed error and the call carries on unchanged:
the elder is never left waiting for nobody.
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


def pick(target: Target, on_duty: list[OnDuty], me: int, exists: bool = True) -> OnDuty:
    """The agent to ring for this transfer; raises a typed error when there is none.

    `exists` says whether a named agent who is not on duty has an account at all."""
    others = [a for a in on_duty if a.agent_id != me]
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
        fits = [a for a in others if target.dialect in a.dialects and a.status == AVAILABLE]
        if not fits:
            raise Conflict(
                "nobody on duty who speaks this dialect is free", code="no_agent_for_dialect"
            )
    else:
        fits = [a for a in others if a.role == "supervisor" and a.status == AVAILABLE]
        if not fits:
            raise Conflict("no supervisor is free", code="no_supervisor_available")
    return min(fits, key=lambda a: (a.idle_since, a.agent_id))
