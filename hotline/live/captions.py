"""Live captions in a call: the gateway's audio legs feed caption streams; captions go out.

Caller speech -> captions for the agent (with glosses and alerts). Agent speech -> captions
for the caller in very large type (on by default for elders marked hard of hearing; both
sides can toggle). Final lines are stored masked; alerts are logged as call events and a
fraud cue flags the call for follow-up. Nothing here may break a call: when captions cannot
run, the agent is told why (`captions_status`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from hotline.asr.events import CaptionEvent, CaptionStatus
from hotline.asr.service import CaptionFeed, CaptionService
from hotline.asr.transcriber import CaptionsUnavailable
from hotline.db import calls as calls_db
from hotline.db import transcripts as transcripts_db
from hotline.errors import BadMessage, Forbidden
from hotline.live.events import Answered, Ended, FinalCaption, Reconnected, Requeued, Tapped
from hotline.live.messages import Spec
from hotline.live.server import Context, LiveServer
from hotline.live.switchboard import HELD, LIVE, LiveCall, Switchboard

log = logging.getLogger(__name__)

CALLER_DIALECT: Spec = {"dialect": (str, True, 16)}
TOGGLE: Spec = {"on": (bool, True, 0)}
DETECT_SECONDS = 4.0
LATENCY_BOUNDS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)  # seconds, for /metrics


@dataclass
class CallCaptions:
    """Caption state of one call."""

    caller_dialect: str
    agent_dialect: str
    for_caller: bool
    streams: dict[str, CaptionFeed] = field(default_factory=dict)
    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    fraud: bool = False


class LiveCaptions:
    """Opens a caption stream for each tapped leg and routes its events."""

    def __init__(self, sb: Switchboard, engine: CaptionService) -> None:
        self.sb = sb
        self.engine = engine
        self.calls: dict[str, CallCaptions] = {}
        # End of an utterance's audio -> its final caption sent, as cumulative buckets.
        self.latency_buckets = [0] * len(LATENCY_BOUNDS)
        self.latency_count = 0
        self.latency_sum = 0.0
        self._first_audio: dict[tuple[str, str], float] = {}
        sb.events.subscribe(Answered, self._on_answered)
        sb.events.subscribe(Tapped, self._on_tapped)
        sb.events.subscribe(Ended, self._on_gone)
        sb.events.subscribe(Requeued, self._on_gone)
        sb.events.subscribe(Reconnected, self._on_reconnected)

    def attach(self, live: LiveServer) -> None:
        live.route("agent", "caption_dialect", CALLER_DIALECT, self._agent_dialect)
        live.route("agent", "caller_captions", TOGGLE, self._agent_toggle)
        live.route("caller", "captions", TOGGLE, self._caller_toggle)

    # ----------------------------------------------------------------- call events
    def _on_answered(self, event: Answered) -> None:
        self._start(event.call)

    def _on_reconnected(self, event: Reconnected) -> None:
        # A call restored on this node (its holder changed) has no caption state yet; else
        # the agent (perhaps new, after a transfer) and the caller get the current state.
        if event.call.call_id not in self.calls:
            self._start(event.call)
        else:
            self._send_state(event.call)

    def _on_tapped(self, event: Tapped) -> None:
        self._open(event.call, event.speaker)

    def _on_gone(self, event: Ended | Requeued) -> None:
        call_id = event.call.call_id
        state = self.calls.pop(call_id, None)
        for speaker in ("caller", "agent"):
            self._first_audio.pop((call_id, speaker), None)
        if state is not None:
            for stream in state.streams.values():
                stream.close()

    def _start(self, call: LiveCall) -> None:
        self.calls[call.call_id] = CallCaptions(
            caller_dialect=call.dialect,
            agent_dialect=self._agent_dialect_for(call),
            for_caller=bool(call.elder and call.elder.hard_of_hearing),
        )
        self._send_state(call)

    def _agent_dialect_for(self, call: LiveCall) -> str:
        presence = self.sb.agents.get(call.agent_id or 0)
        if presence is None or call.dialect in presence.agent.dialects:
            return call.dialect  # the agent answers in the caller's dialect
        return presence.agent.dialects[0] if presence.agent.dialects else call.dialect

    def _open(self, call: LiveCall, speaker: str) -> None:
        state = self.calls.get(call.call_id)
        if state is None:
            return
        old = state.streams.pop(speaker, None)
        if old is not None:
            old.close()
        dialect = state.caller_dialect if speaker == "caller" else state.agent_dialect
        loop = asyncio.get_running_loop()
        try:
            stream = self.engine.open(
                dialect,
                lambda ev: self._on_caption(call.call_id, speaker, ev),
                loop,
                speaker=speaker,
                call_id=call.call_id,
            )
        except CaptionsUnavailable as exc:
            self._captions_off(call.call_id, speaker, dialect, exc.reason)
            return
        if stream.sample_rate != 16000:
            stream.close()
            self._captions_off(call.call_id, speaker, dialect, "unsupported_rate")
            return
        state.streams[speaker] = stream
        key = (call.call_id, speaker)
        self._first_audio.pop(key, None)

        def timed_feed(pcm: bytes, feed: Any = stream.feed) -> None:
            if key not in self._first_audio and key[0] in self.calls:
                # stream time 0 = when its first audio came (not after the call ended: a
                # frame still in flight then would leave an entry behind for good)
                self._first_audio[key] = time.monotonic() - len(pcm) / 32000
            feed(pcm)

        sink = timed_feed
        if speaker == "caller" and not call.dialect_known:
            candidates = self.detection_candidates(state.caller_dialect)
            if len(candidates) >= 2:
                sink = self._detecting_sink(call, candidates, timed_feed)
        self.sb.gateway.set_sink(call.call_id, speaker, sink)

    def _captions_off(self, call_id: str, speaker: str, dialect: str, reason: str) -> None:
        off = CaptionStatus(type="captions_status", state="off", dialect=dialect, reason=reason)
        self._on_caption(call_id, speaker, off)

    # ----------------------------------------------------------------- dialect detection
    def detection_candidates(self, preferred: str) -> list[str]:
        """One dialect per installed model (the preferred one first): what detection compares."""
        seen: set[str] = set()
        out = []
        for dialect in [preferred, *self.engine.registry.dialects]:
            spec = self.engine.registry.model_of(dialect) if dialect else None
            if spec is None or spec.name in seen or not self.engine.available(dialect)[0]:
                continue
            seen.add(spec.name)
            out.append(dialect)
        return out

    def _detecting_sink(self, call: LiveCall, candidates: list[str], feed: Any) -> Any:
        """Feed captions as usual, and collect the first seconds for dialect detection."""
        head = bytearray()
        need = int(DETECT_SECONDS * 16000) * 2

        def sink(pcm: bytes) -> None:
            feed(pcm)
            if len(head) < need:
                head.extend(pcm)
                if len(head) >= need:
                    future = self.engine.detect(bytes(head), candidates)
                    wrapped = asyncio.wrap_future(future)
                    wrapped.add_done_callback(lambda f: self._detected(call.call_id, f))

        return sink

    def _detected(self, call_id: str, future: asyncio.Future[Any]) -> None:
        call = self.sb.calls.get(call_id)
        state = self.calls.get(call_id)
        if call is None or state is None or future.cancelled() or future.exception():
            return
        detection = future.result()
        scores = {
            d: {"confidence": round(c, 3), "words": n} for d, (c, n) in detection.scores.items()
        }
        guess = {
            "type": "dialect_guess",
            "call_id": call_id,
            "dialect": detection.best,
            "confidence": scores.get(detection.best or "", {}).get("confidence"),
            "scores": scores,
        }
        agent = self.sb.agents.get(call.agent_id or 0)
        if agent is not None:
            agent.conn.send(guess)
        self.sb.record_event(call_id, "dialect_guess", guess)
        if detection.best and detection.best != state.caller_dialect:
            state.caller_dialect = detection.best
            stream = state.streams.get("caller")
            if stream is not None:
                stream.switch(detection.best)
            self._send_state(call)

    # ----------------------------------------------------------------- events out
    def _on_caption(self, call_id: str, speaker: str, caption: CaptionEvent) -> None:
        call = self.sb.calls.get(call_id)
        state = self.calls.get(call_id)
        if call is None or state is None:
            return
        event: dict[str, Any] = {**caption, "call_id": call_id, "speaker": speaker}
        if event["type"] == "captions_status":
            state.status[speaker] = event
        agent = self.sb.agents.get(call.agent_id or 0)
        if agent is not None:
            agent.conn.send(event)
        self.sb.hub.publish(f"monitor:{call_id}", event)
        if speaker == "agent" and state.for_caller and call.caller is not None:
            if event["type"] == "caption":
                call.caller.send(
                    {k: event[k] for k in ("type", "kind", "text", "speaker", "call_id")}
                )
        if event["type"] == "caption" and event.get("kind") == "final":
            self._observe_latency(call_id, speaker, event)
            dialect = state.caller_dialect if speaker == "caller" else state.agent_dialect
            self.sb.store_later(transcripts_db.add_line, call_id, speaker, dialect, event)
            if speaker == "caller":
                self._alerts(call, state, event.get("alerts") or [])
            # Other domains read finals too (the identity check listens for spoken digits).
            self.sb.events.emit(FinalCaption(call, speaker, event["text"]))

    def _observe_latency(self, call_id: str, speaker: str, event: dict[str, Any]) -> None:
        start = self._first_audio.get((call_id, speaker))
        end = event.get("utterance_end")
        if start is None or not isinstance(end, int | float):
            return
        latency = max(0.0, time.monotonic() - (start + end))
        self.latency_count += 1
        self.latency_sum += latency
        for i, bound in enumerate(LATENCY_BOUNDS):
            if latency <= bound:
                self.latency_buckets[i] += 1

    def latency(self) -> dict[str, Any]:
        """Final-caption latency so far (cumulative buckets), for /metrics."""
        return {
            "bounds": list(LATENCY_BOUNDS),
            "buckets": list(self.latency_buckets),
            "count": self.latency_count,
            "sum": round(self.latency_sum, 3),
        }

    def _alerts(self, call: LiveCall, state: CallCaptions, alerts: list[dict[str, Any]]) -> None:
        for alert in alerts:
            self.sb.record_event(call.call_id, "alert", alert)
            if alert.get("category") == "fraud" and not state.fraud:
                state.fraud = True
                self.sb.store_later(calls_db.flag_fraud, call.call_id)
        if alerts:
            log.info("call %s: %d alert(s) heard", call.call_id, len(alerts))

    def _send_state(self, call: LiveCall) -> None:
        state = self.calls.get(call.call_id)
        if state is None:
            return
        message = {
            "type": "captions_config",
            "call_id": call.call_id,
            "caller_dialect": state.caller_dialect,
            "agent_dialect": state.agent_dialect,
            "for_caller": state.for_caller,
        }
        agent = self.sb.agents.get(call.agent_id or 0)
        if agent is not None:
            agent.conn.send(message)
        if call.caller is not None:
            call.caller.send({"type": "captions_config", "for_caller": state.for_caller})

    # ----------------------------------------------------------------- messages in
    def _agents_call(self, ctx: Context) -> tuple[LiveCall, CallCaptions]:
        presence = self.sb.agents.get(ctx.agent_id or 0)
        call = self.sb.calls.get(presence.call_id or "") if presence else None
        state = self.calls.get(call.call_id) if call else None
        if call is None or state is None or call.state not in (*LIVE, HELD):
            raise Forbidden("captions need a call in progress", code="not_in_call")
        return call, state

    def _agent_dialect(self, ctx: Context, msg: dict[str, Any]) -> None:
        """The agent switches the caller's caption dialect; the recognizer is replaced live."""
        call, state = self._agents_call(ctx)
        dialect = msg["dialect"]
        if dialect not in self.engine.registry.dialects:
            raise BadMessage("unknown dialect", code="bad_field")
        state.caller_dialect = dialect
        stream = state.streams.get("caller")
        if stream is not None:
            stream.switch(dialect)
        elif self.sb.gateway.leg(call.call_id, "caller") is not None:
            self._open(call, "caller")
        self.sb.record_event(call.call_id, "caption_dialect", {"dialect": dialect})
        self._send_state(call)

    def _agent_toggle(self, ctx: Context, msg: dict[str, Any]) -> None:
        call, state = self._agents_call(ctx)
        state.for_caller = msg["on"]
        self._send_state(call)

    def _caller_toggle(self, ctx: Context, msg: dict[str, Any]) -> None:
        call = self.sb.calls.get(ctx.conn.subject or "")
        state = self.calls.get(call.call_id) if call else None
        if call is None or state is None or call.caller is not ctx.conn:
            raise Forbidden("no call in progress", code="not_in_call")
        state.for_caller = msg["on"]
        self._send_state(call)

    def stats(self) -> dict[str, Any]:
        return {
            cid: {sp: s.stats for sp, s in st.streams.items()} for cid, st in self.calls.items()
        }
