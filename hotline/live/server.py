"""The websocket listener: authenticates each connection, validates every message, and
hands it to the switchboard (or to a domain that registered a route).

Connections:
  /ws?role=caller&link=TOKEN[&rejoin=SECRET]   a senior's page (the link is the credential)
  /ws?role=caller                              the generic /call page (no elder record)
  /ws?role=agent&token=SIGNED                  an agent console (token from /api/ws-token)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from hotline.addresses import client_address
from hotline.config import Config
from hotline.db import agents as agents_db
from hotline.db import sessions as sessions_db
from hotline.db.agents import Agent
from hotline.errors import BadMessage, Forbidden, HotlineError, TooMany, Unauthorized
from hotline.i18n import LANGS
from hotline.limits import Gauge, WindowCounter
from hotline.live import messages
from hotline.live.hub import Conn
from hotline.live.switchboard import Switchboard
from hotline.tokens import Signer

log = logging.getLogger(__name__)

HANDSHAKE_DONE = Request("/ws", Headers())
# What only a node of the cluster may add to a session's query (hotline/cluster/relay.py),
# never a client: who a session moved to this node by a failover was; `moved`: the same
# socket, its session moved to a new holder of the line.
RESUME_KEYS = ("resume_agent", "resume_session", "resume_status", "resume_call", "moved")
MAX_FRAME = 1024 * 1024  # frames over 64 KiB get a typed error; over this, the socket closes


@dataclass(slots=True)
class Context:
    """Who sent a message: their connection, role and (for agents) id."""

    conn: Conn
    role: str
    agent_id: int | None = None
    supervisor: bool = False
    account: int | None = None  # the account whose sockets this one is counted among
    address: str = "?"  # the client's address (behind the trusted proxy: the one it saw)
    counted: bool = False  # counted among its address's anonymous callers


class LeanConnection(ServerConnection):
    """websockets' server connection without its two empty deques (624 bytes each).

    A waiting caller never has a writer waiting to drain (our sends never await) and has at
    most a frame or two queued, so a list serves both; with thousands waiting this is 6 MB.
    Only done where the installed websockets has exactly the structures this relies on.
    """

    client_ip = ""  # the client's address (behind the trusted proxy: the one it saw)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if type(getattr(self, "drain_waiters", None)) is collections.deque:
            self.drain_waiters = []  # type: ignore[assignment]  # append/remove/iterate

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # makes the frame queue
        frames = getattr(getattr(self, "recv_messages", None), "frames", None)
        if type(getattr(frames, "queue", None)) is collections.deque:
            frames.queue = _FrameList()  # type: ignore[union-attr]


class _FrameList(list):  # type: ignore[type-arg]
    """The deque operations websockets' frame queue uses, on a list (short queues)."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)

    def extendleft(self, items: Any) -> None:
        for item in items:
            self.insert(0, item)


Handler = Callable[[Context, dict[str, Any]], Awaitable[None] | None]
# A role added by a domain (e.g. "family"): opens a connection (False: rejected and closed)
# and cleans up after it.
Opener = Callable[[Context, dict[str, list[str]]], Awaitable[bool]]
Closer = Callable[[Context], Awaitable[None]]


async def reject(conn: Conn, exc: HotlineError) -> None:
    """Refuse a session: the typed error, then the socket closed with a 4xxx code."""
    conn.send(exc.to_message())
    await conn.flush_and_close(code=4000 + min(exc.status, 999), reason=exc.code)


class LiveServer:
    """The websocket server and its message routes."""

    def __init__(
        self, cfg: Config, switchboard: Switchboard, signer: Signer, dialects: set[str]
    ) -> None:
        self.cfg = cfg
        self.dialects = dialects
        self.sb = switchboard
        self.signer = signer
        self.routes: dict[str, dict[str, tuple[messages.Spec, Handler]]] = {
            "caller": {},
            "agent": {},
            "supervisor": {},  # a wallboard: watches, never takes calls
        }
        self.conns: set[Conn] = set()
        self.openers: dict[str, tuple[Opener, Closer]] = {}
        self._server: Any = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self.errors = 0
        # Per-address limits for callers (docs/reliability.md, "Limits against abuse").
        self.anonymous_callers = Gauge()
        self.call_starts = WindowCounter(cfg.ws_calls_per_address_minute, 60.0)
        # Signed-in sockets by account, and each one's session, so that a disabled, demoted
        # or signed-out account loses every socket at once; tickets are single-use.
        self.accounts: dict[int, set[Conn]] = {}
        self.conn_sessions: dict[Conn, str] = {}
        self._used_tickets: dict[str, float] = {}
        # Cluster mode (hotline/cluster/relay.py): sockets are handed to the node holding
        # the line; None on a single node, where this server is both front and back.
        self.front: Any = None
        for kind, spec in messages.CALLER.items():
            self.route("caller", kind, spec, getattr(self, f"_caller_{kind}"))
        for kind, spec in messages.AGENT.items():
            self.route("agent", kind, spec, getattr(self, f"_agent_{kind}"))
        self.route("supervisor", "ping", {}, self._agent_ping)

    def add_role(self, role: str, opener: Opener, closer: Closer) -> None:
        """Accept connections of a role a domain defines (`/ws?role=...`)."""
        self.routes.setdefault(role, {})
        self.openers[role] = (opener, closer)

    def route(self, role: str, kind: str, spec: messages.Spec, handler: Handler) -> None:
        """Accept messages of `kind` from `role`, validated by `spec`, handled by `handler`."""
        self.routes[role][kind] = (spec, handler)

    # ----------------------------------------------------------------- lifecycle
    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (port 0 picks one)."""
        self._server = await serve(
            self._handle,
            host,
            port,
            create_connection=LeanConnection,
            process_request=self._process_request,
            compression=None,
            max_size=MAX_FRAME,
            max_queue=4,
            write_limit=2**14,
            ping_interval=None,  # one keepalive loop for all, not a task per connection
            server_header=None,
        )
        self._keepalive_task = asyncio.get_running_loop().create_task(self._keepalive())
        return self._server.sockets[0].getsockname()[1]

    async def _keepalive(self) -> None:
        """Ping every client every `keepalive_seconds`; drop one that has not answered the
        previous ping by then (a phone that lost its network leaves no FIN behind), or whose
        unsent data did not shrink over a whole interval (it stopped reading). One loop for
        thousands of waiting callers instead of websockets' task per connection."""
        while True:
            await asyncio.sleep(self.cfg.keepalive_seconds)
            for n, conn in enumerate(list(self.conns), start=1):
                ws = conn.ws
                if conn.closed or ws.protocol.state is not State.OPEN:
                    continue
                if conn.pong is not None and not conn.pong.done():
                    log.info("conn %s: no answer to the last ping, dropping it", conn.id)
                    conn.drop()
                    continue
                unsent = ws.transport.get_write_buffer_size() if ws.transport else 0
                if unsent:  # not pinged: the ping would wait behind the unsent data
                    if conn.unsent and unsent >= conn.unsent:
                        log.info("conn %s: nothing drained in a whole interval, dropping", conn.id)
                        conn.drop()
                    conn.unsent = unsent
                    continue
                conn.unsent = 0
                with contextlib.suppress(Exception):
                    conn.pong = await ws.ping()
                if n % 500 == 0:
                    await asyncio.sleep(0)

    async def close(self) -> None:
        """Deliver what is queued to every client, then close (1012: service restart)."""
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        await asyncio.gather(
            *(c.flush_and_close(1012, "restarting") for c in list(self.conns)),
            return_exceptions=True,
        )
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    # ----------------------------------------------------------------- handshake
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path in ("/healthz", "/ws/healthz"):
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        if url.path not in ("/ws", "/"):
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        if not self._origin_ok(request.headers):
            return connection.respond(http.HTTPStatus.FORBIDDEN, "origin not allowed\n")
        peer = connection.remote_address[0] if connection.remote_address else ""
        connection.client_ip = client_address(  # type: ignore[attr-defined]
            str(peer), request.headers.get("X-Forwarded-For"), self.cfg.trusted_proxy
        )
        query = parse_qs(url.query)
        role = query.get("role", [""])[0]
        if role not in ("caller", "agent", "supervisor") and role not in self.openers:
            return connection.respond(
                http.HTTPStatus.BAD_REQUEST, "role must be caller, agent or supervisor\n"
            )
        if role in ("agent", "supervisor"):
            try:
                self._agent_from_token(query.get("token", [""])[0])
            except HotlineError as exc:
                return connection.respond(http.HTTPStatus(exc.status), f"{exc.detail}\n")
        return None

    def _origin_ok(self, headers: Headers) -> bool:
        """A fixed allow-list: the configured origins, or else the public base URL's host
        and the localhost forms. Never "whatever the Host header says" (DNS rebinding)."""
        origin = headers.get("Origin")
        if origin is None:
            return True  # not a browser; authentication still applies
        if self.cfg.allowed_origins:
            return origin.rstrip("/").lower() in {
                o.rstrip("/").lower() for o in self.cfg.allowed_origins
            }
        allowed = {urlsplit(self.cfg.public_base_url).hostname, "localhost", "127.0.0.1", "::1"}
        try:
            return urlsplit(origin).hostname in allowed
        except ValueError:
            return False

    def _agent_from_token(self, token: str) -> int:
        return int(self._ticket(token)["agent"])

    def _ticket(self, token: str) -> dict[str, Any]:
        """A ticket's payload (signed, fresh, naming an agent, a session and a nonce)."""
        payload = self.signer.loads("ws", token, max_age=self.cfg.ws_token_seconds)
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("agent"), int)
            or not isinstance(payload.get("s"), str)
            or not isinstance(payload.get("n"), str)
        ):
            raise Unauthorized("bad token")
        return payload

    def _use_ticket(self, nonce: str) -> None:
        """Spend a ticket's nonce: a ticket opens one socket, once."""
        now = self.sb.clock()
        if len(self._used_tickets) > 10_000:
            self._used_tickets = {n: t for n, t in self._used_tickets.items() if t > now}
        if self._used_tickets.get(nonce, 0) > now:
            raise Unauthorized("this ticket was already used", code="ticket_used")
        self._used_tickets[nonce] = now + self.cfg.ws_token_seconds + 1

    def close_account(
        self, agent_id: int, code: str, session: str | None = None, keep: str | None = None
    ) -> int:
        """Close every socket of an account, or only those of one session, or all but those
        of the session `keep` (stored session hashes)."""
        closed = 0
        for conn in list(self.accounts.get(agent_id, ())):
            mine = self.conn_sessions.get(conn)
            if (session is None or mine == session) and (keep is None or mine != keep):
                conn.send({"type": "error", "code": code, "detail": "signed out"})
                conn.close(code=4003, reason=code)
                closed += 1
        return closed

    # ----------------------------------------------------------------- connection
    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        if request is None:  # checked before anything is registered: nothing to clean up
            await ws.close(1011, "no handshake request")
            return
        conn = Conn(ws)
        self.conns.add(conn)
        query = parse_qs(urlsplit(request.path).query)
        for moved in RESUME_KEYS:  # only a node of the cluster may say so (relay.py)
            query.pop(moved, None)
        # The handshake is done: keep a shared stub instead of its headers (2 KB less per
        # waiting caller; websockets only checks that a request was received). The request
        # parser's frame still holds the request itself, so empty its headers in place too.
        request.headers.clear()
        ws.request, ws.response = HANDSHAKE_DONE, None
        conn.role = query.get("role", [""])[0]
        address = getattr(ws, "client_ip", "") or "?"
        try:
            if self.front is not None:  # cluster mode: the line may be held by another node
                await self.front.serve(conn, query, address)
                return
            ctx = Context(conn, conn.role, address=address)
            try:
                if not await self.open_session(ctx, query):
                    return
                del query  # held for the whole connection otherwise (thousands wait)
                while True:  # recv() directly: no async generator kept per waiting caller
                    await self.dispatch(ctx, await ws.recv())
            except ConnectionClosed:
                pass
            except Exception:
                self.errors += 1
                log.exception("connection %s (%s) failed", conn.id, ctx.role)
            finally:
                await self.close_session(ctx)
        finally:
            self.conns.discard(conn)
            conn.close()

    async def open_session(self, ctx: Context, query: dict[str, list[str]]) -> bool:
        """Admit a connection in its role (False: it was rejected and is being closed).

        `query` is the connection's URL query; a session moved from another node after a
        failover carries `resume_agent`/`resume_session` instead of a ticket (docs/cluster.md).
        """
        role = ctx.role
        if role == "agent":
            return await self._open_agent(ctx, query)
        if role == "supervisor":
            return await self._open_board(ctx, query)
        if role in self.openers:
            return await self.openers[role][0](ctx, query)
        if not query.get("link", [""])[0]:
            if not self.anonymous_callers.acquire(ctx.address, self.cfg.ws_callers_per_address):
                await reject(ctx.conn, TooMany("too many callers from here"))
                return False
            ctx.counted = True
        return await self._open_caller(ctx, query)

    async def close_session(self, ctx: Context) -> None:
        """A connection ended: forget it and tell the switchboard (or its domain)."""
        conn, role = ctx.conn, ctx.role
        if ctx.counted:
            ctx.counted = False
            self.anonymous_callers.release(ctx.address)
        if ctx.account is not None:
            held = self.accounts.get(ctx.account)
            if held is not None:
                held.discard(conn)
                if not held:
                    del self.accounts[ctx.account]
        self.conn_sessions.pop(conn, None)
        self.sb.hub.unsubscribe(conn)
        try:
            if role == "agent" and ctx.agent_id is not None:
                await self.sb.agent_disconnected(ctx.agent_id, conn)
            elif role == "caller":
                self.sb.page_closed(conn)
                await self.sb.caller_disconnected(conn)
            elif role in self.openers:
                await self.openers[role][1](ctx)
        except Exception:
            log.exception("connection %s: cleanup failed", conn.id)

    async def _signed_in(
        self, ctx: Context, query: dict[str, list[str]], *, supervisor: bool = False
    ) -> Agent | None:
        """The enabled account behind the connection's ticket, or None (rejected, closed).

        The ticket is spent here (single use) and its session must still be signed in."""
        resumed = query.get("resume_agent", [""])[0]
        if resumed:  # moved from another node (failover): its ticket was spent there
            agent_id, session = int(resumed), query.get("resume_session", [""])[0]
        else:
            try:
                ticket = self._ticket(query.get("token", [""])[0])
                self._use_ticket(ticket["n"])
            except HotlineError as exc:
                await reject(ctx.conn, exc)
                return None
            agent_id, session = int(ticket["agent"]), str(ticket["s"])
        # Counted among the account's sockets before the session is checked: a sign-out
        # landing meanwhile either fails the check or finds this socket to close.
        ctx.account = agent_id
        self.accounts.setdefault(agent_id, set()).add(ctx.conn)
        self.conn_sessions[ctx.conn] = session
        alive = await asyncio.to_thread(
            sessions_db.alive,
            self.sb.db,
            session,
            agent_id,
            self.cfg.session_idle_minutes * 60,
            self.cfg.session_max_hours * 3600,
        )
        if not alive:
            await reject(ctx.conn, Unauthorized("signed out"))
            return None
        agent = await asyncio.to_thread(agents_db.get, self.sb.db, agent_id)
        if agent is None or agent.disabled:
            await reject(ctx.conn, Unauthorized("account disabled"))
            return None
        if supervisor and agent.role != "supervisor":
            await reject(ctx.conn, Forbidden("supervisors only"))
            return None
        ctx.agent_id = agent.id
        ctx.supervisor = agent.role == "supervisor"
        ctx.conn.subject = agent.id
        return agent

    async def _open_agent(self, ctx: Context, query: dict[str, list[str]]) -> bool:
        agent = await self._signed_in(ctx, query)
        if agent is not None:
            was_in = query.get("resume_call", [""])[0][:32]
            await self.sb.agent_connected(agent, ctx.conn, was_in)
            # Moved from another node (failover): an agent taking calls goes on taking them.
            if query.get("resume_status", [""])[0] in ("available", "ringing"):
                with contextlib.suppress(HotlineError):
                    self.sb.set_status(agent.id, "available")
        return agent is not None

    async def _open_board(self, ctx: Context, query: dict[str, list[str]]) -> bool:
        """A supervisor's wallboard: the line as it moves, and calls to monitor."""
        if await self._signed_in(ctx, query, supervisor=True) is None:
            return False
        self.sb.hub.subscribe("wallboard", ctx.conn)
        ctx.conn.send({"type": "hello", "role": "supervisor"})
        ctx.conn.send({"type": "line", **self.sb.line_summary()})
        return True

    async def _open_caller(self, ctx: Context, query: dict[str, list[str]]) -> bool:
        link = query.get("link", [""])[0]
        rejoin = query.get("rejoin", [""])[0]
        elder, auto_start = None, False
        if link:
            try:
                elder, auto_start = await self.sb.resolve_link(link)
            except HotlineError as exc:
                await reject(ctx.conn, exc)
                return False
        ctx.conn.subject = None
        moved = query.get("moved", [""])[0] == "1"
        call = self.sb.caller_rejoin(rejoin, ctx.conn, elder, moved=moved) if rejoin else None
        # Their call ended while the page was away: said in the hello (so the page does not
        # start a new call by itself), then the `ended` they missed.
        missed = await self.sb.ended_while_away(rejoin, elder) if rejoin and not call else None
        ctx.conn.send(
            {
                "type": "hello",
                "role": "caller",
                "rejoined": call is not None,
                "call_id": call.call_id if call else None,
                "state": call.state if call else "ended" if missed else "idle",
                "auto_start": auto_start,
                "callback_requested": bool(call and call.callback_requested),
            }
        )
        ctx.conn.elder = elder
        lang = query.get("lang", [""])[0]
        ctx.conn.lang = elder.lang if elder else (lang if lang in LANGS else self.cfg.default_lang)
        self.sb.page_opened(ctx.conn)
        if call is not None:
            self.sb.resume(call)
        elif missed is not None:
            ctx.conn.send(missed)
            ctx.conn.last_call_id = missed["call_id"]
        return True

    async def dispatch(self, ctx: Context, raw: str | bytes, *, replayed: bool = False) -> None:
        """Validate one message and run its route; errors go back to the sender, typed.

        `replayed` (cluster mode): sent again to a new holder of the line because the old one
        died before saying it ran it; if it had, this one is refused ("already answered",
        "no call"), and the sender, who saw it take effect, is not told of that."""
        try:
            routes = self.routes[ctx.role]
            msg = messages.parse(raw, {k: spec for k, (spec, _) in routes.items()})
            result = routes[msg["type"]][1](ctx, msg)
            if asyncio.iscoroutine(result):
                await result
        except HotlineError as exc:
            if replayed:
                log.info("connection %s: a replayed frame refused: %s", ctx.conn.id, exc.code)
                return
            reply = exc.to_message()
            if isinstance(raw, str) and len(raw) < 65536:
                with contextlib.suppress(Exception):
                    import json

                    sent = json.loads(raw)
                    if isinstance(sent, dict) and isinstance(sent.get("type"), str):
                        reply["for"] = sent["type"][:40]
            ctx.conn.send(reply)
        except Exception:
            self.errors += 1
            log.exception("connection %s: handler failed", ctx.conn.id)
            ctx.conn.send(
                {
                    "type": "error",
                    "code": "internal",
                    "detail": "something went wrong; nothing was changed",
                }
            )

    # ----------------------------------------------------------------- caller routes
    async def _caller_call(self, ctx: Context, msg: dict[str, Any]) -> None:
        if not self.call_starts.allow(ctx.address):
            raise TooMany("too many calls from here; please wait a minute", code="rate_limited")
        elder = ctx.conn.elder
        dialect = elder.dialect if elder else (msg.get("dialect") or self.cfg.default_dialect)
        if not elder and dialect not in self.dialects:
            raise BadMessage("unknown dialect", code="bad_field")
        known = elder is not None or bool(msg.get("dialect"))
        await self.sb.caller_call(ctx.conn, elder, dialect, dialect_known=known)

    async def _caller_hangup(self, ctx: Context, msg: dict[str, Any]) -> None:
        await self.sb.caller_hangup(ctx.conn)

    def _caller_signal(self, ctx: Context, msg: dict[str, Any]) -> None:
        self.sb.relay_signal(ctx.conn, msg["data"])

    async def _caller_tap_offer(self, ctx: Context, msg: dict[str, Any]) -> None:
        await self.sb.tap_offer(ctx.conn, msg["sdp"])

    async def _caller_rate(self, ctx: Context, msg: dict[str, Any]) -> None:
        await self.sb.rate(ctx.conn, msg["rating"])

    def _caller_ping(self, ctx: Context, msg: dict[str, Any]) -> None:
        ctx.conn.send({"type": "pong"})

    # ----------------------------------------------------------------- agent routes
    def _agent_status(self, ctx: Context, msg: dict[str, Any]) -> None:
        self.sb.set_status(ctx.agent_id or 0, msg["status"])

    async def _agent_accept(self, ctx: Context, msg: dict[str, Any]) -> None:
        await self.sb.accept(ctx.agent_id or 0, msg["call_id"])

    def _agent_decline(self, ctx: Context, msg: dict[str, Any]) -> None:
        self.sb.decline(ctx.agent_id or 0, msg["call_id"])

    async def _agent_hangup(self, ctx: Context, msg: dict[str, Any]) -> None:
        await self.sb.agent_hangup(ctx.agent_id or 0, msg["call_id"])

    def _agent_ready(self, ctx: Context, msg: dict[str, Any]) -> None:
        self.sb.ready(ctx.agent_id or 0)

    def _agent_signal(self, ctx: Context, msg: dict[str, Any]) -> None:
        self.sb.relay_signal(
            ctx.conn, msg["data"], agent_id=ctx.agent_id, call_id=msg.get("call_id")
        )

    async def _agent_tap_offer(self, ctx: Context, msg: dict[str, Any]) -> None:
        await self.sb.tap_offer(
            ctx.conn, msg["sdp"], agent_id=ctx.agent_id, call_id=msg.get("call_id")
        )

    def _agent_ping(self, ctx: Context, msg: dict[str, Any]) -> None:
        ctx.conn.send({"type": "pong"})
