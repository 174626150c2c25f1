"""Typed call events: what the switchboard and its plug-ins tell each other about a call.

Each event is a frozen dataclass carrying the `LiveCall` and its own fields. Plug-ins
(captions, guidance, context, hold, transfer, family, identity, callbacks) subscribe with one
small method per event type they handle; `Events.emit` calls the handlers of the event's exact
type (not of its base classes), in subscription order, each behind its own error boundary, so
one failing plug-in neither stops the others nor the call. Handlers run on the loop and must
not block (start a task for anything slow).

Emitted by the switchboard: `Arrived`, `Rung`, `Answered`, `Reconnected`, `CallerAway`,
`Requeued`, `Ended`, `Tapped`, `CallbackRequested`, `CallbackTaken`, `TransferWaiting`.
Emitted by plug-ins: `FinalCaption` (captions), `Monitored` (monitoring), `HoldStarted`,
`HoldEnded` (hold), `TransferStarted`, `TransferTargetFree`, `TransferRung`, `Transferred`,
`TransferFailed` (transfer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from hotline.live.switchboard import LiveCall

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallEvent:
    """Something happened to a call."""

    call: LiveCall


# ----------------------------------------------------------------- the switchboard's
@dataclass(frozen=True, slots=True)
class Arrived(CallEvent):
    """A caller joined the line, or a booked callback fell due and entered it."""


@dataclass(frozen=True, slots=True)
class Rung(CallEvent):
    """The call's agent (`call.agent_id`) is being rung for it."""


@dataclass(frozen=True, slots=True)
class Answered(CallEvent):
    """The parties were connected for the first time (an agent answered, or the elder
    answered a callback on their page)."""


@dataclass(frozen=True, slots=True)
class Reconnected(CallEvent):
    """Both parties were connected afresh in a call in progress: the caller's page came
    back, the agent's console came back, or a transfer handed the call to a new agent."""


@dataclass(frozen=True, slots=True)
class CallerAway(CallEvent):
    """The caller's page dropped mid-call; the call is held for them to come back."""


@dataclass(frozen=True, slots=True)
class Requeued(CallEvent):
    """The call lost its agent and went back to the head of the line."""


@dataclass(frozen=True, slots=True)
class Ended(CallEvent):
    """The call is over (recorded and both parties told)."""

    outcome: str
    by: str


@dataclass(frozen=True, slots=True)
class Tapped(CallEvent):
    """The gateway answered a party's audio tap (`speaker`: "caller" or "agent")."""

    speaker: str


@dataclass(frozen=True, slots=True)
class CallbackRequested(CallEvent):
    """A waiting caller asked to be called back; they keep their place in line."""


@dataclass(frozen=True, slots=True)
class CallbackTaken(CallEvent):
    """An agent took a callback: the elder is to be called (state CALLING_ELDER)."""


@dataclass(frozen=True, slots=True)
class TransferWaiting(CallEvent):
    """A cold transfer waits at the head for its busy target; the first agent has left."""


# ----------------------------------------------------------------- the plug-ins'
@dataclass(frozen=True, slots=True)
class FinalCaption(CallEvent):
    """A final (masked) caption of one party."""

    speaker: str
    text: str


@dataclass(frozen=True, slots=True)
class Monitored(CallEvent):
    """A supervisor started watching the call."""


@dataclass(frozen=True, slots=True)
class HoldStarted(CallEvent):
    """The agent put the call on hold."""


@dataclass(frozen=True, slots=True)
class HoldEnded(CallEvent):
    """The agent took the call off hold."""


@dataclass(frozen=True, slots=True)
class TransferStarted(CallEvent):
    """A transfer's target is being rung; the first agent stays on the call."""


@dataclass(frozen=True, slots=True)
class TransferTargetFree(CallEvent):
    """The target of a transfer waiting at the head came free and is being rung."""


@dataclass(frozen=True, slots=True)
class TransferRung(CallEvent):
    """Agent `agent_id` is rung for a transfer (they are not the call's agent yet)."""

    agent_id: int


@dataclass(frozen=True, slots=True)
class Transferred(CallEvent):
    """The call was handed over to its new agent (`call.agent_id`)."""

    from_agent: int


@dataclass(frozen=True, slots=True)
class TransferFailed(CallEvent):
    """A transfer did not happen; the call is its first agent's again."""

    reason: str


E = TypeVar("E", bound=CallEvent)


class Events:
    """Handlers by event type; `emit` calls those of the event's type, in order."""

    def __init__(self) -> None:
        self._handlers: dict[type[CallEvent], list[Callable[[Any], None]]] = {}

    def subscribe(self, kind: type[E], handler: Callable[[E], None]) -> None:
        """Call `handler` with every event of type `kind` (after earlier subscribers)."""
        self._handlers.setdefault(kind, []).append(handler)

    def emit(self, event: CallEvent) -> None:
        """Tell the subscribers of this type of event; a failing one is logged and skipped."""
        for handler in self._handlers.get(type(event), ()):
            try:
                handler(event)
            except Exception:
                log.exception(
                    "call %s: handler %s failed on %s",
                    event.call.call_id,
                    getattr(handler, "__qualname__", handler),
                    type(event).__name__,
                )
