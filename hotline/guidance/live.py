"""Guidance in a live call: the websocket routes, one session per call, spoken steps.

The agent of a call drives it (guide_start/push/back/skip/text/stop); the caller answers
(guide_answer). After every change both get `guide_state`: the agent a snapshot, the caller
the view of the current step with the URL of its spoken instruction (elder's dialect voice).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hotline.db import guidance as guidance_db
from hotline.db import reports as reports_db
from hotline.errors import Forbidden
from hotline.guidance.loader import Library
from hotline.guidance.messages import AGENT_TYPES, CALLER_TYPES, apply_message, state_messages
from hotline.guidance.session import GuidanceSession
from hotline.live.events import Answered, CallEvent, Ended, Monitored, Reconnected
from hotline.live.server import Context, LiveServer
from hotline.live.switchboard import HELD, LIVE, LiveCall, Switchboard
from hotline.prompts import Prompts

log = logging.getLogger(__name__)


class LiveGuidance:
    """Guidance sessions of the calls in flight."""

    def __init__(self, sb: Switchboard, library: Library, prompts: Prompts) -> None:
        self.sb = sb
        self.library = library
        self.prompts = prompts
        self.sessions: dict[str, GuidanceSession] = {}
        sb.events.subscribe(Ended, self._on_ended)
        # A reloaded page, a new agent or a supervisor watching gets the current step.
        for kind in (Answered, Reconnected, Monitored):
            sb.events.subscribe(kind, self._republish)

    def attach(self, live: LiveServer) -> None:
        """Register the guidance messages on the websocket server."""
        for kind in AGENT_TYPES:
            live.route("agent", kind, {}, self._from_agent)
        for kind in CALLER_TYPES:
            live.route("caller", kind, {}, self._from_caller)

    async def _from_agent(self, ctx: Context, msg: dict[str, Any]) -> None:
        call = self._agents_call(ctx.agent_id)
        if msg.get("type") == "guide_start":
            disabled = await asyncio.to_thread(reports_db.disabled_scripts, self.sb.db)
            if msg.get("script_id") in disabled:
                raise Forbidden("a supervisor switched this script off", code="script_disabled")
        session = self.sessions.setdefault(call.call_id, GuidanceSession(self.library))
        apply_message(session, msg, "agent")
        self.publish(call)

    def _from_caller(self, ctx: Context, msg: dict[str, Any]) -> None:
        call = self.sb.calls.get(ctx.conn.subject or "")
        session = self.sessions.get(call.call_id) if call else None
        if call is None or session is None or call.caller is not ctx.conn:
            raise Forbidden("no guidance in this call", code="no_guidance")
        row = apply_message(session, msg, "caller")
        if row is not None:
            self.sb.store_later(guidance_db.record_answer, call.call_id, row.to_row())
        self.publish(call)

    def _agents_call(self, agent_id: int | None) -> LiveCall:
        presence = self.sb.agents.get(agent_id or 0)
        call = self.sb.calls.get(presence.call_id or "") if presence else None
        if call is None or call.agent_id != agent_id or call.state not in (*LIVE, HELD):
            raise Forbidden("guidance needs a call in progress", code="not_in_call")
        return call

    def publish(self, call: LiveCall) -> None:
        """Send the current guidance state to both parties of the call."""
        session = self.sessions.get(call.call_id)
        if session is None:
            return
        to_agent, to_caller = state_messages(session, call.lang, call.dialect)
        view = to_caller["view"]
        if view.get("text"):
            view["audio_url"] = self.prompts.url_for_text(view["text"], call.lang, call.dialect)
        presence = self.sb.agents.get(call.agent_id or 0)
        if presence is not None:
            presence.conn.send(to_agent)
        self.sb.hub.publish(f"monitor:{call.call_id}", {**to_agent, "call_id": call.call_id})
        if call.caller is not None:
            call.caller.send(to_caller)

    def _on_ended(self, event: Ended) -> None:
        self.sessions.pop(event.call.call_id, None)

    def _republish(self, event: CallEvent) -> None:
        self.publish(event.call)
