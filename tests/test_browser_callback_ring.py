"""A waiting senior asks to be called back, keeps their page open, and is rung on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.db import agents as agents_db
from hotline.db import elders as elders_db
from tests.a11y import problems
from tests.browser import browser, login, make_wav, screenshot, tap_call
from tests.support import SLOW, ServerThread, test_config

pytestmark = pytest.mark.browser


def test_waiting_caller_asks_for_callback_and_is_rung(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    srv = ServerThread(test_config(tmp_path / "data", callback_offer_seconds=0.0))
    try:
        agents_db.add(srv.db, "wang", "pw-wang-123", ["cmn"])
        elder = elders_db.add(srv.db, "张阿姨", phone="13812345678", dialect="cmn")
        link = elders_db.new_link(srv.db, elder.id)
        voice = make_wav(tmp_path / "v.wav", "hello there " * 10)
        with (
            sync_playwright() as p,
            browser(p, audio_file=voice, viewport=(360, 740)) as caller_ctx,
            browser(p) as agent_ctx,
        ):
            caller = caller_ctx.new_page()
            caller.goto(f"{srv.http}/c/{link.token}")
            tap_call(caller)
            caller.wait_for_selector("#callback:not([hidden])", timeout=15_000 * SLOW)
            screenshot(caller, "callback-offer-360")
            assert problems(caller) == []
            caller.click("#callback")
            caller.wait_for_selector("#callback-booked:not([hidden])", timeout=10_000 * SLOW)
            screenshot(caller, "callback-booked-360")

            agent = agent_ctx.new_page()
            login(agent, srv.http, "wang", "pw-wang-123")
            agent.click("#available")
            agent.wait_for_selector("#ring:not([hidden])", timeout=15_000 * SLOW)
            agent.click("#accept")
            caller.wait_for_selector("#callback-ring:not([hidden])", timeout=15_000 * SLOW)
            screenshot(caller, "callback-ringing-360")
            assert problems(caller) == []
            caller.emulate_media(reduced_motion="reduce")  # the pulsing button stands still
            caller.click("#answer")
            for page in (caller, agent):
                page.wait_for_function(
                    "() => document.getElementById('remote').videoWidth > 0",
                    timeout=20_000 * SLOW,
                )
            caller.click("#hangup")
            agent.wait_for_selector("#status[data-status=wrap_up]", timeout=10_000 * SLOW)
            agent.wait_for_selector("#wrapup form, #wrapup .wrapup", timeout=10_000 * SLOW)
            screenshot(agent, "agent-wrapup-1280")
    finally:
        srv.stop()
