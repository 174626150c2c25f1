"""Shared bench helpers: a real hotline server in a subprocess, measured from /proc apart from
the load generator, plus seeding, tiny websocket clients and percentiles."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

SECRET = "bench-secret-key-not-for-production"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit (children inherit it); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def seed_agents(data_dir: Path, count: int, dialects: list[str]) -> list[int]:
    """Create `count` agents in the server's SQLite file (before it starts); returns ids."""
    from hotline.db import Database
    from hotline.db import agents as agents_db

    db = Database(data_dir / "hotline.sqlite3")
    db.migrate()
    ids = [
        agents_db.add(db, f"bench{i}", f"pw-{i}", dialects, display_name=f"Bench {i}").id
        for i in range(count)
    ]
    bench_sessions(db, ids)
    db.close()
    return ids


def bench_sessions(db: Any, ids: list[int]) -> None:
    """Sign the bench's agents in (a websocket ticket names a live session)."""
    from hotline.db import sessions as sessions_db

    for agent_id in ids:
        sessions_db.create(db, agent_id, sid=f"bench-session-{agent_id}")


def agent_token(agent_id: int) -> str:
    """A single-use websocket ticket for a bench agent (signed in by bench_sessions)."""
    import secrets

    from hotline.tokens import Signer, digest

    return Signer(SECRET).dumps(
        "ws",
        {"agent": agent_id, "s": digest(f"bench-session-{agent_id}"), "n": secrets.token_hex(8)},
    )


class ServerProcess:
    """`python -m hotline serve` on free ports with its own data dir."""

    def __init__(self, data_dir: Path | None = None, **settings: Any) -> None:
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="hotline-bench-")
        self.data_dir = Path(data_dir or self._tmp.name)  # type: ignore[union-attr]
        self.http_port, self.ws_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "HOTLINE_DATA_DIR": str(self.data_dir),
            "HOTLINE_HTTP_PORT": str(self.http_port),
            "HOTLINE_WS_PORT": str(self.ws_port),
            "HOTLINE_ICE_LOOPBACK": "1",
            "HOTLINE_SECRET_KEY": SECRET,
            "HOTLINE_LOG_LEVEL": "WARNING",
            # A bench's many simulated people all connect from 127.0.0.1: per-address limits
            # off unless the bench sets them (surge does, giving each caller an address).
            "HOTLINE_WS_CALLERS_PER_ADDRESS": "1000000",
            "HOTLINE_WS_CALLS_PER_ADDRESS_MINUTE": "1000000",
            "HOTLINE_TTS_RENDERS_PER_ADDRESS_MINUTE": "1000000",
            **{f"HOTLINE_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.data_dir / "server.log"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws"

    def start(self, timeout: float = 60.0) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hotline", "serve"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.ws_port}/healthz", timeout=1
                ) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in time")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process (all its threads) so far."""
        assert self.proc is not None
        return process_cpu_seconds(self.proc.pid)

    def rss_mb(self) -> float:
        assert self.proc is not None
        return process_rss_mb(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._tmp is not None:
            self._tmp.cleanup()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def process_rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def own_cpu_seconds() -> float:
    """CPU used by this load generator (and its finished children)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Peer:
    """A websocket client that dispatches messages to waiters by type."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.errors: list[dict[str, Any]] = []
        self.kinds: list[str] = []  # every message type received, in order (for diagnostics)
        self._task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, url: str, headers: dict[str, str] | None = None) -> Peer:
        return cls(
            await connect(
                url,
                compression=None,
                max_size=2**22,
                open_timeout=30,
                additional_headers=headers,
            )
        )

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                msg = json.loads(raw)
                self.kinds.append(str(msg.get("type")))
                if msg.get("type") == "error":
                    self.errors.append(msg)
                self.inbox.put_nowait(msg)

    async def send(self, msg: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(msg))

    async def expect(self, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while True:
                msg = await self.inbox.get()
                if msg.get("type") == kind:
                    return msg
                if msg.get("type") == "error":
                    raise RuntimeError(f"server error while waiting for {kind}: {msg}")

        return await asyncio.wait_for(wait(), timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        self._task.cancel()


def caller_address(rng: random.Random) -> str:
    """A simulated caller's own address, from the benchmarking range 198.18.0.0/15."""
    return f"198.{18 + rng.getrandbits(1)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}"


class RawSocket(asyncio.Protocol):
    """A minimal websocket client (RFC 6455) as one asyncio Protocol: no task, no buffers or
    keepalive per connection, so two helper processes can hold 5,000 callers and still read
    every update the moment it lands (a full client library per caller made the load
    generator, not the server, the bottleneck on 2 cores). Frames the server sends are
    parsed by hand; text frames are timestamped on arrival and queued as JSON."""

    def __init__(self, path: str, host: str, forwarded: str = "") -> None:
        self.path = path
        self.host = host
        self.forwarded = forwarded
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.open = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inbox: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()
        self.mask = random.randbytes(4)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(random.randbytes(16)).decode()
        transport.write(  # type: ignore[attr-defined]
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"X-Forwarded-For: {self.forwarded or '127.0.0.1'}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        t = time.perf_counter()
        self.buf += data
        if not self.open:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(head[:80].decode(errors="replace")))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.open = True
            self.opened.set_result(None)
            self.buf = rest
        while len(self.buf) >= 2:
            opcode, n, offset = self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n, offset = int.from_bytes(self.buf[2:4], "big"), 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n, offset = int.from_bytes(self.buf[2:10], "big"), 10
            if len(self.buf) < offset + n:
                return
            payload, self.buf = self.buf[offset : offset + n], self.buf[offset + n :]
            if opcode == 1:
                self.inbox.put_nowait((t, json.loads(payload)))
            elif opcode == 9:
                self._frame(0xA, payload)
            elif opcode == 8:
                self.inbox.put_nowait((t, None))
                self.transport.close()  # type: ignore[union-attr]
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before the handshake"))
        self.inbox.put_nowait((time.perf_counter(), None))

    def _frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        head = bytes([0x80 | opcode]) + (
            bytes([0x80 | n])
            if n < 126
            else bytes([0x80 | 126]) + n.to_bytes(2, "big")
            if n < 65536
            else bytes([0x80 | 127]) + n.to_bytes(8, "big")
        )
        key = int.from_bytes((self.mask * (n // 4 + 1))[:n], "big")
        body = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big") if n else b""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head + self.mask + body)

    def send(self, text: str) -> None:
        self._frame(0x1, text.encode())

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._frame(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()
