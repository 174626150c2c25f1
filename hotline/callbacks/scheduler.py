"""When callbacks fire and what an attempt leads to: pure decisions plus one store-backed claim.

`due` and `after_attempt` are pure. `claim_due` moves due bookings to 'queued' in one
SQLite transaction, so each fires exactly once even across restarts; whatever fell due while
the process was down is returned by the first call after start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from hotline.db import Database
from hotline.db import callbacks as store
from hotline.db.callbacks import Booking

RESULTS = ("reached", "no_answer", "wrong_number", "rescheduled")
HOUR = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    retry_seconds: float = 15 * 60
    hold_grace_seconds: float = 600.0
    # A booking with no slot (keep-place, abandoned, follow-up) counts as overdue this late.
    late_seconds: float = 15 * 60


@dataclass(frozen=True)
class Transition:
    """The state a booking moves to after an attempt."""

    status: str
    due_at: float
    attempts: int
    notify_family: bool = False


def due(
    bookings: Iterable[Booking], now: float, policy: RetryPolicy | None = None
) -> list[Booking]:
    """Bookings that should fire now, oldest first (pure twin of `claim_due`)."""
    grace = (policy or RetryPolicy()).hold_grace_seconds
    out = [
        b
        for b in bookings
        if (b.status == "booked" and b.due_at <= now)
        or (b.status == "held" and b.due_at + grace <= now)
    ]
    return sorted(out, key=lambda b: (b.due_at, b.id))


def claim_due(db: Database, now: float, policy: RetryPolicy | None = None) -> list[Booking]:
    """Atomically mark every due booking 'queued' and return those this call fired."""
    return store.claim_due(db, now, (policy or RetryPolicy()).hold_grace_seconds)


def after_attempt(
    booking: Booking,
    result: str,
    now: float,
    policy: RetryPolicy,
    reschedule_to: float | None = None,
) -> Transition:
    """Where one call attempt leaves a booking."""
    attempts = booking.attempts + 1
    if result == "reached":
        return Transition("done", booking.due_at, attempts)
    if result == "wrong_number":
        return Transition("failed", booking.due_at, attempts, notify_family=True)
    if result == "rescheduled":
        if reschedule_to is None:
            raise ValueError("rescheduled needs a time")
        # The elder asked for another time: not a failed attempt.
        return Transition("booked", reschedule_to, booking.attempts)
    if result == "no_answer":
        if attempts >= policy.max_attempts:
            return Transition("failed", booking.due_at, attempts, notify_family=True)
        return Transition("booked", now + policy.retry_seconds, attempts)
    raise ValueError(f"unknown result {result!r}")


def window_end(booking: Booking, policy: RetryPolicy) -> float:
    """When a booking becomes overdue: its slot's end, or `late_seconds` after it fell due."""
    if booking.slot_start is not None and booking.attempts == 0:
        return booking.slot_start + HOUR
    return booking.due_at + policy.late_seconds


def group(
    bookings: Iterable[Booking], now: float, tz: ZoneInfo, policy: RetryPolicy
) -> dict[str, list[Booking]]:
    """Split open bookings into due now / overdue / today / later for the agents' list."""
    today = datetime.fromtimestamp(now, tz).date()
    out: dict[str, list[Booking]] = {"due_now": [], "overdue": [], "today": [], "later": []}
    for b in sorted(bookings, key=lambda b: (b.due_at, b.id)):
        if not b.active:
            continue
        if b.due_at <= now or b.status == "queued":
            key = "overdue" if now > window_end(b, policy) else "due_now"
        elif datetime.fromtimestamp(b.due_at, tz).date() == today:
            key = "today"
        else:
            key = "later"
        out[key].append(b)
    return out
