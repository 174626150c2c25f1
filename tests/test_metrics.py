"""/metrics in Prometheus text format (parsed back with prometheus_client), /readyz."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hotline import services as services_mod
from hotline.db import agents as agents_db
from hotline.db import calls as calls_db
from hotline.logjson import JsonFormatter
from hotline.services import Services
from hotline.web import create_app
from tests.support import Client, ServerThread
from tests.support import test_config as config_for
from tests.test_admin_web import SNAPSHOT


def parse(text: str) -> dict[str, Any]:
    """{family name: family} and {(sample name, labels): value} in one dict."""
    out: dict[Any, Any] = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = family
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    s = services_mod.build(config_for(tmp_path))
    yield s
    s.speech.close()


def seed_calls(db: Any) -> None:
    agents_db.add(db, "mei", "a password of ours", ["cmn"])
    # rang after 1 s and 3 s, answered after 4 s and 25 s; one caller gave up after 60 s.
    for cid, ring, answer in (("a", 1, 4), ("b", 3, 25)):
        calls_db.create(db, cid, elder_id=None, dialect="cmn", kind="inbound", arrived_at=1000.0)
        calls_db.rang(db, cid, 1, 1000.0 + ring)
        calls_db.answered(db, cid, 1, 1000.0 + answer)
        calls_db.ended(db, cid, outcome="completed", ended_by="agent", at=1200.0)
    calls_db.rate(db, "a", "good")
    calls_db.create(db, "c", elder_id=None, dialect="yue", kind="inbound", arrived_at=1000.0)
    calls_db.ended(db, "c", outcome="abandoned", ended_by="caller", at=1060.0)


def test_metrics_from_snapshot_and_rows(services: Services, monkeypatch: Any) -> None:
    seed_calls(services.db)
    monkeypatch.setattr(services, "live_snapshot", lambda: SNAPSHOT)
    r = create_app(services).test_client().get("/metrics")  # no sign-in: a scraper
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    m = parse(r.get_data(as_text=True))
    assert m[("hotline_live_up", ())] == 1 and m[("hotline_db_up", ())] == 1
    assert m[("hotline_waiting_callers", (("dialect", "cmn"),))] == 2
    assert m[("hotline_waiting_callers_total", ())] == 2
    assert m[("hotline_longest_wait_seconds", (("dialect", "cmn"),))] == 33
    assert m[("hotline_calls_in_flight", (("state", "connected"),))] == 1
    assert m[("hotline_agents", (("status", "in_call"),))] == 1  # the supervisor is left out
    assert ("hotline_agents", (("status", "away"),)) not in m
    assert m[("hotline_ws_connections", ())] == 5 and m[("hotline_gateway_legs", ())] == 2
    assert m[("hotline_ws_errors_total", ())] == 1
    assert m[("hotline_asr_streams", ())] == 1 and m[("hotline_asr_rtf_max", ())] == 0.25
    assert m[("hotline_asr_backlog_seconds_max", ())] == 0.4
    assert m["hotline_ring_latency_seconds"].type == "histogram"
    ring = lambda le: m[("hotline_ring_latency_seconds_bucket", (("le", le),))]  # noqa: E731
    assert (ring("1.0"), ring("2.0"), ring("5.0"), ring("+Inf")) == (1, 1, 2, 2)
    assert m[("hotline_ring_latency_seconds_sum", ())] == 4.0
    answer = lambda le: m[("hotline_answer_latency_seconds_bucket", (("le", le),))]  # noqa: E731
    assert (answer("5.0"), answer("20.0"), answer("30.0"), answer("+Inf")) == (1, 1, 2, 2)
    assert m[("hotline_answer_latency_seconds_count", ())] == 2
    assert m[("hotline_calls_ended_total", (("outcome", "abandoned"),))] == 1
    assert m[("hotline_calls_ended_total", (("outcome", "completed"),))] == 2
    assert m[("hotline_ratings_total", (("rating", "good"),))] == 1


def test_metrics_when_the_live_side_is_down(services: Services, monkeypatch: Any) -> None:
    def down() -> dict:
        raise RuntimeError("the live side is not running")

    monkeypatch.setattr(services, "live_snapshot", down)
    m = parse(create_app(services).test_client().get("/metrics").get_data(as_text=True))
    assert m[("hotline_live_up", ())] == 0 and m[("hotline_db_up", ())] == 1
    assert m[("hotline_waiting_callers_total", ())] == 0


def test_real_server_metrics_follow_the_line_and_readyz(tmp_path: Path) -> None:
    srv = ServerThread(config_for(tmp_path))
    try:

        def get(path: str) -> tuple[int, str]:
            with urllib.request.urlopen(srv.http + path, timeout=10) as r:
                return r.status, r.read().decode()

        assert get("/readyz") == (200, '{"db":true,"live":true,"ok":true}\n')

        async def two_callers() -> list[Client]:
            clients = [await Client.open(f"{srv.ws}?role=caller") for _ in range(2)]
            for c in clients:
                await c.send({"type": "call", "dialect": "cmn"})
                await c.expect("queued")
            return clients

        clients = srv.call(two_callers())
        m = parse(get("/metrics")[1])
        assert m[("hotline_live_up", ())] == 1
        assert m[("hotline_waiting_callers_total", ())] == 2
        assert m[("hotline_calls_in_flight", (("state", "waiting"),))] == 2
        assert m[("hotline_ws_connections", ())] >= 2

        async def close() -> None:
            await asyncio.gather(*(c.close() for c in clients))

        srv.call(close())
    finally:
        srv.stop()


def test_json_log_lines_mask_numbers_and_carry_the_call_id() -> None:
    import json

    record = logging.LogRecord(
        "hotline.live",
        logging.INFO,
        __file__,
        1,
        "call %s: caller said %s",
        ("abc-1", "13800138000"),
        None,
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["call_id"] == "abc-1" and line["level"] == "INFO"
    assert "13800138000" not in line["msg"] and line["msg"].endswith("8000")
