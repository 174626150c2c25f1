"""Callbacks on the live side: kept places, due bookings routed as priority tasks, and the
elder's page ringing when an agent calls back.

- A waiting caller presses "请客服给我回电" (`callback_request`): they keep their place and
  may close the page; a `keep_place` booking is recorded.
- Every few seconds, bookings that fell due (family bookings, retries, abandoned-call
  offers) enter the line as priority tasks for an agent of the right dialect.
- When an agent takes a callback, the elder's open page (their tablet's "home screen") rings
  with a big answer button; if no page is open, the agent gets the booking to dial by hand
  (the phone number is shown unmasked to that agent only, and logged, by the HTTP API).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from hotline import queue as line_mod
from hotline.callbacks.service import CallbackService
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from hotline.db.callbacks import Booking
from hotline.errors import Conflict, HotlineError, NotFound
from hotline.live.events import CallbackTaken, Ended
from hotline.live.hub import Conn
from hotline.live.messages import Spec
from hotline.live.server import Context, LiveServer
from hotline.live.switchboard import CALLING_ELDER, LiveCall, Switchboard
from hotline.prompts import Prompts

log = logging.getLogger(__name__)

ANSWER: Spec = {"call_id": (str, True, 64)}
START: Spec = {"booking_id": (int, True, 0)}
PAGE_RING_SECONDS = 45.0


class LiveCallbacks:
    """Connects the callbacks domain (bookings in SQLite) with the live line."""

    def __init__(self, sb: Switchboard, service: CallbackService, prompts: Prompts) -> None:
        self.sb = sb
        self.service = service
        self.prompts = prompts
        self.ringing: dict[str, tuple[Conn, asyncio.TimerHandle]] = {}
        sb.events.subscribe(CallbackTaken, self._on_taken)
        sb.events.subscribe(Ended, self._on_ended)

    def attach(self, live: LiveServer) -> None:
        live.route("caller", "callback_request", {}, self._request)
        live.route("caller", "answer_callback", ANSWER, self._answer)
        live.route("agent", "start_callback", START, self._start)

    # ----------------------------------------------------------------- caller messages
    async def _request(self, ctx: Context, msg: dict[str, Any]) -> None:
        elder = ctx.conn.elder
        if elder is None or not elder.phone:
            # Nobody to call back: such an entry would wait (and ring agents) for no one.
            raise Conflict(
                "we have no number to call you back on; please stay on the line",
                code="no_phone",
            )
        call = self.sb.request_callback(ctx.conn)
        position = self.sb.line.position(call.call_id)
        eta = call.last_queue_msg[1] if call.last_queue_msg else 0
        if eta is None:  # nobody serving: due when the next shift starts (or now, unknown)
            nxt = self.sb.next_staffed_at(call.dialect)
            eta = 0 if nxt is None else max(0, int(nxt - self.sb.clock()))
        booking_id = await asyncio.to_thread(
            self.service.request_from_waiting_caller,
            call.call_id,
            call.elder.id if call.elder else None,
            eta_seconds=eta,
        )
        call.booking_id = booking_id
        ctx.conn.send(
            {
                "type": "callback_booked",
                "call_id": call.call_id,
                "position": position,
                "say": self.prompts.url(call.lang, call.dialect, "caller.say_callback_booked"),
            }
        )

    def _answer(self, ctx: Context, msg: dict[str, Any]) -> None:
        entry = self.ringing.get(msg["call_id"])
        call = self.sb.calls.get(msg["call_id"])
        if entry is None or call is None or entry[0] is not ctx.conn:
            raise NotFound("this callback is not ringing here", code="not_ringing")
        self.ringing.pop(call.call_id)[1].cancel()
        self.sb.elder_answered(call, ctx.conn)
        if call.booking_id is not None and call.agent_id is not None:
            task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(
                    self.service.record_attempt,
                    call.booking_id,
                    call.agent_id,
                    "reached",
                    call_id=call.call_id,
                )
            )
            task.add_done_callback(_log_failure)

    async def _start(self, ctx: Context, msg: dict[str, Any]) -> None:
        """The agent starts a callback they claimed from the list, now."""
        agent_id = ctx.agent_id or 0
        presence = self.sb.agents.get(agent_id)
        if presence is None or presence.status not in ("available", "away", "wrap_up"):
            raise Conflict("finish the current call first", code="busy")
        booking = await asyncio.to_thread(self.service.get, msg["booking_id"])
        if booking.claimed_by != agent_id:
            raise Conflict("claim this callback first", code="not_claimed")
        call = await self._new_call(booking)
        self.sb.take_directly(call, presence)

    # ----------------------------------------------------------------- due bookings
    async def poll(self) -> int:
        """Route every booking that fell due; returns how many entered the line."""
        due = await asyncio.to_thread(self.service.claim_due)
        for booking in due:
            await self.enqueue(booking)
        return len(due)

    async def requeue_fired(self) -> None:
        """After a restart: bookings that fired but nobody took go back into the line."""
        for booking in await asyncio.to_thread(self.service.queued):
            if booking.claimed_by is None:
                await self.enqueue(booking)

    async def enqueue(self, booking: Booking) -> None:
        if booking.kind == "keep_place" and booking.source_call_id in self.sb.calls:
            return  # its caller still holds their place in line
        self.sb.enqueue_callback(await self._new_call(booking))

    async def _new_call(self, booking: Booking) -> LiveCall:
        elder = None
        if booking.elder_id is not None:
            elder = await asyncio.to_thread(elders_db.get, self.sb.db, booking.elder_id)
        now = self.sb.clock()
        call = LiveCall(
            call_id=uuid.uuid4().hex[:16],
            dialect=booking.dialect,
            lang=booking.lang or (elder.lang if elder else self.sb.cfg.default_lang),
            arrived_at=now,
            rejoin_hash="",
            elder=elder,
            priority=line_mod.PRIORITY,
            kind="callback",
            booking_id=booking.id,
        )
        await asyncio.to_thread(
            calls_db.create,
            self.sb.db,
            call.call_id,
            elder_id=elder.id if elder else None,
            dialect=call.dialect,
            kind="callback",
            arrived_at=now,
            priority=call.priority,
        )
        return call

    # ----------------------------------------------------------------- call events
    def _on_taken(self, event: CallbackTaken) -> None:
        task = asyncio.get_running_loop().create_task(self._taken(event.call))
        task.add_done_callback(_log_failure)

    def _on_ended(self, event: Ended) -> None:
        call = event.call
        entry = self.ringing.pop(call.call_id, None)
        if entry is not None:
            entry[1].cancel()
            entry[0].send({"type": "callback_cancelled", "call_id": call.call_id})
        if event.outcome == "abandoned" and event.by == "network" and not call.unattended:
            # The caller vanished while waiting (not "I'll leave"): offer agents a callback.
            elder_id = call.elder.id if call.elder else None
            offer = asyncio.get_running_loop().create_task(
                asyncio.to_thread(self.service.abandoned, call.call_id, elder_id)
            )
            offer.add_done_callback(_log_failure)

    async def _taken(self, call: LiveCall) -> None:
        """An agent took a callback: ring the elder's page, or give the agent the number."""
        agent_id = call.agent_id or 0
        booking = await self._claim(call, agent_id)
        page = call.caller or (self.sb.idle_page(call.elder.id) if call.elder else None)
        message = {
            "type": "calling_elder",
            "call_id": call.call_id,
            "booking_id": booking.id if booking else None,
            "elder": call.elder.name if call.elder else "",
            "page_open": page is not None,
        }
        presence = self.sb.agents.get(agent_id)
        if presence is not None:
            presence.conn.send(message)
        if page is None:
            await self.sb.end_call(call, outcome="callback_by_phone", by="agent")
            return
        timer = asyncio.get_running_loop().call_later(
            PAGE_RING_SECONDS, lambda: asyncio.ensure_future(self._page_unanswered(call.call_id))
        )
        self.ringing[call.call_id] = (page, timer)
        page.send(
            {
                "type": "incoming_callback",
                "call_id": call.call_id,
                "agent_name": presence.agent.display_name if presence else "",
                "say": self.prompts.url(call.lang, call.dialect, "caller.say_callback_ringing"),
            }
        )

    async def _claim(self, call: LiveCall, agent_id: int) -> Booking | None:
        def claim() -> Booking | None:
            booking_id = call.booking_id
            if booking_id is None:
                fired = self.service.turn_reached(call.call_id)
                booking_id = fired.id if fired else None
            if booking_id is None:
                return None
            return self.service.claim(booking_id, agent_id)

        try:
            booking = await asyncio.to_thread(claim)
        except (Conflict, HotlineError) as exc:
            log.warning("call %s: callback claim failed: %s", call.call_id, exc.code)
            return None
        if booking is not None:
            call.booking_id = booking.id
        return booking

    async def _page_unanswered(self, call_id: str) -> None:
        entry = self.ringing.pop(call_id, None)
        call = self.sb.calls.get(call_id)
        if entry is None or call is None or call.state != CALLING_ELDER:
            return
        entry[0].send({"type": "callback_cancelled", "call_id": call_id})
        await self.sb.end_call(call, outcome="callback_no_answer", by="system")


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("callbacks task failed: %r", task.exception())
