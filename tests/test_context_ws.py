"""Who is calling, over real websockets: the context card on the ring, the full history on
request, every read audited, and nobody else's caller readable."""

from __future__ import annotations

import time
from typing import Any

from hotline.db import audit
from hotline.db import callbacks as callbacks_db
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from tests.support import ServerThread
from tests.test_call_ws import (
    add_agent,
    add_link,
    connect_call,
    open_agent,
    open_caller,
    receive,
    run,
    tap,
)


def seed_elder(server: ServerThread, agent_id: int) -> tuple[int, str]:
    """An elder who is hard of hearing, called 4 times (one flagged for fraud, two this
    week), with one open follow-up; returns (elder id, link token)."""
    db = server.db
    elder = elders_db.add(db, "陈伯伯", phone="13900001111", dialect="cmn", hard_of_hearing=True)
    now = time.time()
    for n, days_ago in enumerate((40, 20, 3, 1)):
        call_id = f"old{n}-{elder.id}"
        at = now - days_ago * 86400
        calls_db.create(
            db, call_id, elder_id=elder.id, dialect="cmn", kind="inbound", arrived_at=at
        )
        calls_db.answered(db, call_id, agent_id, at + 5)
        if n == 1:
            calls_db.flag_fraud(db, call_id)
        calls_db.ended(db, call_id, outcome="completed", ended_by="agent", at=at + 300)
        calls_db.rate(db, call_id, "good")
        values = {
            "agent_id": agent_id,
            "problem": f"问题{n}",
            "action": f"做了{n}",
            "next_step": f"下一步{n}",
            "next_owner": "family",
            "outcome_code": "partly_solved",
        }
        callbacks_db.save_wrapup(db, call_id, values, at + 320)
    callbacks_db.insert(
        db,
        {
            "code": callbacks_db.new_code(db),
            "kind": "follow_up",
            "status": "booked",
            "elder_id": elder.id,
            "dialect": "cmn",
            "topic": "refund_order",
            "due_at": now + 86400,
            "created_at": now,
            "updated_at": now,
        },
    )
    return elder.id, elders_db.new_link(db, elder.id).token


def reads(server: ServerThread) -> list[dict[str, Any]]:
    return audit.entries(server.db, action="history_read")


def test_context_card_on_the_ring_and_full_history(server: ServerThread) -> None:
    agent_id = add_agent(server)
    elder_id, link = seed_elder(server, agent_id)

    async def scenario() -> None:
        agent = await open_agent(server, agent_id)
        caller = await open_caller(server, link)
        queued = await tap(caller)
        ring = await agent.expect("ring", call_id=queued["call_id"])
        msg = await agent.expect("context", call_id=ring["call_id"])
        card = msg["card"]
        assert card["known"] and card["elder"]["name"] == "陈伯伯"
        assert card["elder"]["hard_of_hearing"] is True and card["elder"]["dialect"] == "cmn"
        assert "13900001111" not in str(msg)  # no phone number on the card
        assert card["calls_7d"] == 3  # two earlier this week, and this one
        assert card["fraud"]["count"] == 1 and card["fraud"]["last_at"]
        assert [c["problem"] for c in card["last_calls"]] == ["问题3", "问题2", "问题1"]
        last = card["last_calls"][0]
        assert last["action"] == "做了3" and last["next_step"] == "下一步3"
        assert last["next_owner"] == "family" and last["outcome_code"] == "partly_solved"
        assert last["rating"] == "good" and last["agent"].startswith("agent")
        assert card["open_callbacks"][0]["kind"] == "follow_up"
        assert card["open_callbacks"][0]["topic"] == "refund_order"
        # The read was audited before the card was sent.
        assert any(r["subject"] == f"elder:{elder_id}" for r in reads(server))

        await agent.send({"type": "accept", "call_id": ring["call_id"]})
        await agent.expect("connected", call_id=ring["call_id"])
        await agent.send({"type": "history", "call_id": ring["call_id"]})
        full = await agent.expect("history", call_id=ring["call_id"])
        assert full["elder_id"] == elder_id and len(full["calls"]) == 4
        assert full["calls"][-1]["problem"] == "问题0"
        assert any(r["detail"].endswith("full") for r in reads(server))

        # Still readable during the wrap-up (the call is over, the agent still writes it up).
        await agent.send({"type": "hangup", "call_id": ring["call_id"]})
        await agent.expect("ended", call_id=ring["call_id"])
        await agent.send({"type": "history", "call_id": ring["call_id"]})
        await agent.expect("history", call_id=ring["call_id"])
        # ... and not once the agent moved on.
        await agent.send({"type": "ready"})
        await agent.expect("status", status="available")
        await agent.send({"type": "history", "call_id": ring["call_id"]})
        err = await agent.expect("error", code="forbidden")
        assert err["for"] == "history"

    run(scenario())


def test_history_of_someone_elses_caller_is_refused(server: ServerThread) -> None:
    mine, other = add_agent(server), add_agent(server)
    _, link = seed_elder(server, mine)

    async def scenario() -> None:
        agent = await open_agent(server, mine)
        nosy = await open_agent(server, other, available=False)
        caller = await open_caller(server, link)
        call_id, _ = await connect_call(caller, agent)
        await receive(agent, "context", call_id=call_id)  # its read is audited before it is sent
        before = len(reads(server))
        for bad in ({"type": "history", "call_id": call_id}, {"type": "history", "call_id": "x"}):
            await nosy.send(bad)
            await nosy.expect("error", code="forbidden")
        await nosy.send({"type": "history"})
        await nosy.expect("error", code="missing_field")
        await nosy.send({"type": "history", "call_id": 7})
        await nosy.expect("error", code="bad_field")
        assert len(reads(server)) == before  # refused reads show nothing and read nothing

    run(scenario())


def test_anonymous_caller_gets_an_honest_card(server: ServerThread) -> None:
    agent_id = add_agent(server)
    add_link(server)

    async def scenario() -> None:
        agent = await open_agent(server, agent_id)
        caller = await open_caller(server)
        queued = await tap(caller, "cmn")
        msg = await receive(agent, "context", call_id=queued["call_id"])
        assert msg["card"] == {"known": False}

    run(scenario())
