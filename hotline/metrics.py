"""Prometheus metrics, computed on scrape from the live snapshot and the database.

Nothing is counted on the hot path: each scrape asks the live side for its snapshot (one hop
onto the loop) and runs a few aggregate reads. Latency histograms are over every stored call,
so their counts only grow and `rate()` works; take recent quantiles with
`histogram_quantile(0.9, rate(hotline_answer_latency_seconds_bucket[15m]))`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from hotline.db import reports as reports_db

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RING_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
ANSWER_BUCKETS = (5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class HotlineCollector:
    """A custom collector over `services.live_snapshot()` and the database."""

    def __init__(self, services: Any) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        snap, live_up = self._snapshot()
        yield _gauge("hotline_live_up", "1 when the live side answered this scrape.", live_up)
        yield from self._live(snap)
        yield from self._captions(snap.get("caption_streams") or {})
        latency = snap.get("caption_latency")
        if latency:
            yield _histogram(
                "hotline_caption_final_latency_seconds",
                "End of an utterance's audio to its final caption sent (all calls so far).",
                tuple(latency["bounds"]),
                (latency["buckets"], latency["count"], latency["sum"]),
            )
        yield from self._stored()

    def _snapshot(self) -> tuple[dict[str, Any], int]:
        try:
            return self.services.live_snapshot() or {}, 1
        except Exception as exc:  # the loop is gone or stuck: report it, keep the DB part
            log.warning("metrics: live snapshot failed: %r", exc)
            return {}, 0

    def _live(self, snap: dict[str, Any]) -> Iterator[Metric]:
        line = snap.get("line") or {}
        waiting = GaugeMetricFamily(
            "hotline_waiting_callers", "Callers waiting in line, by dialect.", labels=["dialect"]
        )
        for dialect, n in sorted((line.get("waiting") or {}).items()):
            waiting.add_metric([dialect], n)
        yield waiting
        yield _gauge(
            "hotline_waiting_callers_total",
            "Callers waiting in line.",
            line.get("total_waiting", 0),
        )
        longest = GaugeMetricFamily(
            "hotline_longest_wait_seconds",
            "Wait so far of the longest-waiting caller, by dialect.",
            labels=["dialect"],
        )
        for dialect, s in sorted((line.get("longest_wait") or {}).items()):
            longest.add_metric([dialect], s)
        yield longest
        calls = GaugeMetricFamily(
            "hotline_calls_in_flight", "Live calls by state.", labels=["state"]
        )
        by_state: dict[str, int] = {}
        for c in snap.get("calls", ()):
            by_state[c["state"]] = by_state.get(c["state"], 0) + 1
        for state, n in sorted(by_state.items()):
            calls.add_metric([state], n)
        yield calls
        agents = GaugeMetricFamily(
            "hotline_agents", "Signed-in agents (not supervisors) by status.", labels=["status"]
        )
        by_status: dict[str, int] = {}
        for a in snap.get("agents", ()):
            if a.get("role") != "supervisor":
                by_status[a["status"]] = by_status.get(a["status"], 0) + 1
        for status, n in sorted(by_status.items()):
            agents.add_metric([status], n)
        yield agents
        yield _gauge(
            "hotline_ws_connections", "Open websocket connections.", snap.get("ws_connections", 0)
        )
        yield _gauge(
            "hotline_gateway_legs",
            "Open gateway audio legs (ASR taps).",
            snap.get("gateway_legs", 0),
        )
        errors = CounterMetricFamily(
            "hotline_ws_errors", "Websocket messages refused or failed since start."
        )
        errors.add_metric([], snap.get("ws_errors", 0))
        yield errors

    def _captions(self, streams: dict[str, Any]) -> Iterator[Metric]:
        flat = [s for per_call in streams.values() for s in per_call.values()]
        yield _gauge("hotline_asr_streams", "Open caption (speech recognition) streams.", len(flat))
        rtfs = [float(s.get("rtf", 0.0)) for s in flat if s.get("chunks_fed")]
        yield _gauge(
            "hotline_asr_rtf_max",
            "Highest real-time factor (decode time / audio time) of open streams.",
            max(rtfs, default=0.0),
        )
        yield _gauge(
            "hotline_asr_rtf_mean",
            "Mean real-time factor of open streams.",
            sum(rtfs) / len(rtfs) if rtfs else 0.0,
        )
        yield _gauge(
            "hotline_asr_backlog_seconds_max",
            "Most audio queued for decoding in one open stream (caption delay).",
            max((float(s.get("backlog_seconds", 0.0)) for s in flat), default=0.0),
        )
        for key, help_text in (
            ("dropped", "Audio chunks dropped by backpressure in open streams."),
            ("errors", "Recognizer errors in open streams."),
            ("finals", "Final caption lines of open streams."),
        ):
            yield _gauge(f"hotline_asr_{key}", help_text, sum(int(s.get(key, 0)) for s in flat))

    def _stored(self) -> Iterator[Metric]:
        db = self.services.db
        try:
            ring = reports_db.latency_histogram(db, "ring", RING_BUCKETS)
            answer = reports_db.latency_histogram(db, "answer", ANSWER_BUCKETS)
            outcomes = reports_db.calls_by_outcome(db)
            bookings = reports_db.callbacks_by_status(db)
            ratings = reports_db.ratings_total(db)
        except Exception as exc:
            log.warning("metrics: database read failed: %r", exc)
            yield _gauge("hotline_db_up", "1 when the database answered this scrape.", 0)
            return
        yield _gauge("hotline_db_up", "1 when the database answered this scrape.", 1)
        yield _histogram(
            "hotline_ring_latency_seconds", "Arrival to first ring, per call.", RING_BUCKETS, ring
        )
        yield _histogram(
            "hotline_answer_latency_seconds",
            "Arrival to answer (the caller's wait), per answered call.",
            ANSWER_BUCKETS,
            answer,
        )
        ended = CounterMetricFamily(
            "hotline_calls_ended", "Ended calls by outcome.", labels=["outcome"]
        )
        for outcome, n in sorted(outcomes.items()):
            ended.add_metric([outcome], n)
        yield ended
        booked = GaugeMetricFamily(
            "hotline_callbacks", "Callback bookings by status.", labels=["status"]
        )
        for status, n in sorted(bookings.items()):
            booked.add_metric([status], n)
        yield booked
        rated = CounterMetricFamily(
            "hotline_ratings", "Caller ratings by value.", labels=["rating"]
        )
        for rating, n in sorted(ratings.items()):
            rated.add_metric([rating], n)
        yield rated


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _histogram(
    name: str, help_text: str, bounds: tuple[float, ...], data: tuple[list[int], int, float]
) -> HistogramMetricFamily:
    cumulative, count, total = data
    buckets = [(floatToGoString(b), n) for b, n in zip(bounds, cumulative, strict=True)]
    buckets.append(("+Inf", count))
    return HistogramMetricFamily(name, help_text, buckets=buckets, sum_value=total)


def registry_for(services: Any) -> CollectorRegistry:
    """A registry holding only the hotline collector (not the process-global default)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HotlineCollector(services))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of `registry`."""
    return generate_latest(registry)
