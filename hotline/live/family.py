"""A family member joins a call as a third party (the elder's son who knows the account).

The call's agent asks for a join link (`family_link`); it works once, for this call only, and
dies with the call (links live in memory, as calls do). The family member's page opens
`/ws?role=family&join=TOKEN` and makes two browser-to-browser connections, one to the elder
and one to the agent (a mesh of three: the server relays SDP only and decodes no video); it
is the offerer on both, so the existing elder -> agent connection is untouched.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from hotline.config import Config
from hotline.errors import BadMessage, Conflict, Forbidden, HotlineError, NotFound
from hotline.live.events import Ended, Reconnected, Transferred
from hotline.live.hub import Conn
from hotline.live.messages import CALL_ID, Spec, check_signal_data
from hotline.live.server import Context, LiveServer, reject
from hotline.live.switchboard import HELD, LIVE, LiveCall, Switchboard
from hotline.tokens import digest, new_secret

log = logging.getLogger(__name__)

FAMILY_SIGNAL: Spec = {
    "to": (str, False, 8),
    "data": (dict, True, 0),
}
PARTIES = ("caller", "agent")


@dataclass(slots=True)
class Join:
    call_id: str
    created_at: float
    used: bool = False
    conn: Conn | None = None  # the family member's page, once joined
    # Parties not yet back when the page's session moved here (a failover): on their return
    # the page connects to them afresh.
    missing: tuple[str, ...] = ()


class LiveFamily:
    """Join links, the family member's connection and the signalling of the mesh."""

    def __init__(self, sb: Switchboard, cfg: Config) -> None:
        self.sb = sb
        self.cfg = cfg
        self.joins: dict[str, Join] = {}  # digest(token) -> join (the token is never kept)
        self.by_call: dict[str, str] = {}  # call id -> digest of its live link
        sb.events.subscribe(Ended, self._on_ended)
        sb.events.subscribe(Transferred, self._on_transferred)
        sb.events.subscribe(Reconnected, self._on_reconnected)

    def attach(self, live: LiveServer) -> None:
        live.add_role("family", self._open, self._close)
        live.route("agent", "family_link", CALL_ID, self._link)
        live.route("agent", "family_signal", FAMILY_SIGNAL, self._from_agent)
        live.route("caller", "family_signal", FAMILY_SIGNAL, self._from_caller)
        live.route("family", "family_signal", FAMILY_SIGNAL, self._from_family)
        live.route("family", "leave", {}, self._leave)
        live.route("family", "ping", {}, lambda ctx, msg: ctx.conn.send({"type": "pong"}))

    # ----------------------------------------------------------------- the agent's link
    def _link(self, ctx: Context, msg: dict[str, Any]) -> None:
        call = self.sb.agents_call(ctx.agent_id or 0, msg["call_id"])
        if call.state not in LIVE:
            raise Conflict("only a call in progress can have family join", code="not_connected")
        ctx.conn.send({"type": "family_link", "call_id": call.call_id, "url": self._new(call)})

    def link_for_elder(self, elder_id: int) -> str | None:
        """A join link for the elder's call in progress, asked by the family from their
        booking's manage page (None: the elder is not in a call, or family already joined).
        The agent is told, with the same link."""
        for call in self.sb.calls.values():
            if call.elder is not None and call.elder.id == elder_id and call.state in LIVE:
                try:
                    url = self._new(call, by="family")
                except Conflict:
                    return None
                if call.agent_id is not None:
                    self.sb.send_agent(
                        call.agent_id,
                        {
                            "type": "family_link",
                            "call_id": call.call_id,
                            "url": url,
                            "by": "family",
                        },
                    )
                return url
        return None

    def _new(self, call: LiveCall, by: str = "agent") -> str:
        """Make the call's join link (replacing an unused one)."""
        old = self.joins.get(self.by_call.get(call.call_id, ""))
        if old is not None and old.conn is not None:
            raise Conflict("a family member is already on this call", code="family_present")
        if old is not None:  # a new link replaces an unused one
            self.joins.pop(self.by_call.pop(call.call_id), None)
        token = new_secret()
        self.joins[digest(token)] = Join(call.call_id, time.time())
        self.by_call[call.call_id] = digest(token)
        self.sb.record_event(call.call_id, "family_link", {"by": by})
        return f"{self.cfg.public_base_url.rstrip('/')}/j/{token}"

    # ----------------------------------------------------------------- the family page
    async def _open(self, ctx: Context, query: dict[str, list[str]]) -> bool:
        if query.get("moved", [""])[0] == "1" and query.get("resume_call", [""])[0]:
            return await self._moved(ctx, query["resume_call"][0])
        token = query.get("join", [""])[0][:64]
        try:
            join, call = self._usable(token)
        except HotlineError as exc:
            await reject(ctx.conn, exc)
            return False
        join.used = True
        self._admit(ctx, join, call)
        self.sb.record_event(call.call_id, "family_joined", {})
        return True

    async def _moved(self, ctx: Context, call_id: str) -> bool:
        """A family page already in `call_id` whose session moved to this node in a failover
        (cluster mode; its link was spent on the dead holder): back into the call, unless the
        call ended meanwhile. Nothing is recorded: the family member never left."""
        call = self.sb.calls.get(call_id)
        if call is None or call.state not in (*LIVE, HELD):  # HELD: restored, parties coming
            ctx.conn.send({"type": "ended", "call_id": call_id})
            await ctx.conn.flush_and_close(code=1000, reason="call ended")
            return False
        old = self.joins.get(self.by_call.get(call_id, ""))
        if old is not None and old.conn is not None:  # (only one family page per call)
            await reject(
                ctx.conn, Conflict("a family member is already on this call", code="family_present")
            )
            return False
        if old is not None:  # an unused link made here meanwhile: this page takes its place
            self.joins.pop(self.by_call.pop(call_id), None)
        key = digest(new_secret())  # no token: the page is back by the node's word alone
        join = self.joins[key] = Join(call_id, time.time(), used=True)
        self.by_call[call_id] = key
        self._admit(ctx, join, call)
        # The parties' sessions move here too, in no set order: those not back yet get the
        # family page when they are (`_on_reconnected`; its old connection to them meanwhile
        # goes on browser to browser).
        join.missing = tuple(p for p in PARTIES if self._party(call, p) is None)
        return True

    def _admit(self, ctx: Context, join: Join, call: LiveCall) -> None:
        """The family page is on the call: its hello; the parties there connect to it."""
        join.conn = ctx.conn
        ctx.conn.subject = call.call_id
        self._connect(call, ctx.conn, [p for p in PARTIES if self._party(call, p) is not None])

    def _connect(self, call: LiveCall, page: Conn, parties: list[str]) -> None:
        """Tell the family page to connect to `parties` (its `hello`), and them to expect it."""
        presence = self.sb.agents.get(call.agent_id or 0)
        page.send(
            {
                "type": "hello",
                "role": "family",
                "call_id": call.call_id,
                "elder": call.elder.name if call.elder else "",
                "agent_name": presence.agent.display_name if presence else "",
                "ice_servers": self.sb.ice_servers(),
                "parties": parties,
            }
        )
        for party in parties:
            self._send(call, party, {"type": "family_joined", "call_id": call.call_id})

    def _usable(self, token: str) -> tuple[Join, LiveCall]:
        join = self.joins.get(digest(token)) if token else None
        if join is None:
            raise NotFound("unknown join link", code="join_unknown")
        if join.used:
            raise Conflict("this join link was used already", code="join_used")
        call = self.sb.calls.get(join.call_id)
        if call is None or call.state not in LIVE:
            raise Conflict("the call is over", code="call_over")
        return join, call

    async def _close(self, ctx: Context) -> None:
        call_id = ctx.conn.subject
        digest_ = self.by_call.get(call_id or "")
        join = self.joins.get(digest_ or "")
        if join is None or join.conn is not ctx.conn:
            return
        join.conn = None  # the link stays used: a second join needs a new link
        call = self.sb.calls.get(join.call_id)
        if call is not None:
            for party in PARTIES:
                self._send(call, party, {"type": "family_left", "call_id": call.call_id})
            self.sb.record_event(call.call_id, "family_left", {})

    def _leave(self, ctx: Context, msg: dict[str, Any]) -> None:
        ctx.conn.close(code=1000, reason="left")

    # ----------------------------------------------------------------- signalling
    def _family_call(self, call_id: str | None) -> tuple[LiveCall, Join]:
        join = self.joins.get(self.by_call.get(call_id or "", ""))
        call = self.sb.calls.get(call_id or "")
        if join is None or join.conn is None or call is None:
            raise Conflict("no family member is on this call", code="no_family")
        return call, join

    def _from_family(self, ctx: Context, msg: dict[str, Any]) -> None:
        to = msg.get("to")
        if to not in PARTIES:
            raise BadMessage("to must be caller or agent", code="bad_field")
        call, join = self._family_call(ctx.conn.subject)
        if join.conn is not ctx.conn:
            raise Forbidden("not on this call", code="not_in_call")
        data = check_signal_data(msg["data"])
        self._send(call, to, {"type": "family_signal", "call_id": call.call_id, "data": data})

    def _from_caller(self, ctx: Context, msg: dict[str, Any]) -> None:
        call, join = self._family_call(ctx.conn.subject)
        if call.caller is not ctx.conn or join.conn is None:
            raise Forbidden("not on this call", code="not_in_call")
        data = check_signal_data(msg["data"])
        join.conn.send({"type": "family_signal", "from": "caller", "data": data})

    def _from_agent(self, ctx: Context, msg: dict[str, Any]) -> None:
        presence = self.sb.agents.get(ctx.agent_id or 0)
        call, join = self._family_call(presence.call_id if presence else None)
        if call.agent_id != ctx.agent_id or join.conn is None:
            raise Forbidden("not on this call", code="not_your_call")
        data = check_signal_data(msg["data"])
        join.conn.send({"type": "family_signal", "from": "agent", "data": data})

    def _party(self, call: LiveCall, party: str) -> Conn | None:
        if party == "caller":
            return call.caller
        presence = self.sb.agents.get(call.agent_id or 0)
        return presence.conn if presence else None

    def _send(self, call: LiveCall, party: str, message: dict[str, Any]) -> None:
        conn = self._party(call, party)
        if conn is not None:
            conn.send(message)

    # ----------------------------------------------------------------- the call's end
    def _on_ended(self, event: Ended) -> None:
        call = event.call
        join = self.joins.pop(self.by_call.pop(call.call_id, ""), None)
        if join is not None and join.conn is not None:
            join.conn.send({"type": "ended", "call_id": call.call_id})
            join.conn.close(code=1000, reason="call ended")

    def _on_transferred(self, event: Transferred) -> None:
        # The agent changed: the family page connects to the new one.
        call = event.call
        join = self.joins.get(self.by_call.get(call.call_id, ""))
        if join is not None and join.conn is not None:
            join.conn.send({"type": "agent_changed", "call_id": call.call_id})
            self._send(call, "agent", {"type": "family_joined", "call_id": call.call_id})

    def _on_reconnected(self, event: Reconnected) -> None:
        # Both parties are back on a call whose family page moved here before them.
        call = event.call
        join = self.joins.get(self.by_call.get(call.call_id, ""))
        if join is not None and join.conn is not None and join.missing:
            parties, join.missing = list(join.missing), ()
            self._connect(call, join.conn, parties)
