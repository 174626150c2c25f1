"""Issue 17: an outsider against the websocket side, each attack bounded and on loopback only.

The server trusts 127.0.0.1 as its proxy, so each client says which address it comes from
with X-Forwarded-For (documentation addresses, only ever written into a header). Limits
are small here; tests/test_attacks_http.py checks that the defaults are the safe ones.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from hotline.db import agents as agents_db
from hotline.db import callbacks as callbacks_db
from hotline.db import elders as elders_db
from tests.support import SLOW, Client, ServerThread, async_wait_until, connect_call
from tests.support import test_config as config_for
from tests.web_client import WebClient

PW = "attack-ws-password"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    cfg = config_for(
        Path(tmp_path_factory.mktemp("attacks-ws")),
        trusted_proxy="127.0.0.1",
        ws_callers_per_address=4,
        ws_calls_per_address_minute=5,
        rejoin_seconds=0.5,
    )
    srv = ServerThread(cfg)
    agents_db.add(srv.db, "boss", PW, ["cmn"], role="supervisor")
    yield srv
    srv.stop()


def run(srv: ServerThread, coro: Any) -> Any:
    return srv.call(coro, timeout=60)


async def caller_from(srv: ServerThread, address: str, link: str = "") -> Client:
    query = f"&link={link}" if link else ""
    return await Client.open(
        f"{srv.ws}?role=caller{query}", additional_headers={"X-Forwarded-For": address}
    )


def count_calls(srv: ServerThread) -> int:
    return int(srv.db.query_one("SELECT COUNT(*) FROM calls")[0])


# ----------------------------------------------------------------- finding 2: caller flood
def test_caller_flood_from_one_address_does_not_push_an_elder_back(srv: ServerThread) -> None:
    elder = elders_db.add(srv.db, "吴奶奶", phone="13500001111")
    link = elders_db.new_link(srv.db, elder.id).token
    calls_before = count_calls(srv)

    async def scenario() -> tuple[int, list[str]]:
        flood = [await caller_from(srv, "198.51.100.1") for _ in range(7)]
        for c in flood:
            await async_wait_until(lambda c=c: c.seen, 10, "a first message")
        opened = [c for c in flood if c.seen[0]["type"] == "hello"]
        refused = [c for c in flood if c.seen[0]["type"] == "error"]
        assert len(opened) == 4 and len(refused) == 3
        assert {c.seen[0]["code"] for c in refused} == {"rate_limited"}
        for c in opened:
            await c.send({"type": "call"})
            await c.expect("queued")
        # call/hangup churn on one socket: the fifth call of the minute is the last
        churn = opened[0]
        codes = []
        in_call = True
        for _ in range(4):
            if in_call:
                await churn.send({"type": "hangup"})
                await churn.expect("ended")
            await churn.send({"type": "call"})
            while True:
                msg = await churn.inbox.get()
                if msg["type"] in ("queued", "error"):
                    codes.append(msg.get("code", "queued"))
                    in_call = msg["type"] == "queued"
                    break
        elder_page = await caller_from(srv, "203.0.113.1", link)
        await elder_page.expect("hello")
        await elder_page.send({"type": "call"})
        await elder_page.expect("queued")
        queue = await elder_page.expect("queue")
        for c in flood + [elder_page]:
            await c.close()
        return queue["position"], codes

    position, codes = run(srv, scenario())
    assert codes == ["queued", "rate_limited", "rate_limited", "rate_limited"]
    assert position <= 5  # at most the per-address limit of strangers ahead
    assert count_calls(srv) - calls_before == 5 + 1  # five from the flood, one real elder


def test_anonymous_callback_request_is_refused_and_the_entry_expires(srv: ServerThread) -> None:
    async def scenario() -> str:
        c = await caller_from(srv, "198.51.100.2")
        await c.expect("hello")
        await c.send({"type": "call"})
        queued = await c.expect("queued")
        queue = await c.expect("queue")
        assert queue["offer_callback"] is False  # nobody to call back: never offered
        await c.send({"type": "callback_request"})
        err = await c.expect("error")
        assert err["code"] == "no_phone"
        await c.close()
        call_id = queued["call_id"]
        await async_wait_until(lambda: call_id not in srv.switchboard.calls, 10, "past the window")
        return call_id

    call_id = run(srv, scenario())
    row = srv.db.query_one("SELECT outcome FROM calls WHERE id = ?", (call_id,))
    assert row["outcome"] == "abandoned"
    assert callbacks_db.by_idem(srv.db, f"keep_place:{call_id}") is None
    assert callbacks_db.by_idem(srv.db, f"abandoned:{call_id}") is None  # no phone: no task


# ----------------------------------------------------------------- finding 10: line-jumping
def test_aborted_calls_make_one_abandoned_task_per_elder(srv: ServerThread) -> None:
    elder = elders_db.add(srv.db, "郑爷爷", phone="13500002222")
    link = elders_db.new_link(srv.db, elder.id).token

    async def scenario() -> None:
        for _ in range(4):
            c = await caller_from(srv, "203.0.113.2", link)
            await c.expect("hello")
            await c.send({"type": "call"})
            queued = await c.expect("queued")
            await c.close()  # vanishes while waiting
            await async_wait_until(
                lambda q=queued: q["call_id"] not in srv.switchboard.calls, 10, "the call gone"
            )
            await async_wait_until(
                lambda q=queued: (
                    srv.db.query_one("SELECT outcome FROM calls WHERE id = ?", (q["call_id"],))[
                        "outcome"
                    ]
                    == "abandoned"
                ),
                10,
                "the call stored as abandoned",
            )
        await async_wait_until(
            lambda: callbacks_db.open_of_kind(srv.db, elder.id, "abandoned") is not None,
            10,
            "the abandoned task",
        )

    run(srv, scenario())
    rows = srv.db.query(
        "SELECT COUNT(*) FROM callbacks WHERE elder_id = ? AND kind = 'abandoned'", (elder.id,)
    )
    assert rows[0][0] == 1


# ----------------------------------------------------------------- finding 7: tickets, sessions
def test_tickets_are_single_use_and_die_with_the_session(srv: ServerThread) -> None:
    agents_db.add(srv.db, "kim", PW, ["cmn"])
    kim = WebClient(srv.http, "203.0.113.3")
    assert kim.login("kim", PW).status_code == 303
    token = kim.get("/api/ws-token").json()["token"]
    url = f"{srv.ws}?role=agent&token={token}"

    async def first_and_replay() -> tuple[Client, Client]:
        first = await Client.open(url)
        await first.expect("hello")
        replay = await Client.open(url)
        await replay.expect("error", code="ticket_used")
        await asyncio.wait_for(replay.ws.wait_closed(), 5 * SLOW)
        # What a cluster node says of a session it moves (relay.py) is not a client's to say.
        kim_id = agents_db.by_username(srv.db, "kim").id  # type: ignore[union-attr]
        forged = await Client.open(f"{url}&resume_agent={kim_id}&resume_session=x")
        await forged.expect("error", code="ticket_used")
        return first, replay

    first, _ = run(srv, first_and_replay())
    assert kim.post("/agent/logout", {}).status_code == 303
    assert kim.get("/api/ws-token").status_code == 401  # the session is gone server-side
    run(srv, asyncio.wait_for(first.ws.wait_closed(), 5 * SLOW))  # and so is its socket
    # A new session, then an admin sets a new password: old session and sockets end.
    assert kim.login("kim", PW).status_code == 303
    token = kim.get("/api/ws-token").json()["token"]
    console = run(srv, Client.open(f"{srv.ws}?role=agent&token={token}"))
    run(srv, console.expect("hello"))
    boss = WebClient(srv.http, "203.0.113.4")
    assert boss.login("boss", PW).status_code == 303
    kim_row = agents_db.by_username(srv.db, "kim")
    assert kim_row is not None
    kim_id = kim_row.id
    form = {"display_name": "Kim", "dialects": "cmn", "role": "agent", "password": "x" * 12}
    assert boss.post(f"/admin/agents/{kim_id}", form).status_code == 303
    assert kim.get("/api/ws-token").status_code == 401
    run(srv, asyncio.wait_for(console.ws.wait_closed(), 5 * SLOW))


# ----------------------------------------------------------------- finding 6: demotion
def test_a_demoted_supervisor_stops_watching(srv: ServerThread) -> None:
    sup = agents_db.add(srv.db, "sue", PW, ["cmn"], role="supervisor")
    # Cantonese: the abandoned-call task of the test above (Mandarin) must not ring them.
    agent = agents_db.add(srv.db, "ann2", PW, ["yue"])
    elder = elders_db.add(srv.db, "冯奶奶", phone="13500003333", dialect="yue")
    link = elders_db.new_link(srv.db, elder.id).token
    sue = WebClient(srv.http, "203.0.113.5")
    assert sue.login("sue", PW).status_code == 303
    token = sue.get("/api/ws-token").json()["token"]

    async def watch() -> tuple[Client, Client, Client, str]:
        board = await Client.open(f"{srv.ws}?role=supervisor&token={token}")
        await board.expect("hello")
        console, caller, call_id = await connect_call(srv, agent.id, link)
        await board.send({"type": "monitor", "call_id": call_id})
        await board.expect("monitoring", call_id=call_id)
        return board, console, caller, call_id

    board, console, caller, call_id = run(srv, watch())
    boss = WebClient(srv.http, "203.0.113.6")
    assert boss.login("boss", PW).status_code == 303
    form = {"display_name": "Sue", "dialects": "cmn", "role": "agent"}
    assert boss.post(f"/admin/agents/{sup.id}", form).status_code == 303

    async def after() -> None:
        await board.expect("error", code="account_changed")
        await asyncio.wait_for(board.ws.wait_closed(), 5 * SLOW)
        assert srv.switchboard.hub.subscribers(f"monitor:{call_id}") == 0
        await console.send({"type": "ping"})  # the call itself goes on
        await console.expect("pong")
        for c in (console, caller):
            await c.close()

    run(srv, after())
    assert sue.get("/api/ws-token").status_code == 401
    with pytest.raises(InvalidStatus):  # an old-style or replayed ticket opens nothing
        run(srv, Client.open(f"{srv.ws}?role=supervisor&token={token}x"))


# ----------------------------------------------------------------- finding 13: origins
def _handshake(srv: ServerThread, host: str, origin: str) -> bytes:
    port = int(srv.ws.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), 10 * SLOW) as s:
        s.sendall(
            f"GET /ws?role=caller HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
        )
        return s.recv(100)


def test_websocket_origins_are_a_fixed_list(srv: ServerThread) -> None:
    # DNS rebinding: the attacker's name points at us, so Host and Origin agree. Refused.
    assert _handshake(srv, "evil.example:80", "http://evil.example").startswith(b"HTTP/1.1 403")
    assert _handshake(srv, "localhost", "http://localhost:8080").startswith(b"HTTP/1.1 101")


# ----------------------------------------------------------------- finding 11: ICE candidates
LOCAL_CANDIDATES = [
    "10.1.2.3", "192.168.0.5", "172.16.0.1", "169.254.9.9", "100.64.1.1", "224.0.0.251",
    "0.0.0.0", "fc00::1", "fe80::1", "::1", "printer.local",
]  # fmt: skip


def _offer_with_candidates(sink_port: int, n_loopback: int) -> str:
    from aiortc import RTCConfiguration, RTCPeerConnection

    async def offer() -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    sdp = asyncio.run(offer())
    lines = [ln for ln in sdp.splitlines() if not ln.startswith("a=candidate:")]
    extra = [
        f"a=candidate:{i} 1 udp 2130706431 {a} 9 typ host" for i, a in enumerate(LOCAL_CANDIDATES)
    ]
    extra += [
        f"a=candidate:{100 + i} 1 udp 2130706431 127.0.0.1 {sink_port + i} typ host"
        for i in range(n_loopback)
    ]
    return "\r\n".join(lines + extra) + "\r\n"


def _tap_with(srv: ServerThread, sdp: str, sink: socket.socket) -> tuple[int, bytes]:
    """(remote candidates the gateway's ICE agent holds, the first datagram the sink got
    while the call was up; b"" if none came before the answer plus a short grace)."""
    agent = agents_db.add(srv.db, f"ice{time.monotonic_ns()}", PW, ["cmn"])
    elder = elders_db.add(srv.db, "陈奶奶", phone="13500004444")
    link = elders_db.new_link(srv.db, elder.id).token

    async def scenario() -> tuple[int, bytes]:
        console, caller, call_id = await connect_call(srv, agent.id, link)
        await caller.send({"type": "tap_offer", "sdp": sdp})
        await caller.expect("tap_answer")
        leg = srv.running.gateway.leg(call_id, "caller")
        assert leg is not None
        transport = leg.pc.getTransceivers()[0].receiver.transport.transport
        remote = len(transport.getRemoteCandidates())
        got = b""
        deadline = time.monotonic() + (10 * SLOW if remote else 0)
        while not got and time.monotonic() < deadline:
            try:
                got = sink.recv(2048)
            except BlockingIOError:
                await asyncio.sleep(0.05)
        for c in (console, caller):
            await c.close()
        return remote, got

    remote, got = run(srv, scenario())
    return int(remote), got


def test_gateway_ignores_local_candidates(tmp_path: Path) -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    sdp = _offer_with_candidates(sink.getsockname()[1], 600)
    assert len(sdp) < 60_000
    guarded = ServerThread(config_for(tmp_path / "guarded", ice_loopback=False))
    try:
        assert _tap_with(guarded, sdp, sink) == (0, b"")  # none of them reached aioice
    finally:
        guarded.stop()
    # Control: with HOTLINE_ICE_LOOPBACK the same offer is used, capped at 16 candidates
    # (aioice skips unusable ones such as an unresolved .local name), and the sink gets the
    # gateway's STUN checks: the zero above is the filter, not an accident.
    demo = ServerThread(config_for(tmp_path / "demo", ice_loopback=True))
    try:
        remote, got = _tap_with(demo, sdp, sink)
        assert 0 < remote <= demo.cfg.ice_max_candidates
        assert got[:2] == b"\x00\x01"  # a STUN binding request, to the one open port
    finally:
        demo.stop()
        sink.close()


def test_candidate_filter_keeps_public_addresses_up_to_the_cap() -> None:
    from hotline.addresses import client_address, filter_candidates, is_public

    assert is_public("8.8.8.8") and is_public("2001:4860:4860::8888")
    assert not any(is_public(a) for a in LOCAL_CANDIDATES)
    sdp = "v=0\r\n" + "".join(
        f"a=candidate:{i} 1 udp 1 8.8.{i}.8 9 typ host\r\n" for i in range(30)
    )
    kept, dropped = filter_candidates(sdp, allow_local=False, max_candidates=16)
    assert kept.count("a=candidate:") == 16 and dropped == 14
    assert client_address("127.0.0.1", "1.2.3.4, 5.6.7.8", "127.0.0.1") == "5.6.7.8"
    assert client_address("127.0.0.2", "5.6.7.8", "127.0.0.1") == "127.0.0.2"
    assert client_address("127.0.0.1", "5.6.7.8", "") == "127.0.0.1"
