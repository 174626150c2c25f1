"""Hold over real websockets: the elder is told (text and spoken prompt), reminded, resumed;
hold time recorded; every wrong use gets a typed error and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.db import calls as calls_db
from tests.support import SLOW, ServerThread
from tests.test_call_ws import (
    add_agent,
    add_link,
    call_row,
    connect_call,
    in_call,
    make_server,
    open_agent,
    open_caller,
    quiet,
    run,
    state_of,
)


@pytest.fixture
def hold_server(tmp_path: Path) -> Iterator[ServerThread]:
    yield from make_server(tmp_path, hold_reminder_seconds=0.5 * SLOW)


def test_hold_remind_resume_and_recorded(hold_server: ServerThread) -> None:
    server = hold_server
    agent_id = add_agent(server)
    link = add_link(server)

    async def scenario() -> str:
        agent, caller, call_id = await in_call(server, agent_id, link)
        await agent.send({"type": "hold", "call_id": call_id})
        told = await caller.expect("on_hold", call_id=call_id)
        assert told["text"] == "请稍等，客服马上回来。" and told["again"] is False
        assert told["say"].startswith("/")  # the elder's voice: a prompt URL the page plays
        mine = await agent.expect("on_hold", call_id=call_id)
        assert mine["reminder_seconds"] == server.cfg.hold_reminder_seconds
        assert state_of(server, call_id) == "on_hold"
        # A reminder: the agent is nudged, the elder hears the message again.
        reminder = await agent.expect("hold_reminder", call_id=call_id)
        assert reminder["seconds"] >= 0
        again = await caller.expect("on_hold", call_id=call_id)
        assert again["again"] is True
        # Signalling and the taps keep working on hold (captions carry on).
        await agent.send({"type": "signal", "call_id": call_id, "data": {"candidate": None}})
        await caller.expect("signal", call_id=call_id)
        await agent.send({"type": "resume", "call_id": call_id})
        back = await caller.expect("off_hold", call_id=call_id)
        assert back["held_seconds"] > 0
        await agent.expect("off_hold", call_id=call_id)
        assert state_of(server, call_id) == "connected"
        await agent.send({"type": "hangup", "call_id": call_id})
        await caller.expect("ended", call_id=call_id)
        return call_id

    call_id = run(scenario())
    row = call_row(server, call_id)
    assert row["outcome"] == "completed" and row["hold_seconds"] > 0
    kinds = [e["kind"] for e in calls_db.events(server.db, call_id)]
    assert kinds.index("hold") < kinds.index("resume") < kinds.index("end")


def test_hang_up_on_hold_ends_the_call_and_keeps_the_hold_time(server: ServerThread) -> None:
    agent_id = add_agent(server)
    link = add_link(server)

    async def scenario() -> str:
        agent, caller, call_id = await in_call(server, agent_id, link)
        await agent.send({"type": "hold", "call_id": call_id})
        await agent.expect("on_hold", call_id=call_id)
        await caller.send({"type": "hangup"})
        ended = await agent.expect("ended", call_id=call_id)
        assert ended["reason"] == "completed"
        return call_id

    call_id = run(scenario())
    assert call_row(server, call_id)["hold_seconds"] >= 0
    assert "hold" in [e["kind"] for e in calls_db.events(server.db, call_id)]


def test_hold_misuse_gets_typed_errors_and_changes_nothing(server: ServerThread) -> None:
    agent_id, other_id = add_agent(server), add_agent(server)
    link = add_link(server)

    async def scenario() -> None:
        agent = await open_agent(server, agent_id)
        other = await open_agent(server, other_id, available=False)
        caller = await open_caller(server, link)
        call_id, _ = await connect_call(caller, agent)
        # Someone not in the call, an unknown call, a malformed message.
        await other.send({"type": "hold", "call_id": call_id})
        assert (await other.expect("error", code="not_your_call"))["for"] == "hold"
        await agent.send({"type": "hold", "call_id": "nope"})
        await agent.expect("error", code="not_your_call")
        await agent.send({"type": "hold"})
        await agent.expect("error", code="missing_field")
        await caller.send({"type": "hold", "call_id": call_id})
        await caller.expect("error", code="unknown_type")
        await agent.send({"type": "resume", "call_id": call_id})
        await agent.expect("error", code="not_on_hold")
        assert state_of(server, call_id) == "connected"
        await quiet(caller, "on_hold", 0.2)
        # Twice on hold; resumed by someone else.
        await agent.send({"type": "hold", "call_id": call_id})
        await agent.expect("on_hold", call_id=call_id)
        await agent.send({"type": "hold", "call_id": call_id})
        await agent.expect("error", code="already_on_hold")
        await other.send({"type": "resume", "call_id": call_id})
        await other.expect("error", code="not_your_call")
        assert state_of(server, call_id) == "on_hold"

    run(scenario())
