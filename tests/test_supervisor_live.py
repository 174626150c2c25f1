"""Supervisors on the live side: a wallboard socket that never takes calls, monitoring, kicks."""

from __future__ import annotations

import asyncio

from hotline.db import agents as agents_db
from hotline.db import audit
from hotline.db import elders as elders_db
from tests.support import Client, ServerThread, agent_ticket


def ticket(srv: ServerThread, agent_id: int) -> str:
    return agent_ticket(srv, agent_id)


def test_wallboard_socket_watches_without_taking_calls(server: ServerThread) -> None:
    boss = agents_db.add(server.db, "boss", "pw", ["cmn"], role="supervisor")
    worker = agents_db.add(server.db, "w", "pw", ["cmn"])
    elder = elders_db.add(server.db, "甲")
    link = elders_db.new_link(server.db, elder.id).token

    async def scenario() -> None:
        board = await Client.open(f"{server.ws}?role=supervisor&token={ticket(server, boss.id)}")
        assert (await board.expect("hello"))["role"] == "supervisor"
        # The same supervisor's agent console does not knock the wallboard off.
        console = await Client.open(f"{server.ws}?role=agent&token={ticket(server, boss.id)}")
        await console.expect("hello")
        agent = await Client.open(f"{server.ws}?role=agent&token={ticket(server, worker.id)}")
        await agent.expect("hello")
        await agent.send({"type": "status", "status": "available"})
        caller = await Client.open(f"{server.ws}?role=caller&link={link}")
        await caller.expect("hello")
        await caller.send({"type": "call"})
        ring = await agent.expect("ring")
        await agent.send({"type": "accept", "call_id": ring["call_id"]})
        await caller.expect("connected")
        await board.send({"type": "monitor", "call_id": ring["call_id"]})
        watching = await board.expect("monitoring")
        assert watching["call_id"] == ring["call_id"]
        # An agent may not monitor; a non-supervisor may not open a wallboard socket.
        await agent.send({"type": "monitor", "call_id": ring["call_id"]})
        assert (await agent.expect("error"))["code"] == "forbidden"
        assert board.ws.close_code is None
        await agent.send({"type": "guide_start", "script_id": "find-hidden-order"})
        await board.expect("guide_state")
        # Disabling the agent's account closes their console.
        await asyncio.to_thread(agents_db.update, server.db, worker.id, disabled=True)
        await asyncio.to_thread(server.services.kick_agent, worker.id)
        err = await agent.expect("error", code="account_disabled")
        assert err

    server.call(scenario())
    assert audit.entries(server.db, action="monitor_call")


def test_wallboard_socket_refuses_agents(server: ServerThread) -> None:
    worker = agents_db.add(server.db, "w", "pw", ["cmn"])

    async def scenario() -> dict:
        board = await Client.open(f"{server.ws}?role=supervisor&token={ticket(server, worker.id)}")
        return await board.expect("error")

    assert server.call(scenario())["code"] == "forbidden"
