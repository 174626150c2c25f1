"""A senior taps once and talks face to face with an agent: two real chromiums, real WebRTC."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hotline.db import agents as agents_db
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from tests.a11y import problems
from tests.browser import REMOTE_ENERGY_JS, browser, make_wav, screenshot, tap_call
from tests.support import SLOW

pytestmark = pytest.mark.browser


def login(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/agent")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("#status[data-status=away]", timeout=10_000 * SLOW)


def test_one_tap_call_in_two_browsers(server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    agents_db.add(server.db, "wang", "pw-wang-123", ["cmn"], display_name="小王")
    elder = elders_db.add(server.db, "张阿姨", phone="13812345678", dialect="cmn")
    link = elders_db.new_link(server.db, elder.id)
    voice = make_wav(tmp_path / "caller.wav", "hello, I cannot find my refund button " * 6)

    with (
        sync_playwright() as p,
        browser(p, audio_file=voice, viewport=(390, 844)) as caller_ctx,
        browser(p) as agent_ctx,
    ):
        agent = agent_ctx.new_page()
        login(agent, server.http, "wang", "pw-wang-123")
        agent.click("#available")
        agent.wait_for_selector("#status[data-status=available]")

        caller = caller_ctx.new_page()
        caller.goto(f"{server.http}/c/{link.token}")
        caller.wait_for_selector("#call")
        screenshot(caller, "caller-idle-390")
        tap_call(caller)

        agent.wait_for_selector("#ring:not([hidden])", timeout=15_000 * SLOW)
        assert "张阿姨" in agent.inner_text("#ring-text")
        agent.click("#accept")

        for page in (caller, agent):
            page.wait_for_function(
                "() => document.getElementById('remote').videoWidth > 0", timeout=20_000 * SLOW
            )
        caller_hears = caller.evaluate(REMOTE_ENERGY_JS)
        agent_hears = agent.evaluate(REMOTE_ENERGY_JS)
        assert caller_hears > 0.001, caller_hears
        assert agent_hears > 0.001, agent_hears

        call_id = caller.evaluate("() => window.hotline.callId")
        deadline = time.monotonic() + 15 * SLOW
        stats = {}
        while time.monotonic() < deadline:
            stats = server.run(server.running.gateway.stats, call_id)
            if stats.get("caller", {}).get("peak_rms", 0) > 100:
                break
            time.sleep(0.2)
        assert stats["caller"]["frames"] > 0 and stats["caller"]["peak_rms"] > 100, stats
        assert set(server.running.gateway.tracks) == {"audio"}  # the taps carry no video
        agent.wait_for_function(
            "() => window.hotline.levels && window.hotline.levels.caller && window.hotline.levels.caller.frames > 0",
            timeout=10_000 * SLOW,
        )
        screenshot(caller, "caller-incall-390")
        screenshot(agent, "agent-incall-1280")

        caller.click("#hangup")
        caller.wait_for_selector("#ended:not([hidden])", timeout=10_000 * SLOW)
        agent.wait_for_selector("#status[data-status=wrap_up]", timeout=10_000 * SLOW)
        screenshot(caller, "caller-ended-390")
        assert problems(caller) == []
        caller.click(".face[data-rating=good]")
        caller.wait_for_selector("#rated:not([hidden])", timeout=10_000 * SLOW)

    row = calls_db.get(server.db, call_id)
    assert row is not None
    assert row["outcome"] == "completed" and row["ended_by"] == "caller"
    assert row["arrived_at"] <= row["rang_at"] <= row["answered_at"] <= row["ended_at"]
    assert row["talk_seconds"] > 0 and row["wait_seconds"] >= 0
    assert row["rating"] == "good"
