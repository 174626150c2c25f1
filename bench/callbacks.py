"""Callback bookings against a real `python -m hotline serve`: throughput, and kill -9 safety.

    python bench/callbacks.py --quick      # within a minute
    python bench/callbacks.py              # 20 restart runs

Prints bookings per second sustained (with p95 latency), then repeats: book concurrently,
`kill -9` the server at a random point, restart it, and count acknowledged bookings that
were lost or duplicated (retrying the unacknowledged ones with the same idempotency key),
and due bookings that fired other than exactly once. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(data_dir: Path, agents: int = 2) -> None:
    """A database with agents on shift around the clock (capacity is not what we measure)."""
    from hotline.db import Database, now
    from hotline.db import agents as agents_db
    from hotline.db import callbacks as store

    db = Database(data_dir / "hotline.sqlite3")
    db.migrate()
    from hotline.db import sessions as sessions_db

    with db.transaction():
        for i in range(agents):
            agent = agents_db.add(db, f"bench{i}", "x", ["cmn"])
            for day in range(1, 8):
                store.add_shift(db, agent.id, day, 0, 24, now())
            # signed in, so that bench/common.agent_token's tickets name a live session
            sessions_db.create(db, agent.id, sid=f"bench-session-{agent.id}")
    db.close()


@dataclass
class Server:
    data_dir: Path
    proc: subprocess.Popen | None = None
    port: int = 0

    def start(self) -> None:
        self.port = free_port()
        env = dict(
            os.environ,
            HOTLINE_DATA_DIR=str(self.data_dir),
            HOTLINE_HTTP_PORT=str(self.port),
            HOTLINE_WS_PORT=str(free_port()),
            HOTLINE_SECRET_KEY="bench-secret",
            HOTLINE_CALLBACK_PER_AGENT_HOUR="100000",
            HOTLINE_CALLBACK_BOOKINGS_PER_ADDRESS_HOUR="100000000",
            HOTLINE_LOG_LEVEL="WARNING",
            PYTHONPATH=str(ROOT),
        )
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hotline", "serve"], env=env, stdout=log, stderr=log, cwd=ROOT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: see {self.data_dir / 'server.log'}")
            try:
                status, _, _ = request("GET", self.port, "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not come up")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()


def request(
    method: str, port: int, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@dataclass
class Form:
    csrf: str
    slots: list[int]


def open_form(port: int) -> Form:
    status, headers, body = request("GET", port, "/family?lang=en")
    if status != 200:
        raise RuntimeError(f"GET /family -> {status}")
    csrf = re.search(r"hl_login_csrf=([^;]+)", headers.get("set-cookie", "")).group(1)
    slots = [int(v) for v in re.findall(rb'<option value="(\d+)"', body)]  # the time choice
    return Form(csrf, slots)


def book(port: int, form: Form, idem: str, phone: str, slot: int) -> tuple[int, float]:
    data = urlencode(
        {
            "csrf": form.csrf,
            "idem": idem,
            "name": "Bench",
            "phone": phone,
            "dialect": "cmn",
            "topic": "other",
            "slot": str(slot),
            "contact": "family@example.com",
        }
    ).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"hl_login_csrf={form.csrf}",
    }
    t0 = time.perf_counter()
    status, _, _ = request("POST", port, "/family/book?lang=en", data, headers)
    return status, time.perf_counter() - t0


@dataclass
class Load:
    acked: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_load(port: int, form: Form, keys: list[str], workers: int, load: Load) -> None:
    """Book every key (phone derived from the key) with `workers` threads."""

    def one(key: str) -> None:
        try:
            status, took = book(port, form, key, phone_of(key), random.choice(form.slots[:48]))
        except (OSError, http.client.HTTPException):
            with load.lock:
                load.errors += 1
            return
        with load.lock:
            if status == 303:
                load.acked.add(key)
                load.latencies.append(took)
            else:
                load.errors += 1

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, keys))


def phone_of(key: str) -> str:
    return "139" + str(int(key.rsplit("-", 1)[1])).zfill(8)


def rows(data_dir: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(data_dir / "hotline.sqlite3") as conn:
        return conn.execute("SELECT idem_key, phone FROM callbacks WHERE kind='family'").fetchall()


def throughput(n: int, workers: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        data = Path(tmp)
        prepare(data)
        server = Server(data)
        server.start()
        try:
            form = open_form(server.port)
            load = Load()
            keys = [f"tput-{secrets_hex()}-{i}" for i in range(n)]
            t0 = time.perf_counter()
            run_load(server.port, form, keys, workers, load)
            elapsed = time.perf_counter() - t0
        finally:
            server.stop()
    lat = sorted(load.latencies)
    p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float("nan")
    return len(load.acked) / elapsed, p95 * 1000


def secrets_hex() -> str:
    import secrets

    return secrets.token_hex(8)


@dataclass
class RestartResult:
    acked: int
    lost: int
    duplicated: int
    fired_wrong: int


def restart_run(n: int, workers: int, rng: random.Random, data_dir: Path) -> RestartResult:
    """Book n concurrently, kill -9 at a random point, restart, check exactly-once."""
    from hotline.callbacks.scheduler import claim_due
    from hotline.db import Database

    prepare(data_dir)
    server = Server(data_dir)
    server.start()
    form = open_form(server.port)
    load = Load()
    keys = [f"run-{secrets_hex()}-{i}" for i in range(n)]
    kill_after = rng.uniform(0.2, 1.5)
    runner = threading.Thread(target=run_load, args=(server.port, form, keys, workers, load))
    runner.start()
    time.sleep(kill_after)
    server.kill9()
    runner.join()
    server.start()
    try:
        form = open_form(server.port)
        # The family retries what was never acknowledged: same idempotency key.
        retry = Load()
        run_load(server.port, form, [k for k in keys if k not in load.acked], workers, retry)
        stored = rows(data_dir)
        by_key: dict[str, int] = {}
        by_phone: dict[str, int] = {}
        for key, phone in stored:
            by_key[key] = by_key.get(key, 0) + 1
            by_phone[phone] = by_phone.get(phone, 0) + 1
        lost = sum(1 for k in load.acked if k not in by_key)
        duplicated = sum(c - 1 for c in by_phone.values() if c > 1)
        # Everything falls due; two schedulers race; each booking must fire exactly once.
        db_a, db_b = Database(data_dir / "hotline.sqlite3"), Database(data_dir / "hotline.sqlite3")
        later = time.time() + 30 * 86400
        fired: list[int] = []
        lock = threading.Lock()

        def fire(db: Database) -> None:
            got = [b.id for b in claim_due(db, later)]
            with lock:
                fired.extend(got)

        threads = [threading.Thread(target=fire, args=(d,)) for d in (db_a, db_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        fired.extend(b.id for b in claim_due(db_a, later + 1))
        fired_wrong = abs(len(stored) - len(set(fired))) + (len(fired) - len(set(fired)))
        return RestartResult(len(load.acked), lost, duplicated, fired_wrong)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, within a minute")
    parser.add_argument("--runs", type=int, default=None, help="restart runs (default 20, quick 3)")
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args(argv)
    n_tput = 300 if args.quick else 2000
    runs = args.runs if args.runs is not None else (3 if args.quick else 20)
    per_run = 200
    rate, p95 = throughput(n_tput, args.workers)
    print(f"throughput: {rate:.1f} bookings/s sustained, p95 {p95:.1f} ms ({n_tput} bookings)")
    rng = random.Random(1)
    lost = duplicated = fired_wrong = 0
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="hotline-restart-") as tmp:
            r = restart_run(per_run, args.workers, rng, Path(tmp))
        lost += r.lost
        duplicated += r.duplicated
        fired_wrong += r.fired_wrong
        print(
            f"restart run {i + 1}/{runs}: {r.acked} acknowledged before kill -9,"
            f" lost {r.lost}, duplicated {r.duplicated}, fired other than once {r.fired_wrong}"
        )
    summary = {
        "bookings_per_s": round(rate, 1),
        "book_p95_ms": round(p95, 1),
        "restart_runs": runs,
        "lost": lost,
        "duplicated": duplicated,
    }
    if fired_wrong:
        print(f"due bookings fired other than exactly once: {fired_wrong}")
    print(json.dumps(summary))
    return 1 if lost or duplicated or fired_wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
