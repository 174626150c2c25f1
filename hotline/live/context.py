"""Who is calling, on the live side: the context card goes to the agent being rung (and so to
whoever a call is transferred to), and the full history is one `history` message away.

Every read is written to the audit log before anything is sent, as transcript reads are.
Only the agent whose ring, call or wrap-up it is may read an elder's history this way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from hotline import history
from hotline.db import Database, audit
from hotline.db import history as history_db
from hotline.errors import Forbidden
from hotline.live.events import Rung, TransferRung
from hotline.live.messages import CALL_ID
from hotline.live.server import Context, LiveServer
from hotline.live.switchboard import LiveCall, Switchboard

log = logging.getLogger(__name__)

FULL_HISTORY = 200  # calls in a full history (an elder calling daily for half a year)


def read_card(db: Database, elder: Any | None, call_id: str, at: float) -> dict[str, Any]:
    """The context card of a call's elder, read from the store."""
    if elder is None:
        return history.card(None, calls=[], calls_7d=0, open_callbacks=[], fraud={})
    return history.card(
        elder,
        calls=history_db.past_calls(db, elder.id, exclude=call_id, limit=history.CARD_CALLS),
        calls_7d=history_db.calls_since(db, elder.id, at - history.WEEK),
        open_callbacks=history_db.open_callbacks(db, elder.id),
        fraud=history_db.fraud_flags(db, elder.id),
    )


class LiveContext:
    """Sends context cards on rings and answers full-history requests, audited."""

    def __init__(self, sb: Switchboard) -> None:
        self.sb = sb
        # agent id -> (call id, elder id) of their latest ring: kept through the wrap-up,
        # when the live call is gone but the agent still reads about the caller.
        self.latest: dict[int, tuple[str, int | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        sb.events.subscribe(Rung, self._on_rung)
        sb.events.subscribe(TransferRung, self._on_transfer_rung)

    def attach(self, live: LiveServer) -> None:
        live.route("agent", "history", CALL_ID, self._history)

    def _on_rung(self, event: Rung) -> None:
        if event.call.agent_id is not None:
            self._card_for(event.call, event.call.agent_id)

    def _on_transfer_rung(self, event: TransferRung) -> None:
        # The target is not the call's agent yet.
        self._card_for(event.call, event.agent_id)

    def _card_for(self, call: LiveCall, agent_id: int) -> None:
        self.latest[agent_id] = (call.call_id, call.elder.id if call.elder else None)
        task = asyncio.get_running_loop().create_task(self._send_card(call, agent_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_card(self, call: LiveCall, agent_id: int) -> None:
        try:
            elder_id = call.elder.id if call.elder else None
            if elder_id is not None:
                await self._audit_read(agent_id, elder_id, call.call_id, "card")
            card = await asyncio.to_thread(
                read_card, self.sb.db, call.elder, call.call_id, time.time()
            )
            presence = self.sb.agents.get(agent_id)
            if presence is not None and presence.call_id == call.call_id and call.state != "ended":
                self.sb.send_agent(
                    agent_id, {"type": "context", "call_id": call.call_id, "card": card}
                )
        except Exception:
            log.exception("call %s: context card failed", call.call_id)

    async def _audit_read(self, agent_id: int, elder_id: int, call_id: str, what: str) -> None:
        # On the live side's single writer, in order with the call's other writes.
        await self.sb.store(
            audit.record,
            f"agent:{agent_id}",
            "history_read",
            f"elder:{elder_id}",
            f"call:{call_id} {what}",
        )

    async def _history(self, ctx: Context, msg: dict[str, Any]) -> None:
        """The full history of the elder of the agent's current (or just ended) call."""
        agent_id = ctx.agent_id or 0
        presence = self.sb.agents.get(agent_id)
        latest = self.latest.get(agent_id)
        if presence is None or latest is None or latest[0] != msg["call_id"]:
            raise Forbidden("only the agent of this call may read its caller's history")
        if presence.call_id != msg["call_id"]:
            raise Forbidden("only the agent of this call may read its caller's history")
        elder_id = latest[1]
        calls: list[dict[str, Any]] = []
        if elder_id is not None:
            await self._audit_read(agent_id, elder_id, msg["call_id"], "full")
            rows = await asyncio.to_thread(
                history_db.past_calls,
                self.sb.db,
                elder_id,
                exclude=msg["call_id"],
                limit=FULL_HISTORY,
            )
            calls = [history.past_call(r) for r in rows]
        ctx.conn.send(
            {"type": "history", "call_id": msg["call_id"], "elder_id": elder_id, "calls": calls}
        )
