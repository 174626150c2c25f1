"""Taps in a cluster (hotline/cluster/media.py): three nodes' gateways on a real Redis bus,
real aiortc peers as the browsers' taps. Node h holds the line; f and g are fronts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hotline.calls.gateway import Gateway, use_loopback_candidates
from hotline.cluster.bus import NOTIFY_LIMIT, FallbackBus, _fit, make_bus
from hotline.cluster.media import CHUNK_BYTES, ClusterGateway
from hotline.cluster.relay import Back, Front, Outbox
from hotline.errors import BadSdp, Unavailable
from tests.engines import RedisServer
from tests.media import AudioPeer, ToneTrack
from tests.support import SLOW


async def until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout * SLOW
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def nodes(
    url: str, names: tuple[str, ...], database_url: str = ""
) -> AsyncIterator[dict[str, ClusterGateway]]:
    """One ClusterGateway per node, bound to its own Front on Redis (and PostgreSQL behind it
    with `database_url`, as in production); `names[0]` holds the line."""
    gateways: dict[str, ClusterGateway] = {}
    buses = []
    for name in names:
        bus = make_bus(url, name, database_url)
        front = Front(name, bus, Back(None, name, Outbox(bus)))
        gateways[name] = ClusterGateway(Gateway())
        gateways[name].bind(front)
        buses.append((bus, front))
    for bus, front in buses:
        await bus.start()
        front.holder_is(names[0], 1)
    try:
        yield gateways
    finally:
        for gw in gateways.values():
            await gw.close()
        for bus, _ in buses:
            await bus.close()


async def tap(gw: ClusterGateway, call_id: str, node: str | None) -> AudioPeer:
    """A browser's tap (a tone) for the caller of `call_id`, whose socket is on `node`."""
    peer = AudioPeer(ToneTrack())
    await peer.accept(await gw.answer(call_id, "caller", await peer.offer(), node=node))
    await peer.wait_connected(10 * SLOW)
    return peer


def test_a_tap_is_answered_by_its_sockets_node_and_heard_on_the_holder(redis_server) -> None:
    use_loopback_candidates()

    async def main() -> None:
        async with nodes(redis_server.url(), ("h", "f", "g")) as gw:
            h, f, g = gw["h"], gw["f"], gw["g"]
            heard: list[bytes] = []
            peers = [await tap(h, "c1", "f")]
            assert (f.open_legs, h.open_legs, g.open_legs) == (1, 0, 0)
            assert h.leg("c1", "caller") is not None and f.leg("c1", "caller") is None
            assert h.set_sink("c1", "caller", heard.append)
            await until(lambda: sum(map(len, heard)) >= 32000, "a second of the tone on h")
            assert {len(chunk) for chunk in heard} == {CHUNK_BYTES}
            await until(lambda: h.stats("c1")["caller"]["frames"] > 0, "counters on h")
            assert h.stats("c1")["caller"]["state"] == "connected"
            assert h.stats("c1")["caller"]["peak_rms"] > 1000

            # The page reconnected to g and re-offered: the leg on f is closed.
            peers.append(await tap(h, "c1", "g"))
            await until(lambda: f.open_legs == 0, "f's old leg closed")
            assert g.open_legs == 1 and h.stats("c1")["caller"]["state"] in ("new", "connected")
            heard.clear()
            assert h.set_sink("c1", "caller", heard.append)  # captions reopen on the new tap
            await until(lambda: len(heard) >= 5, "the tone from g")

            # Its browser goes away: g closes the leg and the holder forgets it.
            await peers.pop().close()
            await until(lambda: g.open_legs == 0, "g's leg closed with its peer")
            await until(lambda: h.leg("c1", "caller") is None, "the holder forgot the leg")
            assert h.stats("c1") == {}

            # On the holder's own socket: a local leg, as on a single node; then the call ends.
            peers.append(await tap(h, "c1", None))
            peers.append(await tap(h, "c2", "f"))
            assert (h.open_legs, f.open_legs) == (1, 1)
            await h.close_call("c1")
            await h.close_call("c2")
            await until(lambda: f.open_legs == 0, "c2's leg closed on f")
            assert h.open_legs == 0 and h.stats("c2") == {}

            # The line changes hands: the new holder (g) knows no legs; f's chunks reach it
            # and it has f close the orphan (its call may have ended while nobody held it).
            peers.append(await tap(h, "c3", "f"))
            for node in gw.values():
                assert node._front is not None
                node._front.holder_is("g", 2)
            await until(lambda: f.open_legs == 0, "the orphan leg closed by the new holder")
            assert g.stats("c3") == {}

            # Refusals come back typed: the front's own BadSdp; a node nobody listens for.
            with pytest.raises(BadSdp, match="not an SDP"):
                await g.answer("c4", "caller", "v=0\r\nnot an sdp\r\n", node="f")
            peer = AudioPeer(ToneTrack())
            peers.append(peer)
            with pytest.raises(Unavailable):
                await g.answer("c4", "caller", await peer.offer(), node="gone-node")
            assert g.leg("c4", "caller") is None
            for p in peers:
                await p.close()

    asyncio.run(main())


def test_a_chunk_of_audio_fits_one_postgresql_notification() -> None:
    message = {
        "op": "pcm",
        "call": "c" * 36,
        "speaker": "caller",
        "leg": "0" * 12,
        "b64": "A" * (CHUNK_BYTES * 4 // 3 + 4),
        "stats": {
            "frames": 10**9,
            "seconds": 10.0**7,
            "rms": 32767.0,
            "peak_rms": 32767.0,
            "state": "connecting",
            "connect_ms": 10**6,
        },  # fmt: skip
        "from": "a-node-name-of-sixty-characters-" + "x" * 28,
    }
    assert len(json.dumps(message).encode()) < NOTIFY_LIMIT
    assert len(_fit(message)) == 1


def test_taps_go_on_by_postgresql_while_redis_is_down(pg_url: str) -> None:
    """Redis is away: the holder asks the front to answer, and hears its audio, by NOTIFY."""
    use_loopback_candidates()
    redis = RedisServer()  # its own server: this test stops it
    redis.start()

    async def main() -> None:
        async with nodes(redis.url(), ("h", "f"), database_url=pg_url) as gw:
            h, f = gw["h"], gw["f"]
            buses = [node._front.bus for node in gw.values() if node._front is not None]
            assert all(isinstance(bus, FallbackBus) for bus in buses)
            await until(lambda: all(b.pg.connected for b in buses), "PostgreSQL listening")
            redis.stop()
            await until(lambda: not any(b.redis.connected for b in buses), "Redis gone")
            heard: list[bytes] = []
            peer = await tap(h, "c1", "f")
            assert (f.open_legs, h.open_legs) == (1, 0)
            assert h.set_sink("c1", "caller", heard.append)
            await until(lambda: len(heard) >= 10, "a second of audio by NOTIFY")
            assert {len(chunk) for chunk in heard} == {CHUNK_BYTES}
            await h.close_call("c1")
            await until(lambda: f.open_legs == 0, "the leg closed by NOTIFY")
            await peer.close()

    try:
        asyncio.run(main())
    finally:
        redis.stop()
