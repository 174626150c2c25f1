"""The switchboard: callers, agents and calls in flight, on the asyncio loop.

It owns the waiting line and every live call, rings agents (routing.py decides who),
relays signalling between the two parties of a call, and writes the call's story to SQLite
through one writer thread, in order. Pure decisions live in queue.py and routing.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from hotline import queue as line_mod
from hotline import routing
from hotline.addresses import filter_candidates
from hotline.callbacks import slots
from hotline.calls.gateway import Taps
from hotline.config import Config
from hotline.db import Database
from hotline.db import callbacks as callbacks_db
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from hotline.db.agents import Agent
from hotline.db.elders import Elder
from hotline.errors import BadMessage, Conflict, Forbidden, LinkExpired, NotFound
from hotline.live.events import (
    Answered,
    Arrived,
    CallbackRequested,
    CallbackTaken,
    CallerAway,
    CallEvent,
    Ended,
    Events,
    Reconnected,
    Requeued,
    Rung,
    Tapped,
    TransferWaiting,
)
from hotline.live.hub import Conn, Hub
from hotline.live.messages import check_signal_data
from hotline.prompts import Prompts
from hotline.tokens import digest, new_secret

log = logging.getLogger(__name__)

WAITING, RINGING, CONNECTED, HELD, ENDED = "waiting", "ringing", "connected", "held", "ended"
# The agent put the caller on hold (hotline/live/hold.py); a transfer is ringing its target
# (hotline/live/transfer.py). HELD above is different: the caller's page dropped mid-call.
ON_HOLD, TRANSFERRING = "on_hold", "transferring"
# A cold transfer waits at the head for its busy target: the first agent has left, the elder
# stays on their page (told so) and no agent is on the call until the target answers.
TRANSFER_WAITING = "transfer_waiting"
# The elder's page is joined (talking, held, transferring, waiting for a transfer's target).
LIVE = (CONNECTED, ON_HOLD, TRANSFERRING, TRANSFER_WAITING)
POSITIONS_EVERY = 1.0  # seconds between rounds of queue updates while the line moves
SLOW_ROUND = 0.5  # a queue round taking longer than this is logged (fan-out is falling behind)
ROUND_SLICE = 1000  # updates sent before a round yields the loop (250 made the round slower,
# not rings faster: full surge fan-out p99 490 -> 274 ms, tap->ring p95 107 -> 57 ms)
CALLING_ELDER = "calling_elder"  # a callback: the agent took it, the elder's page is ringing


@dataclass(slots=True)
class LiveCall:
    call_id: str
    dialect: str
    lang: str
    arrived_at: float
    rejoin_hash: str
    elder: Elder | None = None
    state: str = WAITING
    caller: Conn | None = None
    agent_id: int | None = None
    caller_gone_at: float | None = None
    priority: int = line_mod.NORMAL
    ring_timer: asyncio.TimerHandle | None = None
    gone_timer: asyncio.TimerHandle | None = None
    last_queue_msg: tuple[int, int | None, str] | None = None  # (position, eta, line state)
    recheck_timer: asyncio.TimerHandle | None = None  # re-tell the state once overflow applies
    callback_requested: bool = False  # a waiting caller asked to be called back (keeps place)
    kind: str = "inbound"  # or "callback": a booked callback entering the line at its time
    booking_id: int | None = None
    dialect_known: bool = True  # False: a caller without a link who did not pick a dialect

    @property
    def unattended(self) -> bool:
        """Whether the elder must be called (back) rather than being on the line already."""
        return self.kind == "callback" or self.callback_requested


@dataclass
class Presence:
    agent: Agent
    conn: Conn
    status: str = routing.AWAY
    idle_since: float = field(default_factory=time.time)
    call_id: str | None = None


class Switchboard:
    """Every caller, agent and call in flight on this node."""

    def __init__(
        self,
        cfg: Config,
        db: Database,
        hub: Hub,
        gateway: Taps,
        *,
        clock: Callable[[], float] = time.time,
        prompts: Prompts | None = None,
        ice_servers: Callable[[], list[dict[str, Any]]] | None = None,
        agent_grace: float = 0.0,
    ) -> None:
        self.cfg = cfg
        self.prompts = prompts
        self.db = db
        self.hub = hub
        self.gateway = gateway
        self.clock = clock
        self.line = line_mod.WaitingLine()
        self.calls: dict[str, LiveCall] = {}
        self.agents: dict[int, Presence] = {}
        self._by_rejoin: dict[str, str] = {}
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="db-writer")
        self._handle_seconds: list[float] = []
        self._positions_scheduled = False
        self._overflow_timer: asyncio.TimerHandle | None = None
        self.closing = False
        self._line_scheduled = False
        self._positions_sent_at = float("-inf")
        self._rounds: set[asyncio.Task[None]] = set()
        self.pages: dict[int, set[Conn]] = {}  # elder id -> their open caller pages
        self.events = Events()  # typed call events the plug-ins subscribe to
        # Called before each routing round: may ring free agents first (a transfer waiting
        # at the head for its target, hotline/live/transfer.py), so they are not routed.
        self.claimers: list[Callable[[], None]] = []
        # STUN/TURN servers for a browser, asked anew for each (TURN credentials expire).
        self.ice_servers = ice_servers or (lambda: list(cfg.ice_servers))
        self._shifts: list[slots.Shift] = []  # agents' weekly shifts: when the line is staffed
        self._shifts_at = float("-inf")
        self._shifts_task: asyncio.Task[None] | None = None
        self._tz = ZoneInfo(cfg.timezone)
        # Cluster mode: an agent whose socket went (their node died) keeps their call this
        # long while the console reconnects elsewhere; 0 (one node): the caller is requeued.
        self.agent_grace = agent_grace
        self._missed_ends: dict[int, dict[str, Any]] = {}  # agent id -> the `ended` they missed
        self._events_tail: _EventBatch | None = None  # the last write queued, if events

    # ----------------------------------------------------------------- storage
    async def store(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a DB function on the single writer thread, in submission order."""
        self._events_tail = None  # events queued after this write are written after it
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, lambda: fn(self.db, *args, **kwargs))

    def store_later(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue a DB write without waiting; failures are logged with the call id."""
        self._events_tail = None
        try:
            future = self._writer.submit(lambda: fn(self.db, *args, **kwargs))
        except RuntimeError:  # the writer has stopped: the server is shutting down
            log.warning("write after shutdown dropped: %s", getattr(fn, "__name__", fn))
            return
        future.add_done_callback(_log_failure)

    async def start(self, *, keep_answered: bool = False) -> None:
        """Restore the line after a restart: waiting callers keep their places.

        `keep_answered` (cluster mode: another node held the line and stopped): calls in
        progress are kept too, waiting for both parties to come back (their media never
        went through us); otherwise they end as interrupted."""
        self._handle_seconds = await self.store(calls_db.recent_handle_seconds)
        await self._load_shifts()
        now = self.clock()
        rows = await self.store(calls_db.open_calls)
        elder_ids = {r["elder_id"] for r in rows if r["elder_id"] is not None}
        elders = await self.store(elders_db.get_many, elder_ids)
        for row in rows:
            answered = row["answered_at"] is not None
            keep = not answered or (keep_answered and row["agent_id"] is not None)
            if not keep or not row["rejoin_hash"]:
                await self.store(
                    calls_db.ended, row["id"], outcome="interrupted", ended_by="server", at=now
                )
                continue
            elder = elders.get(row["elder_id"]) if row["elder_id"] is not None else None
            call = LiveCall(
                call_id=row["id"],
                dialect=row["dialect"],
                lang=elder.lang if elder else self.cfg.default_lang,
                arrived_at=row["arrived_at"],
                rejoin_hash=row["rejoin_hash"],
                elder=elder,
                priority=row["priority"],
            )
            call.callback_requested = row["callback_requested"]
            self.calls[call.call_id] = call
            self._by_rejoin[call.rejoin_hash] = call.call_id
            if answered:  # both parties come back to a held call
                call.state, call.agent_id = HELD, row["agent_id"]
                self._await_agent(call, row["agent_id"])
            else:
                self.line.add(call.call_id, call.dialect, call.arrived_at, call.priority)
            self._caller_gone(call)
        if self.calls:
            log.info("restored %d waiting callers", len(self.calls))

    async def close(self, reason: str = "server_shutdown") -> None:
        """Graceful stop: tell everyone, end calls in progress, keep the line for restart."""
        self.closing = True
        now = self.clock()
        for call in list(self.calls.values()):
            if call.caller is not None:
                call.caller.send({"type": "server_restarting"})
            if call.state in (*LIVE, HELD, RINGING) and call.agent_id is not None:
                self.send_agent(
                    call.agent_id, {"type": "ended", "call_id": call.call_id, "reason": reason}
                )
            if call.state in (*LIVE, HELD):
                await self.store(
                    calls_db.ended, call.call_id, outcome="interrupted", ended_by="server", at=now
                )
            await self.gateway.close_call(call.call_id)
        for presence in self.agents.values():
            presence.conn.send({"type": "server_restarting"})

    def shutdown(self) -> None:
        """After the listeners are closed: finish pending writes, stop the writer thread."""
        self._writer.shutdown(wait=True)

    # ----------------------------------------------------------------- agents
    async def agent_connected(self, agent: Agent, conn: Conn, was_in: str = "") -> None:
        """An agent's console is here. `was_in`: the call a console moved from another node
        was in (cluster mode); if it ended meanwhile, they are told so and wrap it up."""
        gone = await self._ended_call_of(agent.id, was_in) if was_in else None
        old = self.agents.get(agent.id)
        if old is not None and old.conn is not conn:
            old.conn.send({"type": "error", "code": "replaced", "detail": "signed in elsewhere"})
            old.conn.close(code=4000, reason="replaced")
            await self._agent_gone(agent.id, old.conn)
        presence = Presence(agent=agent, conn=conn, idle_since=self.clock())
        self.agents[agent.id] = presence
        # Back to a call kept for them (cluster mode: their node or the line's holder went).
        kept = next(
            (
                c
                for c in self.calls.values()
                if c.agent_id == agent.id and c.state in (CONNECTED, HELD)
            ),
            None,
        )
        missed = self._missed_ends.pop(agent.id, None) or gone
        if kept is not None:
            presence.call_id, presence.status = kept.call_id, routing.IN_CALL
        elif missed is not None:  # their call ended while they were away: now wrap it up
            presence.call_id, presence.status = missed["call_id"], routing.WRAP_UP
        self.hub.subscribe("agents", conn)
        if agent.role == "supervisor":
            self.hub.subscribe("wallboard", conn)
        conn.send(self._agent_hello(presence))
        if missed is not None and kept is None:
            conn.send(missed)
        if kept is not None and kept.state == CONNECTED:  # the caller is back already
            self._connect_parties(kept, rejoined=True)
            self.events.emit(Reconnected(kept))
        self._publish_line()
        self._staffing_changed()

    async def _ended_call_of(self, agent_id: int, call_id: str) -> dict[str, Any] | None:
        """The `ended` message of the agent's call `call_id` if it is over (it may have ended
        on a node that died before telling them)."""
        if call_id in self.calls:
            return None
        row = await self.store(calls_db.get, call_id)
        if not row or row["ended_at"] is None or row["agent_id"] != agent_id:
            return None
        return ended_message(call_id, row["outcome"], row["ended_by"])

    def _await_agent(self, call: LiveCall, agent_id: int) -> None:
        """Keep a call in progress for its agent's console to come back (cluster mode); if it
        does not within the rejoin time, the caller goes to the head of the line."""

        async def check() -> None:
            if call.state in (CONNECTED, HELD) and call.agent_id == agent_id:
                if agent_id not in self.agents:
                    if call.caller is not None:
                        await self._requeue(call, "agent_dropped")
                    else:
                        await self.end_call(call, outcome="interrupted", by="network")

        loop = asyncio.get_running_loop()
        loop.call_later(self.cfg.rejoin_seconds, lambda: loop.create_task(check()))

    def _agent_hello(self, p: Presence) -> dict[str, Any]:
        return {
            "type": "hello",
            "agent": {
                "id": p.agent.id,
                "name": p.agent.display_name,
                "dialects": list(p.agent.dialects),
            },
            "status": p.status,
            "ice_servers": self.ice_servers(),
        }

    async def agent_disconnected(self, agent_id: int, conn: Conn) -> None:
        if self.closing:
            return
        presence = self.agents.get(agent_id)
        if presence is None or presence.conn is not conn:
            return
        await self._agent_gone(agent_id, conn)

    async def _agent_gone(self, agent_id: int, conn: Conn) -> None:
        presence = self.agents.pop(agent_id, None)
        if presence is None:
            return
        self.hub.unsubscribe(conn)
        call = self.calls.get(presence.call_id or "")
        if call is not None and call.agent_id == agent_id:
            if call.state == RINGING:
                self._cancel_ring(call, declined=False)
            elif self.agent_grace and call.state in (CONNECTED, HELD):
                self._await_agent(call, agent_id)  # their console reconnects to another node
            elif call.state in (*LIVE, HELD):
                await self._requeue(call, "agent_dropped")
        self._route()
        self._publish_line()
        self._staffing_changed()

    def kick(self, agent_id: int, code: str = "account_disabled") -> None:
        """Disconnect an agent's console (e.g. their account was disabled)."""
        presence = self.agents.get(agent_id)
        if presence is not None:
            presence.conn.send({"type": "error", "code": code, "detail": "signed out"})
            presence.conn.close(code=4003, reason=code)

    def set_status(self, agent_id: int, status: str) -> None:
        presence = self._presence(agent_id)
        if status not in (routing.AVAILABLE, routing.AWAY):
            raise BadMessage("status must be available or away", code="bad_field")
        if presence.status in (routing.RINGING, routing.IN_CALL):
            raise Conflict("finish the current call first", code="busy")
        self._set_agent_status(presence, status)
        self._route()

    def ready(self, agent_id: int) -> None:
        """Wrap-up done: the agent takes the next caller."""
        presence = self._presence(agent_id)
        if presence.status != routing.WRAP_UP:
            raise Conflict("not in wrap-up", code="not_in_wrap_up")
        presence.call_id = None
        self._set_agent_status(presence, routing.AVAILABLE)
        self._route()

    def _set_agent_status(self, presence: Presence, status: str) -> None:
        if status == routing.AVAILABLE and presence.status != routing.AVAILABLE:
            presence.idle_since = self.clock()
        serving_changed = (presence.status == routing.AWAY) != (status == routing.AWAY)
        presence.status = status
        if serving_changed:
            self._staffing_changed()
        presence.conn.send({"type": "status", "status": status})
        self._publish_line()

    def _presence(self, agent_id: int) -> Presence:
        presence = self.agents.get(agent_id)
        if presence is None:
            raise Forbidden("agent is not connected")
        return presence

    def send_agent(self, agent_id: int, message: dict[str, Any]) -> None:
        """Send to an agent's console if it is connected."""
        presence = self.agents.get(agent_id)
        if presence is not None:
            presence.conn.send(message)

    # ----------------------------------------------------------------- callers
    async def resolve_link(self, token: str) -> tuple[Elder, bool]:
        """The elder behind a one-tap link; NotFound / LinkExpired otherwise."""
        link = await self.store(elders_db.get_link, token) if token else None
        if link is None:
            raise NotFound("unknown link", code="unknown_link")
        state = link.state(self.clock())
        if state != "ok":
            raise LinkExpired(f"this link is {state}", code=f"link_{state}")
        elder = await self.store(elders_db.get, link.elder_id)
        if elder is None:
            raise NotFound("unknown link", code="unknown_link")
        return elder, link.auto_start

    def caller_rejoin(
        self, rejoin: str, conn: Conn, elder: Elder | None, *, moved: bool = False
    ) -> LiveCall | None:
        """Reattach a returning caller to their call (same place in line).

        A rejoin secret works only together with the link it was issued under. `moved`: the
        page never left, its session moved to a new holder of the line (nothing to record).
        """
        call_id = self._by_rejoin.get(digest(rejoin)) if rejoin else None
        call = self.calls.get(call_id or "")
        if call is None or call.state == ENDED:
            return None
        if (call.elder.id if call.elder else None) != (elder.id if elder else None):
            return None
        if call.caller is not None and call.caller is not conn:
            call.caller.send({"type": "error", "code": "replaced", "detail": "opened elsewhere"})
            call.caller.close(code=4000, reason="replaced")
        call.caller = conn
        call.caller_gone_at = None
        if call.gone_timer is not None:
            call.gone_timer.cancel()
            call.gone_timer = None
        conn.subject = call.call_id
        if not moved:
            self.record_event(call.call_id, "caller_rejoined", {})
        return call

    async def ended_while_away(self, rejoin: str, elder: Elder | None) -> dict[str, Any] | None:
        """The `ended` a returning caller missed: their answered call ended while their page
        was away (the agent hung up, or its node died before telling them); None if not."""
        since = self.clock() - max(self.cfg.rejoin_seconds, 60.0)
        row = await self.store(calls_db.ended_by_rejoin, digest(rejoin), since)
        if row is None or row["elder_id"] != (elder.id if elder else None):
            return None
        return ended_message(row["id"], row["outcome"], row["ended_by"])

    def resume(self, call: LiveCall) -> None:
        """After the rejoined caller was greeted: their place in line, or back into the call."""
        # HELD: the caller's page dropped and came back. CONNECTED: another tab or phone took
        # the call over (the old page was told `replaced`): media restarts with the new page.
        if call.state in (HELD, CONNECTED) and call.agent_id is not None:
            call.state = CONNECTED
            # Cluster mode: the agent's console may not be back yet (a failover); then media
            # restarts when it is (agent_connected), so the caller's new offer is not lost.
            if call.agent_id in self.agents:
                self._connect_parties(call, rejoined=True)
                self.events.emit(Reconnected(call))
        else:
            call.last_queue_msg = None
            self._send_queue_state(call)
            self._route()

    async def caller_call(
        self, conn: Conn, elder: Elder | None, dialect: str, *, dialect_known: bool = True
    ) -> LiveCall:
        """The tap: a caller joins the line (or is rung through at once)."""
        if conn.subject in self.calls and self.calls[conn.subject].state != ENDED:
            raise Conflict("already calling", code="already_calling")
        now = self.clock()
        rejoin = new_secret()
        call = LiveCall(
            call_id=uuid.uuid4().hex[:16],
            dialect=dialect,
            lang=elder.lang if elder else conn.lang,
            arrived_at=now,
            rejoin_hash=digest(rejoin),
            elder=elder,
            caller=conn,
            dialect_known=dialect_known,
        )
        await self.store(
            calls_db.create,
            call.call_id,
            elder_id=elder.id if elder else None,
            dialect=dialect,
            kind="inbound",
            arrived_at=now,
            rejoin_hash=call.rejoin_hash,
            priority=call.priority,
        )
        self.calls[call.call_id] = call
        self._by_rejoin[call.rejoin_hash] = call.call_id
        conn.subject = call.call_id
        self.line.add(call.call_id, dialect, now, call.priority)
        conn.send({"type": "queued", "call_id": call.call_id, "rejoin": rejoin})
        self.events.emit(Arrived(call))
        self._route()
        self._send_queue_state(call)
        self._schedule_positions()
        self._publish_line()
        return call

    async def caller_disconnected(self, conn: Conn) -> None:
        if self.closing:
            return
        call = self.calls.get(conn.subject or "")
        if call is None or call.caller is not conn:
            return
        call.caller = None
        if call.state in LIVE:
            call.state = HELD
            self.events.emit(CallerAway(call))
            self.send_agent(
                call.agent_id or 0,
                {
                    "type": "caller_away",
                    "call_id": call.call_id,
                    "rejoin_seconds": self.cfg.rejoin_seconds,
                },
            )
            self.record_event(call.call_id, "caller_dropped", {})
            await self.gateway.close_leg(call.call_id, "caller")
        elif call.state == RINGING:
            self._cancel_ring(call, declined=False)
            self._route()  # the agent is free again for the next caller
        self._caller_gone(call)

    def _caller_gone(self, call: LiveCall) -> None:
        call.caller_gone_at = self.clock()
        loop = asyncio.get_running_loop()
        if call.gone_timer is not None:
            call.gone_timer.cancel()
        call.gone_timer = loop.call_later(
            self.cfg.rejoin_seconds, lambda: loop.create_task(self._caller_expired(call.call_id))
        )

    async def _caller_expired(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None or call.caller is not None or call.state == ENDED:
            return
        if call.callback_requested and call.elder is not None and call.elder.phone:
            return  # stays in line; the callbacks domain takes it when its turn comes
        outcome = "caller_dropped" if call.state == HELD else "abandoned"
        await self.end_call(call, outcome=outcome, by="network")

    async def caller_hangup(self, conn: Conn) -> None:
        call = self.calls.get(conn.subject or "")
        if call is None or call.caller is not conn or call.state == ENDED:
            raise NotFound("no call to hang up", code="no_call")
        outcome = "completed" if call.state in (*LIVE, HELD) else "abandoned"
        await self.end_call(call, outcome=outcome, by="caller")

    def request_callback(self, conn: Conn) -> LiveCall:
        """A waiting caller would rather be called back: they keep their place in line."""
        call = self.calls.get(conn.subject or "")
        if call is None or call.caller is not conn or call.state not in (WAITING, RINGING):
            raise Conflict("only a waiting caller can ask for a callback", code="not_waiting")
        call.callback_requested = True
        self.record_event(call.call_id, "callback_requested", {})
        self.events.emit(CallbackRequested(call))
        return call

    def enqueue_callback(self, call: LiveCall) -> None:
        """A booked callback falls due: it waits in line as a priority task."""
        self.calls[call.call_id] = call
        self.line.add(call.call_id, call.dialect, call.arrived_at, call.priority)
        self.events.emit(Arrived(call))
        self._route()
        self._schedule_positions()
        self._publish_line()

    def take_directly(self, call: LiveCall, presence: Presence) -> None:
        """An agent starts a callback from their list: no line, no ring."""
        if presence.status == routing.WRAP_UP:
            presence.call_id = None
        self.calls[call.call_id] = call
        call.agent_id = presence.agent.id
        call.state = CALLING_ELDER
        presence.call_id = call.call_id
        self._set_agent_status(presence, routing.IN_CALL)
        self.events.emit(CallbackTaken(call))

    async def rate(self, conn: Conn, rating: str) -> None:
        """The caller rates the call that just ended on this page (optional, once)."""
        if rating not in calls_db.RATINGS:
            raise BadMessage("rating must be good, ok or bad", code="bad_field")
        if not conn.last_call_id:
            raise NotFound("no ended call to rate", code="no_call")
        if not await self.store(calls_db.rate, conn.last_call_id, rating):
            raise Conflict("this call was already rated", code="already_rated")
        conn.send({"type": "rated", "call_id": conn.last_call_id, "rating": rating})

    # ----------------------------------------------------------------- ringing
    def _route(self) -> None:
        for claim in self.claimers:
            claim()
        now = self.clock()
        free = [
            routing.AgentState(p.agent.id, p.agent.dialects, p.status, p.idle_since)
            for p in self.agents.values()
            if p.status == routing.AVAILABLE
        ]
        if not free:
            # Nobody to ring: skip walking the line (cheap during a surge). Overflow only
            # matters once someone is free, and becoming free routes again.
            if self._overflow_timer is not None:
                self._overflow_timer.cancel()
                self._overflow_timer = None
            return
        pairs = routing.assign_lines(self._routable_lines(), free, now, self.cfg.overflow_seconds)
        for call_id, agent_id in pairs:
            self._ring(self.calls[call_id], self.agents[agent_id])
        self._arm_overflow(now)

    def _routable_lines(self) -> dict[str, Iterator[line_mod.Waiter]]:
        """Each dialect's line, lazily, without callers who cannot be rung right now."""
        return {
            dialect: (w for w in waiters if self._routable(w.call_id))
            for dialect, waiters in self.line.lines().items()
        }

    def _routable(self, call_id: str) -> bool:
        call = self.calls.get(call_id)
        if call is None or call.state != WAITING:
            return False
        return call.caller is not None or call.unattended

    def _arm_overflow(self, now: float) -> None:
        if self._overflow_timer is not None:
            self._overflow_timer.cancel()
            self._overflow_timer = None
        if not any(p.status == routing.AVAILABLE for p in self.agents.values()):
            return  # the next agent to become free routes again anyway
        at = routing.next_overflow_at(self._routable_lines(), self.cfg.overflow_seconds, now)
        if at is not None:
            self._overflow_timer = asyncio.get_running_loop().call_later(
                max(0.0, at - now) + 0.01, self._route
            )

    def _ring(self, call: LiveCall, presence: Presence) -> None:
        now = self.clock()
        waiter = self.line.get(call.call_id)
        assert waiter is not None
        waiter.ringing_agent = presence.agent.id
        call.state = RINGING
        call.agent_id = presence.agent.id
        presence.call_id = call.call_id
        self._set_agent_status(presence, routing.RINGING)
        presence.conn.send(
            {
                "type": "ring",
                "call_id": call.call_id,
                "elder": call.elder.name if call.elder else "",
                "dialect": call.dialect,
                "waited_seconds": round(now - call.arrived_at, 1),
                "timeout_seconds": self.cfg.ring_timeout_seconds,
                "kind": "callback" if call.unattended else "inbound",
            }
        )
        self.store_later(calls_db.rang, call.call_id, presence.agent.id, now)
        call.ring_timer = asyncio.get_running_loop().call_later(
            self.cfg.ring_timeout_seconds, self._ring_timeout, call.call_id, presence.agent.id
        )
        self.events.emit(Rung(call))

    def _ring_timeout(self, call_id: str, agent_id: int) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state != RINGING or call.agent_id != agent_id:
            return
        self.record_event(call_id, "ring_timeout", {"agent_id": agent_id})
        # Not a decline: the silent agent is set away, and rung again once back.
        self._cancel_ring(call, declined=False)
        presence = self.agents.get(agent_id)
        if presence is not None:
            presence.call_id = None
            self._set_agent_status(presence, routing.AWAY)
        self._route()

    def _cancel_ring(self, call: LiveCall, *, declined: bool) -> None:
        """Stop ringing this call's agent; the caller keeps their place."""
        if call.ring_timer is not None:
            call.ring_timer.cancel()
            call.ring_timer = None
        agent_id = call.agent_id
        waiter = self.line.get(call.call_id)
        if waiter is not None:
            waiter.ringing_agent = None
            if declined and agent_id is not None:
                waiter.declined_by.add(agent_id)
        call.state = WAITING
        call.agent_id = None
        if agent_id is not None:
            self.send_agent(agent_id, {"type": "ring_cancelled", "call_id": call.call_id})
            presence = self.agents.get(agent_id)
            if presence is not None and presence.status == routing.RINGING:
                presence.call_id = None
                self._set_agent_status(presence, routing.AVAILABLE)

    def decline(self, agent_id: int, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state != RINGING or call.agent_id != agent_id:
            raise Conflict("this call is not ringing you", code="not_ringing")
        self.record_event(call_id, "declined", {"agent_id": agent_id})
        self._cancel_ring(call, declined=True)
        self._route()

    async def accept(self, agent_id: int, call_id: str) -> None:
        """The agent answers: both parties are connected."""
        presence = self._presence(agent_id)
        call = self.calls.get(call_id)
        if call is None or call.state == ENDED:
            raise NotFound("no such call", code="no_call")
        if call.state != RINGING or call.agent_id != agent_id:
            raise Conflict(
                "this call was already answered or is not ringing you", code="already_answered"
            )
        if call.ring_timer is not None:
            call.ring_timer.cancel()
            call.ring_timer = None
        now = self.clock()
        self.line.remove(call_id)
        call.state = CONNECTED
        presence.call_id = call_id
        self._set_agent_status(presence, routing.IN_CALL)
        self._schedule_positions()
        if call.unattended:
            # The agent calls the elder back: the callbacks domain rings their page or
            # hands the agent the number to dial (see hotline/live/callbacks.py).
            call.state = CALLING_ELDER
            self.events.emit(CallbackTaken(call))
            return
        # Recorded before the parties are told: a node taking over the line (cluster mode)
        # restores an answered call as a call, not as a caller still waiting.
        await self.store(calls_db.answered, call_id, agent_id, now)
        if call.state != CONNECTED or call.agent_id != agent_id:
            return  # ended (or taken over) meanwhile
        self._connect_parties(call)
        self.events.emit(Answered(call))

    def elder_answered(self, call: LiveCall, page: Conn) -> None:
        """The elder answered a callback on their page: connect them with the agent."""
        if call.state != CALLING_ELDER:
            raise Conflict("this callback is not ringing", code="not_ringing")
        call.caller = page
        page.subject = call.call_id
        call.state = CONNECTED
        self.store_later(calls_db.answered, call.call_id, call.agent_id or 0, self.clock())
        self._connect_parties(call)
        self.events.emit(Answered(call))

    def page_opened(self, conn: Conn) -> None:
        if conn.elder is not None:
            self.pages.setdefault(conn.elder.id, set()).add(conn)

    def page_closed(self, conn: Conn) -> None:
        if conn.elder is not None:
            pages = self.pages.get(conn.elder.id)
            if pages is not None:
                pages.discard(conn)
                if not pages:
                    del self.pages[conn.elder.id]

    def idle_page(self, elder_id: int) -> Conn | None:
        """An open page of the elder's that is not in a call (their tablet's 'home screen')."""
        for conn in self.pages.get(elder_id, ()):
            call = self.calls.get(conn.subject or "")
            if call is None or call.state == ENDED:
                return conn
        return None

    def _connect_parties(self, call: LiveCall, rejoined: bool = False) -> None:
        presence = self.agents.get(call.agent_id or 0)
        agent_name = presence.agent.display_name if presence else ""
        ice = self.ice_servers()
        if call.caller is not None:
            call.caller.send(
                {
                    "type": "connected",
                    "call_id": call.call_id,
                    "agent_name": agent_name,
                    "role": "offerer",
                    "ice_servers": ice,
                    "rejoined": rejoined,
                }
            )
        self.send_agent(
            call.agent_id or 0,
            {
                "type": "connected",
                "call_id": call.call_id,
                "role": "answerer",
                "ice_servers": ice,
                "elder": call.elder.name if call.elder else "",
                "dialect": call.dialect,
                "rejoined": rejoined,
            },
        )

    async def agent_hangup(self, agent_id: int, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None or call.agent_id != agent_id:
            raise NotFound("no such call of yours", code="no_call")
        if call.state not in (*LIVE, HELD, CALLING_ELDER):
            raise NotFound("no such call of yours", code="no_call")
        outcome = "completed" if call.state in LIVE else "caller_dropped"
        if call.state == CALLING_ELDER:
            outcome = "callback_no_answer"
        await self.end_call(call, outcome=outcome, by="agent")

    async def _requeue(self, call: LiveCall, reason: str, passed_by: int | None = None) -> None:
        """The agent dropped mid-call: the caller goes to the head of the line."""
        await self.gateway.close_call(call.call_id)
        call.state = WAITING
        call.agent_id = None
        waiter = self.line.add_at_head(call.call_id, call.dialect, call.arrived_at, call.priority)
        if passed_by is not None:  # a transfer's target declined: ring someone else first
            waiter.declined_by.add(passed_by)
        self.store_later(calls_db.requeued, call.call_id, reason, self.clock())
        if call.caller is not None:
            call.caller.send({"type": "requeued", "call_id": call.call_id, "reason": reason})
        call.last_queue_msg = None
        self.events.emit(Requeued(call))
        self._route()
        self._send_queue_state(call)
        self._schedule_positions()

    async def end_call(self, call: LiveCall, *, outcome: str, by: str) -> None:
        """End a call once: record it, tell both parties, free the agent."""
        if call.state == ENDED:
            return
        was_ringing = call.state == RINGING
        if was_ringing:
            self._cancel_ring(call, declined=False)
        prior_agent = call.agent_id
        call.state = ENDED
        for timer in (call.ring_timer, call.gone_timer, call.recheck_timer):
            if timer is not None:
                timer.cancel()
        self.line.remove(call.call_id)
        self._by_rejoin.pop(call.rejoin_hash, None)
        now = self.clock()
        # Recorded first, then told: whoever hears "ended" can rely on the stored call.
        await self.store(calls_db.ended, call.call_id, outcome=outcome, ended_by=by, at=now)
        told = ended_message(call.call_id, outcome, by)
        if call.caller is not None:
            call.caller.send(told)
            call.caller.last_call_id = call.call_id
        if prior_agent is not None:
            if prior_agent in self.agents:
                self.send_agent(prior_agent, told)
            elif self.agent_grace:  # their console is reconnecting (cluster): told on return
                self._missed_ends[prior_agent] = told
            presence = self.agents.get(prior_agent)
            if presence is not None and presence.call_id == call.call_id:
                self._set_agent_status(presence, routing.WRAP_UP)
        await self.gateway.close_call(call.call_id)
        row = await self.store(calls_db.get, call.call_id)
        if row and row.get("talk_seconds"):
            self._handle_seconds = ([float(row["talk_seconds"])] + self._handle_seconds)[:50]
        self.calls.pop(call.call_id, None)
        self.events.emit(Ended(call, outcome, by))
        self._route()
        self._schedule_positions()
        self._publish_line()

    # ----------------------------------------------------------------- media
    def relay_signal(
        self,
        conn: Conn,
        data: dict[str, Any],
        agent_id: int | None = None,
        call_id: str | None = None,
    ) -> None:
        """Pass an SDP or ICE candidate to the other party of the sender's call only."""
        clean = check_signal_data(data)
        call = self._sender_call(conn, agent_id, call_id)
        if call.state not in LIVE:
            raise Conflict("the call is not connected", code="not_connected")
        message = {"type": "signal", "call_id": call.call_id, "data": clean}
        if agent_id is None:
            self.send_agent(call.agent_id or 0, message)
        elif call.caller is not None:
            call.caller.send(message)

    def _sender_call(self, conn: Conn, agent_id: int | None, call_id: str | None) -> LiveCall:
        if agent_id is None:
            call = self.calls.get(conn.subject or "")
            if call is None:
                raise Forbidden("you are not in a call", code="not_in_call")
            return call
        call = self.calls.get(call_id or "")
        if call is None or call.agent_id != agent_id:
            raise Forbidden("you are not part of this call", code="not_your_call")
        return call

    async def tap_offer(
        self, conn: Conn, sdp: str, agent_id: int | None = None, call_id: str | None = None
    ) -> None:
        call = self._sender_call(conn, agent_id, call_id)
        if call.state not in LIVE:
            raise Conflict("the call is not connected", code="not_connected")
        speaker = "caller" if agent_id is None else "agent"
        # The gateway contacts every remote candidate (STUN checks): only public addresses,
        # and only a few, or a caller could make it probe hosts and ports on our network.
        sdp, dropped = filter_candidates(
            sdp, allow_local=self.cfg.ice_loopback, max_candidates=self.cfg.ice_max_candidates
        )
        if dropped:
            log.info("call %s: %d remote ICE candidates dropped", call.call_id, dropped)
        # In a cluster the tap is answered by the node holding the sender's socket.
        node = getattr(conn, "node", None)
        answer = await self.gateway.answer(call.call_id, speaker, sdp, node=node)
        conn.send({"type": "tap_answer", "call_id": call.call_id, "sdp": answer})
        self.events.emit(Tapped(call, speaker))

    def levels(self) -> None:
        """Send each agent in a call the gateway's counters for it (1/s)."""
        for presence in self.agents.values():
            call = self.calls.get(presence.call_id or "")
            if call is not None and call.state in (*LIVE, HELD):
                presence.conn.send(
                    {
                        "type": "tap_level",
                        "call_id": call.call_id,
                        **self.gateway.stats(call.call_id),
                    }
                )

    # ----------------------------------------------------------------- queue updates
    def _schedule_positions(self) -> None:
        """Coalesce queue updates: a round at once after a quiet spell, then at most one per
        0.5 s while the line keeps moving; each caller is sent only what changed."""
        if self._positions_scheduled:
            return
        self._positions_scheduled = True
        loop = asyncio.get_running_loop()
        wait = max(0.0, self._positions_sent_at + POSITIONS_EVERY - loop.time())
        loop.call_later(wait, self._start_round)

    def _start_round(self) -> None:
        task = asyncio.get_running_loop().create_task(self._publish_positions())
        self._rounds.add(task)
        task.add_done_callback(self._rounds.discard)

    async def _publish_positions(self) -> None:
        """One round: positions and agent counts computed once, whatever the line's length;
        the sends are sliced so that a long line never holds up rings and answers."""
        self._positions_scheduled = False
        self._positions_sent_at = at = asyncio.get_running_loop().time()
        positions = self.line.positions()
        serving, signed_in = self._staff_counts()
        mean = self._mean_handle()
        now = self.clock()
        for n, (call_id, position) in enumerate(positions.items(), start=1):
            call = self.calls.get(call_id)
            if call is not None and call.state == WAITING:
                self._send_queue_state(call, position, serving, at, mean, signed_in, now)
            if n % ROUND_SLICE == 0:
                await asyncio.sleep(0)  # let rings and answers through mid-round
        took = asyncio.get_running_loop().time() - at
        if took > SLOW_ROUND:
            log.warning("queue round: %d callers took %.0f ms", len(positions), took * 1000)

    def _mean_handle(self) -> float:
        """Mean recent handle time (the configured default before any call ended)."""
        return line_mod.mean_handle_seconds(self._handle_seconds, self.cfg.default_handle_seconds)

    def _staff_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """(serving, signed in) agents per dialect they speak; key "" counts everyone.

        Serving = signed in and not away; an away agent is signed in but serves nobody."""
        serving: dict[str, int] = {"": 0}
        signed_in: dict[str, int] = {"": len(self.agents)}
        for p in self.agents.values():
            here = p.status != routing.AWAY
            if here:
                serving[""] += 1
            for d in p.agent.dialects:
                signed_in[d] = signed_in.get(d, 0) + 1
                if here:
                    serving[d] = serving.get(d, 0) + 1
        return serving, signed_in

    def _staffing_changed(self) -> None:
        """An agent signed in or out, or went away or came back: every waiting caller's
        estimate may have changed (or become impossible), so a round is due."""
        if self.line:
            self._schedule_positions()

    async def _load_shifts(self) -> None:
        try:
            rows = await self.store(callbacks_db.shifts)
        except RuntimeError:  # the writer has stopped: shutting down, keep what we have
            return
        self._shifts = [
            slots.Shift(r.agent_id, r.weekday, r.start_hour, r.end_hour, r.dialects) for r in rows
        ]
        self._shifts_at = self.clock()

    def next_staffed_at(self, dialect: str) -> float | None:
        """When a shift that could take a `dialect` caller starts next (None: none planned).

        The shifts are re-read in the background at most once a minute (they change rarely;
        a round of messages must not wait for the database)."""
        now = self.clock()
        if now - self._shifts_at > 60 and (self._shifts_task is None or self._shifts_task.done()):
            self._shifts_task = asyncio.get_running_loop().create_task(self._load_shifts())
        return slots.next_shift_start(self._shifts, dialect, now, self._tz)

    def _send_queue_state(
        self,
        call: LiveCall,
        position: int | None = None,
        serving: dict[str, int] | None = None,
        at: float | None = None,
        mean_handle: float | None = None,
        signed_in: dict[str, int] | None = None,
        now: float | None = None,
    ) -> None:
        """The caller's `queue` message (place, honest wait, spoken place), if anything changed.

        Built from a template, not json.dumps: a round sends one to every waiting caller.
        Every value is a number, a boolean or text made here (call ids are hex, states are
        constants, the spoken place is a URL of registry ids and numbers)."""
        if call.caller is None or call.state not in (WAITING, RINGING):
            return
        if call.state != WAITING:
            position = 0
        elif position is None:
            position = self.line.position(call.call_id)
        if serving is None or signed_in is None:
            serving, signed_in = self._staff_counts()
        if mean_handle is None:
            mean_handle = self._mean_handle()
        if now is None:
            now = self.clock()
        # Who could take this caller: their dialect's agents, or anyone after the overflow wait.
        overflowed = now - call.arrived_at >= self.cfg.overflow_seconds
        could = serving.get(call.dialect, 0) or (serving[""] if overflowed else 0)
        present = signed_in.get(call.dialect, 0) or (signed_in[""] if overflowed else 0)
        state, eta = line_mod.honest_wait(position, mean_handle, could, present)
        if call.state == RINGING:
            state, eta = RINGING, 0
        elif eta is None and not overflowed and self.agents and call.recheck_timer is None:
            # Other dialects' agents are here: once the overflow wait is over, they count.
            call.recheck_timer = asyncio.get_running_loop().call_later(
                max(0.0, call.arrived_at + self.cfg.overflow_seconds - now) + 0.01,
                self._recheck,
                call.call_id,
            )
        key = (position, eta, state)
        if key == call.last_queue_msg:
            return
        call.last_queue_msg = key
        if at is None:
            at = asyncio.get_running_loop().time()
        if eta is None:
            self._send_no_estimate(call, position, state, at)
            return
        say = ""
        if self.prompts is not None and call.state == WAITING:
            minutes = max(1, round(eta / 60))
            url = self.prompts.place_url(call.lang, call.dialect, max(0, position - 1), minutes)
            say = f',"say":"{url}"'
        # Only a caller we have a number for can be called back (no phoneless entries).
        can_call_back = call.elder is not None and bool(call.elder.phone)
        offer = "true" if can_call_back and eta >= self.cfg.callback_offer_seconds else "false"
        call.caller.send_json(
            f'{{"type":"queue","call_id":"{call.call_id}","position":{position},'
            f'"ahead":{max(0, position - 1)},"eta_seconds":{eta},"state":"{state}",'
            f'"offer_callback":{offer},"at":{round(at, 3)}{say}}}'
        )

    def _send_no_estimate(self, call: LiveCall, position: int, state: str, at: float) -> None:
        """Nobody serving could take this caller: say so, when staff is due, offer a callback.

        Rare (not the surge path), so it is built with json.dumps."""
        assert call.caller is not None
        message: dict[str, Any] = {
            "type": "queue",
            "call_id": call.call_id,
            "position": position,
            "ahead": max(0, position - 1),
            "eta_seconds": None,
            "state": state,
            # A callback at once, for a caller we have a number for (no phoneless entries).
            "offer_callback": call.elder is not None and bool(call.elder.phone),
            "at": round(at, 3),
        }
        if state == line_mod.UNSTAFFED:
            nxt = self.next_staffed_at(call.dialect)
            message["next_staffed_at"] = None if nxt is None else int(nxt)
        if self.prompts is not None:
            message["say"] = self.prompts.url(call.lang, call.dialect, f"caller.say_{state}")
        call.caller.send(message)

    def _recheck(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is not None:
            call.recheck_timer = None
            self._send_queue_state(call)

    def line_summary(self) -> dict[str, Any]:
        """Callers waiting and agents by state, by dialect (for consoles and the wallboard)."""
        now = self.clock()
        waiting: dict[str, int] = {}
        longest: dict[str, float] = {}
        for dialect, count in self.line.dialects().items():
            waiting[dialect] = count
            oldest = self.line.oldest_arrival(dialect)
            longest[dialect] = 0.0 if oldest is None else max(0.0, now - oldest)
        states: dict[str, int] = {}
        for p in self.agents.values():
            states[p.status] = states.get(p.status, 0) + 1
        return {
            "waiting": waiting,
            "longest_wait": {k: round(v) for k, v in longest.items()},
            "agents": states,
            "total_waiting": len(self.line),
        }

    def _publish_line(self) -> None:
        """Coalesced: at most one line summary per 0.5 s to consoles and wallboards."""
        if self._line_scheduled:
            return
        self._line_scheduled = True
        asyncio.get_running_loop().call_later(0.5, self._send_line)

    def _send_line(self) -> None:
        self._line_scheduled = False
        summary = {"type": "line", **self.line_summary()}
        self.hub.publish("agents", summary)
        self.hub.publish("wallboard", summary)

    def snapshot(self) -> dict[str, Any]:
        """Everything in flight on this node, for the wallboard, metrics and monitoring."""
        now = self.clock()
        return {
            "at": now,
            "line": self.line_summary(),
            "agents": [
                {
                    "id": p.agent.id,
                    "name": p.agent.display_name,
                    "role": p.agent.role,
                    "dialects": list(p.agent.dialects),
                    "status": p.status,
                    "call_id": p.call_id,
                    "idle_seconds": round(now - p.idle_since),
                }
                for p in self.agents.values()
            ],
            "calls": [
                {
                    "call_id": c.call_id,
                    "state": c.state,
                    "dialect": c.dialect,
                    "elder": c.elder.name if c.elder else "",
                    "elder_id": c.elder.id if c.elder else None,
                    "agent_id": c.agent_id,
                    "waited_seconds": round(now - c.arrived_at),
                    "priority": c.priority,
                }
                for c in self.calls.values()
            ],
            "gateway_legs": self.gateway.open_legs,
        }

    # ----------------------------------------------------------------- call-flow surface
    # Hold and transfer (hotline/live/hold.py, hotline/live/transfer.py) own the states
    # ON_HOLD and TRANSFERRING and change a call only through these methods.
    def agents_call(self, agent_id: int, call_id: str) -> LiveCall:
        """This agent's live call, or Forbidden (not theirs, or no such call)."""
        call = self.calls.get(call_id)
        if call is None or call.agent_id != agent_id or call.state == ENDED:
            raise Forbidden("you are not the agent of this call", code="not_your_call")
        return call

    def change_state(
        self, call: LiveCall, state: str, kind: str, detail: dict[str, Any], event: CallEvent
    ) -> None:
        """Move a live call between CONNECTED, ON_HOLD and TRANSFERRING: on its timeline (as
        `kind`), and `event` told to the plug-ins (captions and guidance carry on)."""
        call.state = state
        self.record_event(call.call_id, kind, detail)
        self.events.emit(event)

    def record_event(self, call_id: str, kind: str, detail: dict[str, Any]) -> None:
        """Queue an event on the call's timeline, stamped now (not when the writer gets to it,
        which would put it after an explicitly timed event queued later).

        Events queued one after another are written in one transaction: a failover reopens
        thousands of sessions at once, and one transaction each kept the writer (and every
        write queued behind, such as a hang-up's) busy for seconds."""
        row = (call_id, self.clock(), kind, detail)
        if self._events_tail is not None and self._events_tail.add(row):
            return
        batch = _EventBatch(row)
        self.store_later(batch.write)
        self._events_tail = batch  # (after store_later, which ends the previous tail)

    def reserve_agent(self, presence: Presence, call: LiveCall, *, in_call: bool = False) -> None:
        """A transfer rings this (available) agent, or they talk with its first agent
        (`in_call`): either way they are not routed other callers."""
        presence.call_id = call.call_id
        self._set_agent_status(presence, routing.IN_CALL if in_call else routing.RINGING)

    def release_agent(self, presence: Presence) -> None:
        """A transfer ring ended without an answer: the agent is free again."""
        presence.call_id = None
        self._set_agent_status(presence, routing.AVAILABLE)
        self._route()

    def hand_over(self, call: LiveCall, to: Presence) -> int | None:
        """A transfer was answered: the call is the new agent's, the first agent goes to
        wrap-up; both parties are connected afresh (the caller offers again). Returns the
        first agent's id."""
        prior = call.agent_id
        call.agent_id = to.agent.id
        call.state = CONNECTED
        to.call_id = call.call_id
        self._set_agent_status(to, routing.IN_CALL)
        old = self.agents.get(prior or 0)
        if old is not None and old.call_id == call.call_id:
            self._set_agent_status(old, routing.WRAP_UP)
        self._connect_parties(call)
        self.events.emit(Reconnected(call))  # captions re-send their state to the new agent
        self._publish_line()
        return prior

    async def park(self, call: LiveCall, detail: dict[str, Any]) -> int | None:
        """A cold transfer waits for its busy target: the first agent leaves the call (to
        wrap-up), the elder stays on their page with no agent. Returns the first agent's id."""
        prior = call.agent_id
        call.agent_id = None
        self.change_state(call, TRANSFER_WAITING, "transfer_waiting", detail, TransferWaiting(call))
        old = self.agents.get(prior or 0)
        if old is not None and old.call_id == call.call_id:
            self._set_agent_status(old, routing.WRAP_UP)
        await self.gateway.close_leg(call.call_id, "agent")
        self._publish_line()
        return prior

    async def requeue(self, call: LiveCall, reason: str, passed_by: int | None = None) -> None:
        """A call with no agent goes to the head of the normal line (a transfer gave up);
        `passed_by` (who just declined it) is rung only if nobody else is left."""
        await self._requeue(call, reason, passed_by)


def ended_message(call_id: str, outcome: str, by: str) -> dict[str, Any]:
    """What a party is told when their call is over."""
    return {"type": "ended", "call_id": call_id, "reason": outcome, "by": by}


class _EventBatch:
    """Timeline events queued one after another: written together, in one transaction."""

    def __init__(self, row: tuple[str, float, str, dict[str, Any]]) -> None:
        self.rows = [row]
        self._lock = threading.Lock()
        self._started = False

    def add(self, row: tuple[str, float, str, dict[str, Any]]) -> bool:
        """Join the batch; False once the writer has started on it."""
        with self._lock:
            if not self._started:
                self.rows.append(row)
            return not self._started

    def write(self, db: Database) -> None:
        with self._lock:
            self._started = True
        calls_db.add_events(db, self.rows)


def _log_failure(future: Any) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("database write failed: %r", exc)
