"""Which node holds the line: a PostgreSQL session advisory lock, nothing home-made.

One node of a cluster runs the switchboard (the line, agents' states, calls in flight); the
others hand it their sockets (hotline/cluster/relay.py). Every node waits for the lock on a
connection of its own; PostgreSQL releases it the moment the holder's connection goes (a
crash, kill -9, a lost network), and the next node to ask gets it. A holder that loses its
lock connection cannot know whether another node took over, so it stops at once (fencing):
the process exits and its supervisor (systemd, the Procfile runner) starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable

from hotline.db.postgres import SINGLE_NODE_LOCK

log = logging.getLogger(__name__)

# The same key as the single-node guard (hotline/db/postgres.py): a node on PostgreSQL without
# Redis holds it too, so it never runs beside a cluster on the same database.
LINE_LOCK = SINGLE_NODE_LOCK
FENCED_EXIT = 3  # exit status of a holder that lost its lock


class LineLock:
    """Wait for the line's lock, then keep checking the connection that holds it."""

    def __init__(
        self,
        url: str,
        *,
        retry_every: float = 0.25,
        check_every: float = 1.0,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.retry_every = retry_every
        self.check_every = check_every
        self.on_lost = on_lost or _fence
        self.held = False
        self.epoch = 0
        self._conn: object | None = None
        self._task: asyncio.Task[None] | None = None

    async def acquire(self, became_holder: Callable[[], Awaitable[None]]) -> None:
        """Start waiting in the background; `became_holder` runs once the lock is ours."""
        self._task = asyncio.get_running_loop().create_task(self._run(became_holder))

    async def _run(self, became_holder: Callable[[], Awaitable[None]]) -> None:
        import psycopg

        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=5
                )
            except Exception as exc:
                log.warning("line lock: cannot reach PostgreSQL (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            try:
                while True:
                    cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (LINE_LOCK,))
                    row = await cur.fetchone()
                    if row and row[0]:
                        break
                    await asyncio.sleep(self.retry_every)
            except Exception as exc:
                log.warning("line lock: connection lost while waiting (%s)", exc)
                with contextlib.suppress(Exception):
                    await conn.close()
                continue
            # A number that only grows, cluster-wide: which holder is the newer one, when a
            # dead holder's last heartbeat has not expired yet.
            cur = await conn.execute("SELECT txid_current()")
            row = await cur.fetchone()
            self.epoch = int(row[0]) if row else 0
            self._conn, self.held = conn, True
            log.info("line lock: this node now holds the line (epoch %d)", self.epoch)
            await became_holder()
            await self._watch(conn)
            return

    async def _watch(self, conn: object) -> None:
        """While we hold the lock: a failed check means it may be gone; fence ourselves."""
        while True:
            await asyncio.sleep(self.check_every)
            try:
                await asyncio.wait_for(conn.execute("SELECT 1"), 5)  # type: ignore[attr-defined]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.critical("line lock: lost the lock's connection (%s); stopping", exc)
                self.held = False
                self.on_lost()
                return

    async def close(self) -> None:
        """Let go of the lock (a graceful stop: the next node takes the line at once)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()  # type: ignore[attr-defined]
        self.held = False


def _fence() -> None:
    """Another node may hold the line now: two switchboards must never run, so stop here.

    `hotline serve` starts itself afresh (same process id, same settings): it comes back as a
    front and waits for the lock like any other node. Anything else exits (status 3)."""
    logging.shutdown()
    if sys.argv[1:2] == ["serve"]:
        with contextlib.suppress(OSError):
            os.execv(sys.executable, [sys.executable, "-m", "hotline", *sys.argv[1:]])
    os._exit(FENCED_EXIT)
