"""Property-based fuzzing of every websocket message type, for callers, agents and supervisors.

One server for the module and one connected call (rebuilt whenever a fuzzed message happens
to be valid and ends it). Each case sends one frame (random JSON for a known or unknown type,
missing/extra/mistyped fields, huge numbers, deep nesting, invalid UTF-8, SDP garbage, lone
surrogates), then a ping: the pong proves the socket still answers. Properties: no `internal`
error, no server-side exception, and a rejected message (answered with an error) changes
nothing (switchboard snapshot and database row counts before == after).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.db import agents as agents_db
from hotline.db import elders as elders_db
from tests.support import SLOW, Client, ServerThread, agent_ticket
from tests.support import test_config as config_for

CALLER_TYPES = ["call", "hangup", "signal", "tap_offer", "rate", "ping", "captions"]
CALLER_TYPES += ["guide_answer"]
AGENT_TYPES = ["status", "accept", "decline", "hangup", "ready", "signal", "tap_offer", "ping"]
AGENT_TYPES += ["caption_dialect", "caller_captions", "monitor", "unmonitor"]
AGENT_TYPES += ["guide_start", "guide_push", "guide_back", "guide_skip", "guide_text"]
AGENT_TYPES += ["guide_stop"]
FIELDS = [
    "call_id",
    "data",
    "sdp",
    "dialect",
    "status",
    "rating",
    "on",
    "script_id",
    "step_id",
    "text",
    "seq",
    "answer",
    "reason",
]
TABLES = [
    "calls",
    "call_events",
    "audit_log",
    "transcripts",
    "callbacks",
    "guidance_answers",
    "links",
]
# Cases per role: 1,800 websocket cases per run (HTTP adds 8,200); FUZZ_SCALE=10 for longer.
CASES = int(600 * float(os.environ.get("FUZZ_SCALE", "1")))

SDP_GARBAGE = st.one_of(
    st.text(max_size=200).map(lambda t: "v=0\r\n" + t),
    st.just("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" + "a=x\r\n" * 10),
    st.just("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 RTP/AVP 0\r\n"),
    st.text(max_size=50),
    st.just("v=0\n" + "m=" * 20000),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["available", "away", "good", "bad", "ko", "cmn", "yue", "done", "help"]),
    st.text(alphabet="\ud800\udfff\x00\u202e\ufeff\U0001f600", min_size=1, max_size=5),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SIGNAL_DATA = st.one_of(
    JSON,
    st.fixed_dictionaries({"kind": st.sampled_from(["offer", "answer", "x"]), "sdp": SDP_GARBAGE}),
    st.fixed_dictionaries({"candidate": st.one_of(st.none(), JSON, st.fixed_dictionaries({}))}),
)


def message(types: list[str]) -> st.SearchStrategy[Any]:
    """A frame: a JSON object for a known or unknown type, or plainly broken bytes/text."""
    kinds = st.one_of(st.sampled_from(types), st.text(max_size=12), SCALARS)
    fields = st.dictionaries(
        st.sampled_from(FIELDS),
        st.one_of(JSON, SDP_GARBAGE, SIGNAL_DATA, st.just("CALL")),
        max_size=4,
    )
    extra = st.dictionaries(st.text(max_size=6), JSON, max_size=2)
    obj = st.builds(lambda k, f, e: {**e, **f, "type": k}, kinds, fields, extra)
    broken = st.one_of(
        st.binary(max_size=64),  # binary frames, invalid UTF-8
        st.text(max_size=64),
        st.just("[" * 100_000 + "]" * 100_000),  # deep nesting
        st.just('{"type": "ping", "n": ' + "9" * 5000 + "}"),  # huge number
        st.just('{"type": "rate", "rating": 1e999999}'),
        st.just('{"type": "ping", "pad": "' + "x" * 70_000 + '"}'),  # over 64 KiB
        st.just(b'{"type": "ping", "x": "\xff\xfe"}'),
        st.just('{"type":"signal","data":' + '{"a":' * 5000 + "1" + "}" * 5000 + "}"),
    )
    return st.one_of(obj, obj, obj, broken)


class LoopThread:
    """An event loop in a thread for the test's own websocket clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout * SLOW)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Harness:
    """A connected call (caller + agent) and a supervisor, rebuilt when a case ends it."""

    def __init__(self, srv: ServerThread, loop: LoopThread) -> None:
        self.srv = srv
        self.loop = loop
        db = srv.db
        self.agent_id = agents_db.add(db, "fuzz-agent", "pw", ["cmn", "ko"]).id
        self.sup_id = agents_db.add(db, "fuzz-sup", "pw", ["cmn"], role="supervisor").id
        elder = elders_db.add(db, "fuzz elder", dialect="cmn")
        self.link = elders_db.new_link(db, elder.id).token
        self.clients: dict[str, Client] = {}
        self.call_id = ""
        self.rebuilds = 0
        self.loop.run(self.build())

    def agent_url(self, agent_id: int) -> str:
        token = agent_ticket(self.srv, agent_id)
        return f"{self.srv.ws}?role=agent&token={token}"

    async def build(self) -> None:
        for c in self.clients.values():
            c.ws.transport.abort()  # quick: no close handshake with a socket we replace
            c._task.cancel()
        self.rebuilds += 1
        agent = await Client.open(self.agent_url(self.agent_id))
        await agent.expect("hello")
        await agent.send({"type": "status", "status": "available"})
        sup = await Client.open(self.agent_url(self.sup_id))
        await sup.expect("hello")
        caller = await Client.open(f"{self.srv.ws}?role=caller&link={self.link}")
        await caller.expect("hello")
        await caller.send({"type": "call"})
        queued = await caller.expect("queued")
        ring = await agent.expect("ring", timeout=10)
        await agent.send({"type": "accept", "call_id": ring["call_id"]})
        await caller.expect("connected")
        self.call_id = queued["call_id"]
        self.clients = {"caller": caller, "agent": agent, "supervisor": sup}

    def state(self) -> Any:
        def snap() -> Any:
            s = self.srv.switchboard.snapshot()
            s.pop("at", None)
            for a in s["agents"]:
                a.pop("idle_seconds", None)
            for c in s["calls"]:
                c.pop("waited_seconds", None)
            return json.dumps(s, sort_keys=True, default=str)

        self.srv.switchboard._writer.submit(lambda: None).result(10)  # queued writes landed
        counts = {t: self.srv.db.query_one(f"SELECT COUNT(*) FROM {t}")[0] for t in TABLES}
        return self.srv.run(snap), counts

    async def exchange(self, role: str, frame: Any) -> list[dict[str, Any]]:
        """Send `frame`, then a ping; return what came back before the pong."""
        client = self.clients[role]
        while not client.inbox.empty():
            client.inbox.get_nowait()
        if isinstance(frame, dict):
            frame = json.dumps(
                {k: (self.call_id if v == "CALL" else v) for k, v in frame.items()},
                allow_nan=True,
            )
        await client.send(frame)
        await client.send({"type": "ping"})
        got = []
        while True:
            msg = await asyncio.wait_for(client.inbox.get(), 10 * SLOW)
            if msg.get("type") == "pong":
                return got
            got.append(msg)

    def healthy(self) -> bool:
        async def check() -> bool:
            for c in self.clients.values():
                if c.ws.close_code is not None:
                    return False
            return self.call_id in self.srv.switchboard.calls and (
                self.srv.switchboard.calls[self.call_id].state == "connected"
            )

        return self.loop.run(check())


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    srv = ServerThread(config_for(Path(tmp_path_factory.mktemp("fuzz-ws"))))
    loop = LoopThread()
    h = Harness(srv, loop)
    yield h

    async def close_all() -> None:
        await asyncio.gather(*(c.close() for c in h.clients.values()), return_exceptions=True)

    try:
        loop.run(close_all())
    finally:
        loop.stop()
        srv.stop()


FUZZ = settings(
    max_examples=max(1, CASES),
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)


def fuzz_one(h: Harness, role: str, frame: Any) -> None:
    before = h.state()
    errors_before = h.srv.running.live.errors
    try:
        replies = h.loop.run(h.exchange(role, frame))
    except (TimeoutError, Exception):
        replies = None  # the socket was closed (e.g. frame over 1 MiB) or the call moved on
    internal = [m for m in replies or [] if m.get("type") == "error" and m["code"] == "internal"]
    assert not internal, (frame, internal)
    assert h.srv.running.live.errors == errors_before, f"server-side exception for {frame!r}"
    rejected = replies is not None and any(m.get("type") == "error" for m in replies)
    if rejected:
        after = h.state()
        if after != before:
            import difflib

            a = json.dumps(json.loads(before[0]), indent=1).splitlines() + [str(before[1])]
            b = json.dumps(json.loads(after[0]), indent=1).splitlines() + [str(after[1])]
            diff = "\n".join(difflib.unified_diff(a, b, lineterm="", n=1))
            raise AssertionError(f"a rejected message changed state: {str(frame)[:300]}\n{diff}")
    if replies is None or not h.healthy():
        h.loop.run(h.build())


@FUZZ
@given(frame=message(CALLER_TYPES))
def test_fuzz_caller_messages(harness: Harness, frame: Any) -> None:
    fuzz_one(harness, "caller", frame)


@FUZZ
@given(frame=message(AGENT_TYPES))
def test_fuzz_agent_messages(harness: Harness, frame: Any) -> None:
    fuzz_one(harness, "agent", frame)


@FUZZ
@given(frame=message(AGENT_TYPES))
def test_fuzz_supervisor_messages(harness: Harness, frame: Any) -> None:
    fuzz_one(harness, "supervisor", frame)


def test_server_still_answers_after_fuzzing(harness: Harness) -> None:
    if not harness.healthy():  # fuzzing may end the call (a valid hangup): set up a new one
        harness.loop.run(harness.build())
    assert harness.healthy(), "after fuzzing, the server no longer connects a call"
    replies = harness.loop.run(harness.exchange("caller", {"type": "ping"}))
    assert replies == []


def test_lone_surrogate_from_caller_does_not_drop_the_agent(harness: Harness) -> None:
    """Regression (found here, fixed in ad37a40): a lone surrogate relayed to the other party
    made its writer raise UnicodeEncodeError and closed the receiver's socket."""
    h = harness
    if not h.healthy():
        h.loop.run(h.build())
    frame = (
        '{"type": "signal", "data": {"candidate": {"candidate": "candidate:\\ud800 1 udp",'
        ' "sdpMid": "0", "sdpMLineIndex": 0}}}'
    )
    h.loop.run(h.exchange("caller", frame))

    async def agent_alive() -> bool:
        # exchange() returned on the caller's pong, so the server has already relayed the
        # frame (or dropped the agent): a dropped agent gets no pong of its own.
        agent = h.clients["agent"]
        try:
            await agent.send({"type": "ping"})
            await agent.expect("pong", timeout=3)
            return True
        except Exception:
            return False

    alive = h.loop.run(agent_alive())
    if not alive:
        h.loop.run(h.build())
    assert alive, "the agent's console was disconnected by the caller's message"
