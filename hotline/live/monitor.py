"""Supervisors watching a live call read-only: its captions and guidance state, audited.

Captions and guidance publish every event of a call to the hub topic `monitor:<call_id>`
as well; a supervisor's console subscribes to it with `monitor` and leaves with `unmonitor`.
Listening in is not offered: the media plan keeps audio browser to browser, and adding a
third media leg to a senior's call is not something to do quietly.
"""

from __future__ import annotations

import weakref
from typing import Any

from hotline.db import audit
from hotline.errors import Forbidden, NotFound
from hotline.live.events import Monitored
from hotline.live.hub import Conn
from hotline.live.messages import CALL_ID
from hotline.live.server import Context, LiveServer
from hotline.live.switchboard import Switchboard


def topic(call_id: str) -> str:
    return f"monitor:{call_id}"


class Monitoring:
    def __init__(self, sb: Switchboard) -> None:
        self.sb = sb
        self.watching: weakref.WeakKeyDictionary[Conn, str] = weakref.WeakKeyDictionary()

    def attach(self, live: LiveServer) -> None:
        for role in ("agent", "supervisor"):
            live.route(role, "monitor", CALL_ID, self._monitor)
            live.route(role, "unmonitor", {}, self._unmonitor)

    async def _monitor(self, ctx: Context, msg: dict[str, Any]) -> None:
        if not ctx.supervisor:
            raise Forbidden("only supervisors may monitor calls")
        call = self.sb.calls.get(msg["call_id"])
        if call is None:
            raise NotFound("no such live call", code="no_call")
        # Audited before anything of the call is shown.
        await self.sb.store(
            audit.record, f"agent:{ctx.agent_id}", "monitor_call", f"call:{call.call_id}"
        )
        if call.call_id not in self.sb.calls:
            raise NotFound("the call has just ended", code="no_call")
        self._unmonitor(ctx, {})
        self.sb.hub.subscribe(topic(call.call_id), ctx.conn)
        self.watching[ctx.conn] = call.call_id
        ctx.conn.send(
            {
                "type": "monitoring",
                "call_id": call.call_id,
                "state": call.state,
                "dialect": call.dialect,
                "elder": call.elder.name if call.elder else "",
                "agent_id": call.agent_id,
            }
        )
        self.sb.events.emit(Monitored(call))

    def _unmonitor(self, ctx: Context, msg: dict[str, Any]) -> None:
        call_id = self.watching.pop(ctx.conn, None)
        if call_id is not None:
            self.sb.hub.unsubscribe_topic(topic(call_id), ctx.conn)
