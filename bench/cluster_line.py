"""Several node processes on one shared line (PostgreSQL + Redis), one killed with SIGKILL mid-surge.

The line-level half of issue 13's `bench/cluster.py`: every node process runs a
`ClusterNode` (no websockets, no WebRTC: the switchboard is not wired to the shared line
yet), callers arrive on every node, simulated agents on every node accept their rings, talk
and hang up; in the middle one node is killed with SIGKILL. Its waiting callers are adopted
by the survivors (what their pages' reconnection will do). At the end every invariant is
checked against PostgreSQL and the nodes' logs:

- lost: callers whose arrival a node acknowledged but who are not in the line's table;
- duplicated_assignments: a caller answered twice, or an agent answering two at once;
- killed_node_places_kept: the killed node's waiting callers kept their places (same `place`);
- fanout_p99_ms: from a caller being answered on one node to each other node pushing new
  places to its own callers (CLOCK_MONOTONIC, shared by the processes of one machine).

Prints one JSON object as its last line. `--quick`: 3 nodes, 600 callers, 30 agents.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hotline.cluster.bus import RedisBus  # noqa: E402
from hotline.cluster.line_store import LineError, SqlLineStore  # noqa: E402
from hotline.cluster.node import ClusterNode, NodeSettings  # noqa: E402
from hotline.db import open_database  # noqa: E402


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


# --- one node process ------------------------------------------------------------------


async def run_node(args: argparse.Namespace) -> None:
    name = f"n{args.node}"
    log = open(args.log, "a", buffering=1, encoding="utf-8")  # line-buffered: survives SIGKILL

    def note(kind: str, **data: Any) -> None:
        log.write(json.dumps({"t": time.monotonic(), "k": kind, "node": name, **data}) + "\n")

    db = open_database(args.url)
    settings = NodeSettings(ring_ttl=15.0, overflow_seconds=30.0, heartbeat_every=0.5,
                            heartbeat_ttl=2.0, sweep_every=0.5, poll_every=0.5, coalesce=0.05)  # fmt: skip
    node: ClusterNode

    async def talk(call_id: str, agent_id: int) -> None:
        try:
            await node.accept(call_id, agent_id)
        except LineError as exc:
            note("accept_refused", call=call_id, agent=agent_id, code=exc.code)
            return
        note("answered", call=call_id, agent=agent_id)
        await asyncio.sleep(args.talk * random.uniform(0.5, 1.5))  # the simulated conversation
        await node.end_call(call_id)
        note("ended", call=call_id, agent=agent_id)

    tasks: set[asyncio.Task[None]] = set()

    def on_ring(call_id: str, agent_id: int) -> None:
        task = asyncio.create_task(talk(call_id, agent_id))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_positions(positions: dict[str, int]) -> None:
        note("positions", n=len(positions))

    node = ClusterNode(name, SqlLineStore(db, node=name), RedisBus(args.redis, name), settings,
                       on_positions=on_positions, on_ring=on_ring)  # fmt: skip
    await node.start()
    note("started")
    t0 = time.time()
    gap = args.ramp / max(1, args.callers)
    for k in range(args.callers):
        call_id = f"{name}-{k:05d}"
        try:
            entry = await node.arrive(call_id, "cmn", t0 + k * gap)
            note("arrived", call=call_id, place=entry.place)
        except LineError as exc:
            note("error", call=call_id, code=exc.code)
        await asyncio.sleep(gap)
    for a in range(args.agents):
        await node.agent_online(args.node * 10_000 + a + 1, ("cmn",))
    note("agents_online")
    await asyncio.Event().wait()  # until SIGTERM (or SIGKILL)


# --- the coordinator --------------------------------------------------------------------


def read_logs(paths: list[Path]) -> list[dict[str, Any]]:
    out = []
    for p in paths:
        if p.exists():
            for line in p.read_text(encoding="utf-8").splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # a line cut by SIGKILL
    return out


def coordinate(args: argparse.Namespace) -> dict[str, Any]:
    from tests.engines import PostgresServer, RedisServer

    pg, redis = PostgresServer(), RedisServer()
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="hotline-cluster-bench-"))
    try:
        pg.start()
        redis.start()
        url = pg.create_database()
        db = open_database(url)
        db.migrate()
        per = args.callers // args.nodes
        agents = max(1, args.agents // args.nodes)
        logs = [tmp / f"n{i}.log" for i in range(args.nodes)]
        for i in range(args.nodes):
            cmd = [sys.executable, __file__, "--node", str(i), "--url", url, "--redis",
                   redis.url(), "--callers", str(per), "--agents", str(agents), "--ramp",
                   str(args.ramp), "--talk", str(args.talk), "--log", str(logs[i])]  # fmt: skip
            procs.append(subprocess.Popen(cmd))
        deadline = time.monotonic() + args.ramp + 60
        while time.monotonic() < deadline:  # until every node has its agents online
            if sum(1 for e in read_logs(logs) if e["k"] == "agents_online") == args.nodes:
                break
            time.sleep(0.2)
        time.sleep(args.surge / 2)  # the surge runs (measured, not synchronisation)
        victim = procs[0]
        line = SqlLineStore(db)
        before = {e.call_id: e.place for e in line.waiting() if e.node == "n0"}
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed_at = time.monotonic()
        # Its callers' pages reconnect to the survivors (round robin), keeping their rows.
        from hotline.db import line as line_db

        for k, call_id in enumerate(sorted(before)):
            line_db.move_node(db, call_id, f"n{1 + k % (args.nodes - 1)}")
        time.sleep(args.surge / 2)
        after = {e.call_id: e for e in (line.get(c) for c in before) if e is not None}
        kept = all(e.place == before[c] for c, e in after.items())
        for p in procs[1:]:
            p.send_signal(signal.SIGTERM)
        for p in procs[1:]:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        events = read_logs(logs)
        arrived = [e["call"] for e in events if e["k"] == "arrived"]
        stored = {r[0] for r in db.query("SELECT call_id FROM line_entries")}
        answered = [e for e in events if e["k"] == "answered"]
        per_call: dict[str, int] = {}
        for e in answered:
            per_call[e["call"]] = per_call.get(e["call"], 0) + 1
        # An agent answering a second call before ending the first is a duplicate too.
        busy: dict[int, int] = {}
        agent_dupes = 0
        for e in sorted(
            (e for e in events if e["k"] in ("answered", "ended")), key=lambda e: e["t"]
        ):
            busy[e["agent"]] = busy.get(e["agent"], 0) + (1 if e["k"] == "answered" else -1)
            agent_dupes += busy[e["agent"]] > 1
        pushes: dict[str, list[float]] = {}
        for e in events:
            if e["k"] == "positions":
                pushes.setdefault(e["node"], []).append(e["t"])
        fanout = []
        for e in answered:
            for node, times in pushes.items():
                if node == e["node"] or (node == "n0" and e["t"] > killed_at):
                    continue
                later = [t for t in times if t >= e["t"]]
                if later:
                    fanout.append((min(later) - e["t"]) * 1000)
        waiting = db.query_one("SELECT COUNT(*) FROM line_entries WHERE state = 'pending'")
        return {
            "layer": "line (ClusterNode over PostgreSQL + Redis; no websockets)",
            "nodes": args.nodes,
            "callers": len(arrived),
            "waiting_callers_at_end": int(waiting[0]) if waiting else 0,
            "agents": agents * args.nodes,
            "answered": len(per_call),
            "killed_node_callers": len(before),
            "killed_node_places_kept": kept,
            "lost": len(set(arrived) - stored),
            "duplicated_assignments": sum(n - 1 for n in per_call.values()) + agent_dupes,
            "fanout_p50_ms": _round(percentile(fanout, 50)),
            "fanout_p99_ms": _round(percentile(fanout, 99)),
            "errors": sum(1 for e in events if e["k"] == "error"),
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        redis.stop()
        pg.destroy()


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 nodes, 600 callers, 30 agents")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--callers", type=int, default=5000)
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--ramp", type=float, default=30.0, help="seconds to bring the callers in")
    ap.add_argument("--surge", type=float, default=20.0, help="seconds of service after that")
    ap.add_argument("--talk", type=float, default=3.0, help="mean simulated talk seconds")
    ap.add_argument("--node", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--redis", help=argparse.SUPPRESS)
    ap.add_argument("--log", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.node is not None:
        asyncio.run(run_node(args))
        return
    if args.quick:
        args.callers, args.agents, args.ramp, args.surge = 600, 30, 10.0, 12.0
    print(json.dumps(coordinate(args)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
