"""Surge bench: a holiday rush of waiting callers and hundreds of agents on one server process.

    python bench/surge.py --quick          # 1,000 callers ramped in 20 s, 60 agents (< 60 s)
    python bench/surge.py                  # 5,000 callers ramped in 60 s, 200 agents

The real server runs as a subprocess (`python -m hotline serve`); its CPU and RSS come from
/proc, apart from the load generator. The waiting callers are held by helper processes (two by
default) so their traffic does not slow the measuring loop; every process raises its
RLIMIT_NOFILE soft limit up to the hard limit (5,000 sockets need > 1,024 descriptors on both
ends; the server inherits the raised limit from this process).

Phases:
1. ramp: `--callers` callers (dialect cmn) join the line at a steady rate over `--ramp`
   seconds; the agents are online (status away) and receive every `line` update.
2. measure (`--measure` seconds): the cmn agents go available and take callers from the head
   of the line (talk `--talk` s, hang up, ready again); every accept moves everyone behind
   by one place, so each waiting caller's `queue` message shows how fast the fan-out is.
   A fraction of the served callers (`--audio-fraction`, at most `--audio-max` at a time)
   also open a gateway tap with an aiortc peer that sends pre-encoded Opus (no encoding in
   the generator). Meanwhile a stream of `yue` callers is rung through to free `yue` agents:
   tap -> ring latency with the whole line waiting.

Fan-out latency of a `queue` message = its arrival time minus its `at` (the server's clock
when that round of places was computed): how long one round takes to reach every caller.
Staleness, reported apart = arrival minus the first agent `accept` sent after that caller's
previous `queue` message (how old the place on screen was; rounds are at most one per second
by design, so this is bounded by ~1 s plus the fan-out).
Clocks: time.perf_counter and the server's loop.time() are both CLOCK_MONOTONIC, shared by all
processes of the machine.

With `--attack`, an outsider's floods (bench/attack.py: slow HTTP clients, an anonymous
caller flood, a burst of spoken-place URLs) run during the measure phase, and the JSON gains
attack_http_p95_ms, attack_caller_position_shift and attack_errors.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import fractions
import json
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import av  # noqa: E402
from aiortc import MediaStreamTrack  # noqa: E402
from common import (  # noqa: E402
    Peer,
    RawSocket,
    ServerProcess,
    agent_token,
    bench_sessions,
    caller_address,
    own_cpu_seconds,
    percentile,
    raise_nofile,
    seed_agents,
)

from hotline.config import Config  # noqa: E402
from tests.media import FRAME, RATE, AudioPeer, ToneTrack  # noqa: E402

DEFAULTS = Config()  # the per-address limits as shipped
LINE, FAST = "cmn", "yue"  # the long line; the tap->ring stream with its own free agents


# ----------------------------------------------------------------- pre-encoded audio
def opus_packets(seconds: float = 1.0) -> list[bytes]:
    """One second of a tone encoded to Opus once; peers replay the packets (no encoding)."""
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = RATE
    ctx.layout = "stereo"
    ctx.format = "s16"
    ctx.bit_rate = 32000
    tone = ToneTrack()
    out: list[bytes] = []
    pts = 0
    for _ in range(int(seconds * RATE / FRAME)):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=FRAME)
        mono = tone._pcm
        stereo = bytearray(len(mono) * 2)
        for i in range(0, len(mono), 2):
            stereo[2 * i : 2 * i + 2] = mono[i : i + 2]
            stereo[2 * i + 2 : 2 * i + 4] = mono[i : i + 2]
        frame.planes[0].update(bytes(stereo))
        frame.sample_rate = RATE
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, RATE)
        pts += FRAME
        out.extend(bytes(p) for p in ctx.encode(frame))
    return out


class OpusTrack(MediaStreamTrack):
    """Replays pre-encoded Opus packets in real time (aiortc packs them as they are)."""

    kind = "audio"

    def __init__(self, packets: list[bytes]) -> None:
        super().__init__()
        self._packets = packets
        self._i = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            delay = self._start + self._i * FRAME / RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        packet = av.Packet(self._packets[self._i % len(self._packets)])
        packet.pts = self._i * FRAME
        packet.time_base = fractions.Fraction(1, RATE)
        self._i += 1
        return packet


# ----------------------------------------------------------------- waiting-caller holder
class Holder:
    """Helper process: ramps its share of callers into the line and records what they get."""

    def __init__(self, ws_url: str, count: int, ramp: float, audio_fraction: float, audio_max: int):
        self.ws_url = ws_url
        self.count = count
        self.ramp = ramp
        self.audio_fraction = audio_fraction
        self.audio_max = audio_max
        self.queue_times: list[list[float]] = [[] for _ in range(count)]
        self.fanout: list[tuple[float, float]] = []  # (arrival, arrival - server's round time)
        self.waiting = 0
        self.peak_waiting = 0
        self.served = 0
        self.errors: list[str] = []
        self.audio_open = 0
        self.audio_connected = 0
        self.rng = random.Random(count)
        self.packets = opus_packets()
        self.tasks: list[asyncio.Task[None]] = []

    def error(self, text: str) -> None:
        self.errors.append(text[:200])

    async def caller(self, i: int) -> None:
        """One waiting caller on a bare-bones websocket client (see RawSocket)."""
        loop = asyncio.get_running_loop()
        url = urlsplit(self.ws_url)
        address = caller_address(self.rng)
        try:
            _, ws = await asyncio.wait_for(
                loop.create_connection(
                    lambda: RawSocket(f"{url.path}?role=caller", url.netloc, address),
                    url.hostname,
                    url.port,
                ),
                60,
            )
            await asyncio.wait_for(ws.opened, 60)
        except Exception as exc:
            self.error(f"connect: {type(exc).__name__}: {exc}")
            return
        audio: AudioPeer | None = None
        queued = False
        try:
            ws.send(json.dumps({"type": "call", "dialect": LINE}))
            while True:
                t, msg = await ws.inbox.get()
                if msg is None:
                    break
                kind = msg.get("type")
                if kind == "queue":
                    self.queue_times[i].append(t)
                    if "at" in msg:
                        self.fanout.append((t, t - msg["at"]))
                elif kind == "queued":
                    queued = True
                    self.waiting += 1
                    self.peak_waiting = max(self.peak_waiting, self.waiting)
                elif kind == "connected":
                    self.waiting -= 1
                    queued = False
                    self.served += 1
                    want = self.rng.random() < self.audio_fraction
                    if want and self.audio_open < self.audio_max:
                        self.audio_open += 1
                        audio = AudioPeer(OpusTrack(self.packets))
                        offer = await audio.offer()
                        ws.send(json.dumps({"type": "tap_offer", "sdp": offer}))
                elif kind == "tap_answer" and audio is not None:
                    await audio.accept(msg["sdp"])
                    self.audio_connected += 1
                elif kind == "ended":
                    break
                elif kind == "error":
                    self.error(f"error message: {msg}")
                elif kind == "server_restarting":
                    break
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error(f"caller: {type(exc).__name__}: {exc}")
        finally:
            if queued:
                self.waiting -= 1
            if audio is not None:
                self.audio_open -= 1
                with contextlib.suppress(Exception):
                    await audio.close()
            ws.close()

    async def run(self, out_path: str) -> None:
        raise_nofile(self.count + 512)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(self.count):
            at = t0 + self.ramp * i / max(1, self.count)
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.tasks.append(loop.create_task(self.caller(i)))
        deadline = loop.time() + 60
        while self.waiting + self.served + len(self.errors) < self.count:
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.1)
        print(f"ready {self.waiting} {len(self.errors)}", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        held = self.waiting
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        with open(out_path, "w") as f:
            json.dump(
                {
                    "queue_times": self.queue_times,
                    "fanout": self.fanout,
                    "cpu_seconds": own_cpu_seconds(),
                    "errors": self.errors,
                    "peak_waiting": self.peak_waiting,
                    "held_at_end": held,
                    "served": self.served,
                    "audio_connected": self.audio_connected,
                },
                f,
            )
        print("done", flush=True)


def start_holder(
    ws_url: str, count: int, ramp: float, args: argparse.Namespace, out: Path
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--hold",
            json.dumps(
                [ws_url, count, ramp, args.audio_fraction, args.audio_max // args.holders, str(out)]
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


# ----------------------------------------------------------------- agents (this process)
class Agents:
    """Agent consoles: take every ring, talk, hang up, ready again."""

    def __init__(self, talk: float) -> None:
        self.talk = talk
        self.accepts: list[float] = []  # perf_counter when a LINE accept was sent
        self.rang_at: dict[str, float] = {}
        self.waited: dict[str, float] = {}  # the server's own arrival -> ring, per ring
        self.errors: list[str] = []
        self.peers: list[tuple[Peer, str]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.line_msgs = 0
        self.rng = random.Random(5)
        self.wanted: dict[str, str] = {}
        self.ws_url = ""

    async def start(self, ws_url: str, ids: list[int], dialect: str) -> None:
        self.ws_url = ws_url
        gate = asyncio.Semaphore(32)

        async def one(agent_id: int) -> None:
            async with gate:
                peer = await self._open(agent_id)
            self.peers.append((peer, dialect))
            slot = len(self.peers) - 1
            self.tasks.append(
                asyncio.get_running_loop().create_task(self._serve(slot, agent_id, dialect))
            )

        await asyncio.gather(*(one(i) for i in ids))

    async def _open(self, agent_id: int) -> Peer:
        peer = await Peer.open(f"{self.ws_url}?role=agent&token={agent_token(agent_id)}")
        await peer.expect("hello")
        return peer

    async def _serve(self, slot: int, agent_id: int, dialect: str) -> None:
        while True:
            peer = self.peers[slot][0]
            try:
                msg = await asyncio.wait_for(peer.inbox.get(), 1.0)
            except TimeoutError:
                if peer._task.done():  # closed by the server: a real console reconnects
                    self.errors.append(f"agent dropped by server: {peer.ws.close_reason!r}")
                    with contextlib.suppress(Exception):
                        peer = await self._open(agent_id)
                        self.peers[slot] = (peer, dialect)
                        if self.wanted.get(dialect) == "available":
                            await peer.send({"type": "status", "status": "available"})
                continue
            kind = msg.get("type")
            if kind == "ring":
                now = time.perf_counter()
                self.rang_at[msg["call_id"]] = now
                self.waited[msg["call_id"]] = msg.get("waited_seconds", 0.0)
                if dialect == LINE:
                    self.accepts.append(now)
                await peer.send({"type": "accept", "call_id": msg["call_id"]})
            elif kind == "connected" and dialect == LINE:
                asyncio.get_running_loop().create_task(self._hang_up_later(peer, msg["call_id"]))
            elif kind == "status" and msg.get("status") == "wrap_up":
                await peer.send({"type": "ready"})  # (a call ended while ringing: no wrap-up)
            elif kind == "line":
                self.line_msgs += 1
            elif kind == "error" and not self._expected_at_the_end(msg, dialect):
                self.errors.append(str(msg)[:200])

    def _expected_at_the_end(self, msg: dict[str, Any], dialect: str) -> bool:
        """Set away at the end of the run: from a call (busy), or while a `ready` was on its
        way (no longer in wrap-up). Both are the bench racing itself, not the server."""
        if self.wanted.get(dialect) != "away":
            return False
        return (msg.get("code"), msg.get("for")) in (
            ("busy", "status"),
            ("not_in_wrap_up", "ready"),
        )

    async def _hang_up_later(self, peer: Peer, call_id: str) -> None:
        await asyncio.sleep(self.talk * self.rng.uniform(0.5, 1.5))
        with contextlib.suppress(Exception):
            await peer.send({"type": "hangup", "call_id": call_id})

    async def set_status(self, dialect: str, status: str) -> None:
        self.wanted[dialect] = status
        for peer, d in self.peers:
            if d == dialect:
                try:
                    await peer.send({"type": "status", "status": status})
                except Exception as exc:  # e.g. closed by the server as "too slow"
                    self.errors.append(f"agent status: {type(exc).__name__}: {exc}"[:200])

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*(p.close() for p, _ in self.peers))


async def ring_stream(
    ws_url: str,
    agents: Agents,
    seconds: float,
    concurrency: int,
    out: dict[str, Any],
    ended_timeout: float = 30.0,
) -> None:
    """yue callers rung through to free yue agents: tap -> ring as the agent sees it."""
    ring_ms: list[float] = out.setdefault("ring_ms", [])
    errors: list[str] = out.setdefault("errors", [])
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop:
            caller = None
            step = "hello"  # what the caller waits for (named in errors)
            try:
                caller = await Peer.open(
                    f"{ws_url}?role=caller",
                    headers={"X-Forwarded-For": caller_address(random.Random())},
                )
                await caller.expect("hello")
                t0 = time.perf_counter()
                await caller.send({"type": "call", "dialect": FAST})
                step = "queued"
                call_id = (await caller.expect("queued"))["call_id"]
                step = f"connected ({call_id})"
                await caller.expect("connected", timeout=max(5.0, stop - time.perf_counter() + 5))
                ring_ms.append((agents.rang_at.pop(call_id) - t0) * 1000)
                out.setdefault("server_ms", []).append(agents.waited.pop(call_id, 0.0) * 1000)
                await asyncio.sleep(0.5)
                await caller.send({"type": "hangup"})
                step = f"ended ({call_id})"
                await caller.expect("ended", timeout=ended_timeout)
            except Exception as exc:
                errors.append(f"ring stream, waiting for {step}: {type(exc).__name__}: {exc}"[:200])
            finally:
                if caller is not None:
                    await caller.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def staleness_ms(queue_times: list[list[float]], accepts: list[float], since: float) -> list[float]:
    """Per queue message: arrival minus the first accept after the caller's previous message."""
    accepts = sorted(accepts)
    out: list[float] = []
    for times in queue_times:
        prev = since
        for t in times:
            if t < since:
                continue
            i = bisect.bisect_right(accepts, prev)
            if i < len(accepts) and accepts[i] <= t:
                out.append((t - accepts[i]) * 1000)
            prev = t
    return out


def metric(url: str, name: str) -> float | None:
    """One gauge from the server's /metrics (None if absent or the scrape failed)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
    except Exception as exc:
        print(f"# /metrics: {type(exc).__name__}: {exc}", flush=True)
    return None


# ----------------------------------------------------------------- main
async def bench(args: argparse.Namespace) -> dict[str, Any]:
    nofile = raise_nofile(args.callers + args.agents * 2 + 2048)
    print(f"# RLIMIT_NOFILE soft limit {nofile} (server and helpers inherit it)", flush=True)
    server = ServerProcess(
        # Each simulated caller is a different person: through the "proxy" at 127.0.0.1 they
        # bring their own address (caller_address), so per-address limits apply as in life.
        trusted_proxy="127.0.0.1",
        ws_callers_per_address=DEFAULTS.ws_callers_per_address,
        ws_calls_per_address_minute=DEFAULTS.ws_calls_per_address_minute,
        tts_renders_per_address_minute=DEFAULTS.tts_renders_per_address_minute,
        overflow_seconds=10**7,
        ring_timeout_seconds=60,
        rejoin_seconds=600,
        log_level="WARNING",
        caption_warm=args.warm,
    )
    fast_agents = max(2, args.agents // 10)
    line_ids = seed_agents(server.data_dir, args.agents - fast_agents, [LINE])
    fast_ids = seed_agents_named(server.data_dir, fast_agents, [FAST])
    server.start()
    profiler = None
    if args.profile:  # py-spy (pip install py-spy) samples the server: collapsed stacks
        profiler = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "-f",
                "raw",
                "-r",
                "50",
                "-o",
                args.profile,
            ]
            + ["--pid", str(server.proc.pid)],  # type: ignore[union-attr]
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    agents = Agents(args.talk)
    tmp = Path(tempfile.mkdtemp(prefix="surge-"))
    holders: list[subprocess.Popen[str]] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    try:
        await agents.start(server.ws_url, line_ids, LINE)
        await agents.start(server.ws_url, fast_ids, FAST)
        await agents.set_status(FAST, "available")
        cpu0, own0, t0 = server.cpu_seconds(), own_cpu_seconds(), time.perf_counter()
        share = [args.callers // args.holders] * args.holders
        share[0] += args.callers - sum(share)
        outs = [tmp / f"holder{i}.json" for i in range(args.holders)]
        holders = [
            start_holder(server.ws_url, n, args.ramp, args, out)
            for n, out in zip(share, outs, strict=True)
        ]
        rss_peak = 0.0

        async def watch_rss() -> None:
            nonlocal rss_peak
            while True:
                rss_peak = max(rss_peak, server.rss_mb())
                await asyncio.sleep(0.5)

        watcher = loop.create_task(watch_rss())
        ready = await asyncio.gather(
            *(loop.run_in_executor(None, h.stdout.readline) for h in holders)  # type: ignore[union-attr]
        )
        held = 0
        for line in ready:
            parts = line.split()
            if not parts or parts[0] != "ready":
                raise RuntimeError(f"holder failed: {line!r}")
            held += int(parts[1])
        ramp_s = time.perf_counter() - t0
        ramp_cpu = server.cpu_seconds() - cpu0
        metrics_url = f"http://127.0.0.1:{server.http_port}/metrics"
        waiting_server = await loop.run_in_executor(
            None, metric, metrics_url, "hotline_waiting_callers_total"
        )
        rss_held = server.rss_mb()
        print(
            f"# ramp: {held} callers waiting after {ramp_s:.1f} s (server says {waiting_server});"
            f" server CPU {ramp_cpu:.1f} s ({ramp_cpu / ramp_s * 100:.0f} % of a core),"
            f" RSS {rss_held:.0f} MB; agents got {agents.line_msgs} line updates",
            flush=True,
        )
        # Measure: agents take callers from the head; a stream of yue calls rings through.
        since = time.perf_counter()
        cpu1 = server.cpu_seconds()
        await agents.set_status(LINE, "available")
        stream: dict[str, Any] = {}
        # Fewer yue callers at once than free yue agents: tap->ring, not a wait for an agent.
        concurrency = max(1, min(args.ring_concurrency, fast_agents // 2))
        attacked: dict[str, Any] = {}
        if args.attack:
            import attack

            results = await asyncio.gather(
                ring_stream(server.ws_url, agents, args.measure, concurrency, stream),
                attack.run(server.http_port, server.ws_url, args.measure),
            )
            attacked = results[1]
        else:
            await ring_stream(server.ws_url, agents, args.measure, concurrency, stream)
        measure_s = time.perf_counter() - since
        measure_cpu = server.cpu_seconds() - cpu1
        await agents.set_status(LINE, "away")
        await asyncio.sleep(1.0)  # let the last queue round arrive
        watcher.cancel()
        rss_peak = max(rss_peak, server.rss_mb())
        for h in holders:
            h.stdin.write("stop\n")  # type: ignore[union-attr]
            h.stdin.flush()  # type: ignore[union-attr]
        for h in holders:
            await loop.run_in_executor(None, h.stdout.readline)  # type: ignore[union-attr]
            await loop.run_in_executor(None, h.wait, 60)
        holders_out = [json.loads(p.read_text()) for p in outs]
        queue_times = [t for out in holders_out for t in out["queue_times"]]
        for out in holders_out:
            errors += out["errors"]
        stale = staleness_ms(queue_times, agents.accepts, since)
        fan = [d * 1000 for out in holders_out for t, d in out["fanout"] if t >= since]
        errors += agents.errors + stream.get("errors", [])
        served = sum(out["served"] for out in holders_out)
        audio = sum(out["audio_connected"] for out in holders_out)
        own = own_cpu_seconds() - own0
        holders_cpu = sum(out["cpu_seconds"] for out in holders_out)
        print(
            f"# measure: {len(agents.accepts)} line accepts, {served} line callers served"
            f" ({audio} with an audio tap), {len(stream.get('ring_ms', []))} yue calls in"
            f" {measure_s:.1f} s; server CPU {measure_cpu:.1f} s"
            f" ({measure_cpu / measure_s * 100:.0f} % of a core); {len(fan)} queue messages timed;"
            f" fan-out p50 {_r(percentile(fan, 50))} ms, max {_r(max(fan, default=0))} ms;"
            f" staleness (first accept not yet shown -> shown) p50 {_r(percentile(stale, 50))}"
            f" p99 {_r(percentile(stale, 99))} ms",
            flush=True,
        )
        print(
            f"# tap->ring as the server saw it (arrival -> ring, 0.1 s resolution):"
            f" p50 {_r(percentile(stream.get('server_ms', []), 50))}"
            f" p95 {_r(percentile(stream.get('server_ms', []), 95))} ms",
            flush=True,
        )
        print(
            f"# server RSS held {rss_held:.0f} MB, peak {rss_peak:.0f} MB; load generator CPU"
            f" (main process) {own:.1f} s, caller holders {holders_cpu:.1f} s",
            flush=True,
        )
        slow_rounds = [ln for ln in server.log.read_text().splitlines() if "queue round" in ln]
        print(f"# server: {len(slow_rounds)} queue rounds over 0.5 s", flush=True)
        for line in slow_rounds[:3]:
            print(f"#   {line[-120:]}", flush=True)
        for line in sorted(set(errors))[:5]:
            print(f"# error: {line}", flush=True)
        return {
            "waiting_callers": held,
            "server_rss_mb": round(rss_peak, 1),
            "fanout_p50_ms": _r(percentile(fan, 50)),
            "fanout_p99_ms": _r(percentile(fan, 99)),
            "staleness_p99_ms": _r(percentile(stale, 99)),
            "tap_to_ring_p95_ms": _r(percentile(stream.get("ring_ms", []), 95)),
            "errors": len(errors),
            **attacked,
        }
    finally:
        for h in holders:
            if h.poll() is None:
                h.kill()
        if profiler is not None:
            profiler.send_signal(2)  # SIGINT: py-spy writes its file
            profiler.wait(30)
        await agents.close()
        server.stop()


def seed_agents_named(data_dir: Path, count: int, dialects: list[str]) -> list[int]:
    """Like common.seed_agents, with names that do not collide with the first batch."""
    from hotline.db import Database
    from hotline.db import agents as agents_db

    db = Database(data_dir / "hotline.sqlite3")
    db.migrate()
    ids = [agents_db.add(db, f"fast{i}", f"pw-{i}", dialects).id for i in range(count)]
    bench_sessions(db, ids)
    db.close()
    return ids


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--hold":
        ws_url, count, ramp, fraction, audio_max, out = json.loads(sys.argv[2])
        asyncio.run(Holder(ws_url, count, ramp, fraction, audio_max).run(out))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 callers in 20 s, 60 agents")
    parser.add_argument("--callers", type=int, default=5000)
    parser.add_argument("--ramp", type=float, default=60.0, help="seconds to reach --callers")
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--measure", type=float, default=30.0, help="seconds of calls served")
    parser.add_argument("--talk", type=float, default=8.0, help="mean talk seconds per call")
    parser.add_argument("--ring-concurrency", type=int, default=8)
    parser.add_argument("--audio-fraction", type=float, default=0.2)
    parser.add_argument("--audio-max", type=int, default=12, help="taps open at once, at most")
    parser.add_argument(
        "--warm", type=int, default=0, help="warm recognizers (loads the ~500 MB model)"
    )
    parser.add_argument("--profile", default="", help="py-spy collapsed-stack output file")
    parser.add_argument("--holders", type=int, default=2, help="caller-holding processes")
    parser.add_argument(
        "--attack",
        action="store_true",
        help="floods from an outsider during the measure phase (bench/attack.py)",
    )
    args = parser.parse_args()
    if args.quick:
        args.callers, args.ramp, args.agents, args.measure = 1000, 20.0, 60, 10.0
        args.talk, args.audio_max = 5.0, 6
    result = asyncio.run(bench(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
