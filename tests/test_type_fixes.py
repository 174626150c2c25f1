"""Regression tests for the bugs mypy (check_untyped_defs, run by scripts/test.sh) found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hotline.db import agents as agents_db
from tests.support import ServerThread, test_config


class NoHandshake:
    """A server connection whose handshake request is missing (websockets' type allows it)."""

    request = None

    def __init__(self) -> None:
        self.closed_with: tuple[Any, ...] | None = None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with = (code, reason)


def test_connection_without_request_is_closed_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """_handle used ws.request.path before checking the request existed: an AttributeError
    after the connection was registered, so it stayed in live.conns for good."""
    srv = ServerThread(test_config(tmp_path))
    try:
        live = srv.running.live
        ws = NoHandshake()
        srv.call(live._handle(ws))
        assert ws.closed_with is not None and ws.closed_with[0] == 1011
        assert srv.run(lambda: len(live.conns)) == 0
        assert live.errors == 0
    finally:
        srv.stop()


def test_login_failure_counts_start_at_zero_and_count(tmp_path: Path) -> None:
    """The counts indexed an Optional row; they go through one helper that handles None."""
    srv = ServerThread(test_config(tmp_path))
    try:
        db = srv.db
        assert agents_db.recent_login_failures(db, "kim", "10.0.0.1", 60) == (0, 0)
        agents_db.record_login_failure(db, "kim", "10.0.0.1")
        agents_db.record_login_failure(db, "lee", "10.0.0.1")
        assert agents_db.recent_login_failures(db, "kim", "10.0.0.1", 60) == (1, 2)
    finally:
        srv.stop()
