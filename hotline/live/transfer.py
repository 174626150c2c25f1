"""Transfer and escalation on the live side: cold transfer of a call to a named agent, to
any agent of a dialect, or to the supervisors, with a note that travels.

States: the call goes CONNECTED/ON_HOLD -> TRANSFERRING while its target is rung; the first
agent stays on the call until the target answers, so the elder is never alone. On the
target's `accept_transfer` the call is handed over (the first agent goes to wrap-up, the
target gets the context card, the note and the captions so far). A decline, no answer in
`ring_timeout_seconds`, a cancel, or the target vanishing returns the call to the first
agent (CONNECTED) and the elder is told so in their voice. Every transfer and its result is
on the call's timeline; answered ones count in `calls.transfers`.

A cold transfer whose target is signed in but busy (or away) waits for it at the head: the
call goes TRANSFER_WAITING, the first agent leaves (wrap-up; `transfer_waiting`), the elder
stays on their page and is told in their voice to wait for a colleague. Before every routing
round the waiting transfers claim free agents who fit their target (hotline/transfer.py
`assign_waiting`), so the elder never goes behind callers who came after them; the target is
rung with who transferred and the note. After `transfer_wait_seconds`, or when that ring is
declined or not answered, the call goes to the head of the normal line, the elder told.

Warm transfer (`mode: "warm"`): when the target answers, the two agents first talk on their
own browser-to-browser connection (`consult_signal`; a mesh: the server relays SDP only)
while the elder stays on hold; the first agent then completes the transfer (the same
hand-over as a cold one) or cancels it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from hotline import transfer as rules
from hotline.config import Config
from hotline.db import agents as agents_db
from hotline.db import audit, call_flow
from hotline.db import transcripts as transcripts_db
from hotline.errors import BadMessage, Conflict, Forbidden
from hotline.i18n import t
from hotline.live.events import (
    CallerAway,
    Ended,
    Requeued,
    TransferFailed,
    Transferred,
    TransferRung,
    TransferStarted,
    TransferTargetFree,
)
from hotline.live.messages import CALL_ID, Spec, check_signal_data
from hotline.live.server import Context, LiveServer
from hotline.live.switchboard import (
    CONNECTED,
    ON_HOLD,
    TRANSFER_WAITING,
    TRANSFERRING,
    LiveCall,
    Presence,
    Switchboard,
)
from hotline.privacy import mask_text
from hotline.prompts import Prompts
from hotline.routing import AVAILABLE

log = logging.getLogger(__name__)

TRANSFER: Spec = {
    "call_id": (str, True, 64),
    "to": (str, True, 16),
    "agent_id": (int, False, 0),
    "dialect": (str, False, 16),
    "note": (str, False, rules.NOTE_MAX),
    "mode": (str, False, 8),
}
CONSULT_SIGNAL: Spec = {
    "call_id": (str, True, 64),
    "data": (dict, True, 0),
}
SAY_TRANSFERRING = "transfer.say_transferring"
SAY_FAILED = "transfer.say_failed"
SAY_WAITING = "transfer.say_waiting"
SAY_BACK_IN_LINE = "transfer.say_back_in_line"


@dataclass(slots=True)
class Pending:
    call_id: str
    from_agent: int
    to_agent: int
    kind: str
    note: str
    started_at: float
    mode: str = rules.COLD
    consulting: bool = False  # warm: the target answered, the two agents are talking
    timer: asyncio.TimerHandle | None = None
    parked: bool = False  # rung after waiting at the head: the first agent has left


@dataclass(slots=True)
class Parked:
    """A cold transfer waiting at the head for its busy target."""

    rule: rules.Waiting
    from_name: str
    note: str
    timer: asyncio.TimerHandle | None = None


class LiveTransfer:
    """Rings a transfer's target and hands the call over, or back."""

    def __init__(
        self, sb: Switchboard, prompts: Prompts | None, cfg: Config, dialects: set[str]
    ) -> None:
        self.sb = sb
        self.prompts = prompts
        self.cfg = cfg
        self.dialects = dialects
        self.pending: dict[str, Pending] = {}
        self.waiting: dict[str, Parked] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        sb.events.subscribe(Ended, self._on_ended)
        sb.events.subscribe(Requeued, self._on_requeued)
        sb.events.subscribe(CallerAway, self._on_caller_away)
        sb.claimers.append(self._claim)

    def attach(self, live: LiveServer) -> None:
        live.route("agent", "transfer", TRANSFER, self._transfer)
        live.route("agent", "cancel_transfer", CALL_ID, self._cancel)
        live.route("agent", "accept_transfer", CALL_ID, self._accept)
        live.route("agent", "decline_transfer", CALL_ID, self._decline)
        live.route("agent", "transfer_targets", {}, self._targets)
        live.route("agent", "consult_signal", CONSULT_SIGNAL, self._consult_signal)
        live.route("agent", "complete_transfer", CALL_ID, self._complete)

    def _targets(self, ctx: Context, msg: dict[str, Any]) -> None:
        """Who is on duty now, for the console's transfer picker (names, dialects, status)."""
        ctx.conn.send(
            {
                "type": "transfer_targets",
                "agents": [
                    {
                        "id": p.agent.id,
                        "name": p.agent.display_name,
                        "role": p.agent.role,
                        "dialects": list(p.agent.dialects),
                        "status": p.status,
                    }
                    for p in sorted(self.sb.agents.values(), key=lambda p: p.agent.display_name)
                    if p.agent.id != ctx.agent_id
                ],
            }
        )

    # ----------------------------------------------------------------- the first agent
    async def _transfer(self, ctx: Context, msg: dict[str, Any]) -> None:
        me = ctx.agent_id or 0
        call = self.sb.agents_call(me, msg["call_id"])
        if call.state in (TRANSFERRING, TRANSFER_WAITING) or call.call_id in self.pending:
            raise Conflict("a transfer of this call is already ringing", code="transfer_pending")
        if call.state not in (CONNECTED, ON_HOLD):
            raise Conflict("only a call in progress can be transferred", code="not_connected")
        mode = msg.get("mode") or rules.COLD
        if mode not in (rules.COLD, rules.WARM):
            raise BadMessage("mode must be cold or warm", code="bad_field")
        target = rules.parse_target(
            msg["to"], msg.get("agent_id"), msg.get("dialect"), self.dialects
        )
        exists = True
        if target.kind == "agent" and target.agent_id not in self.sb.agents:
            account = await asyncio.to_thread(agents_db.get, self.sb.db, target.agent_id or 0)
            exists = account is not None and not account.disabled
        on_duty = [
            rules.OnDuty(p.agent.id, p.agent.role, p.agent.dialects, p.status, p.idle_since)
            for p in self.sb.agents.values()
        ]
        chosen = rules.pick(target, on_duty, me, exists, may_wait=mode == rules.COLD)
        # The call may have changed while the account was looked up.
        if call.state not in (CONNECTED, ON_HOLD) or call.call_id in self.pending:
            raise Conflict("the call changed; try again", code="not_connected")
        if chosen is None:
            await self._park(call, ctx, target, (msg.get("note") or "").strip())
            return
        presence = self.sb.agents[chosen.agent_id]
        self._start(call, ctx, presence, target, (msg.get("note") or "").strip(), mode)

    def _start(
        self,
        call: LiveCall,
        ctx: Context,
        to: Presence,
        target: rules.Target,
        note: str,
        mode: str,
    ) -> None:
        me = ctx.agent_id or 0
        note = mask_text(note)
        pending = Pending(
            call.call_id, me, to.agent.id, target.kind, note, time.monotonic(), mode=mode
        )
        self.pending[call.call_id] = pending
        detail = {"from": me, "to": to.agent.id, "to_kind": target.kind, "note": note}
        detail["mode"] = mode
        if target.dialect:
            detail["dialect"] = target.dialect
        self.sb.change_state(call, TRANSFERRING, "transfer", detail, TransferStarted(call))
        self._ring(call, pending, to, self._name(me))
        self._tell_caller(call, SAY_TRANSFERRING, "on_hold")
        ctx.conn.send(
            {
                "type": "transfer_started",
                "call_id": call.call_id,
                "to_name": to.agent.display_name,
                "to_kind": target.kind,
                "mode": mode,
                "timeout_seconds": self.cfg.ring_timeout_seconds,
            }
        )

    async def _park(self, call: LiveCall, ctx: Context, target: rules.Target, note: str) -> None:
        """Cold, target busy: the call waits at the head for it; the first agent is free."""
        me = ctx.agent_id or 0
        note = mask_text(note)
        wait = self.cfg.transfer_wait_seconds
        detail: dict[str, Any] = {"from": me, "to_kind": target.kind, "note": note}
        detail.update(mode=rules.COLD, waiting=True, max_wait_seconds=wait)
        if target.agent_id is not None:
            detail["to"] = target.agent_id
        if target.dialect:
            detail["dialect"] = target.dialect
        parked = Parked(
            rules.Waiting(call.call_id, target, me, call.arrived_at), self._name(me), note
        )
        self.waiting[call.call_id] = parked
        await self.sb.park(call, detail)
        parked.timer = asyncio.get_running_loop().call_later(
            wait, self._wait_over, call.call_id, "wait_expired"
        )
        self._tell_caller(call, SAY_WAITING, "on_hold")
        to = self.sb.agents.get(target.agent_id or 0)
        ctx.conn.send(
            {
                "type": "transfer_waiting",
                "call_id": call.call_id,
                "to_kind": target.kind,
                "to_name": to.agent.display_name if to else "",
                "dialect": target.dialect,
                "max_wait_seconds": wait,
            }
        )

    def _claim(self) -> None:
        """Before each routing round: ring the free targets of transfers waiting at the head."""
        if not self.waiting:
            return
        free = [
            rules.OnDuty(p.agent.id, p.agent.role, p.agent.dialects, p.status, p.idle_since)
            for p in self.sb.agents.values()
            if p.status == AVAILABLE
        ]
        if not free:
            return
        waiting = [w.rule for w in self.waiting.values()]
        for call_id, agent_id in rules.assign_waiting(waiting, free):
            self._ring_waiting(call_id, self.sb.agents[agent_id])

    def _ring_waiting(self, call_id: str, to: Presence) -> None:
        parked = self.waiting.pop(call_id)
        if parked.timer is not None:
            parked.timer.cancel()
        call = self.sb.calls.get(call_id)
        if call is None or call.state != TRANSFER_WAITING:
            return
        pending = Pending(
            call_id,
            parked.rule.from_agent,
            to.agent.id,
            parked.rule.target.kind,
            parked.note,
            time.monotonic(),
            parked=True,
        )
        self.pending[call_id] = pending
        detail = {"to": to.agent.id, "to_kind": pending.kind}
        free = TransferTargetFree(call)
        self.sb.change_state(call, TRANSFERRING, "transfer_target_free", detail, free)
        self._ring(call, pending, to, parked.from_name)

    def _ring(self, call: LiveCall, pending: Pending, to: Presence, from_name: str) -> None:
        """Ring the transfer's target with who transfers and the note."""
        self.sb.reserve_agent(to, call)
        to.conn.send(
            {
                "type": "ring",
                "call_id": call.call_id,
                "elder": call.elder.name if call.elder else "",
                "dialect": call.dialect,
                "waited_seconds": round(self.sb.clock() - call.arrived_at, 1),
                "timeout_seconds": self.cfg.ring_timeout_seconds,
                "kind": "transfer",
                "transfer": {
                    "from": from_name,
                    "to_kind": pending.kind,
                    "note": pending.note,
                    "mode": pending.mode,
                },
            }
        )
        self.sb.events.emit(TransferRung(call, to.agent.id))
        pending.timer = asyncio.get_running_loop().call_later(
            self.cfg.ring_timeout_seconds, self._timed_out, call.call_id, to.agent.id
        )

    def _wait_over(self, call_id: str, reason: str) -> None:
        """The target did not come free in time: the call goes to the head of the line."""
        parked = self.waiting.pop(call_id, None)
        call = self.sb.calls.get(call_id)
        if parked is not None and call is not None and call.state == TRANSFER_WAITING:
            self._back_to_line(call, reason)

    def _back_to_line(self, call: LiveCall, reason: str, passed_by: int | None = None) -> None:
        """A call with no agent (the transfer gave up) waits first in line; the elder told.
        The colleague who declined (or did not answer) is rung only if nobody else is left."""
        self._tell_caller(call, SAY_BACK_IN_LINE, "transfer_failed")
        requeue = self.sb.requeue(call, f"transfer_{reason}", passed_by)
        task = asyncio.get_running_loop().create_task(requeue)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cancel(self, ctx: Context, msg: dict[str, Any]) -> None:
        call = self.sb.agents_call(ctx.agent_id or 0, msg["call_id"])
        if call.call_id not in self.pending:
            raise Conflict("no transfer of this call is ringing", code="no_transfer")
        self._fail(call, "cancelled")

    # ----------------------------------------------------------------- the target
    def _mine(self, ctx: Context, call_id: str) -> tuple[LiveCall, Pending]:
        pending = self.pending.get(call_id)
        call = self.sb.calls.get(call_id)
        if pending is None or call is None or pending.to_agent != ctx.agent_id:
            raise Conflict("this transfer is not ringing you", code="not_ringing")
        return call, pending

    async def _accept(self, ctx: Context, msg: dict[str, Any]) -> None:
        call, pending = self._mine(ctx, msg["call_id"])
        presence = self.sb.agents.get(ctx.agent_id or 0)
        if presence is None or pending.consulting:
            raise Conflict("this transfer is not ringing you", code="not_ringing")
        if pending.mode == rules.WARM:
            self._consult(call, pending, presence)
            return
        await self._hand_over(ctx, call, pending, presence)

    def _consult(self, call: LiveCall, pending: Pending, to: Presence) -> None:
        """Warm: the target answered; the two agents talk first (the elder stays on hold)."""
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None
        pending.consulting = True
        self.sb.reserve_agent(to, call, in_call=True)
        self.sb.store_later(call_flow.consult_started, call.call_id, to.agent.id, self.sb.clock())
        ice = self.sb.ice_servers()
        first_name = self._name(pending.from_agent)
        self.sb.send_agent(
            pending.from_agent,
            {
                "type": "consult",
                "call_id": call.call_id,
                "role": "offerer",
                "with": to.agent.display_name,
                "ice_servers": ice,
            },
        )
        to.conn.send(
            {
                "type": "consult",
                "call_id": call.call_id,
                "role": "answerer",
                "with": first_name,
                "note": pending.note,
                "ice_servers": ice,
            }
        )

    def _consult_signal(self, ctx: Context, msg: dict[str, Any]) -> None:
        """SDP and ICE between the two agents of a warm transfer, and nobody else."""
        pending = self.pending.get(msg["call_id"])
        if pending is None or not pending.consulting:
            raise Conflict("no consultation of this call is going on", code="not_consulting")
        me = ctx.agent_id or 0
        if me not in (pending.from_agent, pending.to_agent):
            raise Forbidden("you are not part of this consultation", code="not_your_call")
        data = check_signal_data(msg["data"])
        other = pending.to_agent if me == pending.from_agent else pending.from_agent
        self.sb.send_agent(
            other, {"type": "consult_signal", "call_id": pending.call_id, "data": data}
        )

    async def _complete(self, ctx: Context, msg: dict[str, Any]) -> None:
        """Warm: the first agent hands the call to the colleague they have been talking to."""
        call = self.sb.agents_call(ctx.agent_id or 0, msg["call_id"])
        pending = self.pending.get(call.call_id)
        if pending is None or not pending.consulting:
            raise Conflict("no consultation of this call is going on", code="not_consulting")
        to = self.sb.agents.get(pending.to_agent)
        if to is None:
            self._fail(call, "target_gone")
            raise Conflict("your colleague is gone; the call stays with you", code="target_gone")
        await self._hand_over(self._ctx_of(to), call, pending, to)

    def _ctx_of(self, presence: Presence) -> Context:
        return Context(presence.conn, "agent", presence.agent.id)

    async def _hand_over(
        self, ctx: Context, call: LiveCall, pending: Pending, presence: Presence
    ) -> None:
        self._forget(pending)
        prior = self.sb.hand_over(call, presence)
        detail = {
            "from": pending.from_agent,
            "to": presence.agent.id,
            "to_kind": pending.kind,
            "note": pending.note,
            "mode": pending.mode,
            "ring_seconds": round(time.monotonic() - pending.started_at, 1),
        }
        self.sb.store_later(
            call_flow.transferred, call.call_id, detail, presence.agent.id, self.sb.clock()
        )
        if prior is not None:
            self.sb.send_agent(
                prior,
                {
                    "type": "transferred",
                    "call_id": call.call_id,
                    "to_name": presence.agent.display_name,
                },
            )
        ctx.conn.send(
            {
                "type": "transfer_note",
                "call_id": call.call_id,
                "from": self._name(pending.from_agent),
                "note": pending.note,
            }
        )
        await self._captions_so_far(ctx, call)
        self.sb.events.emit(Transferred(call, pending.from_agent))

    async def _captions_so_far(self, ctx: Context, call: LiveCall) -> None:
        """The call's final captions up to now, for the agent who takes it over (audited)."""
        await self.sb.store(
            audit.record,
            f"agent:{ctx.agent_id}",
            "transcript_read",
            f"call:{call.call_id}",
            "transfer",
        )
        lines = await asyncio.to_thread(transcripts_db.lines, self.sb.db, call.call_id)
        ctx.conn.send(
            {
                "type": "captions_so_far",
                "call_id": call.call_id,
                "lines": [
                    {"speaker": r["speaker"], "text": r["text"], "gloss": r["gloss"], "at": r["at"]}
                    for r in lines
                ],
            }
        )

    def _decline(self, ctx: Context, msg: dict[str, Any]) -> None:
        call, _ = self._mine(ctx, msg["call_id"])
        self._fail(call, "declined")

    def _timed_out(self, call_id: str, to_agent: int) -> None:
        pending = self.pending.get(call_id)
        call = self.sb.calls.get(call_id)
        if pending is not None and call is not None and pending.to_agent == to_agent:
            self._fail(call, "no_answer")

    # ----------------------------------------------------------------- failure and cleanup
    def _fail(self, call: LiveCall, reason: str) -> None:
        """The transfer did not happen: the call is the first agent's again, the elder told."""
        pending = self.pending.get(call.call_id)
        if pending is None:
            return
        self._forget(pending)
        self._release_target(pending)
        if pending.parked:  # the first agent has left: first in line instead
            self._back_to_line(call, reason, passed_by=pending.to_agent)
            return
        # Back to talking with the first agent (a hold before the transfer is not resumed:
        # the elder has just been told, and now hears their agent again).
        failed = TransferFailed(call, reason)
        self.sb.change_state(call, CONNECTED, "transfer_failed", {"reason": reason}, failed)
        self._tell_caller(call, SAY_FAILED, "transfer_failed")
        self.sb.send_agent(
            pending.from_agent,
            {"type": "transfer_failed", "call_id": call.call_id, "reason": reason},
        )

    def _forget(self, pending: Pending) -> None:
        self.pending.pop(pending.call_id, None)
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None

    def _release_target(self, pending: Pending) -> None:
        to = self.sb.agents.get(pending.to_agent)
        if to is not None:
            kind = "consult_ended" if pending.consulting else "ring_cancelled"
            to.conn.send({"type": kind, "call_id": pending.call_id})
            if to.call_id == pending.call_id:
                self.sb.release_agent(to)

    # The call ended, its agent dropped or the caller's page went away mid-transfer: the
    # target stops ringing (the switchboard already decided what happens to the call).
    def _on_ended(self, event: Ended) -> None:
        self._unpark(event.call)
        self._abandon(event.call, "ended")

    def _on_requeued(self, event: Requeued) -> None:
        self._abandon(event.call, "requeued")

    def _on_caller_away(self, event: CallerAway) -> None:
        call = event.call
        parked = self._unpark(call)
        if parked or self._parked_ring(call):
            self._forget_ring(call)
            # Nobody is on the call: wait first in line, where a returning page rejoins.
            task = asyncio.get_running_loop().create_task(
                self.sb.requeue(call, "transfer_caller_away")
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        pending = self._abandon(call, "caller_away")
        if pending is not None:
            self.sb.send_agent(
                pending.from_agent,
                {"type": "transfer_failed", "call_id": call.call_id, "reason": "caller_away"},
            )

    def _unpark(self, call: LiveCall) -> bool:
        """Stop a transfer of the call waiting at the head; whether there was one."""
        parked = self.waiting.pop(call.call_id, None)
        if parked is not None and parked.timer is not None:
            parked.timer.cancel()
        return parked is not None

    def _abandon(self, call: LiveCall, why: str) -> Pending | None:
        """Stop a ringing (or consulting) transfer of the call; on its timeline as `why`."""
        pending = self.pending.get(call.call_id)
        if pending is not None:
            self._forget(pending)
            self._release_target(pending)
            self.sb.store_later(call_flow.transfer_abandoned, call.call_id, why, self.sb.clock())
        return pending

    def _parked_ring(self, call: LiveCall) -> bool:
        pending = self.pending.get(call.call_id)
        return pending is not None and pending.parked

    def _forget_ring(self, call: LiveCall) -> None:
        pending = self.pending.get(call.call_id)
        if pending is not None:
            self._forget(pending)
            self._release_target(pending)

    # ----------------------------------------------------------------- helpers
    def _tell_caller(self, call: LiveCall, key: str, kind: str) -> None:
        if call.caller is None:
            return
        say = self.prompts.url(call.lang, call.dialect, key) if self.prompts else ""
        call.caller.send(
            {
                "type": kind,
                "call_id": call.call_id,
                "text": t(call.lang, key),
                "say": say,
                "again": False,
                "reason": "transfer",
            }
        )

    def _name(self, agent_id: int) -> str:
        presence = self.sb.agents.get(agent_id)
        return presence.agent.display_name if presence else ""
