"""The HTTP listener: waitress, with two guards it lacks against one client taking every slot.

waitress closes a connection only after `channel_timeout` seconds *without a byte*, so a
client that drips one byte every few seconds keeps a half-sent request open for ever, and
its `connection_limit` is global, so one address can hold all of them (then nobody else is
accepted). This server adds:

- a per-address cap, checked at accept: an address holding `per_address` connections first
  loses its oldest idle one (a browser's keep-alive, or a socket that never sent a byte, is
  cheap to reopen), and only when all of them are busy receiving or answering a request is the
  new one closed at once. So a call centre or care home behind one NAT address, whose
  browsers keep idle connections open, is never locked out, while one address still cannot
  hold more than `per_address` slots (the trusted proxy is exempt: it speaks for everyone);
- a request deadline: a request not fully received `request_seconds` after its first byte
  is dropped, however slowly it keeps dripping.

Both run in waitress's own accept and maintenance hooks (its event-loop thread).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer

from hotline.config import Config

log = logging.getLogger(__name__)

REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
    b"Retry-After: 5\r\n\r\n"
)


class DeadlineChannel(HTTPChannel):
    """A waitress channel that remembers when the request being received began."""

    request_started: float | None = None

    def received(self, data: bytes) -> bool:
        if data and self.request is None:
            self.request_started = time.time()
        done = super().received(data)
        if self.request is None:
            self.request_started = None
        return done


class GuardedServer(TcpWSGIServer):
    """waitress's TCP server with a per-address connection cap and a request deadline."""

    channel_class = DeadlineChannel

    def __init__(
        self, app: Any, *, per_address: int, request_seconds: float, exempt: str, **kw: Any
    ) -> None:
        self.per_address = per_address
        self.request_seconds = request_seconds
        self.exempt = exempt
        self.refused = 0
        super().__init__(app, **kw)

    def handle_accept(self) -> None:
        try:
            accepted = self.accept()
        except OSError:
            return
        if accepted is None:
            return
        conn, addr = accepted
        host = addr[0] if isinstance(addr, tuple) else str(addr)
        if host != self.exempt and not self._room_for(host):
            self.refused += 1
            if self.refused % 100 == 1:
                log.warning("http: %s holds %d connections; refusing more", host, self.per_address)
            try:
                conn.setblocking(False)
                conn.send(REFUSED)
            except OSError:
                pass
            conn.close()
            return
        try:
            self.set_socket_options(conn)
        except OSError:
            conn.close()
            return
        self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)

    def _room_for(self, host: str) -> bool:
        """Whether `host` may open one more connection, closing its oldest idle one if needed."""
        held = [
            ch
            for ch in list(self.active_channels.values())
            if isinstance(ch.addr, tuple) and ch.addr[0] == host
        ]
        if len(held) < self.per_address:
            return True
        idle = [ch for ch in held if _idle(ch)]
        if not idle:
            return False
        min(idle, key=lambda ch: ch.last_activity).handle_close()
        return True

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        cutoff = now - self.request_seconds
        for channel in list(self.active_channels.values()):
            started = getattr(channel, "request_started", None)
            if channel.request is not None and started is not None and started < cutoff:
                channel.will_close = True


def _idle(channel: Any) -> bool:
    """A connection neither receiving a request, nor holding one, nor sending an answer."""
    return (
        channel.request is None
        and not channel.requests
        and not channel.total_outbufs_len
        and not channel.will_close
    )


def build(app: Any, cfg: Config, *, host: str, port: int) -> GuardedServer:
    """The HTTP server for `app` with every limit from the config (see docs/reliability.md)."""
    proxy: dict[str, Any] = {}
    if cfg.trusted_proxy:
        proxy = dict(
            trusted_proxy=cfg.trusted_proxy,
            trusted_proxy_count=1,
            trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"},
            clear_untrusted_proxy_headers=True,
        )
    return GuardedServer(
        app,
        per_address=cfg.http_connections_per_address,
        request_seconds=cfg.http_request_seconds,
        exempt=cfg.trusted_proxy,
        host=host,
        port=port,
        threads=8,
        ident=None,
        # poll(), not select(): during a surge the websocket side holds thousands of sockets,
        # and select() cannot watch a descriptor above 1024 (the pages stopped loading).
        asyncore_use_poll=True,
        connection_limit=cfg.http_connection_limit,
        channel_timeout=cfg.http_channel_timeout,
        cleanup_interval=cfg.http_cleanup_interval,
        max_request_body_size=cfg.http_max_body_bytes,
        **proxy,
    )
