"""The routing and call-flow tests of the single node, run again with the store on PostgreSQL.

They are imported (so collected here too, under this module's name) and an autouse fixture
sets HOTLINE_TEST_ENGINE=postgresql, so `tests.support.test_config` gives each server a fresh
PostgreSQL database. The whole suite can be run that way: HOTLINE_TEST_ENGINE=postgresql.
"""

from __future__ import annotations

import pytest

from tests.test_call_ws import (  # noqa: F401  (re-collected on PostgreSQL)
    test_agent_drop_mid_call_requeues_caller_at_head,
    test_declined_ring_goes_to_next_agent,
    test_longest_idle_matching_agent_rings_first,
    test_positions_and_eta_follow_the_line,
    test_tap_ring_accept_hangup,
    test_waiting_caller_rejoins_same_call_same_place,
)
from tests.test_hold_ws import (  # noqa: F401  (its timeline order failed here: event times)
    hold_server,
    test_hold_remind_resume_and_recorded,
)
from tests.test_restart import (  # noqa: F401
    test_waiting_callers_keep_their_place_across_a_restart,
)


@pytest.fixture(autouse=True)
def _on_postgresql(monkeypatch: pytest.MonkeyPatch, pg_server) -> None:
    monkeypatch.setenv("HOTLINE_TEST_ENGINE", "postgresql")


def test_these_really_run_on_postgresql(tmp_path) -> None:
    from tests.support import test_config

    assert test_config(tmp_path).database_url.startswith("postgresql://")
