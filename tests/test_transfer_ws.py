"""Transfer and escalation over real websockets: cold transfer to a named agent, to a
dialect, to the supervisors; the note travels; the elder is told; the call is handed over
with its context card and captions so far; failures return the call to the first agent.
Every bad request gets a typed error and changes nothing."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline import transfer as rules
from hotline.db import agents as agents_db
from hotline.db import calls as calls_db
from hotline.db import transcripts as transcripts_db
from hotline.errors import HotlineError
from tests.support import SLOW, ServerThread
from tests.test_call_ws import (
    OFFER,
    add_agent,
    add_link,
    call_row,
    in_call,
    live,
    make_server,
    open_agent,
    quiet,
    receive,
    run,
    state_of,
)

_n = itertools.count(1)


def add_supervisor(server: ServerThread) -> int:
    name = f"boss{next(_n)}"
    return agents_db.add(
        server.db, name, "pw-" + name, ["cmn"], display_name=name, role="supervisor"
    ).id


def test_cold_transfer_to_a_named_agent(server: ServerThread) -> None:
    first, second = add_agent(server), add_agent(server, ("cmn", "yue"))
    link = add_link(server)

    async def scenario() -> str:
        a, caller, call_id = await in_call(server, first, link)
        transcripts_db.add_line(server.db, call_id, "caller", "cmn", {"text": "我要退款"})
        b = await open_agent(server, second)
        await a.send({"type": "transfer_targets"})
        targets = await a.expect("transfer_targets")
        assert [t["id"] for t in targets["agents"]] == [second]
        note = "退款问题，电话 13812345678，她听力不好"
        await a.send(
            {
                "type": "transfer",
                "call_id": call_id,
                "to": "agent",
                "agent_id": second,
                "note": note,
            }
        )
        started = await a.expect("transfer_started", call_id=call_id)
        assert started["to_kind"] == "agent"
        told = await caller.expect("on_hold", call_id=call_id)
        assert told["reason"] == "transfer" and "转接" in told["text"] and told["say"]
        ring = await b.expect("ring", call_id=call_id)
        assert ring["kind"] == "transfer"
        assert (
            "退款问题" in ring["transfer"]["note"] and "13812345678" not in ring["transfer"]["note"]
        )
        assert ring["transfer"]["from"].startswith("agent")
        card = await b.expect("context", call_id=call_id)
        assert card["card"]["known"]
        assert state_of(server, call_id) == "transferring"
        # A second transfer while one rings, hold while transferring: refused.
        await a.send({"type": "transfer", "call_id": call_id, "to": "supervisor"})
        await a.expect("error", code="transfer_pending")
        await a.send({"type": "hold", "call_id": call_id})
        await a.expect("error", code="not_connected")
        # The target answers: the caller is connected to them, the first agent is done.
        await b.send({"type": "accept_transfer", "call_id": call_id})
        done = await a.expect("transferred", call_id=call_id)
        assert done["to_name"].startswith("agent")
        await receive(a, "status", status="wrap_up")
        await caller.expect("connected", call_id=call_id)
        await b.expect("connected", call_id=call_id)
        got = await b.expect("transfer_note", call_id=call_id)
        assert "退款问题" in got["note"]
        so_far = await b.expect("captions_so_far", call_id=call_id)
        assert [line["text"] for line in so_far["lines"]] == ["我要退款"]
        assert state_of(server, call_id) == "connected"
        assert live(server, lambda: server.switchboard.calls[call_id].agent_id) == second
        # The first agent can no longer act on the call; the second can.
        await a.send({"type": "hold", "call_id": call_id})
        await a.expect("error", code="not_your_call")
        await b.send({"type": "hangup", "call_id": call_id})
        await caller.expect("ended", call_id=call_id)
        return call_id

    call_id = run(scenario())
    row = call_row(server, call_id)
    assert row["agent_id"] == second and row["transfers"] == 1
    kinds = [e["kind"] for e in calls_db.events(server.db, call_id)]
    assert kinds.index("transfer") < kinds.index("transfer_done") < kinds.index("end")


def test_escalation_to_supervisor_and_dialect_transfer(server: ServerThread) -> None:
    first, boss, yue = add_agent(server), add_supervisor(server), add_agent(server, ("yue",))
    link = add_link(server)

    async def scenario() -> None:
        a, caller, call_id = await in_call(server, first, link)
        s = await open_agent(server, boss)
        y = await open_agent(server, yue)
        await a.send({"type": "transfer", "call_id": call_id, "to": "dialect", "dialect": "yue"})
        ring = await y.expect("ring", call_id=call_id)
        assert ring["kind"] == "transfer"
        await y.send({"type": "decline_transfer", "call_id": call_id})
        failed = await a.expect("transfer_failed", call_id=call_id)
        assert failed["reason"] == "declined"
        told = await caller.expect("transfer_failed", call_id=call_id)
        assert "原来的客服" in told["text"] and told["say"]
        await y.expect("status", status="available")
        assert state_of(server, call_id) == "connected"
        # Escalation: the supervisor is rung; the first agent cancels, then tries again.
        await a.send({"type": "transfer", "call_id": call_id, "to": "supervisor", "note": "L2"})
        await s.expect("ring", call_id=call_id)
        await a.send({"type": "cancel_transfer", "call_id": call_id})
        assert (await a.expect("transfer_failed", call_id=call_id))["reason"] == "cancelled"
        await s.expect("ring_cancelled", call_id=call_id)
        await a.send({"type": "transfer", "call_id": call_id, "to": "supervisor", "note": "L2"})
        await receive(s, "ring", call_id=call_id)
        await s.send({"type": "accept_transfer", "call_id": call_id})
        await a.expect("transferred", call_id=call_id)
        await s.expect("transfer_note", call_id=call_id)

    run(scenario())


@pytest.fixture
def quick_ring_server(tmp_path: Path) -> Iterator[ServerThread]:
    yield from make_server(tmp_path, ring_timeout_seconds=0.5 * SLOW)


def test_transfer_rings_out_and_returns(quick_ring_server: ServerThread) -> None:
    server = quick_ring_server
    first, second = add_agent(server), add_agent(server)
    link = add_link(server)

    async def scenario() -> None:
        a, caller, call_id = await in_call(server, first, link)
        await open_agent(server, second)
        await a.send({"type": "transfer", "call_id": call_id, "to": "agent", "agent_id": second})
        failed = await a.expect("transfer_failed", call_id=call_id)
        assert failed["reason"] == "no_answer"
        await caller.expect("transfer_failed", call_id=call_id)
        assert state_of(server, call_id) == "connected"

    run(scenario())


def test_bad_transfers_change_nothing(server: ServerThread) -> None:
    first, busy, offline, other = (add_agent(server) for _ in range(4))
    link, link2 = add_link(server), add_link(server)

    async def scenario() -> None:
        a, caller, call_id = await in_call(server, first, link)
        # A busy colleague (in a call of their own) and one who is signed in but away.
        b, _, _ = await in_call(server, busy, link2)
        o = await open_agent(server, other, available=False)
        cases = [
            ({"to": "agent", "agent_id": offline}, "agent_offline"),
            ({"to": "agent", "agent_id": 987654}, "no_such_agent"),
            # Warm needs the colleague now (a cold transfer waits: test_transfer_wait_ws.py).
            ({"to": "agent", "agent_id": busy, "mode": "warm"}, "agent_busy"),
            ({"to": "agent", "agent_id": other, "mode": "warm"}, "agent_busy"),
            ({"to": "agent", "agent_id": first}, "self_transfer"),
            ({"to": "agent"}, "missing_field"),
            ({"to": "dialect", "dialect": "yue"}, "no_agent_for_dialect"),
            ({"to": "dialect", "dialect": "klingon"}, "bad_field"),
            ({"to": "supervisor"}, "no_supervisor_available"),
            ({"to": "moon"}, "bad_field"),
            ({"to": "agent", "agent_id": other, "note": "x" * 501}, "bad_field"),
            ({"to": "agent", "agent_id": "2"}, "bad_field"),
        ]
        for fields, code in cases:
            await a.send({"type": "transfer", "call_id": call_id, **fields})
            err = await a.expect("error", code=code)
            assert err["for"] == "transfer", fields
        # Not the agent of the call; no such call; answering a transfer that rings nobody.
        await o.send({"type": "transfer", "call_id": call_id, "to": "supervisor"})
        await o.expect("error", code="not_your_call")
        await a.send({"type": "transfer", "call_id": "nope", "to": "supervisor"})
        await a.expect("error", code="not_your_call")
        await o.send({"type": "accept_transfer", "call_id": call_id})
        await o.expect("error", code="not_ringing")
        await o.send({"type": "decline_transfer", "call_id": call_id})
        await o.expect("error", code="not_ringing")
        await a.send({"type": "cancel_transfer", "call_id": call_id})
        await a.expect("error", code="no_transfer")
        await caller.send({"type": "transfer", "call_id": call_id, "to": "supervisor"})
        await caller.expect("error", code="unknown_type")
        assert state_of(server, call_id) == "connected"
        await quiet(caller, "on_hold", 0.2)  # the elder heard nothing of all this

    run(scenario())


def test_hang_up_while_transferring_stops_the_target_ringing(server: ServerThread) -> None:
    first, second = add_agent(server), add_agent(server)
    link = add_link(server)

    async def scenario() -> None:
        a, caller, call_id = await in_call(server, first, link)
        b = await open_agent(server, second)
        await a.send({"type": "transfer", "call_id": call_id, "to": "agent", "agent_id": second})
        await b.expect("ring", call_id=call_id)
        await caller.send({"type": "hangup"})
        await b.expect("ring_cancelled", call_id=call_id)
        await b.expect("status", status="available")
        await a.expect("ended", call_id=call_id)

    run(scenario())


def test_pick_rules() -> None:
    duty = [
        rules.OnDuty(1, "agent", ("cmn",), "available", 5.0),
        rules.OnDuty(2, "agent", ("yue",), "available", 3.0),
        rules.OnDuty(3, "agent", ("yue",), "available", 1.0),
        rules.OnDuty(4, "supervisor", ("cmn",), "in_call", 0.0),
    ]
    assert rules.pick(rules.Target("dialect", dialect="yue"), duty, 1).agent_id == 3
    assert rules.pick(rules.Target("agent", agent_id=2), duty, 1).agent_id == 2
    for target, code in [
        (rules.Target("supervisor"), "no_supervisor_available"),
        (rules.Target("dialect", dialect="yue"), "no_agent_for_dialect"),
    ]:
        try:
            rules.pick(target, duty[:1] + duty[3:], 1)
        except HotlineError as exc:
            assert exc.code == code
        else:
            raise AssertionError(code)


def test_warm_transfer_agents_talk_first(server: ServerThread) -> None:
    first, second, other = add_agent(server), add_agent(server), add_agent(server)
    link = add_link(server)

    async def scenario() -> str:
        a, caller, call_id = await in_call(server, first, link)
        b = await open_agent(server, second)
        o = await open_agent(server, other, available=False)
        await a.send({"type": "complete_transfer", "call_id": call_id})
        await a.expect("error", code="not_consulting")
        await a.send(
            {
                "type": "transfer",
                "call_id": call_id,
                "to": "agent",
                "agent_id": second,
                "note": "她要退款",
                "mode": "warm",
            }
        )
        ring = await b.expect("ring", call_id=call_id)
        assert ring["transfer"]["mode"] == "warm"
        await a.send({"type": "consult_signal", "call_id": call_id, "data": OFFER})
        await a.expect("error", code="not_consulting")  # not before the target answers
        await b.send({"type": "accept_transfer", "call_id": call_id})
        mine = await a.expect("consult", call_id=call_id)
        theirs = await b.expect("consult", call_id=call_id)
        assert (mine["role"], theirs["role"]) == ("offerer", "answerer")
        assert theirs["note"] == "她要退款"
        await receive(b, "status", status="in_call")
        assert state_of(server, call_id) == "transferring"  # the elder still waits
        # The agents' own connection: relayed between the two of them only.
        await a.send({"type": "consult_signal", "call_id": call_id, "data": OFFER})
        got = await b.expect("consult_signal", call_id=call_id)
        assert got["data"]["kind"] == "offer"
        await o.send({"type": "consult_signal", "call_id": call_id, "data": OFFER})
        await o.expect("error", code="not_your_call")
        await a.send({"type": "consult_signal", "call_id": call_id, "data": {"sdp": "nope"}})
        await a.expect("error", code="bad_sdp")
        await b.send({"type": "complete_transfer", "call_id": call_id})
        await b.expect("error", code="not_your_call")  # only the first agent hands over
        await b.send({"type": "accept_transfer", "call_id": call_id})
        await b.expect("error", code="not_ringing")
        await quiet(caller, "connected", 0.2)
        await a.send({"type": "complete_transfer", "call_id": call_id})
        await a.expect("transferred", call_id=call_id)
        await caller.expect("connected", call_id=call_id)
        await b.expect("connected", call_id=call_id)
        await b.expect("transfer_note", call_id=call_id)
        await b.expect("captions_so_far", call_id=call_id)
        return call_id

    call_id = run(scenario())
    kinds = [e["kind"] for e in calls_db.events(server.db, call_id)]
    assert kinds.index("transfer") < kinds.index("consult") < kinds.index("transfer_done")


def test_warm_transfer_cancelled_during_the_consultation(server: ServerThread) -> None:
    first, second = add_agent(server), add_agent(server)
    link = add_link(server)

    async def scenario() -> None:
        a, caller, call_id = await in_call(server, first, link)
        b = await open_agent(server, second)
        await a.send(
            {
                "type": "transfer",
                "call_id": call_id,
                "to": "agent",
                "agent_id": second,
                "mode": "warm",
            }
        )
        await b.expect("ring", call_id=call_id)
        await b.send({"type": "accept_transfer", "call_id": call_id})
        await a.expect("consult", call_id=call_id)
        await b.send({"type": "decline_transfer", "call_id": call_id})
        await b.expect("consult_ended", call_id=call_id)
        assert (await a.expect("transfer_failed", call_id=call_id))["reason"] == "declined"
        await caller.expect("transfer_failed", call_id=call_id)
        await receive(b, "status", status="available")
        assert state_of(server, call_id) == "connected"
        await a.send({"type": "transfer", "call_id": call_id, "to": "supervisor", "mode": "hot"})
        await a.expect("error", code="bad_field")

    run(scenario())
