"""The call path over real websockets: tap, ring, accept, hang up, drops and rejoins.

Every test runs a real hotline (HTTP + websocket + gateway) in a thread on free ports with a
temp database; clients are real websocket connections on the test's own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hotline.db import agents as agents_db
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from hotline.prompts import MINUTE_STEPS, step
from tests.support import SLOW, Client, ServerThread, agent_ticket, async_wait_until
from tests.support import test_config as config_for

_names = itertools.count(1)

# A minimal offer for messages the server relays between parties (checked, never negotiated).
OFFER = {"kind": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nm=audio 9 x\r\n"}


# ----------------------------------------------------------------- helpers (shared)
def add_agent(server: ServerThread, dialects: tuple[str, ...] = ("cmn",)) -> int:
    """A new agent account; returns its id."""
    name = f"agent{next(_names)}"
    return agents_db.add(server.db, name, "pw-" + name, list(dialects), display_name=name).id


def agent_url(server: ServerThread, agent_id: int) -> str:
    token = agent_ticket(server, agent_id)
    return f"{server.ws}?role=agent&token={token}"


def add_link(server: ServerThread, dialect: str = "cmn", **link: Any) -> str:
    """A new elder with a one-tap link; returns the link token."""
    elder = elders_db.add(server.db, f"elder{next(_names)}", dialect=dialect)
    return elders_db.new_link(server.db, elder.id, **link).token


def caller_url(server: ServerThread, link: str = "", rejoin: str = "") -> str:
    url = f"{server.ws}?role=caller"
    if link:
        url += f"&link={link}"
    if rejoin:
        url += f"&rejoin={rejoin}"
    return url


_open: list[Client] = []


async def open_client(url: str) -> Client:
    """A websocket client that `run` closes at the end, even when the test fails."""
    client = await Client.open(url)
    _open.append(client)
    return client


async def receive(client: Client, kind: str, timeout: float = 10, **fields: Any) -> dict[str, Any]:
    """A message of `kind` seen already (in any order) or the next one to come."""
    for msg in client.seen:
        if msg.get("type") == kind and all(msg.get(k) == v for k, v in fields.items()):
            return msg
    return await client.expect(kind, timeout=timeout, **fields)


async def open_agent(server: ServerThread, agent_id: int, available: bool = True) -> Client:
    """An agent console's socket, signed in (and available unless told otherwise)."""
    agent = await open_client(agent_url(server, agent_id))
    await agent.expect("hello")
    if available:
        await agent.send({"type": "status", "status": "available"})
        await agent.expect("status", status="available")
    return agent


async def open_caller(server: ServerThread, link: str = "", rejoin: str = "") -> Client:
    caller = await open_client(caller_url(server, link, rejoin))
    await receive(caller, "hello")
    return caller


async def tap(caller: Client, dialect: str | None = None) -> dict[str, Any]:
    """The big button: returns the `queued` message (call_id, rejoin secret)."""
    msg: dict[str, Any] = {"type": "call"}
    if dialect:
        msg["dialect"] = dialect
    await caller.send(msg)
    return await caller.expect("queued")


async def connect_call(
    caller: Client, agent: Client, dialect: str | None = None
) -> tuple[str, str]:
    """Tap, ring, accept, both connected; returns (call_id, rejoin)."""
    queued = await tap(caller, dialect)
    ring = await agent.expect("ring", call_id=queued["call_id"])
    await agent.send({"type": "accept", "call_id": ring["call_id"]})
    await caller.expect("connected", call_id=queued["call_id"])
    await agent.expect("connected", call_id=queued["call_id"])
    return queued["call_id"], queued["rejoin"]


async def in_call(server: ServerThread, agent_id: int, link: str) -> tuple[Client, Client, str]:
    """The agent signs in available, the elder with `link` taps, the agent answers:
    (agent, caller, call_id), both connected."""
    agent = await open_agent(server, agent_id)
    caller = await open_caller(server, link)
    call_id, _ = await connect_call(caller, agent)
    return agent, caller, call_id


async def quiet(client: Client, kind: str, seconds: float = 0.4) -> None:
    """Assert no message of `kind` arrives for a while (no ordering promise beyond that)."""
    with pytest.raises(TimeoutError):
        await client.expect(kind, timeout=seconds)


def call_row(server: ServerThread, call_id: str, ended: bool = True) -> dict[str, Any]:
    """The call's row, once the single writer has stored its end (if asked)."""
    deadline = time.monotonic() + 5 * SLOW
    while True:
        row = calls_db.get(server.db, call_id)
        if row is not None and (not ended or row["ended_at"] is not None):
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"call {call_id} not stored: {row}")
        time.sleep(0.02)


def answered_row(server: ServerThread, call_id: str) -> dict[str, Any]:
    """The call's row once its answer is stored (writes are queued, not awaited)."""
    deadline = time.monotonic() + 5 * SLOW
    while (row := calls_db.get(server.db, call_id)) is None or row["answered_at"] is None:
        assert time.monotonic() < deadline, f"answer of {call_id} not stored: {row}"
        time.sleep(0.02)
    return row


def live(server: ServerThread, fn: Callable[[], Any]) -> Any:
    """Read switchboard state on its own loop."""
    return server.run(fn)


def state_of(server: ServerThread, call_id: str) -> str:
    """The live call's state, read on the switchboard's loop."""
    return live(server, lambda: server.switchboard.calls[call_id].state)


async def away(server: ServerThread, call_id: str) -> None:
    """Wait until the switchboard has seen the caller of `call_id` disconnect."""
    calls = server.switchboard.calls
    await async_wait_until(
        lambda: live(server, lambda: calls[call_id].caller is None), 5, "the caller away"
    )


async def closing(*clients: Client) -> None:
    for c in clients:
        await c.close()


def run(coro: Awaitable[Any]) -> Any:
    """Run a client scenario on a fresh loop; close every client it opened."""

    async def main() -> Any:
        try:
            return await asyncio.wait_for(coro, 60 * SLOW)
        finally:
            while _open:
                client = _open.pop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.close(), 2)

    return asyncio.run(main())


def make_server(tmp_path: Path, **overrides: Any) -> Iterator[ServerThread]:
    srv = ServerThread(config_for(tmp_path, **overrides))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def overflow_server(tmp_path: Path) -> Iterator[ServerThread]:
    yield from make_server(tmp_path, overflow_seconds=0.5 * SLOW)


@pytest.fixture
def ring_server(tmp_path: Path) -> Iterator[ServerThread]:
    yield from make_server(tmp_path, ring_timeout_seconds=0.6 * SLOW)


# ----------------------------------------------------------------- the happy path
def test_tap_ring_accept_hangup(server: ServerThread) -> None:
    agent_id = add_agent(server)
    link = add_link(server)

    async def scenario() -> str:
        agent = await open_agent(server, agent_id)
        caller = await open_caller(server, link)
        queued = await tap(caller)
        call_id = queued["call_id"]
        assert queued["rejoin"]
        await agent.expect("status", status="ringing")  # sent just before the ring
        ring = await agent.expect("ring", call_id=call_id)
        assert ring["dialect"] == "cmn" and ring["elder"].startswith("elder")
        assert ring["timeout_seconds"] == server.cfg.ring_timeout_seconds
        await agent.send({"type": "accept", "call_id": call_id})
        c = await caller.expect("connected", call_id=call_id)
        await agent.expect("status", status="in_call")
        a = await agent.expect("connected", call_id=call_id)
        assert (c["role"], a["role"]) == ("offerer", "answerer")
        assert c["rejoined"] is False and isinstance(c["ice_servers"], list)
        await asyncio.sleep(0.2)  # some talk time
        await caller.send({"type": "hangup"})
        ended_c = await caller.expect("ended", call_id=call_id)
        ended_a = await agent.expect("ended", call_id=call_id)
        assert ended_c["reason"] == ended_a["reason"] == "completed"
        assert ended_c["by"] == ended_a["by"] == "caller"
        await agent.expect("status", status="wrap_up")
        await agent.send({"type": "ready"})
        await agent.expect("status", status="available")
        await closing(caller, agent)
        return call_id

    call_id = run(scenario())
    row = call_row(server, call_id)
    assert row["arrived_at"] <= row["rang_at"] <= row["answered_at"] <= row["ended_at"]
    assert row["wait_seconds"] == pytest.approx(row["answered_at"] - row["arrived_at"])
    assert row["talk_seconds"] == pytest.approx(row["ended_at"] - row["answered_at"])
    assert row["talk_seconds"] >= 0.15
    assert (row["outcome"], row["ended_by"], row["agent_id"]) == ("completed", "caller", agent_id)
    kinds = [e["kind"] for e in calls_db.events(server.db, call_id)]
    assert kinds == ["ring", "answer", "end"]


def test_agent_hangup_ends_both(server: ServerThread) -> None:
    agent_id = add_agent(server)

    async def scenario() -> str:
        agent = await open_agent(server, agent_id)
        caller = await open_caller(server)
        call_id, _ = await connect_call(caller, agent, "cmn")
        await agent.send({"type": "hangup", "call_id": call_id})
        assert (await caller.expect("ended", call_id=call_id))["by"] == "agent"
        assert (await agent.expect("ended", call_id=call_id))["by"] == "agent"
        await closing(caller, agent)
        return call_id

    call_id = run(scenario())
    row = call_row(server, call_id)
    assert (row["outcome"], row["ended_by"]) == ("completed", "agent")
    assert row["arrived_at"] <= row["rang_at"] <= row["answered_at"] <= row["ended_at"]


def test_caller_hangup_while_waiting_is_abandoned(server: ServerThread) -> None:
    async def scenario() -> str:
        caller = await open_caller(server)
        queued = await tap(caller, "cmn")
        await caller.send({"type": "hangup"})
        ended = await caller.expect("ended", call_id=queued["call_id"])
        assert ended["reason"] == "abandoned"
        await caller.close()
        return queued["call_id"]

    row = call_row(server, run(scenario()))
    assert (row["outcome"], row["ended_by"]) == ("abandoned", "caller")
    assert row["answered_at"] is None and row["talk_seconds"] is None
    assert row["wait_seconds"] == pytest.approx(row["ended_at"] - row["arrived_at"])


def test_signal_is_relayed_to_the_other_party_only(server: ServerThread) -> None:
    a1, a2 = add_agent(server), add_agent(server)
    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"

    async def scenario() -> None:
        agent1 = await open_agent(server, a1)
        agent2 = await open_agent(server, a2, available=False)
        caller = await open_caller(server)
        call_id, _ = await connect_call(caller, agent1, "cmn")
        await caller.send({"type": "signal", "data": {"kind": "offer", "sdp": sdp}})
        got = await agent1.expect("signal", call_id=call_id)
        assert got["data"] == {"kind": "offer", "sdp": sdp}
        cand = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}
        await agent1.send({"type": "signal", "call_id": call_id, "data": {"candidate": cand}})
        got = await caller.expect("signal", call_id=call_id)
        assert got["data"]["candidate"]["candidate"] == cand["candidate"]
        assert got["data"]["candidate"]["sdpMLineIndex"] is None
        assert not [m for m in agent2.seen if m["type"] == "signal"]
        await closing(caller, agent1, agent2)

    run(scenario())


# ----------------------------------------------------------------- routing over the wire
def test_longest_idle_matching_agent_rings_first(server: ServerThread) -> None:
    first, second, cantonese = add_agent(server), add_agent(server), add_agent(server, ("yue",))

    async def scenario() -> None:
        # Made available in this order: `cantonese` is idle longest but speaks no cmn;
        # `second` (higher id) has been idle longer than `first`.
        yue = await open_agent(server, cantonese)
        agent2 = await open_agent(server, second)
        agent1 = await open_agent(server, first)
        caller1 = await open_caller(server)
        q1 = await tap(caller1, "cmn")
        await agent2.expect("ring", call_id=q1["call_id"])
        caller2 = await open_caller(server)
        q2 = await tap(caller2, "cmn")
        await agent1.expect("ring", call_id=q2["call_id"])
        await quiet(yue, "ring", 0.3)
        await closing(caller1, caller2, agent1, agent2, yue)

    run(scenario())


def test_overflow_rings_any_agent_after_the_wait(overflow_server: ServerThread) -> None:
    server = overflow_server
    agent_id = add_agent(server, ("cmn",))
    link = add_link(server, dialect="yue")

    async def scenario() -> None:
        agent = await open_agent(server, agent_id)
        caller = await open_caller(server, link)
        queued = await tap(caller)
        t0 = time.monotonic()
        ring = await agent.expect("ring", call_id=queued["call_id"], timeout=5)
        assert time.monotonic() - t0 >= 0.4 * SLOW  # not before the overflow wait
        assert ring["dialect"] == "yue" and ring["waited_seconds"] >= 0.4
        await agent.send({"type": "accept", "call_id": queued["call_id"]})
        await caller.expect("connected")
        await closing(caller, agent)

    run(scenario())


def test_ring_timeout_moves_on_and_sets_silent_agent_away(ring_server: ServerThread) -> None:
    server = ring_server
    silent_id, other_id = add_agent(server), add_agent(server)

    async def scenario() -> str:
        silent = await open_agent(server, silent_id)  # idle longest: rung first
        other = await open_agent(server, other_id)
        caller = await open_caller(server)
        queued = await tap(caller, "cmn")
        call_id = queued["call_id"]
        await silent.expect("ring", call_id=call_id)
        await silent.expect("ring_cancelled", call_id=call_id, timeout=5)
        await silent.expect("status", status="away")
        ring = await other.expect("ring", call_id=call_id, timeout=5)
        await other.send({"type": "accept", "call_id": ring["call_id"]})
        await caller.expect("connected", call_id=call_id)
        # The silent agent can no longer take it.
        await silent.send({"type": "accept", "call_id": call_id})
        err = await silent.expect("error")
        assert err["code"] == "already_answered"
        await other.send({"type": "hangup", "call_id": call_id})
        await caller.expect("ended", call_id=call_id)
        await closing(caller, silent, other)
        return call_id

    call_id = run(scenario())
    assert call_row(server, call_id)["agent_id"] == other_id
    kinds = [e["kind"] for e in calls_db.events(server.db, call_id)]
    assert sorted(kinds) == ["answer", "end", "ring", "ring", "ring_timeout"]


def test_declined_ring_goes_to_next_agent(server: ServerThread) -> None:
    first_id, second_id = add_agent(server), add_agent(server)

    async def scenario() -> None:
        first = await open_agent(server, first_id)
        second = await open_agent(server, second_id)
        caller = await open_caller(server)
        queued = await tap(caller, "cmn")
        await first.expect("ring", call_id=queued["call_id"])
        await first.send({"type": "decline", "call_id": queued["call_id"]})
        await first.expect("ring_cancelled", call_id=queued["call_id"])
        await first.expect("status", status="available")
        await second.expect("ring", call_id=queued["call_id"])
        await quiet(first, "ring", 0.3)
        await closing(caller, first, second)

    run(scenario())


# ----------------------------------------------------------------- drops and rejoins
def test_agent_drop_mid_call_requeues_caller_at_head(server: ServerThread) -> None:
    dropping_id, backup_id = add_agent(server), add_agent(server)

    async def scenario() -> str:
        dropping = await open_agent(server, dropping_id)
        backup = await open_agent(server, backup_id, available=False)
        caller = await open_caller(server)
        call_id, _ = await connect_call(caller, dropping, "cmn")
        later = await open_caller(server)
        later_call = (await tap(later, "cmn"))["call_id"]
        await later.expect("queue", position=1)
        await dropping.close()
        requeued = await caller.expect("requeued", call_id=call_id)
        assert requeued["reason"] == "agent_dropped"
        await caller.expect("queue", call_id=call_id, position=1)
        await later.expect("queue", call_id=later_call, position=2)
        await backup.send({"type": "status", "status": "available"})
        ring = await backup.expect("ring")
        assert ring["call_id"] == call_id  # the requeued caller, not the later one
        await backup.send({"type": "accept", "call_id": call_id})
        connected = await caller.expect("connected", call_id=call_id)
        assert connected["rejoined"] is False
        await backup.send({"type": "hangup", "call_id": call_id})
        await caller.expect("ended", call_id=call_id)
        await closing(caller, later, backup)
        return call_id

    call_id = run(scenario())
    row = call_row(server, call_id)
    assert row["agent_id"] == backup_id and row["outcome"] == "completed"
    assert row["arrived_at"] <= row["rang_at"] <= row["answered_at"] <= row["ended_at"]
    kinds = [e["kind"] for e in calls_db.events(server.db, call_id)]
    assert kinds == ["ring", "answer", "requeue", "ring", "answer", "end"]


def test_waiting_caller_rejoins_same_call_same_place(server: ServerThread) -> None:
    link = add_link(server)

    async def scenario() -> None:
        first = await open_caller(server, link)
        q1 = await tap(first)
        second = await open_caller(server)
        q2 = await tap(second, "cmn")
        await second.expect("queue", call_id=q2["call_id"], position=2)
        await first.close()
        await away(server, q1["call_id"])
        third = await open_caller(server)
        q3 = await tap(third, "cmn")
        await third.expect("queue", call_id=q3["call_id"], position=3)
        back = await open_client(caller_url(server, link, q1["rejoin"]))
        hello = await receive(back, "hello")
        assert hello["rejoined"] is True and hello["call_id"] == q1["call_id"]
        assert hello["state"] == "waiting"
        queue = await receive(back, "queue", call_id=q1["call_id"])
        assert queue["position"] == 1 and queue["ahead"] == 0
        # Still the same call: it hangs up as itself, no second call was made.
        await back.send({"type": "hangup"})
        await back.expect("ended", call_id=q1["call_id"])
        await closing(back, second, third)

    run(scenario())
    rows = server.db.query("SELECT COUNT(*) FROM calls")
    assert rows[0][0] == 3


def test_rejoin_with_unknown_secret_starts_fresh(server: ServerThread) -> None:
    async def scenario() -> None:
        caller = await open_client(caller_url(server, rejoin="not-a-real-secret"))
        hello = await receive(caller, "hello")
        assert hello["rejoined"] is False and hello["call_id"] is None
        assert hello["state"] == "idle"
        await caller.close()

    run(scenario())


def test_caller_drop_mid_call_then_rejoin_reconnects_both(server: ServerThread) -> None:
    agent_id = add_agent(server)
    link = add_link(server)

    async def scenario() -> str:
        agent = await open_agent(server, agent_id)
        caller = await open_caller(server, link)
        call_id, rejoin = await connect_call(caller, agent)
        await caller.close()
        away = await agent.expect("caller_away", call_id=call_id)
        assert away["rejoin_seconds"] == server.cfg.rejoin_seconds
        back = await open_client(caller_url(server, link, rejoin))
        hello = await receive(back, "hello")
        assert hello["rejoined"] is True and hello["call_id"] == call_id
        c = await receive(back, "connected", call_id=call_id)
        a = await agent.expect("connected", call_id=call_id, rejoined=True)
        assert c["rejoined"] is True and a["rejoined"] is True
        await back.send({"type": "hangup"})
        await agent.expect("ended", call_id=call_id)
        await closing(back, agent)
        return call_id

    call_id = run(scenario())
    row = call_row(server, call_id)
    assert (row["outcome"], row["ended_by"]) == ("completed", "caller")
    kinds = [e["kind"] for e in calls_db.events(server.db, call_id)]
    assert "caller_dropped" in kinds and "caller_rejoined" in kinds


def test_caller_back_after_the_agent_hung_up_is_told_it_ended(server: ServerThread) -> None:
    """The caller's connection blipped and the agent hung up meanwhile: the page coming back
    with its rejoin secret is told the call ended (and may rate it), not shown the start."""
    agent_id = add_agent(server)
    link = add_link(server)

    async def scenario() -> str:
        agent = await open_agent(server, agent_id)
        caller = await open_caller(server, link)
        call_id, rejoin = await connect_call(caller, agent)
        await caller.close()
        await agent.expect("caller_away", call_id=call_id)
        await agent.send({"type": "hangup", "call_id": call_id})
        await agent.expect("ended", call_id=call_id)
        back = await open_client(caller_url(server, link, rejoin))
        hello = await receive(back, "hello")
        assert hello["rejoined"] is False
        ended = await receive(back, "ended", call_id=call_id)
        assert (ended["reason"], ended["by"]) == ("caller_dropped", "agent")
        await back.send({"type": "rate", "rating": "good"})
        await receive(back, "rated", call_id=call_id)
        # The secret under another elder's link learns nothing.
        other = await open_client(caller_url(server, add_link(server), rejoin))
        assert (await receive(other, "hello"))["rejoined"] is False
        await quiet(other, "ended")
        await closing(back, other, agent)
        return call_id

    call_id = run(scenario())
    assert call_row(server, call_id)["rating"] == "good"


def test_second_tab_replaces_the_first(server: ServerThread) -> None:
    link = add_link(server)

    async def scenario() -> None:
        first = await open_caller(server, link)
        queued = await tap(first)
        second = await open_client(caller_url(server, link, queued["rejoin"]))
        assert (await receive(second, "hello"))["rejoined"] is True
        await asyncio.wait_for(first.ws.wait_closed(), 5 * SLOW)
        assert (first.ws.close_code, first.ws.close_reason) == (4000, "replaced")
        await second.send({"type": "hangup"})
        await second.expect("ended", call_id=queued["call_id"])
        await closing(first, second)

    run(scenario())


def test_replaced_tab_is_told_why(server: ServerThread) -> None:
    link = add_link(server)
    agent_id = add_agent(server)

    async def scenario() -> None:
        first = await open_caller(server, link)
        queued = await tap(first)
        await open_caller(server, link, queued["rejoin"])
        await asyncio.wait_for(first.ws.wait_closed(), 5 * SLOW)
        assert [m["code"] for m in first.seen if m["type"] == "error"] == ["replaced"]
        console = await open_agent(server, agent_id, available=False)
        await open_agent(server, agent_id, available=False)
        await asyncio.wait_for(console.ws.wait_closed(), 5 * SLOW)
        assert [m["code"] for m in console.seen if m["type"] == "error"] == ["replaced"]

    run(scenario())


# ----------------------------------------------------------------- queue updates
async def busy_agent(server: ServerThread) -> list[Client]:
    """One cmn agent serving (in a call): waits are estimated from one agent."""
    agent = await open_agent(server, add_agent(server))
    caller = await open_caller(server)
    await connect_call(caller, agent, "cmn")
    return [agent, caller]


def test_positions_and_eta_follow_the_line(server: ServerThread) -> None:
    default = server.cfg.default_handle_seconds

    async def scenario() -> None:
        busy = await busy_agent(server)
        callers = [await open_caller(server) for _ in range(4)]
        queued = [await tap(c, "cmn") for c in callers]
        for i, (c, q) in enumerate(zip(callers, queued, strict=True), start=1):
            msg = await c.expect("queue", call_id=q["call_id"], position=i)
            # Exactly the documented fields (the message is built from a template).
            assert set(msg) == {"type", "call_id", "position", "ahead", "eta_seconds", "state",
                                "offer_callback", "at", "say"}  # fmt: skip
            minutes = step(max(1, round(i * default / 60)), MINUTE_STEPS)
            assert msg["say"] == f"/tts/place/zh_CN/cmn/{i - 1}-{minutes}.wav"
            assert isinstance(msg["at"], float) and isinstance(msg["eta_seconds"], int)
            assert msg["ahead"] == i - 1 and msg["state"] == "waiting"
            assert msg["eta_seconds"] == round(i * default)  # one agent, no history
            assert msg["offer_callback"] is False  # no link: no number to call back
        last = callers[3]
        mark = len(last.seen)
        # Two callers ahead leave back to back: the rest move up, updates coalesced.
        await callers[0].send({"type": "hangup"})
        await callers[1].send({"type": "hangup"})
        msg = await last.expect("queue", position=2, timeout=5)
        assert msg["eta_seconds"] == round(2 * default) and msg["ahead"] == 1
        await callers[2].expect("queue", position=1)
        updates = [m for m in last.seen[mark:] if m["type"] == "queue"]
        assert len(updates) <= 2  # at most one per coalescing round
        keys = [(m["position"], m["eta_seconds"]) for m in updates]
        assert all(a != b for a, b in itertools.pairwise(keys))  # only sent on change
        await quiet(last, "queue", 0.7)  # nothing more while the line stands still
        await closing(*callers, *busy)

    run(scenario())


def test_eta_counts_agents_of_the_dialect(server: ServerThread) -> None:
    ids = [add_agent(server) for _ in range(2)]

    async def scenario() -> None:
        agents = [await open_agent(server, i) for i in ids]
        c1, c2 = await open_caller(server), await open_caller(server)
        await connect_call(c1, agents[0], "cmn")
        await connect_call(c2, agents[1], "cmn")
        c3 = await open_caller(server)
        q3 = await tap(c3, "cmn")
        msg = await c3.expect("queue", call_id=q3["call_id"], position=1)
        # Two agents in calls serve cmn: the first place waits half a handle time.
        assert msg["eta_seconds"] == round(server.cfg.default_handle_seconds / 2)
        await closing(c1, c2, c3, *agents)

    run(scenario())


def test_second_agent_accepting_answered_call_changes_nothing(server: ServerThread) -> None:
    first_id, second_id = add_agent(server), add_agent(server)

    async def scenario() -> str:
        first = await open_agent(server, first_id)
        second = await open_agent(server, second_id)
        caller = await open_caller(server)
        call_id, _ = await connect_call(caller, first, "cmn")
        await second.send({"type": "accept", "call_id": call_id})
        err = await second.expect("error")
        assert err["code"] == "already_answered" and err["for"] == "accept"
        await quiet(caller, "connected", 0.3)
        await quiet(second, "status", 0.1)  # second agent still available
        state = live(server, lambda: server.switchboard.calls[call_id].agent_id)
        assert state == first_id
        status = live(server, lambda: server.switchboard.agents[second_id].status)
        assert status == "available"
        await first.send({"type": "hangup", "call_id": call_id})
        await caller.expect("ended", call_id=call_id)
        await closing(caller, first, second)
        return call_id

    call_id = run(scenario())
    assert call_row(server, call_id)["agent_id"] == first_id


def test_accepting_unknown_call_is_a_typed_error(server: ServerThread) -> None:
    agent_id = add_agent(server)

    async def scenario() -> None:
        agent = await open_agent(server, agent_id)
        await agent.send({"type": "accept", "call_id": "0123456789abcdef"})
        assert (await agent.expect("error"))["code"] == "no_call"
        await agent.send({"type": "decline", "call_id": "0123456789abcdef"})
        assert (await agent.expect("error"))["code"] == "not_ringing"
        await agent.send({"type": "ready"})
        assert (await agent.expect("error"))["code"] == "not_in_wrap_up"
        await agent.close()

    run(scenario())


# ----------------------------------------------------------------- regressions and known bugs
def test_caller_drop_while_ringing_rings_next_caller(server: ServerThread) -> None:
    agent_id = add_agent(server)

    async def scenario() -> None:
        agent = await open_agent(server, agent_id)
        first = await open_caller(server)
        q1 = await tap(first, "cmn")
        await agent.expect("ring", call_id=q1["call_id"])
        second = await open_caller(server)
        q2 = await tap(second, "cmn")
        await first.close()
        await agent.expect("ring_cancelled", call_id=q1["call_id"])
        await agent.expect("ring", call_id=q2["call_id"], timeout=2)
        await closing(second, agent)

    run(scenario())


def test_rejoined_waiting_caller_is_rung_by_free_agent(server: ServerThread) -> None:
    agent_id = add_agent(server)

    async def scenario() -> None:
        caller = await open_caller(server)
        queued = await tap(caller, "cmn")
        await caller.close()
        await away(server, queued["call_id"])
        agent = await open_agent(server, agent_id)  # routes while the caller is away
        back = await open_client(caller_url(server, rejoin=queued["rejoin"]))
        assert (await receive(back, "hello"))["rejoined"] is True
        await agent.expect("ring", call_id=queued["call_id"], timeout=2)
        await closing(back, agent)

    run(scenario())


def test_rejoin_secret_only_works_with_its_own_link(server: ServerThread) -> None:
    own, other = add_link(server), add_link(server)

    async def scenario() -> None:
        caller = await open_caller(server, own)
        queued = await tap(caller)
        intruder = await open_client(caller_url(server, other, queued["rejoin"]))
        hello = await receive(intruder, "hello")
        assert hello["rejoined"] is False
        await asyncio.sleep(0.3)
        assert caller.ws.close_code is None  # the rightful caller keeps their connection
        call = live(server, lambda: server.switchboard.calls[queued["call_id"]])
        assert call.caller is not None and call.caller.closed is False
        assert intruder.ws.close_code is None
        await intruder.send({"type": "hangup"})
        err = await intruder.expect("error", timeout=2)
        assert err["code"] == "no_call"
        await closing(caller, intruder)

    run(scenario())


def test_agent_back_from_missed_ring_serves_the_caller(ring_server: ServerThread) -> None:
    server = ring_server
    agent_id = add_agent(server)

    async def scenario() -> None:
        agent = await open_agent(server, agent_id)
        caller = await open_caller(server)
        queued = await tap(caller, "cmn")
        await agent.expect("ring", call_id=queued["call_id"])
        await agent.expect("status", status="away", timeout=5)
        await agent.send({"type": "status", "status": "available"})
        await agent.expect("status", status="available")
        await agent.expect("ring", call_id=queued["call_id"], timeout=2)
        await closing(caller, agent)

    run(scenario())


def test_burst_of_line_changes_keeps_agents_connected(server: ServerThread) -> None:
    agent_id = add_agent(server)

    async def scenario() -> None:
        agent = await open_agent(server, agent_id)
        # What 300 arrivals handled back to back do to the console's queue, deterministically.
        server.run(lambda: [server.switchboard._publish_line() for _ in range(300)])
        await asyncio.sleep(0.3)
        assert agent.ws.close_code is None
        await agent.send({"type": "ping"})
        await agent.expect("pong", timeout=5)

    run(scenario())


def test_queue_update_round_sorts_the_line_once(server: ServerThread) -> None:
    async def scenario() -> None:
        callers = [await open_caller(server) for _ in range(30)]
        for caller in callers:
            await tap(caller, "yue")
        line = server.switchboard.line
        sorts = []
        original = line.positions

        def counting() -> dict[str, int]:
            sorts.append(1)
            return original()

        async def one_round() -> int:
            line.positions = counting
            try:
                for call in server.switchboard.calls.values():
                    call.last_queue_msg = None  # every caller gets a fresh update
                await server.switchboard._publish_positions()
            finally:
                del line.positions
            return len(sorts)

        assert server.call(one_round()) <= 2

    run(scenario())


def test_spoken_place_is_a_plain_url_that_renders(server: ServerThread) -> None:
    """The place-in-line prompt is sent thousands of times a second in a surge: a plain URL
    (no signing), whose parts the server checks before speaking a catalogue string."""
    import urllib.error
    import urllib.request

    async def scenario() -> dict[str, Any]:
        busy = await busy_agent(server)
        callers = [await open_caller(server) for _ in range(2)]
        for c in callers:
            await tap(c, "cmn")
        msg = await callers[1].expect("queue", position=2)
        await closing(*callers, *busy)
        return msg

    msg = run(scenario())
    minutes = step(max(1, round(msg["eta_seconds"] / 60)), MINUTE_STEPS)
    assert msg["say"] == f"/tts/place/zh_CN/cmn/1-{minutes}.wav"
    with urllib.request.urlopen(server.http + msg["say"], timeout=30) as r:
        assert r.headers["Content-Type"] == "audio/wav" and r.read(4) == b"RIFF"
    for bad in (
        "/tts/place/xx/cmn/1-1.wav",  # unknown language
        "/tts/place/zh_CN/klingon/1-1.wav",  # unknown dialect
        "/tts/place/zh_CN/cmn/1-0.wav",  # minutes out of range
        "/tts/place/zh_CN/cmn/1-11.wav",  # not a step of the fixed set
        "/tts/place/zh_CN/cmn/51-1.wav",  # beyond the exact range: only "50plus"
        "/tts/place/zh_CN/cmn/99999999-1.wav",  # too many ahead
        "/tts/place/zh_CN/cmn/-1-1.wav",
    ):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.http + bad, timeout=10)
        assert err.value.code == 404, bad


def test_waiting_callers_use_the_lean_connection(server: ServerThread) -> None:
    """The memory trims of LeanConnection are active with the installed websockets (an
    upgrade that changes its internals shows here), and frames still flow through them."""
    from hotline.live.server import LeanConnection

    async def scenario() -> None:
        caller = await open_caller(server)
        queued = await tap(caller, "cmn")
        live = server.running.live
        (conn,) = [c for c in server.run(lambda: list(live.conns)) if c.role == "caller"]
        ws = conn.ws
        assert isinstance(ws, LeanConnection)
        assert type(ws.drain_waiters) is list
        assert type(ws.recv_messages.frames.queue).__name__ == "_FrameList"
        await caller.ws.send(iter(['{"type":', '"ping"}']))  # a fragmented message
        await caller.expect("pong")
        for _ in range(3):  # several frames queued at once
            await caller.send({"type": "ping"})
        for _ in range(3):
            await caller.expect("pong")
        await caller.send({"type": "hangup"})
        await caller.expect("ended", call_id=queued["call_id"])

    run(scenario())
