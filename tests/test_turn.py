"""TURN credentials (coturn use-auth-secret): their format, their lifetime, that browsers get
them in `hello`, and a real relayed aiortc connection through coturn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.turn import credentials
from tests.support import Client, ServerThread
from tests.support import test_config as config_for
from tests.test_call_ws import add_agent, agent_url

SECRET = "turn-test-secret"
URLS = ["turn:127.0.0.1:3478?transport=udp"]


def expected_credential(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_credential_format_and_expiry() -> None:
    now = 1_800_000_000.0
    got = credentials(SECRET, URLS, 600, now=now)
    expiry, user = got["username"].split(":", 1)
    assert int(expiry) == int(now) + 600 and user
    assert got["credential"] == expected_credential(SECRET, got["username"])
    assert got["urls"] == URLS
    # Another secret, another credential; the same inputs, the same credential.
    assert credentials("other", URLS, 600, now=now)["credential"] != got["credential"]
    assert credentials(SECRET, URLS, 600, now=now) == got


def test_hello_carries_short_lived_turn_credentials(tmp_path: Path) -> None:
    srv = ServerThread(
        config_for(tmp_path, turn_urls=URLS, turn_secret=SECRET, ice_servers=[{"urls": "stun:x"}])
    )
    try:
        agent_id = add_agent(srv)

        async def hellos() -> tuple[dict, dict]:
            agent = await Client.open(agent_url(srv, agent_id))
            hello = await agent.expect("hello")
            await agent.send({"type": "status", "status": "available"})
            caller = await Client.open(f"{srv.ws}?role=caller")
            await caller.expect("hello")
            await caller.send({"type": "call", "dialect": "cmn"})
            ring = await agent.expect("ring")
            await agent.send({"type": "accept", "call_id": ring["call_id"]})
            connected = await caller.expect("connected")
            await agent.close()
            await caller.close()
            return hello, connected

        t0 = time.time()
        for msg in srv.call(hellos()):
            servers = msg["ice_servers"]
            assert {"urls": "stun:x"} in servers
            turn = [s for s in servers if s.get("username")]
            assert len(turn) == 1 and turn[0]["urls"] == URLS
            expiry = int(turn[0]["username"].split(":", 1)[0])
            assert t0 < expiry <= time.time() + 600  # at most 10 minutes
            assert turn[0]["credential"] == expected_credential(SECRET, turn[0]["username"])
    finally:
        srv.stop()


def test_no_turn_entry_without_a_secret(tmp_path: Path) -> None:
    srv = ServerThread(config_for(tmp_path, turn_urls=URLS, turn_secret=""))
    try:
        agent_id = add_agent(srv)

        async def hello() -> dict:
            agent = await Client.open(agent_url(srv, agent_id))
            msg = await agent.expect("hello")
            await agent.close()
            return msg

        assert all("credential" not in s for s in srv.call(hello())["ice_servers"])
    finally:
        srv.stop()


# ----------------------------------------------------------------- coturn, for real
def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[int]:
    """turnserver on 127.0.0.1 with deploy/coturn.conf's auth settings (use-auth-secret)."""
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.skip("coturn is not installed (apt-get install coturn)")
    port = _free_udp_port()
    log = tmp_path / "turn.log"
    proc = subprocess.Popen(
        [
            binary,
            "-n",  # no config file: everything is on the command line
            f"--listening-port={port}",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            "--min-port=49160",
            "--max-port=49260",
            "--use-auth-secret",
            f"--static-auth-secret={SECRET}",
            "--realm=hotline.test",
            "--fingerprint",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--no-multicast-peers",
            "--allow-loopback-peers",  # both test peers live on 127.0.0.1
            "--denied-peer-ip=10.0.0.0-10.255.255.255",
            "--denied-peer-ip=172.16.0.0-172.31.255.255",
            "--denied-peer-ip=192.168.0.0-192.168.255.255",
            f"--log-file={log}",
            "--simple-log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (log.exists() and "listener" in log.read_text()):
        time.sleep(0.1)
    time.sleep(0.3)
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_relayed_connection_through_coturn_with_minted_credentials(coturn: int) -> None:
    from aiortc import (
        RTCConfiguration,
        RTCIceServer,
        RTCIceTransportPolicy,
        RTCPeerConnection,
    )

    from tests.media import ToneTrack

    creds = credentials(SECRET, [f"turn:127.0.0.1:{coturn}?transport=udp"], 600)

    def config() -> RTCConfiguration:
        server = RTCIceServer(
            urls=creds["urls"], username=creds["username"], credential=creds["credential"]
        )
        return RTCConfiguration(iceServers=[server], iceTransportPolicy=RTCIceTransportPolicy.RELAY)

    async def scenario() -> tuple[str, str, list[str]]:
        a, b = RTCPeerConnection(config()), RTCPeerConnection(config())
        got_track = asyncio.Event()

        @b.on("track")
        def _track(track) -> None:  # noqa: ANN001
            got_track.set()

        a.addTrack(ToneTrack())
        try:
            await a.setLocalDescription(await a.createOffer())
            await b.setRemoteDescription(a.localDescription)
            await b.setLocalDescription(await b.createAnswer())
            await a.setRemoteDescription(b.localDescription)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and "connected" not in (
                a.connectionState,
                b.connectionState,
            ):
                await asyncio.sleep(0.1)
            while time.monotonic() < deadline and b.connectionState != "connected":
                await asyncio.sleep(0.1)
            kinds = [
                line.split(" typ ")[1].split()[0]
                for line in a.localDescription.sdp.splitlines()
                + b.localDescription.sdp.splitlines()
                if line.startswith("a=candidate:")
            ]
            await asyncio.wait_for(got_track.wait(), 5)
            return a.connectionState, b.connectionState, kinds
        finally:
            await a.close()
            await b.close()

    state_a, state_b, kinds = asyncio.run(scenario())
    assert kinds and set(kinds) == {"relay"}, kinds
    assert (state_a, state_b) == ("connected", "connected")


def test_coturn_refuses_forged_credentials(coturn: int) -> None:
    from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection

    forged = credentials("not-the-secret", [f"turn:127.0.0.1:{coturn}?transport=udp"], 600)
    server = RTCIceServer(
        urls=forged["urls"], username=forged["username"], credential=forged["credential"]
    )

    async def gather() -> list[str]:
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[server], iceTransportPolicy=RTCIceTransportPolicy.RELAY)
        )
        pc.addTransceiver("audio")
        try:
            await asyncio.wait_for(pc.setLocalDescription(await pc.createOffer()), 20)
            return [x for x in pc.localDescription.sdp.splitlines() if "typ relay" in x]
        except Exception:
            return []
        finally:
            await pc.close()

    assert asyncio.run(gather()) == []
