"""Several real `hotline serve` processes on one PostgreSQL and one Redis: one hotline.

Used by tests/test_cluster_serve.py and bench/cluster.py. A `Cluster` makes a fresh database
on a throw-away PostgreSQL (tests/engines.py), starts its own redis-server (so a test may stop
it), migrates and seeds the store directly, and runs each node as `python -m hotline serve`
in its own process group with its own ports, data dir and log files. Every wait is a poll with
a deadline scaled by tests.support.SLOW; every process started here is killed at the end, even
when a test fails (and at interpreter exit, as a last resort).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any

from hotline.db import Database, open_database
from tests.engines import PostgresServer, RedisServer, free_port, shared_postgres
from tests.support import SLOW, Client

ROOT = Path(__file__).resolve().parent.parent
SECRET = "cluster-test-secret-key-not-for-production"
READY_DEADLINE = 90.0  # seconds (times SLOW): a node imports aiortc, vosk, flask on a busy box
STOP_DEADLINE = 20.0

# Settings every node of a test cluster gets (each may be overridden per cluster).
NODE_SETTINGS: dict[str, Any] = {
    "ice_loopback": 1,
    "caption_warm": 0,  # no speech models: these tests are about the line, not captions
    "log_level": "INFO",
    "ring_timeout_seconds": 15,
    "overflow_seconds": 10**7,  # each test keeps to its own dialect's line
    "rejoin_seconds": 600,
    # Every simulated person comes from 127.0.0.1: per-address limits would count them as one.
    "ws_callers_per_address": 1_000_000,
    "ws_calls_per_address_minute": 1_000_000,
    "tts_renders_per_address_minute": 1_000_000,
    "http_connections_per_address": 1_000,
}

_live: set[subprocess.Popen[bytes]] = set()  # every node process not yet reaped


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the node and anything it started (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(STOP_DEADLINE)
    _live.discard(proc)


@atexit.register
def _reap_all() -> None:
    """Last resort: a test process that dies without cleaning up leaks no node."""
    for proc in list(_live):
        _kill_group(proc)


class NodeFailed(RuntimeError):
    """A node exited or did not become ready; the message carries its log."""


class Node:
    """One `hotline serve` process: fixed ports and data dir across restarts."""

    def __init__(self, name: str, root: Path, env: dict[str, str]) -> None:
        self.name = name
        self.dir = root / f"node-{name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.http_port, self.ws_port = free_port(), free_port()
        self.env = {
            **env,
            "HOTLINE_NODE_ID": name,
            "HOTLINE_DATA_DIR": str(self.dir / "data"),
            "HOTLINE_HTTP_PORT": str(self.http_port),
            "HOTLINE_WS_PORT": str(self.ws_port),
        }
        self.out = self.dir / "stdout.log"
        self.err = self.dir / "stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the process (returns at once; `wait_ready` polls /readyz)."""
        assert not self.alive, f"node {self.name} is already running"
        self.starts += 1
        banner = f"\n===== start {self.starts} of node {self.name} =====\n".encode()
        with open(self.out, "ab") as out, open(self.err, "ab") as err:
            out.write(banner)
            err.write(banner)
            out.flush()
            err.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hotline", "serve"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group: killed whole, never leaked
            )
        _live.add(self.proc)

    def readyz(self) -> tuple[int, dict[str, Any]]:
        """(status, body) of GET /readyz; (0, {}) when nothing answers."""
        try:
            with urllib.request.urlopen(self.http + "/readyz", timeout=10 * SLOW) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read())
            except ValueError:
                return exc.code, {}
        except (OSError, ValueError):
            return 0, {}

    def wait_ready(self, timeout: float = READY_DEADLINE) -> None:
        """Poll /readyz until 200; fail with the node's log if it exits or the deadline passes."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            if not self.alive:
                code = self.proc.returncode if self.proc else None
                raise NodeFailed(f"node {self.name} exited (code {code})\n{self.tail()}")
            status, body = self.readyz()
            if status == 200:
                return
            if time.monotonic() > deadline:
                raise NodeFailed(
                    f"node {self.name} not ready after {timeout * SLOW:.0f} s"
                    f" (/readyz {status} {body})\n{self.tail()}"
                )
            time.sleep(0.1)

    def kill(self) -> None:
        """kill -9: no clean-up, no goodbye to its sockets (they are reset by the kernel)."""
        if self.proc is not None:
            _kill_group(self.proc)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL after a deadline."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STOP_DEADLINE * SLOW)
        _kill_group(self.proc)  # its children too, and a node that ignored SIGTERM

    def tail(self, chars: int = 3000) -> str:
        """The end of the node's stderr and stdout (for failure messages)."""
        parts = []
        for path in (self.err, self.out):
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- node {self.name} {path.name} (last {chars} chars) ---\n")
            parts.append(text[-chars:])
        return "\n".join(parts)

    def log_lines(self, pattern: str) -> list[str]:
        """Lines of the node's logs that match `pattern` (a regular expression)."""
        found = []
        for path in (self.err, self.out):
            if path.exists():
                found += [ln for ln in path.read_text(errors="replace").splitlines()
                          if re.search(pattern, ln)]  # fmt: skip
        return found


class Cluster:
    """PostgreSQL (a fresh database) + its own Redis + named `hotline serve` nodes."""

    def __init__(
        self,
        names: Iterable[str] = ("a", "b", "c"),
        *,
        pg: PostgresServer | None = None,
        settings: dict[str, Any] | None = None,
        secret: str = SECRET,
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hotline-cluster-"))
        self.pg = pg
        self.redis = RedisServer()
        self.database_url = ""
        self.secret = secret
        self.settings = {**NODE_SETTINGS, **(settings or {})}
        self.names = list(names)
        self.nodes: dict[str, Node] = {}
        self._db: Database | None = None
        self.killed: set[str] = set()  # nodes killed with `kill` (tests tell them from crashes)

    # ------------------------------------------------------------------ life
    def start(self) -> Cluster:
        """Start everything and wait until every node answers /readyz 200."""
        try:
            if self.pg is None:
                self.pg = shared_postgres()
            self.database_url = self.pg.create_database()
            self.db.migrate()  # (each node migrates too, under an advisory lock)
            self.redis.start()
            for name in self.names:
                self.add_node(name, wait=False)
            for name in self.names:
                self.nodes[name].wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every node (then kill what is left), Redis, and drop the database."""
        for node in self.nodes.values():  # all at once: a clean stop may take a while
            if node.alive:
                with contextlib.suppress(Exception):
                    node.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                node.stop()
        with contextlib.suppress(Exception):
            self.redis.stop()
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None
        if self.pg is not None and self.database_url:
            with contextlib.suppress(Exception):
                self.pg.drop_database(self.database_url)
        if os.environ.get("HOTLINE_KEEP_CLUSTER_LOGS"):
            print(f"cluster logs kept in {self.root}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """The environment every node shares (the parent's HOTLINE_* settings left out)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        return {
            **base,
            "HOTLINE_DATABASE_URL": self.database_url,
            "HOTLINE_REDIS_URL": self.redis.url(),
            "HOTLINE_SECRET_KEY": self.secret,
            **{f"HOTLINE_{k.upper()}": str(v) for k, v in self.settings.items()},
        }

    def add_node(self, name: str, *, wait: bool = True) -> Node:
        """Start one more node on the same database and Redis."""
        assert name not in self.nodes, f"node {name} exists"
        node = Node(name, self.root, self.env())
        self.nodes[name] = node
        node.start()
        if wait:
            node.wait_ready()
        return node

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def kill(self, name: str) -> Node:
        """kill -9 of one node."""
        node = self.nodes[name]
        node.kill()
        self.killed.add(name)
        return node

    def restart(self, name: str) -> Node:
        """Start a (killed or stopped) node again on its ports and data dir; wait until ready."""
        node = self.nodes[name]
        if node.alive:
            node.stop()
        node.start()
        node.wait_ready()
        return node

    def stop_redis(self) -> None:
        """Kill redis-server (it keeps nothing: persistence is off)."""
        self.redis.stop()

    def start_redis(self) -> None:
        """Start redis-server again on the same port."""
        self.redis.start()

    def holder(self) -> str | None:
        """The running node that holds the line's lock (it runs the switchboard), or None.

        Asked of PostgreSQL, whatever the nodes' log level: the backend holding the advisory
        lock, its client's TCP port, and the node process that owns a socket on that port."""
        import psycopg

        from hotline.cluster.holder import LINE_LOCK

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
                " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
                (LINE_LOCK,),
            ).fetchone()
        if row is None or row[0] is None:
            return None
        inodes = _socket_inodes_on_port(int(row[0]))
        for node in self.nodes.values():
            if node.alive and inodes & _socket_inodes_of(node.pid):
                return node.name
        return None

    def wait_holder(self, timeout: float = READY_DEADLINE) -> str:
        """Poll until a running node holds the line; its name."""
        deadline = time.monotonic() + timeout * SLOW
        while (name := self.holder()) is None:
            if time.monotonic() > deadline:
                raise NodeFailed(
                    f"no node holds the line after {timeout * SLOW:.0f} s\n{self.logs()}"
                )
            time.sleep(0.1)
        return name

    def check_alive(self) -> None:
        """Fail with its log when a node that should be running has exited."""
        for node in self.nodes.values():
            if node.proc is not None and node.proc.returncode is None and not node.alive:
                raise NodeFailed(f"node {node.name} exited\n{node.tail()}")

    def logs(self, chars: int = 3000) -> str:
        return "\n".join(node.tail(chars) for node in self.nodes.values())

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """asyncio.run(coro); a failure carries every node's log (shown by pytest)."""
        try:
            return asyncio.run(coro)
        except BaseException as exc:
            exc.add_note(self.logs())
            raise

    # ------------------------------------------------------------------ seeding
    @property
    def db(self) -> Database:
        """The shared store, opened from this (test) process."""
        if self._db is None:
            self._db = open_database(self.database_url)
        return self._db

    def add_agent(
        self, username: str, password: str, dialects: Iterable[str] = ("cmn",), **kw: Any
    ) -> int:
        """Create an agent in the shared store; returns the id."""
        from hotline.db import agents as agents_db

        return agents_db.add(
            self.db, username, password, list(dialects), display_name=username, **kw
        ).id

    def add_elder(self, name: str, dialect: str = "cmn", phone: str = "") -> str:
        """Create an elder with a one-tap link; returns the link token."""
        from hotline.db import elders as elders_db

        elder = elders_db.add(self.db, name, phone=phone, dialect=dialect, lang="zh_CN")
        return elders_db.new_link(self.db, elder.id).token

    def cli(self, *args: str) -> str:
        """`python -m hotline ARGS` against the shared store (as an operator would); stdout."""
        env = {**self.env(), "HOTLINE_DATA_DIR": str(self.root / "cli")}
        done = subprocess.run(
            [sys.executable, "-m", "hotline", *args], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=120 * SLOW,
        )  # fmt: skip
        assert done.returncode == 0, f"hotline {' '.join(args)}: {done.stderr[-2000:]}"
        return done.stdout


def _socket_inodes_on_port(port: int) -> set[str]:
    """Inodes of the TCP sockets whose local port is `port` (this network namespace)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in list(f)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    found.add(fields[9])
    return found


def _socket_inodes_of(pid: int) -> set[str]:
    """Inodes of the sockets a process has open."""
    found = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    found.add(target[8:-1])
    return found


# ---------------------------------------------------------------------- people
class Page(Client):
    """A tests.support.Client whose `expect` fails naming what it waited for and the last
    messages it did receive (a bare TimeoutError says nothing across three nodes)."""

    async def expect(self, kind: str, timeout: float = 10, **fields: Any) -> dict[str, Any]:
        try:
            return await super().expect(kind, timeout, **fields)
        except TimeoutError:
            recent = [{k: v for k, v in m.items() if k not in ("say", "ice_servers")}
                      for m in self.seen[-6:] if m.get("type") != "tap_level"]  # fmt: skip
            raise AssertionError(
                f"no {kind!r} {fields or ''} within {timeout * SLOW:.0f} s; last received: {recent}"
            ) from None


def sign_in(node: Node, username: str, password: str) -> Any:
    """An agent's browser signed in over HTTP on `node` (a tests.web_client.WebClient)."""
    from tests.web_client import WebClient

    web = WebClient(node.http)
    r = web.login(username, password)
    assert r.status_code == 303, f"sign-in of {username} on node {node.name}: {r.status_code}"
    return web


def ws_ticket(web: Any, node: Node | None = None) -> str:
    """A websocket ticket from /api/ws-token, asked of `node` (default: where it signed in)."""
    base = node.http if node is not None else web.base
    r = web.s.get(base + "/api/ws-token", timeout=30 * SLOW)
    assert r.status_code == 200, f"/api/ws-token on {base}: {r.status_code} {r.text[:200]}"
    return str(r.json()["token"])


async def open_agent(node: Node, web: Any, *, available: bool = False) -> Client:
    """The agent's console socket on `node` (ticket asked of that node), after `hello`."""
    ticket = await asyncio.to_thread(ws_ticket, web, node)
    agent = await Page.open(f"{node.ws}?role=agent&token={ticket}")
    await agent.expect("hello", timeout=30)
    if available:
        await agent.send({"type": "status", "status": "available"})
        await agent.expect("status", timeout=30, status="available")
    return agent


async def open_caller(node: Node, *, link: str = "", rejoin: str = "") -> tuple[Client, dict]:
    """A caller's page on `node`: (socket, its `hello`)."""
    query = (
        "role=caller" + (f"&link={link}" if link else "") + (f"&rejoin={rejoin}" if rejoin else "")
    )
    caller = await Page.open(f"{node.ws}?{query}")
    hello = await caller.expect("hello", timeout=30)
    return caller, hello


async def tap(caller: Client, dialect: str | None = None) -> dict[str, Any]:
    """The caller's tap: `call`; returns `queued` (call_id, rejoin secret)."""
    await caller.send({"type": "call", **({"dialect": dialect} if dialect else {})})
    return await caller.expect("queued", timeout=30)


def last(client: Client, kind: str, **fields: Any) -> dict[str, Any] | None:
    """The latest message of `kind` (with `fields`) the client has received, if any."""
    for msg in reversed(client.seen):
        if msg.get("type") == kind and all(msg.get(k) == v for k, v in fields.items()):
            return msg
    return None


def position(client: Client, call_id: str | None = None) -> int | None:
    """The caller's place as last pushed (`queue.position`), or None before the first push."""
    msg = last(client, "queue")
    if msg is None or (call_id is not None and msg.get("call_id", call_id) != call_id):
        return None
    return int(msg["position"])


async def close_all(clients: Iterable[Client]) -> None:
    for c in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(c.close(), 10)
