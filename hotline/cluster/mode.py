"""Cluster mode for one node: the bus, the line's lock, and the socket relay, wired together.

Switched on by `HOTLINE_DATABASE_URL` (PostgreSQL) together with `HOTLINE_REDIS_URL`. Every
node serves pages and terminates websockets; the one holding the line's lock runs the
switchboard (docs/cluster.md).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from hotline.cluster.bus import make_bus
from hotline.cluster.holder import LineLock
from hotline.cluster.media import ClusterGateway
from hotline.cluster.relay import Back, Front, Outbox
from hotline.config import Config

log = logging.getLogger(__name__)


class ClusterMode:
    """One node's part in a cluster."""

    def __init__(
        self, cfg: Config, services: Any, switchboard: Any, live: Any, taps: ClusterGateway
    ) -> None:
        # The name, plus this process's incarnation: a node restarted under the same name
        # (or fenced and started afresh, same pid) must not be taken for its previous self,
        # whose sockets' sessions the holder is still ending.
        name = cfg.node_id or f"{socket.gethostname()}-{os.getpid()}"
        self.node = f"{name}.{secrets.token_hex(3)}"
        self.bus = make_bus(cfg.redis_url, self.node, cfg.database_url)
        self.lock = LineLock(cfg.database_url)
        self.back = Back(live, self.node, Outbox(self.bus))
        self.front = Front(self.node, self.bus, self.back)
        live.front = self.front
        taps.bind(self.front)  # taps are answered by the node holding the browser's socket
        self.taps = taps
        # What HTTP handlers on any node ask of the live side, answered by the holder.
        self.back.calls.update(
            snapshot=services._snapshot,
            kick=switchboard.kick,
            family_join=services._family_join,
            close_sockets=live.close_account,
        )
        services._snapshot = self._snapshot
        services._family_join = lambda elder_id: self.front.ask("family_join", elder_id)
        services._kick = lambda agent_id: self.front.tell("kick", agent_id)
        services._close_sockets = lambda *args: self.front.tell("close_sockets", *args)

    async def _snapshot(self) -> dict[str, Any]:
        """The holder's live snapshot, with this node's own gateway legs (so each node's
        /metrics shows the taps it decodes: the spread of the work)."""
        snap = await self.front.ask("snapshot")
        return {**snap, "gateway_legs": self.taps.open_legs}

    async def start(self) -> None:
        await self.bus.start()
        await self.front.start()
        log.info("cluster node %s: waiting for the line or serving as a front", self.node)

    async def contend(self, prepare: Callable[[], Awaitable[None]]) -> None:
        """Wait for the line's lock in the background; once ours, `prepare` restores the
        switchboard, then every node is told."""

        async def became_holder() -> None:
            await prepare()
            await self.front.became_holder(self.lock.epoch)
            log.info("cluster node %s holds the line", self.node)

        await self.lock.acquire(became_holder)

    async def close(self) -> None:
        await self.lock.close()
        await self.front.close()
        await self.bus.close()
