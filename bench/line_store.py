"""The shared line's store alone, on SQLite and on PostgreSQL: how fast, and exactly once.

Not the cluster bench of issue 13 (`bench/cluster.py`, three `hotline serve` nodes and a
kill -9, needs the switchboard wired to the line store first): this measures the layer that
bench will stand on. For each engine it starts from an empty store (a throw-away PostgreSQL
from tests/engines.py), then:

- arrivals: `--callers` callers join from `--nodes` threads, each its own connection (a node);
- rings: `--agents` agents become available and every node races `reserve_next` for every
  agent (FOR UPDATE SKIP LOCKED on PostgreSQL), then each ring is accepted, wrapped, finished;
- places: the time to compute every waiting caller's place from the store (`positions`);
- checks: no caller rung twice, no agent rung twice, and the rung callers are exactly the
  head of the line (order violations).

Prints one JSON object as its last line. `--quick` uses 1,000 callers and 60 agents.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hotline.cluster.line_store import LineError, SqlLineStore  # noqa: E402
from hotline.db import Database, open_database  # noqa: E402
from tests.engines import PostgresServer  # noqa: E402


def _threads(n: int, fn: Any) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            fn(i)
        except BaseException as exc:  # reported in the JSON
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def measure(target: str, callers: int, agents: int, nodes: int) -> dict[str, Any]:
    setup = open_database(target)
    setup.migrate()
    dbs: list[Database] = [open_database(target) for _ in range(nodes)]
    lines = [SqlLineStore(db, node=f"n{i}") for i, db in enumerate(dbs)]
    now = time.time()

    per_node = callers // nodes
    t0 = time.perf_counter()
    errors = _threads(
        nodes,
        lambda i: [lines[i].arrive(f"c{i}-{k:05d}", "cmn", now + k) for k in range(per_node)],
    )
    arrive_s = time.perf_counter() - t0
    total = per_node * nodes

    for a in range(1, agents + 1):
        lines[0].agent_login(a, ("cmn",))
        lines[0].set_available(a, True)
    rung: list[tuple[str, int, float]] = []
    lock = threading.Lock()

    def race(i: int) -> None:
        for a in range(1, agents + 1):
            start = time.perf_counter()
            try:
                e = lines[i].reserve_next(a, 60.0, 30.0)
            except LineError:
                continue
            if e is not None:
                with lock:
                    rung.append((e.call_id, a, (time.perf_counter() - start) * 1000))

    t0 = time.perf_counter()
    errors += _threads(nodes, race)
    reserve_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for call_id, a, _ms in rung:
        lines[0].accept(call_id, a)
        lines[0].wrap(call_id)
        lines[0].finish(call_id)
    cycle_ms = (time.perf_counter() - t0) / max(1, len(rung)) * 1000

    t0 = time.perf_counter()
    places = lines[0].positions()
    positions_ms = (time.perf_counter() - t0) * 1000

    calls = [c for c, _a, _ms in rung]
    # The rung callers must be exactly the first len(rung) of the line by place.
    by_place = sorted(_all(setup), key=lambda e: e[1])
    first = {c for c, _p in by_place[: len(rung)]}
    result = {
        "callers": total,
        "agents": agents,
        "nodes": nodes,
        "arrivals_per_s": round(total / arrive_s, 1),
        "reservations": len(rung),
        "reservations_per_s": round(len(rung) / reserve_s, 1),
        "reserve_p50_ms": round(statistics.median([m for *_x, m in rung]), 2) if rung else None,
        "accept_wrap_finish_ms": round(cycle_ms, 2),
        "positions_ms": round(positions_ms, 1),
        "waiting": len(places),
        "duplicated_callers": len(calls) - len(set(calls)),
        "duplicated_agents": len(rung) - len({a for _c, a, _m in rung}),
        "order_violations": len(set(calls) - first),
        "errors": len(errors),
    }
    for db in dbs:
        db.close()
    setup.close()
    return result


def _all(db: Database) -> list[tuple[str, float]]:
    return [(r[0], float(r[1])) for r in db.query("SELECT call_id, place FROM line_entries")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 callers, 60 agents (< 60 s)")
    ap.add_argument("--callers", type=int, default=5000)
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--nodes", type=int, default=3)
    args = ap.parse_args()
    if args.quick:
        args.callers, args.agents = 1000, 60
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = measure(
            str(Path(tmp) / "line.sqlite3"), args.callers, args.agents, args.nodes
        )
        print("sqlite", json.dumps(out["sqlite"]), file=sys.stderr)
    pg = PostgresServer()
    try:
        pg.start()
        out["postgresql"] = measure(pg.create_database(), args.callers, args.agents, args.nodes)
    finally:
        pg.destroy()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
