"""Bad input at every edge: each gets a typed error, changes nothing, and the server carries on.

One server serves the whole module; every test builds its own connected call and checks that
after the bad message the sender's socket still answers and the call still relays signalling.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from hotline.db import agents as agents_db
from hotline.db import elders as elders_db
from tests.support import SLOW, Client, ServerThread, agent_ticket
from tests.support import test_config as config_for
from tests.test_call_ws import (
    add_agent,
    add_link,
    agent_url,
    caller_url,
    connect_call,
    open_agent,
    open_caller,
    open_client,
    run,
)

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    server = ServerThread(config_for(tmp_path_factory.mktemp("bad-input")))
    yield server
    server.stop()


async def still_fine(sender: Client, caller: Client, agent: Client, call_id: str) -> None:
    """The sender still answers and the call still relays signalling both ways."""
    await sender.send({"type": "ping"})
    await sender.expect("pong")
    await caller.send({"type": "signal", "data": {"kind": "offer", "sdp": SDP}})
    assert (await agent.expect("signal", call_id=call_id))["data"]["kind"] == "offer"
    await agent.send({"type": "signal", "call_id": call_id, "data": {"candidate": None}})
    assert (await caller.expect("signal", call_id=call_id))["data"] == {"candidate": None}


def bad_message_case(srv: ServerThread, role: str, raw: Any, code: str) -> dict[str, Any]:
    """Connect a call, send `raw` from `role`, return the error; check nothing broke."""
    agent_id = add_agent(srv)

    async def scenario() -> dict[str, Any]:
        agent = await open_agent(srv, agent_id)
        caller = await open_caller(srv)
        call_id, _ = await connect_call(caller, agent, "cmn")
        sender = caller if role == "caller" else agent
        payload = raw(call_id) if callable(raw) else raw
        await sender.send(payload)
        err = await sender.expect("error")
        assert err["code"] == code, err
        assert isinstance(err["detail"], str) and err["detail"]
        await still_fine(sender, caller, agent, call_id)
        state = srv.run(lambda: (srv.switchboard.calls[call_id].state, len(srv.switchboard.line)))
        assert state == ("connected", 0)
        await agent.send({"type": "hangup", "call_id": call_id})
        await caller.expect("ended", call_id=call_id)
        return err

    return run(scenario())


BOTH_ROLES = [
    ("not json", "{nope", "bad_json"),
    ("array", "[1, 2, 3]", "bad_json"),
    ("string", '"call"', "bad_json"),
    ("number", "42", "bad_json"),
    ("null", "null", "bad_json"),
    ("bad utf-8", b"\xff\xfe{", "bad_json"),
    ("deep nesting", "[" * 100_00 + "]" * 100_00, "bad_json"),
    ("no type", {"call_id": "x"}, "unknown_type"),
    ("type not a string", {"type": 7}, "unknown_type"),
    ("unknown type", {"type": "launch_rockets"}, "unknown_type"),
    ("oversized text", {"type": "ping", "pad": "x" * 70_000}, "too_large"),
    ("oversized bytes", b'{"type":"ping","pad":"' + b"x" * 70_000 + b'"}', "too_large"),
    ("signal data not object", {"type": "signal", "data": "offer"}, "bad_field"),
    ("signal data missing", {"type": "signal"}, "missing_field"),
    ("signal neither sdp nor candidate", {"type": "signal", "data": {"x": 1}}, "bad_signal"),
    ("signal sdp not sdp", {"type": "signal", "data": {"kind": "offer", "sdp": "hi"}}, "bad_sdp"),
    (
        "signal sdp without media",
        {"type": "signal", "data": {"kind": "offer", "sdp": "v=0\r\ns=-\r\n"}},
        "bad_sdp",
    ),
    (
        "signal sdp wrong kind",
        {"type": "signal", "data": {"kind": "pranswer", "sdp": SDP}},
        "bad_sdp",
    ),
    ("signal sdp not text", {"type": "signal", "data": {"kind": "offer", "sdp": 5}}, "bad_sdp"),
    ("candidate not object", {"type": "signal", "data": {"candidate": "x"}}, "bad_signal"),
    (
        "candidate too long",
        {"type": "signal", "data": {"candidate": {"candidate": "c" * 2000}}},
        "bad_signal",
    ),
    ("tap sdp not sdp", {"type": "tap_offer", "sdp": "hello"}, "bad_sdp"),
    ("tap sdp not text", {"type": "tap_offer", "sdp": ["v=0"]}, "bad_field"),
    ("tap sdp missing", {"type": "tap_offer"}, "missing_field"),
    ("tap sdp too long", {"type": "tap_offer", "sdp": "v=0\n" + "a" * 60_001}, "bad_field"),
    ("tap sdp video only", {"type": "tap_offer", "sdp": SDP.replace("audio", "video")}, "bad_sdp"),
    (
        "tap sdp with video",
        {"type": "tap_offer", "sdp": SDP + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"},
        "bad_sdp",
    ),
    ("tap sdp unusable", {"type": "tap_offer", "sdp": SDP}, "bad_sdp"),  # no ICE, no DTLS
]


def _with_call_id(msg: Any) -> Any:
    """Agents name the call in signalling messages; callers do not need to."""
    if isinstance(msg, dict) and msg.get("type") in ("signal", "tap_offer"):
        return lambda call_id: {**msg, "call_id": call_id}
    return msg


@pytest.mark.parametrize("role", ["caller", "agent"])
@pytest.mark.parametrize(
    ("raw", "code"), [c[1:] for c in BOTH_ROLES], ids=[c[0] for c in BOTH_ROLES]
)
def test_bad_message(srv: ServerThread, role: str, raw: Any, code: str) -> None:
    err = bad_message_case(srv, role, raw if role == "caller" else _with_call_id(raw), code)
    if isinstance(raw, dict) and isinstance(raw.get("type"), str) and code != "too_large":
        assert err["for"] == raw["type"]


ROLE_ONLY = [
    ("caller", "call dialect not text", {"type": "call", "dialect": 5}, "bad_field"),
    ("caller", "call dialect unknown", {"type": "call", "dialect": "klingon"}, "bad_field"),
    ("caller", "call dialect too long", {"type": "call", "dialect": "x" * 17}, "bad_field"),
    ("caller", "call while in a call", {"type": "call", "dialect": "cmn"}, "already_calling"),
    ("caller", "agent-only message", {"type": "accept", "call_id": "x"}, "unknown_type"),
    ("agent", "accept without call id", {"type": "accept"}, "missing_field"),
    ("agent", "accept call id not text", {"type": "accept", "call_id": 12}, "bad_field"),
    ("agent", "accept call id too long", {"type": "accept", "call_id": "c" * 65}, "bad_field"),
    ("agent", "accept call id null", {"type": "accept", "call_id": None}, "missing_field"),
    ("agent", "status not text", {"type": "status", "status": True}, "bad_field"),
    ("agent", "status unknown", {"type": "status", "status": "asleep"}, "bad_field"),
    ("agent", "status while in a call", {"type": "status", "status": "away"}, "busy"),
    ("agent", "accept own connected call", lambda c: {"type": "accept", "call_id": c}, "already_answered"),
    ("agent", "ready while in call", {"type": "ready"}, "not_in_wrap_up"),
    ("agent", "caller-only message", {"type": "call"}, "unknown_type"),
    ("agent", "signal for unknown call", {"type": "signal", "call_id": "nope", "data": {"candidate": None}}, "not_your_call"),
    ("agent", "signal without call id", {"type": "signal", "data": {"candidate": None}}, "not_your_call"),
    ("agent", "tap for unknown call", {"type": "tap_offer", "call_id": "nope", "sdp": SDP}, "not_your_call"),
    ("agent", "hang up unknown call", {"type": "hangup", "call_id": "nope"}, "no_call"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("role", "raw", "code"), [(c[0], *c[2:]) for c in ROLE_ONLY], ids=[c[1] for c in ROLE_ONLY]
)
def test_bad_message_for_role(srv: ServerThread, role: str, raw: Any, code: str) -> None:
    bad_message_case(srv, role, raw, code)


def test_signalling_into_someone_elses_call(srv: ServerThread) -> None:
    """An agent cannot signal, tap or hang up a call that is not theirs; a waiting caller
    cannot signal at all."""
    mine_id, other_id = add_agent(srv), add_agent(srv)

    async def scenario() -> None:
        mine = await open_agent(srv, mine_id)
        caller = await open_caller(srv)
        call_id, _ = await connect_call(caller, mine, "cmn")
        other = await open_agent(srv, other_id)
        other_caller = await open_caller(srv)
        other_call, _ = await connect_call(other_caller, other, "cmn")
        for msg in (
            {"type": "signal", "call_id": call_id, "data": {"kind": "offer", "sdp": SDP}},
            {"type": "tap_offer", "call_id": call_id, "sdp": SDP},
            {"type": "hangup", "call_id": call_id},
        ):
            await other.send(msg)
            err = await other.expect("error")
            assert err["code"] in ("not_your_call", "no_call"), err
        # A caller waiting in line is in no connected call.
        waiting = await open_caller(srv)
        await waiting.send({"type": "signal", "data": {"kind": "offer", "sdp": SDP}})
        assert (await waiting.expect("error"))["code"] == "not_in_call"
        await waiting.send({"type": "call", "dialect": "yue"})
        await waiting.expect("queued")
        for msg in (
            {"type": "signal", "data": {"kind": "offer", "sdp": SDP}},
            {"type": "tap_offer", "sdp": SDP},
        ):
            await waiting.send(msg)
            assert (await waiting.expect("error"))["code"] == "not_connected"
        await still_fine(other, caller, mine, call_id)
        await still_fine(mine, other_caller, other, other_call)
        assert not [m for m in caller.seen if m["type"] in ("ended", "error")]
        for agent, cid in ((mine, call_id), (other, other_call)):
            await agent.send({"type": "hangup", "call_id": cid})
        await waiting.send({"type": "hangup"})
        await waiting.expect("ended")

    run(scenario())


def test_frame_over_the_hard_limit_closes_only_that_socket(srv: ServerThread) -> None:
    agent_id = add_agent(srv)

    async def scenario() -> None:
        agent = await open_agent(srv, agent_id)
        caller = await open_caller(srv)
        call_id, _ = await connect_call(caller, agent, "cmn")
        rogue = await open_caller(srv)
        await rogue.send("x" * (2 * 1024 * 1024))
        await rogue.ws.wait_closed()
        assert rogue.ws.close_code == 1009  # message too big
        await still_fine(caller, caller, agent, call_id)
        await agent.send({"type": "hangup", "call_id": call_id})
        await caller.expect("ended")

    run(scenario())


def test_flood_of_bad_messages_changes_nothing(srv: ServerThread) -> None:
    agent_id = add_agent(srv)

    async def scenario() -> None:
        agent = await open_agent(srv, agent_id)
        caller = await open_caller(srv)
        call_id, _ = await connect_call(caller, agent, "cmn")
        junk = ["{", "[]", '{"type":"x"}', '{"type":"accept","call_id":1}'] * 25
        for raw in junk:
            await agent.send(raw)
        for _ in junk:
            await agent.expect("error")
        await still_fine(agent, caller, agent, call_id)
        await agent.send({"type": "hangup", "call_id": call_id})
        await caller.expect("ended")

    run(scenario())


# ----------------------------------------------------------------- agent handshake
def _old_token(secret: str, payload: Any, age: float) -> str:
    class OldSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age)

    return URLSafeTimedSerializer(secret, salt="hotline.ws", signer=OldSigner).dumps(payload)


def _tokens(srv: ServerThread, agent_id: int) -> dict[str, tuple[str, int]]:
    secret = srv.cfg.secret_key
    good = agent_ticket(srv, agent_id)
    return {
        "missing": ("", 401),
        "garbage": ("not.a.token", 401),
        "forged": (URLSafeTimedSerializer("wrong-key", salt="hotline.ws").dumps({"agent": agent_id}), 401),
        "tampered": (good[:-3] + ("AAA" if good[-3:] != "AAA" else "BBB"), 401),
        "other purpose": (srv.services.signer.dumps("prompt", {"agent": agent_id}), 401),
        "payload not a dict": (srv.services.signer.dumps("ws", [agent_id]), 401),
        "agent not an int": (srv.services.signer.dumps("ws", {"agent": str(agent_id)}), 401),
        "expired": (_old_token(secret, {"agent": agent_id}, srv.cfg.ws_token_seconds + 60), 410),
        "huge": ("x" * 5000, 401),
    }  # fmt: skip


TOKEN_CASES = [
    "missing", "garbage", "forged", "tampered", "other purpose",
    "payload not a dict", "agent not an int", "expired", "huge",
]  # fmt: skip


@pytest.mark.parametrize("case", TOKEN_CASES)
def test_agent_handshake_rejects_bad_token(srv: ServerThread, case: str) -> None:
    agent_id = add_agent(srv)
    token, status = _tokens(srv, agent_id)[case]

    async def scenario() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"{srv.ws}?role=agent&token={token}"):
                pass
        assert info.value.response.status_code == status
        assert b"Traceback" not in (info.value.response.body or b"")
        # Still serving: a good token works.
        agent = await open_agent(srv, agent_id, available=False)
        await agent.send({"type": "ping"})
        await agent.expect("pong")

    run(scenario())


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/ws?role=king", {}, 400),
        ("/ws", {}, 400),
        ("/elsewhere?role=caller", {}, 404),
        ("/ws?role=caller", {"Origin": "https://evil.example"}, 403),
    ],
)
def test_handshake_rejects_bad_requests(
    srv: ServerThread, path: str, headers: dict[str, str], status: int
) -> None:
    async def scenario() -> None:
        base = srv.ws.rsplit("/ws", 1)[0]
        with pytest.raises(InvalidStatus) as info:
            async with connect(base + path, additional_headers=headers):
                pass
        assert info.value.response.status_code == status

    run(scenario())


def test_valid_token_for_unknown_or_disabled_agent(srv: ServerThread) -> None:
    disabled = add_agent(srv)
    srv.db.execute("UPDATE agents SET disabled = 1 WHERE id = ?", (disabled,))
    assert agents_db.get(srv.db, disabled).disabled

    async def scenario() -> None:
        for agent_id in (999_999, disabled):
            client = await open_client(agent_url(srv, agent_id))
            err = await client.expect("error")
            assert err["code"] == "unauthorized"
            await client.ws.wait_closed()
            assert client.ws.close_code == 4401
            assert not [m for m in client.seen if m["type"] == "hello"]

    run(scenario())


# ----------------------------------------------------------------- one-tap links
def _links(srv: ServerThread) -> dict[str, tuple[str, int, str]]:
    """case -> (token, HTTP status, error code)."""
    revoked = add_link(srv)
    elders_db.revoke_link(srv.db, revoked)
    expired = add_link(srv, expires_at=time.time() - 60)
    return {
        "unknown": ("AAAAAAAAAAAAAAAAAAAAAAAA", 404, "unknown_link"),
        "revoked": (revoked, 410, "link_revoked"),
        "expired": (expired, 410, "link_expired"),
        "very long": ("z" * 300, 404, "unknown_link"),
    }


LINK_CASES = ["unknown", "revoked", "expired", "very long"]


def _get(url: str, **headers: str) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10 * SLOW) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize("case", LINK_CASES)
def test_bad_link_page_is_friendly(srv: ServerThread, case: str) -> None:
    token, status, code = _links(srv)[case]
    got, body = _get(f"{srv.http}/c/{token}?lang=en", Accept="text/html")
    assert got == status
    assert f'data-error="{code}"' in body
    assert "ask your family" in body and 'href="/call"' in body
    for leak in ("Traceback", 'File "', "sqlite", "Werkzeug"):
        assert leak not in body
    got, body = _get(f"{srv.http}/c/{token}?lang=zh_CN")
    assert got == status and "Traceback" not in body
    got, body = _get(f"{srv.http}/healthz")
    assert got == 200


@pytest.mark.parametrize("case", [c for c in LINK_CASES if c != "very long"])
def test_bad_link_on_caller_socket(srv: ServerThread, case: str) -> None:
    token, status, code = _links(srv)[case]
    good = add_link(srv)

    async def scenario() -> None:
        client = await open_client(caller_url(srv, token))
        err = await client.expect("error")
        assert err["code"] == code
        await client.ws.wait_closed()
        assert client.ws.close_code == 4000 + status
        assert not [m for m in client.seen if m["type"] == "hello"]
        # A good link still works.
        caller = await open_caller(srv, good)
        await caller.send({"type": "call"})
        queued = await caller.expect("queued")
        await caller.send({"type": "hangup"})
        await caller.expect("ended", call_id=queued["call_id"])

    run(scenario())


def test_good_link_page_renders(srv: ServerThread) -> None:
    token = add_link(srv)
    status, body = _get(f"{srv.http}/c/{token}?lang=en")
    assert status == 200 and token in body and "Traceback" not in body
    status, body = _get(f"{srv.http}/api/nothing-here")
    assert status == 404 and json.loads(body)["error"] == "not_found"
