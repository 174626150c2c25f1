"""Throw-away PostgreSQL and Redis servers on loopback ports for the cluster-mode tests.

Both are the real Debian servers (installed by scripts/bootstrap.sh). When one is missing the
tests fail loudly: cluster mode must never be silently untested.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import TypeVar

PG_BIN = Path(os.environ.get("HOTLINE_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = os.environ.get("HOTLINE_REDIS_SERVER", "redis-server")
START_DEADLINE = 60.0  # generous: the shared machine may be loaded; we poll, never sleep blindly


class EngineMissing(RuntimeError):
    """A server binary the cluster tests need is not installed."""


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc_alive, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if not proc_alive():
            detail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited while starting\n{detail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} in {START_DEADLINE}s")


class PostgresServer:
    """A PostgreSQL cluster made with initdb in a temp dir, listening on a loopback port."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
            raise EngineMissing(
                f"PostgreSQL binaries not found in {PG_BIN}: run scripts/bootstrap.sh as root"
                " (it installs Debian postgresql)"
            )
        self.port = 0
        self.root = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log = self.root / "server.log"
        self.user = "hotline"
        # PostgreSQL refuses to run as root: run its binaries as the Debian postgres user.
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
            self.sockets.mkdir()
            for path in (self.root, self.sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        else:
            self.sockets.mkdir()

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        """initdb (first time) and start the server; returns once it accepts connections."""
        if not self.data.exists():
            self._run(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.user,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
        self.port = self.port or free_port()
        # fsync off: only an OS crash could lose data, and these servers live for one test
        # run. synchronous_commit stays on: tests kill the server (`stop("immediate")`) and
        # every acknowledged commit must survive that, as in production.
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c full_page_writes=off"
            " -c shared_buffers=16MB -c max_connections=200"
        )
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
            "-o", options, "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`immediate` is a crash as far as clients can tell)."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop and start on the same port (clients see their connections drop)."""
        self.stop("fast")
        self.start()

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


_shared: PostgresServer | None = None


def shared_postgres() -> PostgresServer:
    """One PostgreSQL for the whole test process, started on first use, removed at exit."""
    global _shared
    if _shared is None:
        import atexit

        pg = PostgresServer()
        atexit.register(pg.destroy)
        pg.start()
        _shared = pg
    return _shared


def test_engine_url() -> str | None:
    """A fresh PostgreSQL database when HOTLINE_TEST_ENGINE=postgresql (else None: SQLite).

    With it, every test that builds its server from tests.support.test_config runs on
    PostgreSQL: `HOTLINE_TEST_ENGINE=postgresql bash scripts/test.sh tests/test_call_ws.py`.
    """
    if os.environ.get("HOTLINE_TEST_ENGINE", "sqlite") != "postgresql":
        return None
    return shared_postgres().create_database()


test_engine_url.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


class RedisServer:
    """A redis-server on a loopback port with persistence off."""

    def __init__(self) -> None:
        if shutil.which(REDIS_SERVER) is None:
            raise EngineMissing(
                f"{REDIS_SERVER} not found: run scripts/bootstrap.sh as root"
                " (it installs Debian redis-server)"
            )
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start (or start again on the same port) and wait until it listens."""
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        proc = self.proc
        _wait_port(self.port, lambda: proc.poll() is None, "redis-server")

    def stop(self) -> None:
        """Kill the server (everything in it is gone: it has no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


T = TypeVar("T")


def present(value: T | None) -> T:
    """`value`, asserted not None (what a test expects to exist)."""
    assert value is not None
    return value
