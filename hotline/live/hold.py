"""Hold: the agent pauses the call; the elder sees and hears, in their dialect's voice,
"请稍等，客服马上回来" and hears it again every `hold_reminder_seconds` (the agent is reminded
then too); resume restores the call. Each hold is on the call's timeline and its duration
is added to the call's `hold_seconds`.

Media: nothing is renegotiated. Both pages stop sending their camera and microphone on the
browser-to-browser connection (the elder's picture stays private, the agent's video pauses);
the gateway taps use cloned tracks, so captions carry on through the hold.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hotline.config import Config
from hotline.db import call_flow
from hotline.errors import Conflict
from hotline.i18n import t
from hotline.live.events import (
    CallerAway,
    CallEvent,
    Ended,
    HoldEnded,
    HoldStarted,
    Requeued,
    TransferStarted,
    TransferWaiting,
)
from hotline.live.messages import CALL_ID
from hotline.live.server import Context, LiveServer
from hotline.live.switchboard import CONNECTED, ON_HOLD, LiveCall, Switchboard
from hotline.prompts import Prompts

SAY_WAIT = "hold.say_wait"


@dataclass(slots=True)
class Hold:
    started_at: float
    timer: asyncio.TimerHandle | None = None
    reminders: int = 0


class LiveHold:
    """Puts calls on hold and back, and reminds while they wait."""

    def __init__(
        self,
        sb: Switchboard,
        prompts: Prompts | None,
        cfg: Config,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sb = sb
        self.prompts = prompts
        self.cfg = cfg
        self.clock = clock
        self.holds: dict[str, Hold] = {}
        # Whatever takes the call out of hold (hang-up, a drop, a transfer) ends the hold.
        for kind in (Ended, Requeued, CallerAway, TransferStarted, TransferWaiting):
            sb.events.subscribe(kind, self._hold_over)

    def attach(self, live: LiveServer) -> None:
        live.route("agent", "hold", CALL_ID, self._hold)
        live.route("agent", "resume", CALL_ID, self._resume)

    def _hold(self, ctx: Context, msg: dict[str, Any]) -> None:
        call = self.sb.agents_call(ctx.agent_id or 0, msg["call_id"])
        if call.state == ON_HOLD:
            raise Conflict("the call is already on hold", code="already_on_hold")
        if call.state != CONNECTED:
            raise Conflict("only a call in progress can be put on hold", code="not_connected")
        self.sb.change_state(call, ON_HOLD, "hold", {"agent_id": call.agent_id}, HoldStarted(call))
        hold = Hold(started_at=self.clock())
        self.holds[call.call_id] = hold
        self._arm(call.call_id, hold)
        self._tell_caller(call)
        ctx.conn.send(
            {
                "type": "on_hold",
                "call_id": call.call_id,
                "reminder_seconds": self.cfg.hold_reminder_seconds,
            }
        )

    def _resume(self, ctx: Context, msg: dict[str, Any]) -> None:
        call = self.sb.agents_call(ctx.agent_id or 0, msg["call_id"])
        if call.state != ON_HOLD:
            raise Conflict("the call is not on hold", code="not_on_hold")
        seconds = self._finish(call.call_id)
        detail = {"seconds": round(seconds, 1)}
        self.sb.change_state(call, CONNECTED, "resume", detail, HoldEnded(call))
        for conn in (call.caller, ctx.conn):
            if conn is not None:
                conn.send({"type": "off_hold", "call_id": call.call_id, "held_seconds": seconds})

    def _tell_caller(self, call: LiveCall, again: bool = False) -> None:
        if call.caller is None:
            return
        say = self.prompts.url(call.lang, call.dialect, SAY_WAIT) if self.prompts else ""
        call.caller.send(
            {
                "type": "on_hold",
                "call_id": call.call_id,
                "text": t(call.lang, SAY_WAIT),
                "say": say,
                "again": again,
            }
        )

    def _arm(self, call_id: str, hold: Hold) -> None:
        loop = asyncio.get_running_loop()
        hold.timer = loop.call_later(self.cfg.hold_reminder_seconds, self._remind, call_id)

    def _remind(self, call_id: str) -> None:
        hold = self.holds.get(call_id)
        call = self.sb.calls.get(call_id)
        if hold is None or call is None or call.state != ON_HOLD:
            return
        hold.reminders += 1
        self._tell_caller(call, again=True)
        if call.agent_id is not None:
            self.sb.send_agent(
                call.agent_id,
                {
                    "type": "hold_reminder",
                    "call_id": call_id,
                    "seconds": round(self.clock() - hold.started_at),
                },
            )
        self._arm(call_id, hold)

    def _finish(self, call_id: str) -> float:
        """End a hold (resume, hang-up, drop): stop reminding, add its time to the call."""
        hold = self.holds.pop(call_id, None)
        if hold is None:
            return 0.0
        if hold.timer is not None:
            hold.timer.cancel()
        seconds = round(self.clock() - hold.started_at, 1)
        self.sb.store_later(call_flow.add_hold, call_id, seconds)
        return seconds

    def _hold_over(self, event: CallEvent) -> None:
        if event.call.call_id in self.holds:
            self._finish(event.call.call_id)
