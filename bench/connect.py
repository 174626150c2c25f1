"""Connect bench: how fast a tap rings an agent, and how fast the gateway's audio leg connects,
with many agents online and many callers waiting, and what each call costs the server.

    python bench/connect.py --quick        # 20 agents, 200 waiting, 30 calls (< 60 s)
    python bench/connect.py                # 100 agents, 1,000 waiting, 200 calls

The real server runs as a subprocess (`python -m hotline serve`); its CPU comes from /proc,
apart from this load generator. The waiting callers are held by a helper process so their
traffic does not slow the measuring loop. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Peer,
    ServerProcess,
    agent_token,
    own_cpu_seconds,
    percentile,
    raise_nofile,
    seed_agents,
)

from tests.media import AudioPeer, ToneTrack  # noqa: E402

SERVED, UNSERVED = "cmn", "yue"  # agents speak cmn; nobody serves the waiting yue callers


class Agents:
    """Simulated agent consoles that accept every ring and are ready again after each call."""

    def __init__(self) -> None:
        self.rang_at: dict[str, float] = {}
        self.errors: list[dict[str, Any]] = []
        self.peers: list[Peer] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, ws_url: str, ids: list[int]) -> None:
        for agent_id in ids:
            peer = await Peer.open(f"{ws_url}?role=agent&token={agent_token(agent_id)}")
            await peer.expect("hello")
            await peer.send({"type": "status", "status": "available"})
            self.peers.append(peer)
            self._tasks.append(asyncio.get_running_loop().create_task(self._serve(peer)))

    async def _serve(self, peer: Peer) -> None:
        while True:
            msg = await peer.inbox.get()
            kind = msg.get("type")
            if kind == "ring":
                self.rang_at[msg["call_id"]] = time.perf_counter()
                await peer.send({"type": "accept", "call_id": msg["call_id"]})
            elif kind == "ended":
                await peer.send({"type": "ready"})
            elif kind == "error":
                self.errors.append(msg)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*(p.close() for p in self.peers))


class Results:
    def __init__(self) -> None:
        self.ring_ms: list[float] = []
        self.gateway_ms: list[float] = []
        self.connected = 0
        self.errors: list[str] = []


async def one_call(ws_url: str, agents: Agents, results: Results, talk: float) -> None:
    caller = await Peer.open(f"{ws_url}?role=caller")
    audio: AudioPeer | None = None
    try:
        await caller.expect("hello")
        t0 = time.perf_counter()
        await caller.send({"type": "call", "dialect": SERVED})
        call_id = (await caller.expect("queued"))["call_id"]
        await caller.expect("connected")
        results.connected += 1
        results.ring_ms.append((agents.rang_at.pop(call_id) - t0) * 1000)
        t1 = time.perf_counter()
        audio = AudioPeer(ToneTrack())
        await caller.send({"type": "tap_offer", "sdp": await audio.offer()})
        await audio.accept((await caller.expect("tap_answer"))["sdp"])
        await audio.wait_connected(30)
        results.gateway_ms.append((time.perf_counter() - t1) * 1000)
        await asyncio.sleep(talk)
        await caller.send({"type": "hangup"})
        await caller.expect("ended")
    except Exception as exc:  # counted, the run goes on
        seen = ",".join(caller.kinds[-6:])
        results.errors.append(f"{type(exc).__name__}: {exc} (caller saw {seen})"[:200])
    finally:
        if audio is not None:
            await audio.close()
        await caller.close()


async def call_stream(
    ws_url: str, agents: Agents, results: Results, calls: int, concurrency: int, talk: float
) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def guarded() -> None:
        async with gate:
            await one_call(ws_url, agents, results, talk)

    await asyncio.gather(*(guarded() for _ in range(calls)))


async def loop_lag(out: list[float], every: float = 0.02) -> None:
    """How late this process's own loop wakes up (its lag inflates what it measures)."""
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(every)
        out.append((loop.time() - t - every) * 1000)


def server_ring_ms(data_dir: Path) -> list[float]:
    """Arrival to first ring of each served call, as the server stamped them."""
    from hotline.db import Database

    db = Database(data_dir / "hotline.sqlite3")
    rows = db.query(
        "SELECT rang_at - arrived_at FROM calls WHERE dialect = ? AND rang_at IS NOT NULL",
        (SERVED,),
    )
    db.close()
    return [r[0] * 1000 for r in rows]


# ----------------------------------------------------------------- waiting-caller holder
async def hold_waiting(ws_url: str, count: int, dialect: str, joining: int) -> None:
    """Helper process: keep `count` callers waiting until stdin closes."""
    raise_nofile(count + 256)
    peers: list[Peer] = []
    errors = 0
    gate = asyncio.Semaphore(joining)

    async def join() -> None:
        nonlocal errors
        async with gate:
            try:
                peer = await Peer.open(f"{ws_url}?role=caller")
                await peer.expect("hello")
                await peer.send({"type": "call", "dialect": dialect})
                await peer.expect("queued")
                peers.append(peer)
            except Exception:
                errors += 1

    await asyncio.gather(*(join() for _ in range(count)))

    async def drain(peer: Peer) -> None:
        while True:
            msg = await peer.inbox.get()
            if msg.get("type") in ("ended", "error", "ring"):
                nonlocal errors
                errors += 1

    drains = [asyncio.get_running_loop().create_task(drain(p)) for p in peers]
    print(f"ready {len(peers)} {errors}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for task in drains:
        task.cancel()
    print(f"done {errors}", flush=True)
    await asyncio.gather(*(p.close() for p in peers))


def start_holder(ws_url: str, count: int, joining: int) -> tuple[subprocess.Popen[str], int, int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--hold", ws_url, str(count), str(joining)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "ready":
        raise RuntimeError(f"waiting-caller holder failed: {line}")
    return proc, int(line[1]), int(line[2])


def stop_holder(proc: subprocess.Popen[str]) -> int:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    errors = 0
    for line in proc.stdout:
        if line.startswith("done"):
            errors = int(line.split()[1])
    proc.wait(30)
    return errors


# ----------------------------------------------------------------- main
async def bench(args: argparse.Namespace) -> dict[str, Any]:
    raise_nofile(args.waiting + args.agents + 4 * args.concurrency + 1024)
    server = ServerProcess(overflow_seconds=10**7, ring_timeout_seconds=60, rejoin_seconds=600)
    ids = seed_agents(server.data_dir, args.agents, [SERVED])
    server.start()
    agents = Agents()
    holder = None
    errors = 0
    try:
        await agents.start(server.ws_url, ids)
        held, held_errors = 0, 0
        if args.waiting:
            holder, held, held_errors = await asyncio.get_running_loop().run_in_executor(
                None, start_holder, server.ws_url, args.waiting, args.joining
            )
        errors += held_errors + (args.waiting - held)
        await asyncio.sleep(1.0)  # let the queue-update round after the last join pass
        idle0 = server.cpu_seconds()
        await asyncio.sleep(2.0)
        idle_cpu = (server.cpu_seconds() - idle0) / 2.0
        rss_before = server.rss_mb()
        print(
            f"# online: {args.agents} agents, {held} waiting callers; server RSS {rss_before:.0f} MB,"
            f" idle CPU {idle_cpu * 100:.1f} % of a core",
            flush=True,
        )
        results = Results()
        lag: list[float] = []
        monitor = asyncio.get_running_loop().create_task(loop_lag(lag))
        cpu0, own0, t0 = server.cpu_seconds(), own_cpu_seconds(), time.perf_counter()
        await call_stream(
            server.ws_url, agents, results, args.calls, args.concurrency, args.talk_seconds
        )
        elapsed = time.perf_counter() - t0
        monitor.cancel()
        cpu = server.cpu_seconds() - cpu0
        own = own_cpu_seconds() - own0
        print(
            f"# {results.connected} calls in {elapsed:.1f} s: server CPU {cpu:.2f} s"
            f" ({cpu / elapsed * 100:.0f} % of a core; idle share {idle_cpu * elapsed:.2f} s),"
            f" load generator CPU {own:.2f} s, server RSS {server.rss_mb():.0f} MB",
            flush=True,
        )
        inside = server_ring_ms(server.data_dir)
        print(
            f"# server-side arrival->ring p50 {_round(percentile(inside, 50))} ms,"
            f" p95 {_round(percentile(inside, 95))} ms; load generator loop lag"
            f" p95 {_round(percentile(lag, 95))} ms, max {_round(max(lag, default=0))} ms",
            flush=True,
        )
        for line in sorted(set(results.errors))[:5]:
            print(f"# error: {line}", flush=True)
        closed = [p.ws.close_code for p in agents.peers if p.ws.close_code is not None]
        if closed:
            print(f"# {len(closed)} agent sockets were closed by the server: codes {set(closed)}")
        errors += len(results.errors) + len(agents.errors) + len(closed)
        if holder is not None:
            errors += stop_holder(holder)
            holder = None
        return {
            "callers": args.calls + args.waiting,
            "agents": args.agents,
            "tap_to_ring_p50_ms": _round(percentile(results.ring_ms, 50)),
            "tap_to_ring_p95_ms": _round(percentile(results.ring_ms, 95)),
            "tap_to_ring_p99_ms": _round(percentile(results.ring_ms, 99)),
            "gateway_connect_p95_ms": _round(percentile(results.gateway_ms, 95)),
            "server_cpu_s_per_call": round(cpu / max(1, results.connected), 4),
            "errors": errors,
        }
    finally:
        if holder is not None:
            with contextlib.suppress(Exception):
                stop_holder(holder)
        await agents.close()
        server.stop()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--hold":
        asyncio.run(hold_waiting(sys.argv[2], int(sys.argv[3]), UNSERVED, int(sys.argv[4])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 agents, 200 waiting, 30 calls")
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--waiting", type=int, default=1000, help="callers nobody can serve")
    parser.add_argument("--calls", type=int, default=200, help="cmn calls to connect")
    parser.add_argument("--concurrency", type=int, default=20, help="cmn calls in flight")
    parser.add_argument(
        "--joining", type=int, default=64, help="waiting callers joining at once (burst size)"
    )
    parser.add_argument("--talk-seconds", type=float, default=1.0, help="audio time per call")
    args = parser.parse_args()
    if args.quick:
        args.agents, args.waiting, args.calls, args.concurrency = 20, 200, 30, 10
    args.concurrency = max(1, min(args.concurrency, args.agents))
    result = asyncio.run(bench(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
