"""A family member joins a call over real websockets: one-time link from the agent, the
third party's signalling relayed to the elder and the agent only, the link dead once used
or when the call ends."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import InvalidStatus

from hotline.db import calls as calls_db
from hotline.live.hub import Conn
from hotline.live.server import Context
from tests.support import Client, ServerThread, async_wait_until, family_booking
from tests.test_call_ws import (
    OFFER,
    add_agent,
    add_link,
    call_row,
    connect_call,
    in_call,
    open_agent,
    open_caller,
    open_client,
    run,
)


def family_url(server: ServerThread, link_url: str) -> str:
    token = urlsplit(link_url).path.rsplit("/", 1)[-1]
    return f"{server.ws}?role=family&join={token}"


async def refused(server: ServerThread, url: str) -> dict[str, Any]:
    """Open a family socket that the server must refuse; returns the error it sent."""
    client = await open_client(url)
    msg = await client.expect("error")
    return msg


def test_family_member_joins_and_signals_both_parties(server: ServerThread) -> None:
    agent_id, other_id = add_agent(server), add_agent(server)
    link = add_link(server)

    async def scenario() -> str:
        agent = await open_agent(server, agent_id)
        other = await open_agent(server, other_id, available=False)
        caller = await open_caller(server, link)
        call_id, _ = await connect_call(caller, agent)
        # What a cluster node says of a family page it moves (relay.py) is not a client's
        # to say: without a token, refused.
        forged = f"{server.ws}?role=family&moved=1&resume_call={call_id}"
        assert (await refused(server, forged))["code"] == "join_unknown"
        await other.send({"type": "family_link", "call_id": call_id})
        await other.expect("error", code="not_your_call")
        await agent.send({"type": "family_link", "call_id": call_id})
        made = await agent.expect("family_link", call_id=call_id)
        assert "/j/" in made["url"]
        url = family_url(server, made["url"])
        family: Client = await open_client(url)
        hello = await family.expect("hello")
        assert hello["role"] == "family" and hello["call_id"] == call_id
        assert sorted(hello["parties"]) == ["agent", "caller"]
        assert sum(m.get("type") == "family_joined" for m in caller.seen) == 1  # not forged
        await caller.expect("family_joined", call_id=call_id)
        await agent.expect("family_joined", call_id=call_id)
        # The mesh: the family page offers to each party; answers come back to it only.
        for party, client in (("caller", caller), ("agent", agent)):
            await family.send({"type": "family_signal", "to": party, "data": OFFER})
            got = await client.expect("family_signal", call_id=call_id)
            assert got["data"]["kind"] == "offer"
            answer = {"kind": "answer", "sdp": OFFER["sdp"]}
            await client.send({"type": "family_signal", "data": answer})
            back = await family.expect("family_signal")
            assert back["from"] == party and back["data"]["kind"] == "answer"
        # Bad input from the family page and from someone not on the call.
        await family.send({"type": "family_signal", "to": "supervisor", "data": OFFER})
        await family.expect("error", code="bad_field")
        await family.send({"type": "family_signal", "to": "agent", "data": {"sdp": "x"}})
        await family.expect("error", code="bad_sdp")
        await family.send({"type": "hangup"})
        await family.expect("error", code="unknown_type")
        await other.send({"type": "family_signal", "data": OFFER})
        await other.expect("error", code="no_family")
        # A second link while the family member is on the call; a reused link.
        await agent.send({"type": "family_link", "call_id": call_id})
        await agent.expect("error", code="family_present")
        assert (await refused(server, url))["code"] == "join_used"
        # They leave; the call ends; the link is dead for good.
        await family.send({"type": "leave"})
        await agent.expect("family_left", call_id=call_id)
        await caller.expect("family_left", call_id=call_id)
        await agent.send({"type": "hangup", "call_id": call_id})
        await caller.expect("ended", call_id=call_id)
        assert (await refused(server, url))["code"] in ("join_used", "join_unknown")
        return call_id

    call_id = run(scenario())
    call_row(server, call_id)
    kinds = [e["kind"] for e in calls_db.events(server.db, call_id)]
    assert kinds.index("family_link") < kinds.index("family_joined") < kinds.index("family_left")


def test_join_link_dies_with_the_call_and_bad_tokens_are_refused(server: ServerThread) -> None:
    agent_id = add_agent(server)
    link = add_link(server)

    async def scenario() -> None:
        agent, caller, call_id = await in_call(server, agent_id, link)
        await agent.send({"type": "family_link", "call_id": call_id})
        url = family_url(server, (await agent.expect("family_link"))["url"])
        await caller.send({"type": "hangup"})
        await agent.expect("ended", call_id=call_id)
        # Dead with the call (`call_over` while the call is being closed, then unknown).
        assert (await refused(server, url))["code"] in ("call_over", "join_unknown")
        assert (await refused(server, f"{server.ws}?role=family&join=forged"))[
            "code"
        ] == "join_unknown"
        assert (await refused(server, f"{server.ws}?role=family"))["code"] == "join_unknown"

    run(scenario())


def test_unknown_role_is_still_refused(server: ServerThread) -> None:
    async def scenario() -> None:
        try:
            await open_client(f"{server.ws}?role=granny")
        except InvalidStatus as exc:
            assert exc.response.status_code == 400
        else:
            raise AssertionError("role=granny was accepted")

    run(scenario())


def test_family_joins_from_the_bookings_manage_page(server: ServerThread) -> None:
    import re

    from hotline.db import elders as elders_db
    from hotline.web import create_app

    agent_id = add_agent(server)
    link = add_link(server)
    elder_id = elders_db.get_link(server.db, link).elder_id
    _, token = family_booking(server, elder_id)
    web = create_app(server.services).test_client()

    def press_join() -> Any:
        page = web.get(f"/family/b/{token}").get_data(as_text=True)
        assert 'id="join-call"' in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        return web.post(f"/family/b/{token}/join", data={"csrf": csrf})

    not_now = press_join()  # the elder is not on a call
    assert not_now.status_code == 409 and "不在通话中" in not_now.get_data(as_text=True)

    async def scenario() -> None:
        agent, caller, call_id = await in_call(server, agent_id, link)
        import asyncio

        r = await asyncio.to_thread(press_join)
        assert r.status_code == 303 and r.headers["Location"].startswith("/j/")
        told = await agent.expect("family_link", call_id=call_id)
        assert told["by"] == "family" and told["url"].endswith(r.headers["Location"])
        tok = r.headers["Location"].rsplit("/", 1)[1]
        family = await open_client(f"{server.ws}?role=family&join={tok}")
        assert (await family.expect("hello"))["call_id"] == call_id
        await caller.expect("family_joined", call_id=call_id)

    run(scenario())


def test_family_member_reconnects_to_the_new_agent_after_a_transfer(server: ServerThread) -> None:
    first_id, second_id = add_agent(server), add_agent(server)
    link, busy_link = add_link(server), add_link(server)

    async def scenario() -> None:
        first, caller, call_id = await in_call(server, first_id, link)
        second, _, other_call = await in_call(server, second_id, busy_link)
        await first.send({"type": "family_link", "call_id": call_id})
        url = family_url(server, (await first.expect("family_link", call_id=call_id))["url"])
        family: Client = await open_client(url)
        await family.expect("hello")
        await first.expect("family_joined", call_id=call_id)
        # A cold transfer to the busy colleague waits; the family stays with the elder.
        await first.send(
            {"type": "transfer", "call_id": call_id, "to": "agent", "agent_id": second_id}
        )
        await first.expect("transfer_waiting", call_id=call_id)
        await family.send({"type": "family_signal", "to": "caller", "data": OFFER})
        await caller.expect("family_signal", call_id=call_id)
        await second.send({"type": "hangup", "call_id": other_call})
        await second.send({"type": "ready"})
        await second.expect("ring", call_id=call_id)
        await second.send({"type": "accept_transfer", "call_id": call_id})
        # The new agent: the family page is told to connect to them, and they expect it.
        await family.expect("agent_changed", call_id=call_id)
        await second.expect("family_joined", call_id=call_id)
        await family.send({"type": "family_signal", "to": "agent", "data": OFFER})
        got = await second.expect("family_signal", call_id=call_id)
        assert got["data"]["kind"] == "offer"
        await second.send(
            {"type": "family_signal", "data": {"kind": "answer", "sdp": OFFER["sdp"]}}
        )
        back = await family.expect("family_signal")
        assert back["from"] == "agent"
        # The first agent is no longer part of the family's call.
        await first.send({"type": "family_signal", "data": OFFER})
        await first.expect("error", code="not_your_call")

    run(scenario())


class Moved(Conn):
    """A family page's session as a cluster node hands it to a new holder of the line
    (relay.BusConn's stand-in here: what the holder sends it is kept, not published)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.seen: list[dict[str, Any]] = []

    def is_open(self) -> bool:
        return not self.closed

    def send(self, message: dict[str, Any]) -> None:
        if not self.closed:
            self.seen.append(json.loads(json.dumps(message)))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True

    async def flush_and_close(self, code: int = 1000, reason: str = "", timeout: float = 2) -> None:
        self.close(code, reason)


def test_a_family_page_moved_by_a_failover_is_taken_back_into_its_call(
    server: ServerThread,
) -> None:
    """Cluster mode, on the new holder's side: a family page whose session moved here (its
    link was spent on the dead holder; the front says `moved` and the call it was in) is
    admitted without a token, the parties connect to it again, and its signalling, leaving
    and the call's end work as for a join; a call that ended meanwhile: `ended`, closed."""
    agent_id = add_agent(server)
    link = add_link(server)
    live = server.running.live

    def move(conn: Conn, call_id: str, admitted: bool = True) -> Context:
        ctx = Context(conn, "family", address="node-b")
        query = {"moved": ["1"], "resume_call": [call_id], "join": ["spent-elsewhere"]}
        assert server.call(live.open_session(ctx, query)) is admitted, conn.seen
        return ctx

    async def scenario() -> str:
        agent, caller, call_id = await in_call(server, agent_id, link)
        page = Moved()
        ctx = await asyncio.to_thread(move, page, call_id)
        hello = page.seen[0]
        assert (hello["type"], hello["call_id"]) == ("hello", call_id)
        assert sorted(hello["parties"]) == ["agent", "caller"]
        await caller.expect("family_joined", call_id=call_id)
        await agent.expect("family_joined", call_id=call_id)
        signal = json.dumps({"type": "family_signal", "to": "caller", "data": OFFER})
        await asyncio.to_thread(server.call, live.dispatch(ctx, signal))
        await caller.expect("family_signal", call_id=call_id)
        await agent.send({"type": "family_link", "call_id": call_id})  # one family page
        await agent.expect("error", code="family_present")
        await agent.send({"type": "hangup", "call_id": call_id})
        await caller.expect("ended", call_id=call_id)
        await async_wait_until(lambda: page.closed, 10, "the moved page closed at the end")
        assert page.seen[-1] == {"type": "ended", "call_id": call_id}
        await asyncio.to_thread(server.call, live.close_session(ctx))
        # Moved after the call ended (the holder died before telling the page): told so.
        late = Moved()
        await asyncio.to_thread(move, late, call_id, False)
        assert late.seen == [{"type": "ended", "call_id": call_id}] and late.closed
        return call_id

    call_id = run(scenario())
    call_row(server, call_id)
    kinds = [e["kind"] for e in calls_db.events(server.db, call_id)]
    assert "family_joined" not in kinds  # a move is not a join: the page never left
