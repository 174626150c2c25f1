"""Soak bench: a steady stream of short captioned calls; does memory or anything else pile up?

    python bench/soak.py --quick           # ~45 s of calls (< 60 s in all)
    python bench/soak.py --minutes 10      # the run reported in docs/reliability.md
    python bench/soak.py --minutes 60      # an hour

Korean-dialect elders (`ko`, the model the tests install) call Korean-speaking agents; once
connected, an aiortc peer plays a Korean espeak-ng WAV into the caller's gateway tap, so each
call runs a real caption stream (vosk). The server is a subprocess; RSS comes from /proc.
RSS growth is measured from the end of the warm-up (the first 10 minutes, or the first third
of a shorter run) to the end. After the last call, the server's own counts from /metrics say
what is left over: gateway legs (RTCPeerConnections), caption streams, live calls.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Peer, ServerProcess, agent_token, bench_sessions, raise_nofile  # noqa: E402

LEFTOVER = ("hotline_gateway_legs", "hotline_asr_streams", "hotline_calls_in_flight")


def metrics(port: int) -> dict[str, float]:
    """Sum of each metric family's samples (labels folded)."""
    out: dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if not line or line.startswith("#"):
                continue
            name = line.split("{", 1)[0].split(" ", 1)[0]
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def seed(data_dir: Path, agents: int, elders: int) -> tuple[list[int], list[str]]:
    from hotline.db import Database
    from hotline.db import agents as agents_db
    from hotline.db import elders as elders_db

    db = Database(data_dir / "hotline.sqlite3")
    db.migrate()
    ids = [agents_db.add(db, f"soak{i}", f"pw-{i}", ["ko"]).id for i in range(agents)]
    bench_sessions(db, ids)
    links = [
        elders_db.new_link(db, elders_db.add(db, f"할머니{i}", dialect="ko").id).token
        for i in range(elders)
    ]
    db.close()
    return ids, links


class Stats:
    def __init__(self) -> None:
        self.calls = 0
        self.finals = 0
        self.partials = 0
        self.errors: list[str] = []


async def agent_loop(ws_url: str, agent_id: int, stats: Stats, stop: asyncio.Event) -> None:
    peer = await Peer.open(f"{ws_url}?role=agent&token={agent_token(agent_id)}")
    await peer.expect("hello")
    await peer.send({"type": "status", "status": "available"})
    try:
        while not (stop.is_set() and peer.inbox.empty()):
            try:
                msg = await asyncio.wait_for(peer.inbox.get(), 0.5)
            except TimeoutError:
                continue
            kind = msg.get("type")
            if kind == "ring":
                await peer.send({"type": "accept", "call_id": msg["call_id"]})
            elif kind == "ended":
                await peer.send({"type": "ready"})
            elif kind == "caption":
                if msg.get("kind") == "final":
                    stats.finals += 1
                else:
                    stats.partials += 1
            elif kind == "error":
                stats.errors.append(str(msg)[:200])
    finally:
        await peer.close()


async def one_call(ws_url: str, link: str, wav: Path, talk: float, stats: Stats) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaPlayer

    caller = await Peer.open(f"{ws_url}?role=caller&link={link}")
    pc = None
    player = None
    try:
        await caller.expect("hello")
        await caller.send({"type": "call"})
        await caller.expect("connected", timeout=60)
        player = MediaPlayer(str(wav))
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(player.audio)
        await pc.setLocalDescription(await pc.createOffer())
        await caller.send({"type": "tap_offer", "sdp": pc.localDescription.sdp})
        answer = await caller.expect("tap_answer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        await asyncio.sleep(talk)
        await caller.send({"type": "hangup"})
        await caller.expect("ended")
        stats.calls += 1
    except Exception as exc:
        stats.errors.append(f"call: {type(exc).__name__}: {exc}"[:200])
    finally:
        if pc is not None:
            await pc.close()
        if player is not None and player.audio is not None:
            player.audio.stop()
        await caller.close()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    raise_nofile(4096)
    from tests.test_captions_call import speech_file

    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    wav = speech_file(tmp)  # three Korean sentences with pauses (~8 s)
    server = ServerProcess(
        caption_warm=args.concurrency,
        captions_deterministic=1,
        caption_workers=2,
        overflow_seconds=10**6,
        log_level="WARNING",
    )
    ids, links = seed(server.data_dir, args.concurrency, args.concurrency * 4)
    server.start(timeout=120)
    stats = Stats()
    stop = asyncio.Event()
    agents = [
        asyncio.get_running_loop().create_task(agent_loop(server.ws_url, i, stats, stop))
        for i in ids
    ]
    duration = args.minutes * 60
    warmup = 600.0 if duration > 1800 else duration / 3
    rss: list[tuple[float, float]] = []
    t0 = time.monotonic()
    try:
        await asyncio.sleep(3.0)  # the model loads and recognizers warm up in the background

        async def caller_lane(lane: int) -> None:
            n = 0
            while time.monotonic() - t0 < duration:
                link = links[(lane + n * args.concurrency) % len(links)]
                await one_call(server.ws_url, link, wav, args.talk, stats)
                n += 1

        async def sample() -> None:
            while True:
                rss.append((time.monotonic() - t0, server.rss_mb()))
                await asyncio.sleep(2.0)

        sampler = asyncio.get_running_loop().create_task(sample())
        await asyncio.gather(*(caller_lane(i) for i in range(args.concurrency)))
        await asyncio.sleep(3.0)  # the server closes legs and streams of the last calls
        sampler.cancel()
        rss.append((time.monotonic() - t0, server.rss_mb()))
        stop.set()
        await asyncio.gather(*agents, return_exceptions=True)
        await asyncio.sleep(1.0)
        left = await asyncio.get_running_loop().run_in_executor(None, metrics, server.http_port)
        after_warmup = [mb for t, mb in rss if t >= warmup] or [rss[-1][1]]
        base, end = after_warmup[0], rss[-1][1]
        growth = (end - base) / base * 100 if base else 0.0
        leftovers = {k: int(left.get(k, 0)) for k in LEFTOVER}
        print(
            f"# {stats.calls} calls in {(time.monotonic() - t0) / 60:.1f} min,"
            f" {args.concurrency} at a time; captions: {stats.finals} finals,"
            f" {stats.partials} partials; RSS after warm-up {base:.0f} MB -> end {end:.0f} MB"
            f" (peak {max(mb for _, mb in rss):.0f} MB); left over {leftovers};"
            f" websocket connections still open {int(left.get('hotline_ws_connections', 0))}",
            flush=True,
        )
        for line in sorted(set(stats.errors))[:5]:
            print(f"# error: {line}", flush=True)
        return {
            "minutes": round(args.minutes, 2),
            "calls": stats.calls,
            "rss_growth_pct": round(growth, 1),
            "leftover_objects": sum(leftovers.values()),
        }
    finally:
        stop.set()
        for task in agents:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*agents, return_exceptions=True)
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="about 45 s of calls")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=2, help="calls at a time")
    parser.add_argument("--talk", type=float, default=8.0, help="seconds per call")
    args = parser.parse_args()
    if args.quick:
        args.minutes = 0.7
    result = asyncio.run(bench(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
