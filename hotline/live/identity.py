"""Identity check on the live side: the spoken challenge and the recorded outcome.

The agent starts a challenge (`identity_challenge`): the elder's screen shows four large
digits and a prompt in their voice asks them to read them aloud; each final caption of the
elder is checked (hotline/identity.py) until the challenge expires. The agent then records
the outcome (`identity_result`: verified / not verified / not attempted, with a reason); it
goes on the call's timeline and into the elder's history. "Verified" needs a challenge that
passed during this call. The registered photo beside a still is HTTP (hotline/web/photos.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from hotline import identity
from hotline.config import Config
from hotline.errors import BadMessage, Conflict
from hotline.i18n import t
from hotline.live.events import (
    CallEvent,
    Ended,
    FinalCaption,
    Requeued,
    Transferred,
    TransferWaiting,
)
from hotline.live.messages import CALL_ID, Spec
from hotline.live.server import Context, LiveServer
from hotline.live.switchboard import CONNECTED, LiveCall, Switchboard
from hotline.prompts import Prompts

RESULT: Spec = {
    "call_id": (str, True, 64),
    "outcome": (str, True, 16),
    "reason": (str, False, 200),
}
SAY = "identity.say_read_digits"


@dataclass(slots=True)
class Challenge:
    digits: str
    expires_at: float
    timer: asyncio.TimerHandle | None = None
    passed: bool = False
    expired: bool = False


class LiveIdentity:
    """Spoken challenges per call, checked against the elder's final captions."""

    def __init__(self, sb: Switchboard, prompts: Prompts | None, cfg: Config) -> None:
        self.sb = sb
        self.prompts = prompts
        self.cfg = cfg
        self.challenges: dict[str, Challenge] = {}
        sb.events.subscribe(FinalCaption, self._on_final_caption)
        # The challenge is for this agent and this call in progress: over when it ends.
        for kind in (Ended, Requeued, Transferred, TransferWaiting):
            sb.events.subscribe(kind, self._drop_challenge)

    def attach(self, live: LiveServer) -> None:
        live.route("agent", "identity_challenge", CALL_ID, self._challenge)
        live.route("agent", "identity_result", RESULT, self._result)

    def _challenge(self, ctx: Context, msg: dict[str, Any]) -> None:
        call = self.sb.agents_call(ctx.agent_id or 0, msg["call_id"])
        if call.state != CONNECTED or call.caller is None:
            raise Conflict("the elder must be on the call", code="not_connected")
        old = self.challenges.pop(call.call_id, None)
        if old is not None and old.timer is not None:
            old.timer.cancel()
        seconds = self.cfg.identity_challenge_seconds
        challenge = Challenge(identity.new_challenge(), time.monotonic() + seconds)
        challenge.timer = asyncio.get_running_loop().call_later(
            seconds, self._expire, call.call_id, challenge
        )
        self.challenges[call.call_id] = challenge
        self.sb.record_event(call.call_id, "identity_challenge", {})
        say = self.prompts.url(call.lang, call.dialect, SAY) if self.prompts else ""
        call.caller.send(
            {
                "type": "identity_challenge",
                "call_id": call.call_id,
                "digits": challenge.digits,
                "text": t(call.lang, SAY),
                "say": say,
                "expires_in": seconds,
            }
        )
        ctx.conn.send(
            {
                "type": "identity_challenge",
                "call_id": call.call_id,
                "digits": challenge.digits,
                "expires_in": seconds,
            }
        )

    def _expire(self, call_id: str, challenge: Challenge) -> None:
        if self.challenges.get(call_id) is not challenge or challenge.passed:
            return
        challenge.expired = True
        call = self.sb.calls.get(call_id)
        if call is None:
            return
        self._finish_on_caller(call)
        if call.agent_id is not None:
            self.sb.send_agent(call.agent_id, {"type": "identity_expired", "call_id": call_id})

    def _on_final_caption(self, event: FinalCaption) -> None:
        if event.speaker == "caller":
            self._heard(event.call, event.text)

    def _drop_challenge(self, event: CallEvent) -> None:
        challenge = self.challenges.pop(event.call.call_id, None)
        if challenge is not None and challenge.timer is not None:
            challenge.timer.cancel()

    def _heard(self, call: LiveCall, text: str) -> None:
        challenge = self.challenges.get(call.call_id)
        if challenge is None or challenge.passed or challenge.expired:
            return  # nothing asked, already passed, or answered too late: ignored
        passed = identity.matches(challenge.digits, text)
        if passed:
            challenge.passed = True
            if challenge.timer is not None:
                challenge.timer.cancel()
            self.sb.record_event(call.call_id, "identity_spoken", {"passed": True})
            self._finish_on_caller(call)
        if call.agent_id is not None:
            self.sb.send_agent(
                call.agent_id,
                {
                    "type": "identity_heard",
                    "call_id": call.call_id,
                    "passed": passed,
                    "heard": identity.digits_in(text),
                },
            )

    def _finish_on_caller(self, call: LiveCall) -> None:
        if call.caller is not None:
            call.caller.send({"type": "identity_done", "call_id": call.call_id})

    def _result(self, ctx: Context, msg: dict[str, Any]) -> None:
        call = self.sb.agents_call(ctx.agent_id or 0, msg["call_id"])
        outcome, reason = msg["outcome"], (msg.get("reason") or "").strip()
        if outcome not in identity.OUTCOMES:
            raise BadMessage(
                "outcome must be verified, not_verified or not_attempted", code="bad_field"
            )
        challenge = self.challenges.get(call.call_id)
        if outcome == "verified":
            if challenge is not None and challenge.expired:
                raise Conflict("the challenge expired before it was read", code="challenge_expired")
            if challenge is None or not challenge.passed:
                raise Conflict("no spoken check passed in this call", code="challenge_not_passed")
        if outcome != "verified" and not reason:
            raise BadMessage("say why", code="missing_field")
        detail = {"outcome": outcome, "reason": reason, "agent_id": ctx.agent_id}
        self.sb.record_event(call.call_id, "identity", detail)
        ctx.conn.send({"type": "identity_recorded", "call_id": call.call_id, **detail})
