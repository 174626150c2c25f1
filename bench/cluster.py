"""Cluster bench: three `hotline serve` nodes on one PostgreSQL and one Redis, one killed mid-surge.

    python bench/cluster.py --quick     # 600 callers, 30 agents (< 60 s)
    python bench/cluster.py             # 5,000 callers, 200 agents

Everything is real and on this machine: a throw-away PostgreSQL (fsync off, so its figures are
upper bounds for a durable server) and redis-server (tests/engines.py), and three node processes
(`python -m hotline serve`, tests/cluster_nodes.py) sharing them. Waiting callers are held by
helper processes on bare websocket clients (common.RawSocket), spread over the nodes in turn;
agents' consoles run in this process, spread the same way. Each node's CPU and RSS come from
/proc, apart from the load generator's.

Phases:
1. ramp: `--callers` callers (dialect cmn) tap over `--ramp` seconds on nodes a, b, c in turn;
   the cmn agents are signed in and away.
2. P0: the line stands still; every waiting caller's place (their last `queue`) over all nodes
   must be exactly 1..N.
3. surge (`--measure` s): the cmn agents take callers from the head (talk ~`--talk` s, hang up,
   ready again); callers tapping in dialect yue on the nodes that will survive are rung
   through to free yue agents on any node (surge.ring_stream: tap -> ring). At a third of
   the surge one node gets SIGKILL: by default the one holding the line (its switchboard
   fails over to another node; `--kill front`: another node). Its callers' pages reconnect
   to the next node that answers with their rejoin secret, its agents' consoles with a new
   ticket.
4. P1: the cmn agents go away; once the line stands still, places must be 1..M again and the
   callers still waiting in the same relative order as at P0.

Last line, one JSON object:
- waiting_callers: callers in line at P0; agents: all agents (cmn and yue)
- killed_node_callers: callers whose page the kill cut off (they had to rejoin)
- rejoin_p99_s: a page's drop -> its place (or its call) shown again by another node
- lost: callers acknowledged (`queued`) who end neither answered nor in line at P1
- duplicated_assignments: a call answered by a second agent, or connected twice to its caller
- order_violations: callers out of their P0 relative order at P1, plus rings that skipped more
  callers ahead (waiting, connected, never rung) than the agents could be ringing at once
- fanout_p99_ms: a round of places computed by the node holding the line (the `at` of each
  `queue` message, CLOCK_MONOTONIC like every process here) -> its arrival at a page on any
  node, as surge.py measures it; the staleness (an accept on any node -> the place after it
  shown; rounds are at most one a second by design) is printed beside it
- tap_to_ring_p95_ms: a yue caller's `call` -> the ring on an agent's console, across nodes
- node_rss_mb: the largest node's peak RSS; errors: unexpected errors and failures (a killed
  node's pages and consoles losing their sockets is the scenario, not an error)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    SECRET,
    Peer,
    RawSocket,
    agent_token,
    bench_sessions,
    own_cpu_seconds,
    percentile,
    process_cpu_seconds,
    process_rss_mb,
    raise_nofile,
)
from surge import FAST, LINE, ring_stream, staleness_ms  # noqa: E402

from tests.cluster_nodes import Cluster  # noqa: E402

NAMES = "abcdefghij"  # node names
T0 = time.perf_counter()


def note(text: str) -> None:
    """A comment line of the bench's output, stamped with the seconds since it started."""
    print(f"# [{time.perf_counter() - T0:5.1f} s] {text}", flush=True)


# ----------------------------------------------------------------- waiting-caller holder
class Holder:
    """Helper process: its share of callers tap on their nodes, wait, and rejoin elsewhere
    when their node dies. Answers `places` (who waits where) and `stop` on stdin."""

    def __init__(self, urls: list[str], indices: list[int], ramp: float) -> None:
        self.urls = urls
        self.indices = indices
        self.ramp = ramp
        self.c: dict[int, dict[str, Any]] = {
            i: {
                "call_id": "", "rejoin": "", "state": "connecting", "position": None,
                "node": i % len(urls), "connected": 0, "queue_times": [], "fanout": [],
                "drops": [],
            }
            for i in indices
        }  # fmt: skip
        self.errors: list[str] = []
        self.tasks: list[asyncio.Task[None]] = []

    def error(self, text: str) -> None:
        self.errors.append(text[:200])

    async def _open(self, node: int, query: str) -> RawSocket:
        url = urlsplit(self.urls[node])
        loop = asyncio.get_running_loop()
        _, ws = await asyncio.wait_for(
            loop.create_connection(
                lambda: RawSocket(f"{url.path}?{query}", url.netloc), url.hostname, url.port
            ),
            30,
        )
        await asyncio.wait_for(ws.opened, 30)
        return ws

    async def _rejoin(self, i: int) -> RawSocket | None:
        """The page reconnects with its secret to the next node that answers."""
        st = self.c[i]
        for k in range(1, len(self.urls) + 1):
            node = (st["node"] + k) % len(self.urls)
            try:
                ws = await self._open(node, f"role=caller&rejoin={st['rejoin']}")
            except Exception:
                continue
            st["node"] = node
            return ws
        return None

    async def caller(self, i: int) -> None:
        st = self.c[i]
        try:
            ws = await self._open(st["node"], "role=caller")
        except Exception as exc:
            st["state"] = "failed"
            self.error(f"connect: {type(exc).__name__}: {exc}")
            return
        ws.send(json.dumps({"type": "call", "dialect": LINE}))
        dropped_at: float | None = None
        try:
            while True:
                t, msg = await ws.inbox.get()
                if msg is None:  # the socket closed: a page reconnects (kept place)
                    if st["state"] in ("done", "failed"):
                        break
                    dropped_at = t
                    st["was"], st["state"] = st["state"], "rejoining"
                    again = await self._rejoin(i)
                    if again is None:
                        st["state"] = "failed"
                        self.error(f"caller {i}: no node took the rejoin")
                        break
                    ws = again
                    continue
                kind = msg.get("type")
                if kind == "hello" and dropped_at is not None and not msg.get("rejoined"):
                    if st.get("was") == "talking":  # the call ended while the page was away
                        st["state"] = "done"
                        break
                    st["state"] = "failed"
                    self.error(f"caller {i}: rejoin refused ({msg})")
                    break
                if kind in ("queue", "connected") and dropped_at is not None:
                    st["drops"].append(t - dropped_at)
                    dropped_at = None
                if kind == "queued":
                    st["call_id"], st["rejoin"], st["state"] = (
                        msg["call_id"],
                        msg["rejoin"],
                        "waiting",
                    )
                elif kind == "queue":
                    st["state"] = "waiting" if msg["position"] else "ringing"
                    st["position"] = msg["position"]
                    st["queue_times"].append(t)
                    if "at" in msg:
                        st["fanout"].append((t, t - msg["at"]))
                elif kind == "connected":
                    st["state"] = "talking"
                    if not msg.get("rejoined"):
                        st["connected"] += 1
                elif kind == "requeued":
                    st["state"] = "waiting"
                elif kind == "ended":
                    st["state"] = "done"
                    break
                elif kind == "error":
                    self.error(f"caller {i}: {msg}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error(f"caller {i}: {type(exc).__name__}: {exc}")
        finally:
            ws.close()

    def places(self) -> dict[str, Any]:
        return {
            "waiting": {
                i: st["position"]
                for i, st in self.c.items()
                if st["state"] in ("waiting", "ringing")
            },
            "busy": sum(st["state"] in ("connecting", "rejoining") for st in self.c.values()),
        }

    async def run(self, out_path: str) -> None:
        raise_nofile(len(self.indices) + 512)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        total = max(self.indices, default=0) + 1
        for i in self.indices:
            delay = t0 + self.ramp * i / total - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the ramp's schedule
            self.tasks.append(loop.create_task(self.caller(i)))
        deadline = loop.time() + 60
        while any(st["state"] == "connecting" for st in self.c.values()):
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.1)
        waiting = sum(st["state"] == "waiting" for st in self.c.values())
        print(f"ready {waiting} {len(self.errors)}", flush=True)
        while True:
            command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if command == "places":
                print(json.dumps(self.places()), flush=True)
            else:
                break
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        with open(out_path, "w") as f:
            json.dump(
                {"callers": self.c, "errors": self.errors, "cpu_seconds": own_cpu_seconds()}, f
            )
        print("done", flush=True)


def start_holder(
    urls: list[str], indices: list[int], ramp: float, out: Path
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--hold", json.dumps([urls, indices, ramp, str(out)])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


async def ask(holder: subprocess.Popen[str], command: str) -> str:
    holder.stdin.write(command + "\n")  # type: ignore[union-attr]
    holder.stdin.flush()  # type: ignore[union-attr]
    return await asyncio.get_running_loop().run_in_executor(None, holder.stdout.readline)  # type: ignore[union-attr]


# ----------------------------------------------------------------- agents (this process)
class Agents:
    """Agent consoles spread over the nodes: take every ring, talk, hang up, ready again; a
    console whose node died signs in again on the next live node."""

    def __init__(self, urls: list[str], talk: float) -> None:
        self.urls = urls
        self.talk = talk
        self.alive = set(range(len(urls)))
        self.node: dict[int, int] = {}
        self.dialect: dict[int, str] = {}
        self.peers: dict[int, Peer] = {}
        self.status: dict[int, str] = {}
        self.wanted: dict[str, str] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.rang_at: dict[str, float] = {}  # for surge.ring_stream
        self.waited: dict[str, float] = {}
        self.accepts: list[float] = []  # perf_counter of every LINE accept
        self.rings: list[tuple[float, int, str]] = []  # LINE rings: (time, agent, call_id)
        self.answered: dict[str, list[int]] = defaultdict(list)
        self.talking: set[str] = set()  # LINE calls whose conversation has started
        self.talk_over: set[str] = set()  # ... and ended: hung up
        self.repeats = 0  # hang-ups sent again (one may cross the call's end: no_call)
        self.current: dict[int, str] = {}  # agent -> the call it was last connected to
        self.hung_up_at: dict[str, float] = {}  # call -> perf_counter of its last hang-up
        self.reconnect_s: list[float] = []
        self.errors: list[str] = []
        self.rng_talk = 0

    async def start(self, ids: list[int], dialect: str, offset: int = 0) -> None:
        gate = asyncio.Semaphore(16)

        async def one(j: int, agent_id: int) -> None:
            self.node[agent_id] = (offset + j) % len(self.urls)
            self.dialect[agent_id] = dialect
            async with gate:
                self.peers[agent_id] = await self._open(agent_id)
            self.tasks.append(asyncio.get_running_loop().create_task(self._serve(agent_id)))

        await asyncio.gather(*(one(j, a) for j, a in enumerate(ids)))

    async def _open(self, agent_id: int) -> Peer:
        url = self.urls[self.node[agent_id]]
        peer = await Peer.open(f"{url}?role=agent&token={agent_token(agent_id)}")
        hello = await peer.expect("hello")
        self.status[agent_id] = hello.get("status", "away")
        return peer

    async def _reconnect(self, agent_id: int) -> None:
        t0 = time.perf_counter()
        for k in range(1, len(self.urls) + 1):
            node = (self.node[agent_id] + k) % len(self.urls)
            if node not in self.alive:
                continue
            self.node[agent_id] = node
            try:
                self.peers[agent_id] = await self._open(agent_id)
            except Exception:
                continue
            self.reconnect_s.append(time.perf_counter() - t0)
            await self._want(agent_id)
            return
        self.errors.append(f"agent {agent_id}: no node took the console")

    async def _want(self, agent_id: int) -> None:
        """Bring the console to the status its dialect's agents should have."""
        want, now = self.wanted.get(self.dialect[agent_id], "away"), self.status[agent_id]
        peer = self.peers[agent_id]
        if now == "wrap_up":
            await peer.send(
                {"type": "ready"} if want == "available" else {"type": "status", "status": "away"}
            )
        elif now in ("available", "away") and now != want:
            await peer.send({"type": "status", "status": want})

    async def _serve(self, agent_id: int) -> None:
        while True:
            peer = self.peers[agent_id]
            try:
                msg = await asyncio.wait_for(peer.inbox.get(), 0.2)
            except TimeoutError:
                if peer._task.done():
                    if self.node[agent_id] in self.alive:
                        self.errors.append(f"agent {agent_id} dropped: {peer.ws.close_reason!r}")
                    await self._reconnect(agent_id)
                continue
            kind, call_id = msg.get("type"), str(msg.get("call_id", ""))
            if kind == "ring":
                now = time.perf_counter()
                self.rang_at[call_id] = now
                self.waited[call_id] = msg.get("waited_seconds", 0.0)
                if self.dialect[agent_id] == LINE:
                    self.accepts.append(now)
                    self.rings.append((now, agent_id, call_id))
                await peer.send({"type": "accept", "call_id": call_id})
            elif kind == "connected":
                if not msg.get("rejoined"):
                    self.answered[call_id].append(agent_id)
                self.current[agent_id] = call_id
                if self.dialect[agent_id] != LINE:
                    continue
                if call_id in self.talk_over:  # still on: the hang-up went to a dead socket
                    self.repeats += 1
                    await self._hang_up(agent_id, call_id)
                elif call_id not in self.talking:
                    self.talking.add(call_id)
                    asyncio.get_running_loop().create_task(self._hang_up_later(agent_id, call_id))
            elif kind == "status":
                self.status[agent_id] = msg["status"]
                if msg["status"] == "wrap_up":
                    await self._want(agent_id)
            elif kind == "error" and (msg.get("code"), msg.get("for")) == ("no_call", "hangup"):
                if self.repeats > 0:  # a repeated hang-up crossed the call's end
                    self.repeats -= 1
                else:
                    self.errors.append(f"agent {agent_id}: {msg}"[:200])
            elif kind == "error" and msg.get("code") not in ("busy", "not_in_wrap_up"):
                self.errors.append(f"agent {agent_id}: {msg}"[:200])

    async def _hang_up_later(self, agent_id: int, call_id: str) -> None:
        """The conversation, then the agent hangs up (once; again only if told `connected`
        after it, i.e. the hang-up went to a console socket that had died)."""
        self.rng_talk = (self.rng_talk + 7) % 11
        await asyncio.sleep(self.talk * (0.5 + self.rng_talk / 10))
        self.talk_over.add(call_id)
        await self._hang_up(agent_id, call_id)

    async def _hang_up(self, agent_id: int, call_id: str) -> None:
        self.hung_up_at[call_id] = time.perf_counter()
        with contextlib.suppress(Exception):  # (on the console's socket of now: it may have moved)
            await self.peers[agent_id].send({"type": "hangup", "call_id": call_id})

    async def set_status(self, dialect: str, status: str) -> None:
        self.wanted[dialect] = status
        for agent_id, d in self.dialect.items():
            if d == dialect:
                with contextlib.suppress(Exception):
                    await self._want(agent_id)

    def settled(self, dialect: str) -> bool:
        return not self.unsettled(dialect)

    def unsettled(self, dialect: str) -> list[tuple[int, str]]:
        """(agent, status) of the dialect's agents not in the status they should be."""
        want = self.wanted.get(dialect, "away")
        return [(a, s) for a, s in self.status.items() if self.dialect[a] == dialect and s != want]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*(p.close() for p in self.peers.values()))


# ----------------------------------------------------------------- checks
async def settle(
    holders: list[subprocess.Popen[str]], seconds: float
) -> tuple[dict[int, int], bool]:
    """Poll the holders until the line stands still: nobody connecting or rejoining, places
    exactly 1..N over all nodes, the same twice in a row. (places, settled)"""
    deadline = time.monotonic() + seconds
    previous: dict[int, int] | None = None
    while True:
        places: dict[int, int] = {}
        busy = 0
        for h in holders:
            got = json.loads(await ask(h, "places"))
            places.update({int(i): p for i, p in got["waiting"].items()})
            busy += got["busy"]
        ok = busy == 0 and sorted(p or 0 for p in places.values()) == list(
            range(1, len(places) + 1)
        )
        if ok and places == previous:
            return places, True
        if time.monotonic() > deadline:
            return places, False
        previous = places if ok else None
        await asyncio.sleep(0.5)


def descents(before: dict[int, int], after: dict[int, int]) -> int:
    """Callers still waiting whose order at `after` differs from `before` (count of descents)."""
    common = sorted((i for i in after if i in before), key=before.__getitem__)
    seq = [after[i] for i in common]
    return sum(1 for x, y in zip(seq, seq[1:], strict=False) if y < x)


def skipped_rings(
    rings: list[tuple[float, int, str]], order: list[str], skip: set[str], window: int
) -> int:
    """Rings that skipped more callers ahead (never rung, not in `skip`) than `window`."""
    unrung = [c for c in order if c not in skip]
    rung: set[str] = set()
    bad = 0
    for _t, _agent, cid in sorted(rings):
        if cid in rung or cid in skip or cid not in order:
            rung.add(cid)
            continue
        ahead = 0
        for c in unrung:
            if c == cid:
                break
            if c not in rung:
                ahead += 1
                if ahead > window:
                    bad += 1
                    break
        rung.add(cid)
    return bad


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


# ----------------------------------------------------------------- main
async def bench(args: argparse.Namespace) -> dict[str, Any]:
    nofile = raise_nofile(args.callers + args.agents * 2 + 2048)
    note(f"RLIMIT_NOFILE soft limit {nofile} (nodes and helpers inherit it)")
    names = NAMES[: args.nodes]
    cluster = Cluster(
        names,
        secret=SECRET,
        settings={
            "log_level": "WARNING",
            "ring_timeout_seconds": args.ring_timeout,
            "overflow_seconds": 10**7,
            "rejoin_seconds": 600,
        },
    )
    loop = asyncio.get_running_loop()
    t_start = time.perf_counter()
    await asyncio.to_thread(cluster.start)
    holders: list[subprocess.Popen[str]] = []
    agents: Agents | None = None
    errors: list[str] = []
    try:
        from hotline.db import agents as agents_db

        fast = max(3, args.agents // 10)
        line_ids = [
            agents_db.add(cluster.db, f"line{i}", f"pw-line-{i}", [LINE]).id
            for i in range(args.agents - fast)
        ]
        fast_ids = [
            agents_db.add(cluster.db, f"fast{i}", f"pw-fast-{i}", [FAST]).id for i in range(fast)
        ]
        bench_sessions(cluster.db, line_ids + fast_ids)
        nodes = [cluster[n] for n in names]
        holder = names.index(await asyncio.to_thread(cluster.wait_holder))
        killed: int | None = None  # one node alone is never killed
        if len(names) > 1:
            killed = holder if args.kill == "holder" else (holder + 1) % len(names)
        note(
            f"node {names[holder]} holds the line; node"
            f" {names[killed] if killed is not None else '-'} ({args.kill}) will be killed",
        )
        urls = [n.ws for n in nodes]
        note(f"{len(nodes)} nodes ready after {time.perf_counter() - t_start:.1f} s")

        agents = Agents(urls, args.talk)
        await agents.start(line_ids, LINE)
        await agents.start(fast_ids, FAST)
        await agents.set_status(FAST, "available")

        rss_peak = {n.name: 0.0 for n in nodes}
        cpu_last = {n.name: 0.0 for n in nodes}

        async def watch() -> None:
            while True:
                for n in nodes:
                    if n.alive:
                        with contextlib.suppress(OSError):
                            rss_peak[n.name] = max(rss_peak[n.name], process_rss_mb(n.pid))
                            cpu_last[n.name] = process_cpu_seconds(n.pid)
                await asyncio.sleep(0.5)

        watcher = loop.create_task(watch())
        tmp = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
        outs = [tmp / f"holder{k}.json" for k in range(args.holders)]
        t0, own0 = time.perf_counter(), own_cpu_seconds()
        holders = [
            start_holder(urls, list(range(k, args.callers, args.holders)), args.ramp, outs[k])
            for k in range(args.holders)
        ]
        for h in holders:
            line = await loop.run_in_executor(None, h.stdout.readline)  # type: ignore[union-attr]
            if not line.startswith("ready"):
                raise RuntimeError(f"holder failed: {line!r}")
        p0, ok = await settle(holders, 30)
        if not ok:
            errors.append(f"line did not settle after the ramp ({len(p0)} places)")
        note(
            f"ramp: {len(p0)} callers in line after {time.perf_counter() - t0:.1f} s;"
            f" node CPU {', '.join(f'{k} {v:.1f} s' for k, v in cpu_last.items())}",
        )

        # The surge, with one node killed at a third of it.
        since = time.perf_counter()
        cpu0 = dict(cpu_last)
        await agents.set_status(LINE, "available")
        stream: dict[str, Any] = {}
        killed_at = 0.0

        async def kill_later() -> None:
            nonlocal killed_at
            if killed is None:
                return
            await asyncio.sleep(args.measure / 3)  # the scenario's schedule
            agents.alive.discard(killed)  # type: ignore[union-attr]
            killed_at = time.perf_counter()
            await asyncio.to_thread(cluster.kill, names[killed])
            note(f"killed node {names[killed]} (SIGKILL) at +{killed_at - since:.1f} s")

        concurrency = max(1, min(args.ring_concurrency, fast // 2))
        await asyncio.gather(
            kill_later(),
            *(
                ring_stream(  # (a lost hang-up is an error, not a 30 s stall of the bench)
                    urls[k],
                    agents,
                    args.measure,
                    max(1, concurrency // 2),
                    stream,
                    5.0,  # type: ignore[arg-type]
                )
                for k in range(len(urls))
                if k != killed
            ),
        )
        surge_s = time.perf_counter() - since
        cpu_surge = {k: cpu_last[k] - cpu0[k] for k in cpu_last}
        await agents.set_status(LINE, "away")
        t_away = time.monotonic()
        while not agents.settled(LINE) and time.monotonic() - t_away < args.talk * 1.5 + 5:
            await asyncio.sleep(0.1)
        stuck = agents.unsettled(LINE)
        for agent_id, status in stuck:
            call_id = agents.current.get(agent_id, "")
            sent = agents.hung_up_at.get(call_id)
            errors.append(
                f"agent {agent_id} (node {names[agents.node[agent_id]]}) never went away:"
                f" {status}, call {call_id}, hung up"
                + (f" at {sent - killed_at:+.2f} s from the kill" if sent and killed_at else " -")
            )
        p1, ok = await settle(holders, 15)
        if not ok:
            errors.append(f"line did not settle after the surge ({len(p1)} places)")
        watcher.cancel()

        for h in holders:
            h.stdin.write("stop\n")  # type: ignore[union-attr]
            h.stdin.flush()  # type: ignore[union-attr]
        for h in holders:
            await loop.run_in_executor(None, h.stdout.readline)  # type: ignore[union-attr]
            await loop.run_in_executor(None, h.wait, 60)
        outs_data = [json.loads(p.read_text()) for p in outs]
        callers = {int(i): st for out in outs_data for i, st in out["callers"].items()}
        for out in outs_data:
            errors += out["errors"]
        errors += agents.errors + stream.get("errors", [])

        by_call = {st["call_id"]: i for i, st in callers.items() if st["call_id"]}
        dropped = {i for i, st in callers.items() if st["drops"] or st["state"] == "rejoining"}
        rejoin = [d for st in callers.values() for d in st["drops"]]
        acked = {i for i, st in callers.items() if st["call_id"]}
        answered = {by_call[c] for c in agents.answered if c in by_call}
        lost = acked - answered - set(p1)
        duplicated = sum(len(v) - 1 for v in agents.answered.values()) + sum(
            max(0, st["connected"] - 1) for st in callers.values()
        )
        order = [callers[i]["call_id"] for i in sorted(p0, key=p0.__getitem__)]
        skip = {callers[i]["call_id"] for i in dropped}
        line_agents = len(line_ids)
        skipped = skipped_rings(agents.rings, order, skip, line_agents)
        violations = descents(p0, p1) + skipped
        queue_times = [st["queue_times"] for st in callers.values()]
        stale = staleness_ms(queue_times, agents.accepts, since)
        fan = [d * 1000 for st in callers.values() for t, d in st["fanout"] if t >= since]
        node_cpu = sum(cpu_surge.values())
        note(
            f"surge {surge_s:.1f} s: {len(agents.accepts)} cmn rings, {len(answered)} answered,"
            f" {len(stream.get('ring_ms', []))} yue calls; {len(dropped)} pages rejoined"
            f" (p50 {_r(percentile(rejoin, 50), 2)} s, max {_r(max(rejoin, default=0), 2)} s);"
            f" {len(agents.reconnect_s)} consoles signed in again"
            f" (max {_r(max(agents.reconnect_s, default=0), 2)} s)",
        )
        note(
            f"node CPU in the surge: {', '.join(f'{k} {v:.1f} s' for k, v in cpu_surge.items())}"
            f" ({node_cpu / surge_s * 100:.0f} % of a core in all); peak RSS"
            f" {', '.join(f'{k} {v:.0f} MB' for k, v in rss_peak.items())}; load generator CPU"
            f" {own_cpu_seconds() - own0:.1f} s (this process)"
            f" + {sum(o['cpu_seconds'] for o in outs_data):.1f} s (holders)",
        )
        note(
            f"places: P0 {len(p0)}, P1 {len(p1)}; descents {descents(p0, p1)}, skipped rings"
            f" {skipped}; fan-out (the holder's round -> a page on any node) p50"
            f" {_r(percentile(fan, 50))} ms; staleness (an accept on any node -> the place after"
            f" it shown) p50 {_r(percentile(stale, 50))} p99 {_r(percentile(stale, 99))} ms",
        )
        if killed_at:
            after = [(t - killed_at, d * 1000) for st in callers.values() for t, d in st["fanout"]]
            window = [d for t, d in after if 0 <= t < 10]
            rest = [d for t, d in after if t + killed_at >= since and not 0 <= t < 10]
            worst = sorted(after, key=lambda td: -td[1])[:5]
            note(
                f"fan-out p99 in the 10 s after the kill {_r(percentile(window, 99))} ms"
                f" ({len(window)} places), else {_r(percentile(rest, 99))} ms ({len(rest)});"
                f" worst at {', '.join(f'{t:+.1f} s: {d:.0f} ms' for t, d in worst)} from the kill",
            )
        for line in sorted(set(errors))[: args.show_errors]:
            note(f"error: {line}")
        return {
            "nodes": len(nodes),
            "waiting_callers": len(p0),
            "agents": args.agents,
            "killed_node_callers": len(dropped),
            "rejoin_p99_s": _r(percentile(rejoin, 99), 2),
            "lost": len(lost),
            "duplicated_assignments": duplicated,
            "order_violations": violations,
            "fanout_p99_ms": _r(percentile(fan, 99)),
            "tap_to_ring_p95_ms": _r(percentile(stream.get("ring_ms", []), 95)),
            "node_rss_mb": _r(max(rss_peak.values())),
            "errors": len(errors),
        }
    finally:
        for h in holders:
            if h.poll() is None:
                h.kill()
        if agents is not None:
            await agents.close()
        await asyncio.to_thread(cluster.close)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--hold":
        urls, indices, ramp, out = json.loads(sys.argv[2])
        asyncio.run(Holder(urls, indices, ramp).run(out))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="600 callers, 30 agents, < 60 s")
    parser.add_argument("--callers", type=int, default=5000)
    parser.add_argument("--ramp", type=float, default=60.0, help="seconds to reach --callers")
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--measure", type=float, default=30.0, help="seconds of surge")
    parser.add_argument("--talk", type=float, default=8.0, help="mean talk seconds per call")
    parser.add_argument("--ring-timeout", type=float, default=10.0)
    parser.add_argument("--ring-concurrency", type=int, default=8)
    parser.add_argument("--holders", type=int, default=2, help="caller-holding processes")
    parser.add_argument("--show-errors", type=int, default=8, help="distinct errors printed")
    parser.add_argument("--nodes", type=int, default=3, help="one of them is killed (if > 1)")
    parser.add_argument(
        "--kill",
        choices=["holder", "front"],
        default="holder",
        help="kill the node holding the line (its switchboard fails over) or another one",
    )
    args = parser.parse_args()
    if args.quick:
        args.callers, args.ramp, args.agents, args.measure, args.talk = 600, 6.0, 30, 12.0, 3.0
    result = asyncio.run(bench(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
