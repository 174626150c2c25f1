"""Three real `hotline serve` nodes on one PostgreSQL and one Redis are ONE hotline.

Seen only from the outside, as pages and consoles see it (docs/protocol.md): callers and agents
on different nodes are rung and talk to each other, places follow the one line on every node,
a node killed with SIGKILL mid-surge loses nobody (its callers rejoin on the other nodes with
their secret and keep their places), Redis stopping loses nothing, and nodes start side by
side on one database. One cluster serves the whole module (starting nodes is the slow part);
each test keeps to a dialect no test running before it leaves callers in, so lines never mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hotline.db import calls as calls_db
from tests.cluster_nodes import (
    READY_DEADLINE,
    Cluster,
    Node,
    Page,
    close_all,
    last,
    open_agent,
    open_caller,
    position,
    sign_in,
    tap,
)
from tests.engines import PostgresServer
from tests.support import SLOW, Client, async_wait_until, wait_until

DEADLINE = 60.0  # seconds (times SLOW) for anything to propagate across the nodes
PASSWORD = "a-long-enough-password-1"
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster(("a", "b", "c")) as cl:
        yield cl


@pytest.fixture(autouse=True)
def whole(cluster: Cluster) -> Iterator[Cluster]:
    """Every test starts with all three nodes and Redis up (a failed test may have left one
    down), and fails if a node died under it that the test did not kill."""
    if cluster.redis.proc is None:
        cluster.start_redis()
    for name in ("a", "b", "c"):
        if not cluster[name].alive:
            cluster.restart(name)
    cluster.killed.clear()
    yield cluster
    died = [n for n in ("a", "b", "c") if not cluster[n].alive and n not in cluster.killed]
    if died:
        pytest.fail(f"node(s) {died} died during the test\n{cluster.logs()}")


def positions(callers: list[Client]) -> list[int | None]:
    return [position(c) for c in callers]


async def until_positions(callers: list[Client], want: list[int], what: str) -> None:
    await async_wait_until(
        lambda: positions(callers) == want, DEADLINE, f"{what}: {want} (have {positions(callers)})"
    )


async def answer(agent: Client, call_id: str) -> None:
    """The agent takes the ring for `call_id`."""
    await agent.expect("ring", timeout=DEADLINE, call_id=call_id)
    await agent.send({"type": "accept", "call_id": call_id})
    await agent.expect("connected", timeout=DEADLINE, call_id=call_id)


async def hang_up_and_ready(agent: Client, call_id: str) -> None:
    await agent.send({"type": "hangup", "call_id": call_id})
    await agent.expect("ended", timeout=DEADLINE, call_id=call_id)
    await agent.expect("status", timeout=DEADLINE, status="wrap_up")
    await agent.send({"type": "ready"})
    await agent.expect("status", timeout=DEADLINE, status="available")


# ---------------------------------------------------------------------- (e) side by side
def test_nodes_start_side_by_side_on_one_database(cluster: Cluster) -> None:
    """Three nodes (and a fourth started later) serve one database; the newcomer's start
    ends nobody's call and its callers join the same line."""
    for node in cluster.nodes.values():
        assert node.alive and node.readyz()[0] == 200, node.tail()

    async def scenario() -> None:
        first, _ = await open_caller(cluster["a"])
        q1 = await tap(first, "en")
        await async_wait_until(lambda: position(first) == 1, DEADLINE, "a's caller at 1")
        d = await asyncio.to_thread(cluster.add_node, "d")
        try:
            for node in cluster.nodes.values():
                assert node.alive and node.readyz()[0] == 200, node.tail()
            second, _ = await open_caller(d)
            q2 = await tap(second, "en")
            await until_positions([first, second], [1, 2], "one line over nodes a and d")
            assert last(first, "ended") is None  # the newcomer's start ended nothing
            assert {row["id"] for row in calls_db.open_calls(cluster.db)} >= {
                q1["call_id"],
                q2["call_id"],
            }
            for caller in (first, second):
                await caller.send({"type": "hangup"})
                await caller.expect("ended", timeout=DEADLINE)
            await close_all([first, second])
        finally:
            await asyncio.to_thread(d.stop)  # a clean stop of one node ...
        for name in ("a", "b", "c"):  # ... leaves the others serving
            assert cluster[name].alive and cluster[name].readyz()[0] == 200

    cluster.run(scenario())


# ---------------------------------------------------------------------- (a) across nodes
def test_a_caller_on_one_node_talks_to_an_agent_on_another(cluster: Cluster) -> None:
    """Seeded with the CLI; the agent signs in over HTTP on node b, the elder taps on node a:
    ring, answer, signalling both ways and the hang-up all cross between the nodes."""
    cluster.cli("agents", "add", "ann", "--dialects", "cmn", "--password", PASSWORD)
    out = cluster.cli("elders", "add", "Grandma Wang", "--dialect", "cmn")
    link = out.split("one-tap link: ")[1].split()[0].rsplit("/", 1)[1]
    web = sign_in(cluster["b"], "ann", PASSWORD)
    sdp_answer = SDP.replace("o=- 1 1", "o=- 2 2")
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}

    async def scenario() -> str:
        agent = await open_agent(cluster["b"], web, available=True)
        caller, hello = await open_caller(cluster["a"], link=link)
        assert hello["rejoined"] is False
        queued = await tap(caller)
        call_id = queued["call_id"]
        ring = await agent.expect("ring", timeout=DEADLINE, call_id=call_id)
        assert ring["elder"] == "Grandma Wang" and ring["dialect"] == "cmn"
        await agent.send({"type": "accept", "call_id": call_id})
        got = await caller.expect("connected", timeout=DEADLINE, call_id=call_id)
        assert got["role"] == "offerer" and got["agent_name"] == "ann"
        got = await agent.expect("connected", timeout=DEADLINE, call_id=call_id)
        assert got["role"] == "answerer"

        # Signalling: a -> b and b -> a, untouched.
        await caller.send({"type": "signal", "data": {"kind": "offer", "sdp": SDP}})
        got = await agent.expect("signal", timeout=DEADLINE, call_id=call_id)
        assert got["data"] == {"kind": "offer", "sdp": SDP}
        await agent.send(
            {"type": "signal", "call_id": call_id, "data": {"kind": "answer", "sdp": sdp_answer}}
        )
        got = await caller.expect("signal", timeout=DEADLINE, call_id=call_id)
        assert got["data"] == {"kind": "answer", "sdp": sdp_answer}
        await agent.send({"type": "signal", "call_id": call_id, "data": {"candidate": candidate}})
        got = await caller.expect("signal", timeout=DEADLINE, call_id=call_id)
        assert got["data"]["candidate"]["candidate"] == candidate["candidate"]
        await caller.send({"type": "signal", "data": {"candidate": None}})
        got = await agent.expect("signal", timeout=DEADLINE, call_id=call_id)
        assert got["data"] == {"candidate": None}

        # The elder hangs up on node a: the call ends on both sides.
        await caller.send({"type": "hangup"})
        ended = await caller.expect("ended", timeout=DEADLINE, call_id=call_id)
        assert (ended["reason"], ended["by"]) == ("completed", "caller")
        ended = await agent.expect("ended", timeout=DEADLINE, call_id=call_id)
        assert (ended["reason"], ended["by"]) == ("completed", "caller")
        await agent.expect("status", timeout=DEADLINE, status="wrap_up")
        await agent.send({"type": "status", "status": "away"})
        await agent.expect("status", timeout=DEADLINE, status="away")
        errors = [m for m in caller.seen + agent.seen if m.get("type") == "error"]
        assert errors == []
        await close_all([caller, agent])
        return call_id

    call_id = cluster.run(scenario())
    row = calls_db.get(cluster.db, call_id)  # one call history, in PostgreSQL
    assert row is not None and row["answered_at"] is not None
    assert (row["outcome"], row["ended_by"]) == ("completed", "caller")


# ---------------------------------------------------------------------- (b) places
def test_places_on_one_node_follow_the_line_on_the_others(cluster: Cluster) -> None:
    """Callers waiting on node c see their places move as callers on a and b arrive, are
    answered by an agent on b, and leave."""
    cluster.add_agent("yuki", PASSWORD, ["yue"])
    web = sign_in(cluster["b"], "yuki", PASSWORD)
    a, b, c = cluster["a"], cluster["b"], cluster["c"]

    async def scenario() -> None:
        agent = await open_agent(b, web)  # signed in, away: the line waits
        order = [a, b, c, a, c, b]  # arrival order of a1, b1, c1, a2, c2, b2
        callers: list[Client] = []
        ids: list[str] = []
        for node in order:
            caller, _ = await open_caller(node)
            ids.append((await tap(caller, "yue"))["call_id"])
            callers.append(caller)
        a1, b1, c1, a2, c2, b2 = callers
        await until_positions(callers, [1, 2, 3, 4, 5, 6], "one line over three nodes")

        await agent.send({"type": "status", "status": "available"})
        await answer(agent, ids[0])  # a1, on node a
        await until_positions([c1, c2], [2, 4], "c's places after a1 was answered")
        await until_positions([b1, a2, b2], [1, 3, 5], "the others' places")
        await hang_up_and_ready(agent, ids[0])
        await answer(agent, ids[1])  # b1, on node b
        await until_positions([c1, c2], [1, 3], "c's places after b1 was answered")

        await a2.send({"type": "hangup"})  # a2 leaves from node a
        await a2.expect("ended", timeout=DEADLINE)
        await until_positions([c1, c2, b2], [1, 2, 3], "places after a2 left")

        late, _ = await open_caller(a)  # a newcomer on node a goes to the back
        ids.append((await tap(late, "yue"))["call_id"])
        await until_positions([c1, c2, b2, late], [1, 2, 3, 4], "a newcomer at the back")

        await hang_up_and_ready(agent, ids[1])
        await answer(agent, ids[2])  # c1, on node c itself
        await c1.expect("connected", timeout=DEADLINE)
        await until_positions([c2, b2, late], [1, 2, 3], "places after c1 was answered")
        await agent.send({"type": "hangup", "call_id": ids[2]})
        await agent.expect("status", timeout=DEADLINE, status="wrap_up")
        await agent.send({"type": "status", "status": "away"})
        await agent.expect("status", timeout=DEADLINE, status="away")
        for caller in (c2, b2, late):
            await caller.send({"type": "hangup"})
            await caller.expect("ended", timeout=DEADLINE)
        errors = [m for x in [agent, *callers, late] for m in x.seen if m.get("type") == "error"]
        assert errors == []
        await close_all([agent, *callers, late])

    cluster.run(scenario())


# ---------------------------------------------------------------------- (d) Redis
def test_redis_stopping_and_returning_loses_no_place(cluster: Cluster) -> None:
    """Without Redis the nodes keep serving from PostgreSQL (places still move, a newcomer
    gets its place); once it returns, calls are answered across nodes in line order."""
    cluster.add_agent("nan1", PASSWORD, ["nan"])
    web = sign_in(cluster["b"], "nan1", PASSWORD)
    a, b, c = cluster["a"], cluster["b"], cluster["c"]

    async def scenario() -> None:
        agent = await open_agent(b, web)
        callers: list[Client] = []
        ids: list[str] = []
        for node in (a, c, b, c):
            caller, _ = await open_caller(node)
            ids.append((await tap(caller, "nan"))["call_id"])
            callers.append(caller)
        await until_positions(callers, [1, 2, 3, 4], "the line before Redis stops")

        cluster.stop_redis()
        for node in (a, b, c):
            assert node.readyz()[0] == 200, f"node {node.name} not ready without Redis"
        await callers[0].send({"type": "hangup"})  # the head leaves, on node a
        await callers[0].expect("ended", timeout=DEADLINE)
        await until_positions(callers[1:], [1, 2, 3], "places moving without Redis")
        newcomer, _ = await open_caller(a)
        ids.append((await tap(newcomer, "nan"))["call_id"])
        callers.append(newcomer)
        await until_positions(callers[1:], [1, 2, 3, 4], "a newcomer's place without Redis")

        await asyncio.to_thread(cluster.start_redis)
        for node in (a, b, c):
            assert node.readyz()[0] == 200
        await agent.send({"type": "status", "status": "available"})
        for i in range(1, 5):  # one agent: the rings come strictly in line order
            await answer(agent, ids[i])
            await callers[i].expect("connected", timeout=DEADLINE, call_id=ids[i])
            await until_positions(
                callers[i + 1 :], list(range(1, 4 - i + 1)), f"places after {i} answered"
            )
            if i < 4:
                await hang_up_and_ready(agent, ids[i])
        await agent.send({"type": "hangup", "call_id": ids[4]})
        await agent.expect("status", timeout=DEADLINE, status="wrap_up")
        await agent.send({"type": "status", "status": "away"})
        await agent.expect("status", timeout=DEADLINE, status="away")
        for row_id in ids:  # nothing left open, every call stored once
            row = calls_db.get(cluster.db, row_id)
            assert row is not None and row["ended_at"] is not None, row
        await close_all([agent, *callers])

    cluster.run(scenario())


# ---------------------------------------------------------------------- (c) kill -9
class Serving:
    """An agent console that takes every ring: accept, talk `talk` seconds, hang up, ready
    (or, when paused, away). Records what it was rung for and answered, in `log`."""

    def __init__(self, label: str, client: Client, log: list[tuple[float, str, str]], talk: float):
        self.label = label
        self.client = client
        self.log = log  # (monotonic time, agent, call_id) of every ring, all agents
        self.talk = talk
        self.want = "available"
        self.status = ""
        self.answered: list[str] = []  # call ids connected to this agent (not re-connections)
        self.ended: set[str] = set()
        self.hung_up: set[str] = set()
        self.hung_up_at: dict[str, float] = {}
        self.current = ""  # the call it was last connected to
        self.sent: list[dict[str, Any]] = []
        self.cancelled: set[str] = set()
        self.errors: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    def move(self, client: Client) -> None:
        """The console reconnected (to another node): serve from the new socket."""
        if self.task is not None:
            self.task.cancel()
        self.client = client
        self.start()

    async def set(self, status: str) -> None:
        self.want = status
        if self.status in ("available", "away", ""):
            await self._send({"type": "status", "status": status})

    async def _run(self) -> None:
        while True:
            msg = await self.client.inbox.get()
            kind, call_id = msg.get("type"), msg.get("call_id", "")
            if kind == "ring":
                self.log.append((time.monotonic(), self.label, call_id))
                await self._send({"type": "accept", "call_id": call_id})
            elif kind == "connected":
                self.current = call_id
                if not msg.get("rejoined"):
                    self.answered.append(call_id)
                asyncio.get_running_loop().create_task(self._hang_up_later(call_id))
            elif kind == "status":
                self.status = msg["status"]
                if self.status == "wrap_up":
                    await self._send(
                        {"type": "ready"}
                        if self.want == "available"
                        else {"type": "status", "status": "away"}
                    )
                elif self.status in ("available", "away") and self.status != self.want:
                    # `set` came while this status was on its way: catch up with it now
                    await self._send({"type": "status", "status": self.want})
            elif kind == "ended":
                self.ended.add(call_id)
            elif kind == "ring_cancelled":
                self.cancelled.add(call_id)
            elif kind == "error":
                self.errors.append(msg)

    async def _hang_up_later(self, call_id: str) -> None:
        await asyncio.sleep(self.talk)  # the conversation (a simulated duration, not a wait)
        if call_id in self.hung_up or call_id in self.ended:
            return  # (connected again after the caller's rejoin: hung up once is enough)
        self.hung_up.add(call_id)
        self.hung_up_at[call_id] = time.monotonic()
        with contextlib.suppress(Exception):
            await self._send({"type": "hangup", "call_id": call_id})

    async def _send(self, msg: dict[str, Any]) -> None:
        self.sent.append(msg)
        await self.client.send(msg)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await close_all([self.client])


def _short(msg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in msg.items() if k not in ("say", "ice_servers", "at", "elder")}


async def all_away(serving: list[Serving], t_kill: float) -> None:
    """Wait until every serving agent is away; else fail saying where each one is stuck."""
    try:
        await async_wait_until(
            lambda: all(s.status == "away" for s in serving), DEADLINE, "every agent away"
        )
    except AssertionError as exc:
        stuck = [
            f"{s.label}: {s.status}, call {s.current}, hung up at"
            f" {s.hung_up_at.get(s.current, float('nan')) - t_kill:+.2f} s from the kill;"
            f" sent {s.sent[-4:]}; received {[_short(m) for m in s.client.seen[-6:]]}"
            for s in serving
            if s.status != "away"
        ]
        raise AssertionError(f"{exc}; stuck: {stuck}") from None


def order_violations(
    log: list[tuple[float, str, str]], arrival: dict[str, int], since: float, until: float,
    agents: int, skip: set[str],
) -> list[str]:  # fmt: skip
    """Rings between `since` and `until` that skipped a caller ahead in line.

    The line's head goes first; with `agents` answering at once, up to that many rings of one
    routing round may arrive in any order, so each ring must be for one of the first `agents`
    callers not yet rung (a ring's caller is its own first ring; `skip`: callers not
    routable then, e.g. between their node's death and their rejoin)."""
    rung = {cid for t, _, cid in log if t < since}
    out = []
    for t, agent, cid in log:
        if t < since or t > until or cid in rung:
            rung.add(cid)
            continue
        waiting = sorted(
            (c for c in arrival if c not in rung and c not in skip), key=arrival.__getitem__
        )
        if cid in waiting and waiting.index(cid) >= agents:
            out.append(f"{agent} rung for #{arrival[cid]} before #{arrival[waiting[0]]}")
        rung.add(cid)
    return out


@pytest.mark.parametrize(("victim", "dialect"), [("holder", "wuu"), ("front", "cmn-sw")])
def test_a_node_killed_mid_surge_loses_nobody(cluster: Cluster, victim: str, dialect: str) -> None:
    """30 callers waiting over three nodes, agents on two of them answering; the third is
    killed with SIGKILL: the node holding the line (its switchboard fails over), or one that
    only serves sockets. Its callers rejoin on the others with their secrets and keep their
    places relative to everyone; its agent, in a call, signs in again elsewhere and is back
    in that call (signalling through the new node); nobody is lost or answered twice, and
    the agents keep taking the line in order."""
    holder = cluster.wait_holder()
    dead = holder if victim == "holder" else next(n for n in ("a", "b", "c") if n != holder)
    nodes = [*(cluster[n] for n in ("a", "b", "c") if n != dead), cluster[dead]]
    names = [f"{victim}{i}" for i in range(3)]
    for name in names:
        cluster.add_agent(name, PASSWORD, [dialect])
    webs = [sign_in(node, name, PASSWORD) for name, node in zip(names, nodes, strict=True)]
    count = 30

    async def scenario() -> None:
        consoles = [await open_agent(node, web) for node, web in zip(nodes, webs, strict=True)]
        callers: list[Client] = []
        queued: list[dict[str, Any]] = []
        home: list[Node] = []
        for i in range(count):  # one after another: arrival order = i
            node = nodes[i % 3]
            caller, _ = await open_caller(node)
            queued.append(await tap(caller, dialect))
            callers.append(caller)
            home.append(node)
        ids = [q["call_id"] for q in queued]
        arrival = {cid: i for i, cid in enumerate(ids)}
        await until_positions(callers, list(range(1, count + 1)), "30 places over three nodes")

        # The victim's agent answers the first caller (on another node) and is still talking
        # when its node dies.
        log: list[tuple[float, str, str]] = []  # every ring: (time, agent, call)
        await consoles[2].send({"type": "status", "status": "available"})
        await answer(consoles[2], ids[0])
        await callers[0].expect("connected", timeout=DEADLINE, call_id=ids[0])

        # The surge: agents on the first two nodes take calls.
        serving = [Serving(names[i], consoles[i], log, talk=0.3) for i in range(2)]
        for s in serving:
            s.start()
            await s.set("available")
        t_serve = time.monotonic()

        def answered() -> set[str]:
            return {ids[0], *(cid for s in serving for cid in s.answered)}

        await async_wait_until(lambda: len(answered()) >= 6, DEADLINE, "6 calls answered")
        cluster.kill(dead)
        t_kill = time.monotonic()
        killed = [i for i in range(count) if home[i] is nodes[2]]
        ended_before = {i for i in killed if last(callers[i], "ended") is not None}

        # The victim's agent signs in again through another node (its session lives in the
        # database) and is back in its call: the signalling goes through the new node.
        console = await open_agent(nodes[0], webs[2])
        again = await console.expect("connected", timeout=DEADLINE, call_id=ids[0])
        assert again["rejoined"] is True
        again = await callers[0].expect("connected", timeout=DEADLINE, call_id=ids[0])
        assert again["rejoined"] is True
        await callers[0].send({"type": "signal", "data": {"kind": "offer", "sdp": SDP}})
        got = await console.expect("signal", timeout=DEADLINE, call_id=ids[0])
        assert got["data"] == {"kind": "offer", "sdp": SDP}
        await console.send({"type": "hangup", "call_id": ids[0]})
        await callers[0].expect("ended", timeout=DEADLINE, call_id=ids[0])
        await console.expect("status", timeout=DEADLINE, status="wrap_up")
        third = Serving(names[2], console, log, talk=0.3)
        serving.append(third)
        third.start()
        await third.set("available")

        # The victim's callers come back on the other nodes with their rejoin secrets.
        rejoin_s: list[float] = []
        for n, i in enumerate(i for i in killed if i not in ended_before):
            t0 = time.monotonic()
            page, hello = await open_caller(nodes[n % 2], rejoin=queued[i]["rejoin"])
            rejoin_s.append(time.monotonic() - t0)
            if hello["rejoined"]:
                assert hello["call_id"] == ids[i], (hello, ids[i])
            else:  # only a call that ended meanwhile (answered, then hung up by its agent)
                assert any(ids[i] in s.ended for s in serving), f"caller #{i} lost: {hello}"
            callers[i] = page
            home[i] = nodes[n % 2]
        t_rejoined = time.monotonic()

        # Pause the agents: the line stands still, so places can be compared.
        for s in serving:
            await s.set("away")
        await all_away(serving, t_kill)
        waiting = [i for i in range(count) if ids[i] not in answered()]
        await until_positions(
            [callers[i] for i in waiting],
            list(range(1, len(waiting) + 1)),
            "the same relative places after the rejoin",
        )

        # And on: every caller is answered, in line order.
        t_resume = time.monotonic()
        for s in serving:
            await s.set("available")
        await async_wait_until(
            lambda: len(answered()) == count, DEADLINE * 2, f"all {count} callers answered"
        )
        for s in serving:
            await s.set("away")
        await all_away(serving, t_kill)

        every = [ids[0], *(cid for s in serving for cid in s.answered)]
        assert sorted(every) == sorted(ids), "a caller answered twice, or never"
        # (#0 was answered by the victim's agent before the surge: not in `log`, not waiting.)
        before = order_violations(log, arrival, t_serve, t_kill, 2, {ids[0]})
        after = order_violations(log, arrival, t_resume, float("inf"), 3, {ids[0]})
        assert before == [] and after == [], (before, after)
        for i in range(count):  # the pages that never dropped heard their call connect
            if i not in killed:
                assert last(callers[i], "connected", call_id=ids[i]) is not None, i
        benign = ("already_answered", "busy", "not_in_wrap_up")  # the test racing itself
        unexpected = [e for s in serving for e in s.errors if e.get("code") not in benign]
        assert unexpected == [], unexpected
        print(
            f"killed {victim} {dead} held {len(killed)} callers; rejoin max {max(rejoin_s):.2f} s;"
            f" kill -> all rejoined {t_rejoined - t_kill:.2f} s"
        )
        for s in serving:
            await s.stop()
        await close_all([consoles[2], *callers])

    cluster.run(scenario())
    assert nodes[0].alive and nodes[1].alive


# ---------------------------------------------------------------------- failover window
async def call_across(
    cluster: Cluster, username: str, dialect: str, *, stored: bool = True
) -> tuple[Client, Client, str, str]:
    """An agent on one front and a caller on the other, talking: (agent, caller, call, holder).
    `stored`: return once the answer is in PostgreSQL (what a new holder restores from)."""
    holder = await asyncio.to_thread(cluster.wait_holder)
    fronts = [cluster[n] for n in ("a", "b", "c") if n != holder]
    cluster.add_agent(username, PASSWORD, [dialect])
    web = await asyncio.to_thread(sign_in, fronts[0], username, PASSWORD)
    agent = await open_agent(fronts[0], web, available=True)
    caller, _ = await open_caller(fronts[1])
    call_id = (await tap(caller, dialect))["call_id"]
    await answer(agent, call_id)
    await caller.expect("connected", timeout=DEADLINE, call_id=call_id)
    if stored:
        await async_wait_until(
            lambda: (calls_db.get(cluster.db, call_id) or {}).get("answered_at"),
            DEADLINE,
            "the answer to be stored",
        )
    return agent, caller, call_id, holder


def test_a_hang_up_while_the_line_fails_over_is_not_lost(cluster: Cluster) -> None:
    """The line's holder freezes, the caller (on another node) hangs up, then the holder
    dies: the hang-up reached it (Redis delivered it to its socket) but it never ran it. Its
    front sends it again to the next holder: the call ends for both parties."""

    async def scenario() -> None:
        agent, caller, call_id, holder = await call_across(cluster, "ko1", "ko")
        os.kill(cluster[holder].pid, signal.SIGSTOP)
        await caller.send({"type": "hangup"})
        # (Not synchronisation: the outcome must be the same if the frame is still on its
        # way at the kill; this lets it reach the frozen holder, the case that was lost.)
        await asyncio.sleep(0.5)
        cluster.kill(holder)
        ended = await caller.expect("ended", timeout=DEADLINE, call_id=call_id)
        assert (ended["reason"], ended["by"]) == ("completed", "caller")
        await agent.expect("ended", timeout=DEADLINE, call_id=call_id)
        assert not last(caller, "error"), last(caller, "error")
        await close_all([agent, caller])

    cluster.run(scenario())


def test_a_call_answered_just_before_the_holder_dies_stays_answered(cluster: Cluster) -> None:
    """Both parties were told `connected`; the holder dies a moment later. The new holder
    must not put the caller back in line: the call goes on (both told `connected` again)."""

    async def scenario() -> None:
        agent, caller, call_id, holder = await call_across(cluster, "yue9", "yue", stored=False)
        cluster.kill(holder)
        seen = len(caller.seen)
        again = await caller.expect("connected", timeout=DEADLINE, call_id=call_id)
        assert again["rejoined"] is True
        back_in_line = [m for m in caller.seen[seen:] if m.get("type") == "queue"]
        assert back_in_line == [], back_in_line
        await agent.expect("connected", timeout=DEADLINE, call_id=call_id)
        await caller.send({"type": "hangup"})
        await agent.expect("ended", timeout=DEADLINE, call_id=call_id)
        await close_all([agent, caller])

    cluster.run(scenario())


def test_an_offer_after_the_failover_reaches_the_agent(cluster: Cluster) -> None:
    """After the holder dies, the caller's page is told `connected` (rejoined) again and
    makes a new offer at once, as pages do: the agent (on another node) must receive it."""

    async def scenario() -> None:
        agent, caller, call_id, holder = await call_across(cluster, "en1", "en")
        cluster.kill(holder)
        again = await caller.expect("connected", timeout=DEADLINE, call_id=call_id)
        assert again["rejoined"] is True
        await caller.send({"type": "signal", "data": {"kind": "offer", "sdp": SDP}})
        got = await agent.expect("signal", timeout=DEADLINE, call_id=call_id)
        assert got["data"] == {"kind": "offer", "sdp": SDP}
        await caller.send({"type": "hangup"})
        await agent.expect("ended", timeout=DEADLINE, call_id=call_id)
        await close_all([agent, caller])

    cluster.run(scenario())


def test_a_family_member_stays_on_the_call_across_a_failover(cluster: Cluster) -> None:
    """A family member (their page on a front) is in a call when the holder dies: their
    spent join link is not asked again; the new holder admits the page back into the call
    (a second `hello`), each party is told `family_joined` again, and the mesh's
    signalling works there, until the call's end reaches the family page too."""

    def kinds(call_id: str) -> list[str]:
        return [e["kind"] for e in calls_db.events(cluster.db, call_id)]

    async def scenario() -> str:
        agent, caller, call_id, holder = await call_across(cluster, "en2", "en")
        await agent.send({"type": "family_link", "call_id": call_id})
        url = (await agent.expect("family_link", timeout=DEADLINE, call_id=call_id))["url"]
        front = next(n for n in ("a", "b", "c") if n != holder)
        family = await Page.open(f"{cluster[front].ws}?role=family&join={url.rsplit('/', 1)[1]}")
        first = await family.expect("hello", timeout=DEADLINE, call_id=call_id)
        assert sorted(first["parties"]) == ["agent", "caller"]
        for party in (caller, agent):
            await party.expect("family_joined", timeout=DEADLINE, call_id=call_id)
        await async_wait_until(
            lambda: "family_joined" in kinds(call_id), DEADLINE, "the join to be stored"
        )

        cluster.kill(holder)
        # Back in the call on the new holder. The parties' sessions move there too, in no
        # set order: the page is told (by one hello or two) to connect to each of them
        # again once they are back, and each is told to expect it.
        told: set[str] = set()
        while told != {"agent", "caller"}:
            hello = await family.expect("hello", timeout=DEADLINE, call_id=call_id)
            told |= set(hello["parties"])
        for party in (caller, agent):
            await party.expect("family_joined", timeout=DEADLINE, call_id=call_id)
        assert last(family, "error") is None, last(family, "error")
        for name, party in (("caller", caller), ("agent", agent)):
            await family.send(
                {"type": "family_signal", "to": name, "data": {"kind": "offer", "sdp": SDP}}
            )
            got = await party.expect("family_signal", timeout=DEADLINE, call_id=call_id)
            assert got["data"]["kind"] == "offer"
            await party.send({"type": "family_signal", "data": {"kind": "answer", "sdp": SDP}})
            back = await family.expect("family_signal", timeout=DEADLINE)
            assert back["from"] == name and back["data"]["kind"] == "answer"
        await caller.send({"type": "hangup"})
        await family.expect("ended", timeout=DEADLINE, call_id=call_id)
        await agent.expect("ended", timeout=DEADLINE, call_id=call_id)
        await close_all([agent, caller, family])
        return call_id

    call_id = cluster.run(scenario())
    # The move is not a new join on the call's timeline (the family member never left).
    assert kinds(call_id).count("family_joined") == 1, kinds(call_id)


# ---------------------------------------------------------------------- PostgreSQL
def test_postgresql_restarting_loses_no_place() -> None:
    """A cluster on a PostgreSQL of its own, restarted under it with callers waiting on every
    node. While it is down no node is ready; the node that held the line fences itself (it
    cannot know who holds the lock now) and starts itself afresh as a front; pages whose
    socket closed rejoin elsewhere. Every place is kept, and the line is answered in order."""
    pg = PostgresServer()
    pg.start()
    try:
        with Cluster(("a", "b", "c"), pg=pg) as cluster:
            _postgresql_restart(cluster, pg)
    finally:
        pg.destroy()


def _postgresql_restart(cluster: Cluster, pg: PostgresServer) -> None:
    cluster.add_agent("pg1", PASSWORD, ["cmn"])
    web = sign_in(cluster["a"], "pg1", PASSWORD)
    nodes = [cluster[n] for n in ("a", "b", "c")]

    async def scenario() -> None:
        agent = await open_agent(nodes[0], web)
        callers: list[Client] = []
        queued: list[dict[str, Any]] = []
        for i in range(9):
            caller, _ = await open_caller(nodes[i % 3])
            queued.append(await tap(caller, "cmn"))
            callers.append(caller)
        ids = [q["call_id"] for q in queued]
        await until_positions(callers, list(range(1, 10)), "9 places before the restart")
        holder = await asyncio.to_thread(cluster.wait_holder)

        await asyncio.to_thread(pg.stop, "fast")
        for node in nodes:
            await asyncio.to_thread(
                wait_until,
                lambda n=node: not n.alive or n.readyz()[0] == 503,
                READY_DEADLINE,
                f"node {node.name} to report not ready without PostgreSQL",
            )
        await asyncio.to_thread(pg.start)
        fenced = cluster[holder]
        # It lost its lock's connection, so it stopped serving the line and started itself
        # afresh as a front (the same process id: no supervisor needed).
        await asyncio.to_thread(
            wait_until,
            lambda: fenced.log_lines("lost the lock"),
            READY_DEADLINE,
            f"the old holder {holder} to fence itself",
        )
        assert fenced.alive, fenced.tail()
        for node in nodes:
            await asyncio.to_thread(node.wait_ready)
        await asyncio.to_thread(cluster.wait_holder)

        # Pages whose socket closed (on the old holder) rejoin with their secret on the
        # next node (as through the proxy); then every place must be as before.
        async def rejoin_closed() -> None:
            for i, c in enumerate(callers):
                if c._task.done():
                    page, hello = await open_caller(nodes[(i + 1) % 3], rejoin=queued[i]["rejoin"])
                    assert hello["rejoined"] is True and hello["call_id"] == ids[i], hello
                    callers[i] = page

        deadline = time.monotonic() + DEADLINE * SLOW
        while positions(callers) != list(range(1, 10)) or any(c._task.done() for c in callers):
            assert time.monotonic() < deadline, f"places after the restart: {positions(callers)}"
            await rejoin_closed()
            await asyncio.sleep(0.05)

        if agent._task.done():  # the console was on the old holder too: it signs in again
            agent = await open_agent(nodes[1], web)
        await agent.send({"type": "status", "status": "available"})
        for i in range(9):  # one agent: strictly in line order
            await answer(agent, ids[i])
            await callers[i].expect("connected", timeout=DEADLINE, call_id=ids[i])
            if i < 8:
                await hang_up_and_ready(agent, ids[i])
        await agent.send({"type": "hangup", "call_id": ids[8]})
        await agent.expect("status", timeout=DEADLINE, status="wrap_up")
        await close_all([agent, *callers])

    cluster.run(scenario())
