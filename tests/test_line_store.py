"""The line's state machine, the same tests on memory, SQLite and PostgreSQL; races on both."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from hotline import routing
from hotline.cluster.line_store import LineError, LineStore, MemoryLineStore, SqlLineStore, route
from hotline.db import line as line_db
from hotline.db import open_database
from tests.engines import present

RING = 60.0
OVERFLOW = 30.0


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def line(request: pytest.FixtureRequest, tmp_path) -> Iterator[LineStore]:
    if request.param == "memory":
        yield MemoryLineStore(node="n1")
        return
    target = (
        str(tmp_path / "h.sqlite3")
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    db = open_database(target)
    db.migrate()
    yield SqlLineStore(db, node="n1")
    db.close()


def agent(line: LineStore, agent_id: int, dialects: tuple[str, ...] = ("cmn",)) -> None:
    line.agent_login(agent_id, dialects)
    line.set_available(agent_id, True)


def status(line: LineStore, agent_id: int) -> str:
    return {a.agent_id: a.status for a in line.agents()}[agent_id]


def test_places_are_per_dialect_priority_first(line: LineStore) -> None:
    t = time.time()
    for call_id, dialect in [("a1", "cmn"), ("y1", "yue"), ("a2", "cmn")]:
        line.arrive(call_id, dialect, t)
    line.arrive("cb", "cmn", t, priority=1)  # a scheduled callback goes first
    assert line.positions() == {"cb": 1, "a1": 2, "a2": 3, "y1": 1}
    assert [e.call_id for e in line.waiting()] == ["cb", "a1", "y1", "a2"]
    with pytest.raises(LineError) as err:
        line.arrive("a1", "cmn", t)  # one row per call
    assert err.value.code == "duplicate" and len(line.waiting()) == 4


def test_ring_accept_wrap_finish(line: LineStore) -> None:
    agent(line, 7)
    line.arrive("c1", "cmn", time.time())
    e = line.reserve("c1", 7, RING)
    assert (e.state, e.agent_id, status(line, 7)) == ("reserved", 7, routing.RINGING)
    assert line.positions() == {"c1": 1}  # ringing still holds the place
    if isinstance(line, SqlLineStore):  # the caller's page reconnected to another node
        assert line_db.move_node(line.db, "c1", "n2") and present(line.get("c1")).node == "n2"
        assert present(line_db.agent(line.db, 7)).status == routing.RINGING
    assert line.accept("c1", 7).state == "assigned" and status(line, 7) == routing.IN_CALL
    assert line.positions() == {}
    assert line.wrap("c1").state == "wrapping" and status(line, 7) == routing.WRAP_UP
    assert line.finish("c1").state == "done" and status(line, 7) == routing.AVAILABLE
    with pytest.raises(LineError) as err:
        line.finish("c1")
    assert err.value.code == "not_wrapping"


def test_decline_keeps_the_place_and_skips_that_agent(line: LineStore) -> None:
    agent(line, 1)
    agent(line, 2)
    t = time.time()
    line.arrive("c1", "cmn", t)
    line.arrive("c2", "cmn", t)
    line.reserve("c1", 1, RING)
    e = line.decline("c1", 1)
    assert (e.state, e.place, e.declined_by) == ("pending", 1.0, frozenset({1}))
    assert status(line, 1) == routing.AVAILABLE and line.positions()["c1"] == 1
    assert present(line.reserve_next(1, RING, OVERFLOW)).call_id == "c2"  # agent 1 passed c1 on
    assert present(line.reserve_next(2, RING, OVERFLOW)).call_id == "c1"
    with pytest.raises(LineError) as err:
        line.decline("c1", 1)
    assert err.value.code == "not_ringing"


def test_expired_ring_returns_to_pending_and_cannot_be_accepted(line: LineStore) -> None:
    agent(line, 3)
    line.arrive("c1", "cmn", time.time())
    line.arrive("c2", "cmn", time.time())
    line.reserve("c1", 3, 0.0)  # expires at once, by the database's clock
    with pytest.raises(LineError) as err:
        line.accept("c1", 3)
    assert err.value.code == "not_ringing"
    assert [e.call_id for e in line.expire()] == ["c1"]
    assert line.expire() == []  # idempotent: any node may sweep
    e = present(line.get("c1"))
    assert (e.state, e.place, e.declined_by) == ("pending", 1.0, frozenset())
    assert status(line, 3) == routing.AWAY  # a silent agent is set away, not a decline


def test_exactly_once_and_nothing_changes_on_a_refused_step(line: LineStore) -> None:
    agent(line, 1)
    agent(line, 2)
    line.arrive("c1", "cmn", time.time())
    line.arrive("c2", "cmn", time.time())
    line.reserve("c1", 1, RING)
    with pytest.raises(LineError) as err:
        line.reserve("c1", 2, RING)  # two nodes ring the same caller
    assert err.value.code == "not_pending" and status(line, 2) == routing.AVAILABLE
    with pytest.raises(LineError) as err:
        line.reserve("c2", 1, RING)  # two nodes ring the same agent
    assert err.value.code == "agent_busy" and present(line.get("c2")).state == "pending"
    with pytest.raises(LineError) as err:
        line.accept("c1", 2)  # not rung to this agent
    assert err.value.code == "not_ringing" and present(line.get("c1")).agent_id == 1
    with pytest.raises(LineError) as err:
        line.accept("nope", 1)
    assert err.value.code == "no_call"
    with pytest.raises(LineError):
        line.set_available(1, False)  # ringing: cannot go away mid-ring


def test_agent_dropped_puts_the_caller_first_and_leave_frees_a_ring(line: LineStore) -> None:
    agent(line, 1)
    agent(line, 2)
    for c in ("c1", "c2", "c3"):
        line.arrive(c, "cmn", time.time())
    line.reserve("c2", 1, RING)
    line.accept("c2", 1)
    assert line.requeue_at_head("c2").state == "pending"
    assert line.positions() == {"c2": 1, "c1": 2, "c3": 3}
    line.reserve("c3", 2, RING)
    assert present(line.leave("c3")).state == "done" and status(line, 2) == routing.AVAILABLE


def test_agents_of_a_node_that_stopped_beating_are_not_rung(line: LineStore) -> None:
    agent(line, 1)  # on node n1 (the fixture's)
    line.arrive("c1", "cmn", time.time())
    assert line.away_unless_on(set()) == []  # no liveness known: nothing changes
    assert line.away_unless_on({"n1"}) == []
    assert line.away_unless_on({"n2"}) == [1]  # n1 stopped beating
    assert status(line, 1) == routing.AWAY
    with pytest.raises(LineError):  # and nobody rings agent 1 now
        line.reserve("c1", 1, RING)


def test_route_uses_the_pure_rules_longest_idle_and_overflow(line: LineStore) -> None:
    agent(line, 1, ("yue",))
    agent(line, 2, ("cmn",))
    agent(line, 3, ("cmn",))
    now = time.time()
    line.arrive("old-yue", "yue", now - 5)
    line.arrive("cmn-1", "cmn", now - 4)
    line.arrive("cmn-2", "cmn", now - 3)
    line.arrive("cmn-3", "cmn", now - 2)
    pairs = dict(route(line, now, RING, OVERFLOW))
    # Agent 2 has been idle longest of the cmn speakers (logged in first).
    assert pairs == {"old-yue": 1, "cmn-1": 2, "cmn-2": 3}
    assert route(line, now, RING, OVERFLOW) == []  # nobody left free
    line.decline("cmn-1", 2)
    assert route(line, now, RING, OVERFLOW) == [("cmn-3", 2)]  # 2 passed cmn-1 on
    assert route(line, now + OVERFLOW, RING, OVERFLOW) == []  # everyone busy


# --- races: several connections reserving at once ------------------------------------------


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_racing_reservations_are_exactly_once_and_in_line_order(
    engine: str, request: pytest.FixtureRequest, tmp_path
) -> None:
    target = (
        str(tmp_path / "h.sqlite3") if engine == "sqlite" else request.getfixturevalue("pg_url")
    )
    setup = open_database(target)
    setup.migrate()
    base = SqlLineStore(setup)
    callers, agents, workers = 60, 24, 6
    now = time.time()
    for i in range(callers):
        base.arrive(f"c{i:03d}", "cmn", now)
    for a in range(1, agents + 1):
        agent(base, a)
    barrier = threading.Barrier(workers)
    got: list[tuple[str, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def node(n: int) -> None:
        # Each worker is a node with its own connection(s); every node races for every agent.
        db = open_database(target)
        mine = SqlLineStore(db, node=f"n{n}")
        try:
            barrier.wait(timeout=60)
            for a in range(1, agents + 1):
                try:
                    e = mine.reserve_next(a, RING, OVERFLOW)
                except LineError:
                    continue  # another node rang this agent first
                if e is not None:
                    with lock:
                        got.append((e.call_id, a))
            # And everyone tries the same targeted ring at once: one wins.
            try:
                mine.reserve(f"c{callers - 1:03d}", agents + 1, RING)
                with lock:
                    got.append((f"c{callers - 1:03d}", agents + 1))
            except LineError:
                pass
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            db.close()

    agent(base, agents + 1)
    threads = [threading.Thread(target=node, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    calls = [c for c, _ in got]
    agents_rung = [a for _, a in got]
    assert len(calls) == len(set(calls)) == agents + 1  # no caller rung twice
    assert len(agents_rung) == len(set(agents_rung))  # no agent rung twice
    # FIFO: the rung callers are exactly the head of the line (plus the targeted one).
    head = {f"c{i:03d}" for i in range(agents)}
    assert set(calls) == head | {f"c{callers - 1:03d}"}
    stored = {e.call_id: e.agent_id for e in base.waiting() if e.state == "reserved"}
    assert stored == dict(got)
    setup.close()


def test_a_periodic_job_runs_on_one_node_at_a_time(pg_url: str, tmp_path) -> None:
    first, second = open_database(pg_url), open_database(pg_url)
    with first.transaction():
        assert line_db.try_job_lock(first, "retention_purge")
        with second.transaction():  # another node, same job: refused without waiting
            assert not line_db.try_job_lock(second, "retention_purge")
            assert line_db.try_job_lock(second, "callback_scheduler")  # another job is free
    with second.transaction():  # released with the first node's transaction
        assert line_db.try_job_lock(second, "retention_purge")
    sqlite = open_database(str(tmp_path / "one.sqlite3"))
    with sqlite.transaction():
        assert line_db.try_job_lock(sqlite, "retention_purge")
    for db in (first, second, sqlite):
        db.close()


def test_the_three_implementations_agree_step_by_step(pg_url: str, tmp_path) -> None:
    """A seeded random walk of transitions, applied to memory, SQLite and PostgreSQL alike:
    every step must succeed or fail the same way, leaving the same line and agents."""
    import random

    sqlite_db, pg_db = open_database(str(tmp_path / "walk.sqlite3")), open_database(pg_url)
    for db in (sqlite_db, pg_db):
        db.migrate()
    stores: list[LineStore] = [MemoryLineStore(), SqlLineStore(sqlite_db), SqlLineStore(pg_db)]
    rng = random.Random(13)
    dialects = ("cmn", "yue")
    calls: list[str] = []
    t0 = time.time()
    for a in range(1, 5):
        for s in stores:
            s.agent_login(a, (dialects[a % 2],) if a < 4 else dialects)

    def step(s: LineStore, op: str, args: tuple) -> object:
        try:
            result = getattr(s, op)(*args)
        except LineError as exc:
            return ("error", exc.code)
        if isinstance(result, list):
            return sorted(e.call_id for e in result)
        return getattr(result, "state", getattr(result, "status", None))

    oracle = stores[0]

    def pick(state: str) -> tuple[str, int]:
        """Mostly a caller in `state` (and their agent), sometimes anyone: errors are tested too."""
        found = (
            [e for e in oracle.waiting() if e.state == state]
            if state in ("pending", "reserved")
            else [e for e in (oracle.get(c) for c in calls) if e is not None and e.state == state]
        )
        if found and rng.random() < 0.85:
            e = rng.choice(found)
            return e.call_id, e.agent_id or rng.randint(1, 4)
        return (rng.choice(calls) if calls else "none"), rng.randint(1, 4)

    for i in range(400):
        op = rng.choice(
            ["arrive", "arrive", "reserve", "reserve_next", "accept", "accept", "decline",
             "wrap", "finish", "requeue_at_head", "leave", "set_available", "expire"]
        )  # fmt: skip
        agent_id = rng.randint(1, 4)
        ttl = rng.choice([RING, RING, 0.0])  # some rings expire at once (database clock)
        if op == "arrive":
            calls.append(f"c{i}")
            args: tuple = (f"c{i}", rng.choice(dialects), t0 + i, rng.choice([0, 0, 0, 1]))
        elif op == "reserve":
            args = (pick("pending")[0], agent_id, ttl)
        elif op == "reserve_next":
            args = (agent_id, ttl, OVERFLOW)
        elif op in ("accept", "decline"):
            args = pick("reserved")
        elif op == "wrap" or op == "requeue_at_head":
            args = (pick("assigned")[0],)
        elif op == "finish":
            args = (pick("wrapping")[0],)
        elif op == "leave":
            args = (pick(rng.choice(["pending", "reserved"]))[0],)
        elif op == "set_available":
            args = (agent_id, rng.random() < 0.9)
        else:
            args = ()  # expire: rings with ttl 0 are due on every clock by now
        outcomes = [step(s, op, args) for s in stores]
        assert outcomes[0] == outcomes[1] == outcomes[2], (i, op, args, outcomes)
        views = [
            (
                [(e.call_id, e.state, e.agent_id, e.declined_by) for e in s.waiting()],
                s.positions(),
                [(a.agent_id, a.status) for a in s.agents()],
            )
            for s in stores
        ]
        assert views[0] == views[1] == views[2], (i, op, args)
    assert len(calls) > 30  # the walk really built a line
    done = [e for e in (oracle.get(c) for c in calls) if e is not None and e.state == "done"]
    assert len(done) > 10  # and callers went all the way through
    for db in (sqlite_db, pg_db):
        db.close()
