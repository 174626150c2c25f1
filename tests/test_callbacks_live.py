"""Callbacks on the live line: kept places, due bookings as priority tasks, the page rings."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hotline.callbacks.service import CallbackService
from hotline.db import agents as agents_db
from hotline.db import callbacks as callbacks_db
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from tests.support import (
    Client,
    ServerThread,
    agent_ticket,
    async_wait_until,
    test_config,
    wait_until,
)


@pytest.fixture
def srv(tmp_path: Path):
    server = ServerThread(test_config(tmp_path, callback_offer_seconds=0.0, rejoin_seconds=0.5))
    yield server
    server.stop()


def rejoin_window_over(srv: ServerThread, call_id: str) -> bool:
    """(On the server loop.) The caller of `call_id` is away and their rejoin timer has fired."""
    call = srv.switchboard.calls.get(call_id)
    timer = call.gone_timer if call is not None else None
    return bool(
        call is not None
        and call.caller is None
        and timer is not None
        and timer.when() <= asyncio.get_running_loop().time()
    )


async def agent_client(srv: ServerThread, agent_id: int, available: bool = True) -> Client:
    ticket = agent_ticket(srv, agent_id)
    agent = await Client.open(f"{srv.ws}?role=agent&token={ticket}")
    await agent.expect("hello")
    if available:
        await agent.send({"type": "status", "status": "available"})
        await agent.expect("status", status="available")
    return agent


def test_kept_place_rings_agent_then_number_by_phone(srv: ServerThread) -> None:
    agent_row = agents_db.add(srv.db, "a", "pw", ["cmn"])
    elder = elders_db.add(srv.db, "张阿姨", phone="13812345678", dialect="cmn")
    link = elders_db.new_link(srv.db, elder.id).token

    async def scenario() -> str:
        caller = await Client.open(f"{srv.ws}?role=caller&link={link}")
        await caller.expect("hello")
        await caller.send({"type": "call"})
        queued = await caller.expect("queued")
        queue = await caller.expect("queue")
        assert queue["offer_callback"] is True
        await caller.send({"type": "callback_request"})
        booked = await caller.expect("callback_booked")
        assert booked["say"].startswith("/tts/")
        await caller.close()  # the senior closes the page
        # This scenario runs on the server's loop. A poll that finds the rejoin timer due a
        # second time comes at least one loop pass after the expiry task it made has run.
        seen: list[bool] = []
        await async_wait_until(
            lambda: (
                seen.append(rejoin_window_over(srv, queued["call_id"])) or seen[-2:] == [True] * 2
            ),
            10,
            "the rejoin window",
        )
        assert queued["call_id"] in srv.switchboard.calls  # past the rejoin window: still in line
        agent = await agent_client(srv, agent_row.id)
        ring = await agent.expect("ring")
        assert ring["kind"] == "callback" and ring["call_id"] == queued["call_id"]
        await agent.send({"type": "accept", "call_id": ring["call_id"]})
        calling = await agent.expect("calling_elder")
        assert calling["page_open"] is False and calling["booking_id"]
        await agent.expect("ended", reason="callback_by_phone")
        return queued["call_id"]

    call_id = srv.call(scenario())
    booking = callbacks_db.by_idem(srv.db, f"keep_place:{call_id}")
    assert (
        booking is not None and booking.status == "claimed" and booking.claimed_by == agent_row.id
    )
    assert calls_db.get(srv.db, call_id)["outcome"] == "callback_by_phone"


def test_due_callback_rings_the_elders_open_page(srv: ServerThread) -> None:
    agent_row = agents_db.add(srv.db, "a", "pw", ["cmn"])
    elder = elders_db.add(srv.db, "李奶奶", phone="13912345678", dialect="cmn")
    link = elders_db.new_link(srv.db, elder.id).token
    calls_db.create(
        srv.db, "old", elder_id=elder.id, dialect="cmn", kind="inbound", arrived_at=time.time()
    )
    service = CallbackService(srv.db, srv.cfg)
    booking_id = service.abandoned("old", elder.id)
    assert booking_id is not None

    async def scenario() -> None:
        page = await Client.open(f"{srv.ws}?role=caller&link={link}")  # the tablet's home screen
        await page.expect("hello")
        agent = await agent_client(srv, agent_row.id)
        ring = await agent.expect("ring", timeout=15)  # the scheduler polls every 5 s
        assert ring["kind"] == "callback" and ring["elder"] == "李奶奶"
        await agent.send({"type": "accept", "call_id": ring["call_id"]})
        calling = await agent.expect("calling_elder")
        assert calling["page_open"] is True and calling["booking_id"] == booking_id
        incoming = await page.expect("incoming_callback")
        await page.send({"type": "answer_callback", "call_id": incoming["call_id"]})
        await page.expect("connected")
        await agent.expect("connected")
        await page.send({"type": "hangup"})
        await agent.expect("ended", reason="completed")

    srv.call(scenario(), timeout=40)
    # "ended" is sent once the call is stored; the booking is closed by the listener after it.
    booking = wait_until(
        lambda: (b := callbacks_db.get(srv.db, booking_id)).status == "done" and b,
        10,
        "the booking to be done",
    )
    assert booking.claimed_by == agent_row.id


def test_caller_who_vanishes_while_waiting_gets_a_callback_offer(srv: ServerThread) -> None:
    elder = elders_db.add(srv.db, "王伯", phone="13712345678", dialect="cmn")
    link = elders_db.new_link(srv.db, elder.id).token
    left = elders_db.add(srv.db, "赵婶", phone="13612345678", dialect="cmn")
    left_link = elders_db.new_link(srv.db, left.id).token

    async def scenario() -> tuple[str, str]:
        ids = []
        for token, cancel in ((link, False), (left_link, True)):
            caller = await Client.open(f"{srv.ws}?role=caller&link={token}")
            await caller.expect("hello")
            await caller.send({"type": "call"})
            ids.append((await caller.expect("queued"))["call_id"])
            if cancel:
                await caller.send({"type": "hangup", "reason": "cancel"})  # chose to leave
                await caller.expect("ended")
            await caller.close()
        return ids[0], ids[1]

    vanished, chose_to_leave = srv.call(scenario())
    # The vanished caller's offer comes when their rejoin window ends; the one who chose to
    # leave ended before that, so had an offer been made for them it would be there by now.
    wait_until(
        lambda: callbacks_db.by_idem(srv.db, f"abandoned:{vanished}"), 10, "the callback offer"
    )
    assert callbacks_db.by_idem(srv.db, f"abandoned:{chose_to_leave}") is None
