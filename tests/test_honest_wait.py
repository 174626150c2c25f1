"""Honest waits: no estimate unless someone who could take the caller is serving.

Websocket-level scenarios on a real hotline, plus the pure decisions (queue.honest_wait,
slots.next_shift_start). States: waiting (estimate), paused (agents signed in but all away:
no estimate), unstaffed (nobody who could take them is signed in: when staff is due next).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hotline import queue as line_mod
from hotline.callbacks import slots
from hotline.db import callbacks as callbacks_db
from hotline.db import elders as elders_db
from tests.support import SLOW, ServerThread
from tests.test_call_ws import (
    add_agent,
    busy_agent,
    closing,
    connect_call,
    make_server,
    open_agent,
    open_caller,
    run,
    tap,
)

TZ = ZoneInfo("Asia/Shanghai")


# ----------------------------------------------------------------- pure decisions
def test_honest_wait_gives_an_estimate_only_while_someone_serves() -> None:
    assert line_mod.honest_wait(3, 240.0, serving=0, signed_in=0) == ("unstaffed", None)
    assert line_mod.honest_wait(3, 240.0, serving=0, signed_in=2) == ("paused", None)
    assert line_mod.honest_wait(3, 240.0, serving=2, signed_in=2) == ("waiting", 360)


def test_next_shift_start_prefers_the_dialect_then_anyone() -> None:
    monday_10 = datetime(2026, 11, 30, 10, 30, tzinfo=TZ).timestamp()  # a Monday
    cmn = slots.Shift(1, 1, 9, 17, frozenset({"cmn"}))  # Monday 9-17
    yue = slots.Shift(2, 3, 14, 18, frozenset({"yue"}))  # Wednesday 14-18
    at = slots.next_shift_start([cmn, yue], "yue", monday_10, TZ)
    assert at == datetime(2026, 12, 2, 14, tzinfo=TZ).timestamp()
    # Inside today's shift, the next start is next week's (nobody came today).
    at = slots.next_shift_start([cmn, yue], "cmn", monday_10, TZ)
    assert at == datetime(2026, 12, 7, 9, tzinfo=TZ).timestamp()
    # No Korean speaker has a shift: anyone's next shift (overflow takes them).
    at = slots.next_shift_start([cmn, yue], "ko", monday_10, TZ)
    assert at == datetime(2026, 12, 2, 14, tzinfo=TZ).timestamp()
    assert slots.next_shift_start([], "cmn", monday_10, TZ) is None


# ----------------------------------------------------------------- over the websocket
def test_nobody_signed_in_is_unstaffed_with_the_next_shift(server: ServerThread) -> None:
    agent_id = add_agent(server)
    now = time.time()
    weekday = datetime.fromtimestamp(now, TZ).isoweekday() % 7 + 1  # tomorrow
    callbacks_db.add_shift(server.db, agent_id, weekday, 9, 17, now)
    server.call(server.switchboard._load_shifts())

    elder = elders_db.add(server.db, "张阿姨", phone="13812345678", dialect="cmn")
    link = elders_db.new_link(server.db, elder.id).token

    async def scenario() -> None:
        caller = await open_caller(server, link)
        await tap(caller)
        msg = await caller.expect("queue")
        assert msg["state"] == "unstaffed" and msg["eta_seconds"] is None
        assert msg["offer_callback"] is True and msg["position"] == 1  # a callback at once
        assert msg["say"].startswith("/tts/")
        tomorrow = datetime.fromtimestamp(now + 86400, TZ).date()
        expected = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 9, tzinfo=TZ)
        assert msg["next_staffed_at"] == int(expected.timestamp())
        await closing(caller)

    run(scenario())


def test_no_shift_at_all_says_unknown(server: ServerThread) -> None:
    async def scenario() -> None:
        caller = await open_caller(server)
        await tap(caller, "cmn")
        msg = await caller.expect("queue")
        assert msg["state"] == "unstaffed" and msg["next_staffed_at"] is None
        await closing(caller)

    run(scenario())


def test_away_agents_pause_the_estimate_and_coming_back_restores_it(
    server: ServerThread,
) -> None:
    agent_ids = [add_agent(server), add_agent(server)]

    async def scenario() -> None:
        away = await open_agent(server, agent_ids[0], available=False)
        caller = await open_caller(server)
        await tap(caller, "cmn")
        msg = await caller.expect("queue")
        assert msg["state"] == "paused" and msg["eta_seconds"] is None
        assert "next_staffed_at" not in msg
        assert msg["offer_callback"] is False  # no link: no number to call back
        # A second agent signs in and takes another call: now someone serves.
        other = await open_agent(server, agent_ids[1])
        first = await other.expect("ring")
        await other.send({"type": "accept", "call_id": first["call_id"]})
        later = await open_caller(server)
        await tap(later, "cmn")
        msg = await later.expect("queue", state="waiting")
        assert msg["eta_seconds"] == round(server.cfg.default_handle_seconds)
        await closing(caller, later, away, other)

    run(scenario())


def test_last_agent_leaving_tells_every_waiting_caller(server: ServerThread) -> None:
    agent_id = add_agent(server)

    async def scenario() -> None:
        agent = await open_agent(server, agent_id)
        in_call = await open_caller(server)
        call_id, _ = await connect_call(in_call, agent, "cmn")
        waiting = [await open_caller(server) for _ in range(3)]
        for c in waiting:
            await tap(c, "cmn")
            assert (await c.expect("queue"))["state"] == "waiting"
        await agent.close()  # the only agent leaves mid-call
        requeued = await in_call.expect("requeued", call_id=call_id)
        assert requeued["reason"] == "agent_dropped"
        msg = await in_call.expect("queue", call_id=call_id)
        assert msg["state"] == "unstaffed" and msg["eta_seconds"] is None  # no false promise
        for c in waiting:
            msg = await c.expect("queue", state="unstaffed", timeout=5)
            assert msg["eta_seconds"] is None
        await closing(in_call, *waiting)

    run(scenario())


def test_signing_out_of_an_away_agent_turns_paused_into_unstaffed(
    server: ServerThread,
) -> None:
    agent_id = add_agent(server)

    async def scenario() -> None:
        agent = await open_agent(server, agent_id, available=False)
        caller = await open_caller(server)
        await tap(caller, "cmn")
        assert (await caller.expect("queue"))["state"] == "paused"
        await agent.close()
        await caller.expect("queue", state="unstaffed", timeout=5)
        await closing(caller)

    run(scenario())


@pytest.fixture
def overflow_server(tmp_path: Path) -> Iterator[ServerThread]:
    yield from make_server(tmp_path, overflow_seconds=1.0 * SLOW)


def test_other_dialects_agents_count_only_after_overflow(overflow_server: ServerThread) -> None:
    server = overflow_server

    async def scenario() -> None:
        busy = await busy_agent(server)  # a Mandarin agent, in a call
        caller = await open_caller(server)
        await tap(caller, "ko")
        msg = await caller.expect("queue")
        assert msg["state"] == "unstaffed"  # nobody speaks Korean
        # After the overflow wait any agent may take them: now there is an estimate.
        msg = await caller.expect("queue", state="waiting", timeout=5)
        assert msg["eta_seconds"] == round(server.cfg.default_handle_seconds)
        await closing(caller, *busy)

    run(scenario())


def test_another_dialects_agent_arriving_later_counts_after_overflow(
    overflow_server: ServerThread,
) -> None:
    server = overflow_server

    async def scenario() -> None:
        caller = await open_caller(server)
        await tap(caller, "ko")
        assert (await caller.expect("queue"))["state"] == "unstaffed"
        busy = await busy_agent(server)  # a Mandarin agent signs in (and takes a call)
        msg = await caller.expect("queue", state="waiting", timeout=5)
        assert msg["eta_seconds"] == round(server.cfg.default_handle_seconds)
        await closing(caller, *busy)

    run(scenario())


def test_a_second_tab_takes_a_connected_call_over(server: ServerThread) -> None:
    """One call, one tab: the link opened again with the rejoin secret moves the call; the
    old tab is told `replaced`, both parties restart media (`connected`, rejoined)."""
    from tests.test_call_ws import add_link, caller_url, open_client, receive

    agent_id = add_agent(server)
    link = add_link(server)

    async def scenario() -> None:
        agent = await open_agent(server, agent_id)
        first = await open_caller(server, link)
        call_id, rejoin = await connect_call(first, agent)
        second = await open_client(caller_url(server, link, rejoin))
        hello = await receive(second, "hello")
        assert hello["rejoined"] and hello["state"] == "connected"
        again = await second.expect("connected", call_id=call_id)
        assert again["rejoined"] is True and again["role"] == "offerer"
        assert (await agent.expect("connected", call_id=call_id))["rejoined"] is True
        await first.ws.wait_closed()
        assert [m["code"] for m in first.seen if m["type"] == "error"] == ["replaced"]
        await second.send({"type": "hangup"})
        await second.expect("ended", call_id=call_id)
        await closing(second, agent)

    run(scenario())
