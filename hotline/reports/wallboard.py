"""Wallboard figures from call rows and the live snapshot: service level, waits, satisfaction.

Definitions (docs/admin.md):

- Only inbound calls count towards service level, speed of answer and abandonment.
- A call is *handled* once it was answered or ended unanswered by the caller (`abandoned`,
  `caller_dropped`). Callers still waiting and calls cut by a server stop (`interrupted`,
  `server_shutdown`) are not in the denominator: they say nothing about the line's speed.
- Service level at T seconds = answered within T / handled.
- Abandonment rate = ended unanswered by the caller / handled.
- Average speed of answer = mean wait of answered calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Row = Mapping[str, Any]

CALLER_GAVE_UP = ("abandoned", "caller_dropped")
RATINGS = ("good", "ok", "bad")
# A callback this late past its due time is shown as overdue.
OVERDUE_SECONDS = 15 * 60
# Buckets (upper bounds, seconds) for the waits chart; the last one is open.
WAIT_BUCKETS = (10, 20, 30, 60, 120, 300)


def _inbound(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if (r.get("kind") or "inbound") == "inbound"]


def _wait(row: Row) -> float | None:
    """Seconds from arrival to answer, for answered calls."""
    if row.get("answered_at") is None:
        return None
    wait = row.get("wait_seconds")
    if wait is None:
        wait = float(row["answered_at"]) - float(row["arrived_at"])
    return max(0.0, float(wait))


def gave_up(row: Row) -> bool:
    """The caller left before anyone answered."""
    return row.get("answered_at") is None and row.get("outcome") in CALLER_GAVE_UP


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def service_summary(rows: Iterable[Row], thresholds: Sequence[float]) -> dict[str, Any]:
    """Handled, answered, abandoned, service level at each threshold, ASA, abandonment rate."""
    inbound = _inbound(rows)
    waits = [w for w in (_wait(r) for r in inbound) if w is not None]
    abandoned = sum(1 for r in inbound if gave_up(r))
    handled = len(waits) + abandoned
    levels = {}
    within = {}
    for t in thresholds:
        key = f"{t:g}"
        within[key] = sum(1 for w in waits if w <= t)
        levels[key] = _ratio(within[key], handled)
    return {
        "calls": len(inbound),
        "handled": handled,
        "answered": len(waits),
        "abandoned": abandoned,
        "within": within,
        "service_level": levels,
        "asa_seconds": round(sum(waits) / len(waits), 1) if waits else None,
        "abandon_rate": _ratio(abandoned, handled),
        "fraud_calls": sum(1 for r in rows if r.get("fraud_flag")),
    }


def satisfaction(rows: Iterable[Row]) -> dict[str, int]:
    """Counts of good / ok / bad ratings (unrated calls are not counted)."""
    out = dict.fromkeys(RATINGS, 0)
    for r in rows:
        if r.get("rating") in out:
            out[r["rating"]] += 1
    return out


def per_agent(rows: Iterable[Row], names: Mapping[int, str]) -> list[dict[str, Any]]:
    """Per agent: answered calls, mean talk time, ratings, time callers spent on hold and
    calls that came to them by transfer, busiest first."""
    by: dict[int, list[Row]] = {}
    for r in rows:
        if r.get("agent_id") is not None and r.get("answered_at") is not None:
            by.setdefault(int(r["agent_id"]), []).append(r)
    out: list[dict[str, Any]] = []
    for agent_id, calls in by.items():
        talks = [float(r["talk_seconds"]) for r in calls if r.get("talk_seconds") is not None]
        out.append(
            {
                "agent_id": agent_id,
                "name": names.get(agent_id, f"#{agent_id}"),
                "answered": len(calls),
                "talk_seconds": round(sum(talks) / len(talks)) if talks else None,
                "ratings": satisfaction(calls),
                "hold_seconds": round(sum(float(r.get("hold_seconds") or 0) for r in calls)),
                "transferred_in": sum(1 for r in calls if r.get("transfers")),
            }
        )
    out.sort(key=lambda e: (-e["answered"], e["name"]))
    return out


def live_board(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """Callers waiting and agents by state and dialect, from the live side's snapshot.

    Supervisors connect like agents (to watch), so they are left out of agent counts.
    """
    line = snapshot.get("line") or {}
    agents = [a for a in snapshot.get("agents", ()) if a.get("role") != "supervisor"]
    states: dict[str, int] = {}
    by_dialect: dict[str, dict[str, int]] = {}
    for a in agents:
        states[a["status"]] = states.get(a["status"], 0) + 1
        for d in a.get("dialects", ()):
            entry = by_dialect.setdefault(d, {})
            entry[a["status"]] = entry.get(a["status"], 0) + 1
    waiting = dict(line.get("waiting") or {})
    longest = dict(line.get("longest_wait") or {})
    dialects = sorted(set(waiting) | set(by_dialect))
    return {
        "total_waiting": int(line.get("total_waiting", sum(waiting.values()))),
        "longest_wait": max(longest.values(), default=0),
        "dialects": [
            {
                "dialect": d,
                "waiting": waiting.get(d, 0),
                "longest_wait": longest.get(d, 0),
                "agents": by_dialect.get(d, {}),
            }
            for d in dialects
        ],
        "agents": states,
        "agents_online": len(agents),
        "calls": [
            {k: c.get(k) for k in ("call_id", "state", "dialect", "elder", "agent_id")}
            | {"seconds": c.get("waited_seconds")}
            for c in snapshot.get("calls", ())
        ],
    }


def callbacks_due(bookings: Iterable[Any], now: float, end_of_day: float) -> dict[str, int]:
    """Open callbacks: due now (incl. overdue), overdue, and still due later today."""
    due = overdue = later = 0
    for b in bookings:
        if b.status not in ("booked", "queued"):
            continue  # held: a caller keeping their place; claimed: someone is on it
        if b.due_at <= now:
            due += 1
            if b.due_at < now - OVERDUE_SECONDS:
                overdue += 1
        elif b.due_at < end_of_day:
            later += 1
    return {"due": due, "overdue": overdue, "later_today": later}


def per_hour(stamps: Iterable[float], day_start: float) -> list[int]:
    """How many stamps fall in each hour of the day starting at `day_start` (24 counts).

    Days with a clock change still get 24 slots of 3600 s; close enough for a chart.
    """
    out = [0] * 24
    for s in stamps:
        h = int((s - day_start) // 3600)
        if 0 <= h < 24:
            out[h] += 1
    return out


def wait_histogram(rows: Iterable[Row]) -> list[tuple[str, int]]:
    """Answered calls by wait bucket, plus callers who gave up, as (label, count)."""
    inbound = _inbound(rows)
    counts = [0] * (len(WAIT_BUCKETS) + 1)
    for w in (_wait(r) for r in inbound):
        if w is None:
            continue
        i = next((i for i, b in enumerate(WAIT_BUCKETS) if w <= b), len(WAIT_BUCKETS))
        counts[i] += 1
    labels = []
    low = 0
    for b in WAIT_BUCKETS:
        labels.append(f"{_short(low)}–{_short(b)}")
        low = b
    labels.append(f">{_short(low)}")
    return list(zip(labels, counts, strict=True))


def _short(seconds: float) -> str:
    return f"{seconds / 60:g}m" if seconds >= 60 else f"{seconds:g}s"


def daily_service_level(
    rows: Iterable[Row], day_starts: Sequence[float], threshold: float
) -> list[float | None]:
    """Service level at `threshold` for each day (day_starts ascending, one day apart)."""
    by_day: list[list[Row]] = [[] for _ in day_starts]
    for r in rows:
        at = float(r["arrived_at"])
        for i in range(len(day_starts) - 1, -1, -1):
            if at >= day_starts[i]:
                by_day[i].append(r)
                break
    key = f"{threshold:g}"
    return [service_summary(day, [threshold])["service_level"][key] for day in by_day]


def script_usage(rows: Iterable[Row]) -> list[tuple[str, int]]:
    """Guidance scripts by how many calls used them (answer rows), most used first."""
    calls: dict[str, set[str]] = {}
    for r in rows:
        calls.setdefault(str(r["script_id"]), set()).add(str(r["call_id"]))
    return sorted(((s, len(c)) for s, c in calls.items()), key=lambda e: (-e[1], e[0]))


def not_found_steps(report: Mapping[str, list[dict[str, Any]]], top: int = 8) -> list[dict]:
    """The steps callers most often answered "没找到" (help) on, across scripts."""
    steps = [
        {"script_id": sid, **e} for sid, entries in report.items() for e in entries if e["help"]
    ]
    steps.sort(key=lambda e: (-e["help"], -(e["help_rate"] or 0), e["script_id"], e["step_id"]))
    return steps[:top]
