"""Counting what one client does in a window of time, to refuse floods (in memory, per node).

A `WindowCounter` keeps the times of recent events per key (an address, an address and an
account...) and answers whether one more is allowed; old events fall out of the window.
Keys are bounded: when more than `max_keys` are tracked, the stalest are forgotten first,
so a flood of distinct keys cannot grow memory without bound.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class WindowCounter:
    """At most `limit` events per key within `window` seconds (thread-safe)."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_keys: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def count(self, key: str) -> int:
        """Events of `key` still inside the window."""
        with self._lock:
            return len(self._fresh(key, self.clock()))

    def allow(self, key: str) -> bool:
        """Record one event for `key` if it is under the limit; False (not recorded) if not."""
        with self._lock:
            now = self.clock()
            events = self._fresh(key, now)
            if len(events) >= self.limit:
                return False
            events.append(now)
            self._events[key] = events
            self._events.move_to_end(key)
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)
            return True

    def _fresh(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            return deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        return events


class Gauge:
    """How many things (open sockets) each key holds right now (single-threaded use)."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}

    def held(self, key: str) -> int:
        return self._held.get(key, 0)

    def acquire(self, key: str, limit: int) -> bool:
        """Take one for `key` unless it already holds `limit`."""
        n = self._held.get(key, 0)
        if n >= limit:
            return False
        self._held[key] = n + 1
        return True

    def release(self, key: str) -> None:
        n = self._held.get(key, 0) - 1
        if n > 0:
            self._held[key] = n
        else:
            self._held.pop(key, None)
