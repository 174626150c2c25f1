"""A warm transfer in three real chromiums (elder, first agent, second agent): the agents
see and hear each other while the elder waits, the note and the captions so far arrive at
the second agent, live captions keep coming to them, and the elder is put through without
leaving their page (a browser mesh: the server decodes no video). Captions keep coming to
the first agent while the elder is on hold."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hotline.db import agents as agents_db
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from tests.a11y import problems
from tests.asr_helpers import make_speech_wav
from tests.browser import REMOTE_ENERGY_JS, browser, login, place_call, screenshot
from tests.support import SLOW, ServerThread, test_config

pytestmark = pytest.mark.browser

CONSOLE_FLOOR = {"min_text": 16, "min_target": 32, "min_contrast": 4.5}
# What one agent hears of the other on their consultation connection.
CONSULT_ENERGY_JS = REMOTE_ENERGY_JS.replace("window.hotline.peer", "window.hotline.consult")


def test_warm_transfer_with_note_and_captions_in_three_browsers(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    speech = make_speech_wav("주문을 찾을 수 없어요 환불을 받고 싶어요", tmp_path / "s.wav")
    looped = tmp_path / "speech.wav"  # played in a loop: the elder keeps talking
    subprocess.run(["sox", str(speech), str(looped), "pad", "0.3", "1.2"], check=True)
    cfg = test_config(tmp_path / "data", captions_deterministic=True, caption_warm=1)
    srv = ServerThread(cfg)
    try:
        agents_db.add(srv.db, "kim", "pw-kim-123", ["ko"], display_name="小金")
        lee = agents_db.add(srv.db, "lee", "pw-lee-123", ["ko", "cmn"], display_name="小李")
        elder = elders_db.add(srv.db, "김할머니", dialect="ko")
        link = elders_db.new_link(srv.db, elder.id)
        with (
            sync_playwright() as p,
            browser(p, audio_file=looped, viewport=(390, 844)) as caller_ctx,
            browser(p) as a_ctx,
            browser(p) as b_ctx,
        ):
            first, second, caller = a_ctx.new_page(), b_ctx.new_page(), caller_ctx.new_page()
            login(first, srv.http, "kim", "pw-kim-123")
            login(second, srv.http, "lee", "pw-lee-123")
            call_id = place_call(caller, first, srv.http, link.token)
            first.wait_for_selector("#captions .cap-final", timeout=60_000 * SLOW)
            second.click("#available")
            second.wait_for_selector("#status[data-status=available]")

            # On hold the elder's tap keeps its own track: captions keep coming.
            shown = first.locator("#captions .cap").count()
            first.keyboard.press("Alt+h")
            first.wait_for_selector("body[data-phase=held]", timeout=10_000 * SLOW)
            first.wait_for_function(
                f"() => document.querySelectorAll('#captions .cap').length > {shown}",
                timeout=30_000 * SLOW,
            )
            first.keyboard.press("Alt+h")
            first.wait_for_selector("body[data-phase=in_call]", timeout=10_000 * SLOW)

            first.click("#transfer-open")
            first.wait_for_selector(
                f"#transfer-target option[value='agent:{lee.id}'][data-free=true]",
                state="attached",
            )
            first.select_option("#transfer-target", f"agent:{lee.id}")
            first.fill("#transfer-note-input", "退款找不到订单，她说韩语")
            first.select_option("#transfer-mode", "warm")
            screenshot(first, "console-transfer-panel")
            first.click("#transfer-send")
            first.wait_for_selector("body[data-phase=transferring]", timeout=10_000 * SLOW)
            caller.wait_for_selector("#app[data-hold]", timeout=10_000 * SLOW)
            assert "转接" in caller.inner_text("#call-note")

            second.wait_for_selector("#ring:not([hidden])", timeout=10_000 * SLOW)
            assert "小金" in second.inner_text("#ring-transfer")
            assert "退款找不到订单" in second.inner_text("#ring-transfer")
            second.wait_for_selector("#context .ctx h2")  # the context card with the ring
            assert "김할머니" in second.inner_text("#context")
            assert problems(second, **CONSOLE_FLOOR) == []
            screenshot(second, "console-transfer-ring")
            second.click("#accept")

            # Warm: the two agents talk first (their own connection), the elder waits.
            first.wait_for_selector("#consult-box:not([hidden])", timeout=10_000 * SLOW)
            second.wait_for_selector("body[data-phase=consulting]", timeout=10_000 * SLOW)
            for page in (first, second):
                page.wait_for_function(
                    "() => window.hotline.consult && window.hotline.consult.remote"
                    " && window.hotline.consult.remote.getVideoTracks().length > 0",
                    timeout=20_000 * SLOW,
                )
                energy = page.evaluate(CONSULT_ENERGY_JS)
                assert energy > 0.001, energy
            assert caller.is_visible("#app[data-hold]")
            screenshot(first, "console-consulting")
            first.click("#complete-transfer")

            first.wait_for_selector("body[data-phase=wrap_up]", timeout=10_000 * SLOW)
            assert "小李" in first.inner_text("#call-title")
            for page in (caller, second):
                page.wait_for_function(
                    "() => document.getElementById('remote').videoWidth > 0",
                    timeout=20_000 * SLOW,
                )
            caller.wait_for_selector("#app:not([data-hold])")
            assert "小李" in caller.inner_text("#agent-line")
            second.wait_for_selector("#transfer-note:not([hidden])")
            assert "退款找不到订单" in second.inner_text("#transfer-note")
            second.wait_for_selector("#captions .cap-before")  # the captions so far ...
            assert second.locator("#captions .cap-final").count() >= 1
            # ... and live captions of the elder, now coming to the second agent.
            second.wait_for_selector("#captions .cap-partial", timeout=60_000 * SLOW)
            assert problems(second, **CONSOLE_FLOOR) == []
            screenshot(second, "console-after-transfer")
            second.click("#hangup")
            caller.wait_for_selector("#ended:not([hidden])", timeout=10_000 * SLOW)
        row = calls_db.get(srv.db, call_id)
        assert row["agent_id"] == lee.id and row["transfers"] == 1
        assert set(srv.running.gateway.tracks) == {"audio"}  # the taps carry no video
    finally:
        srv.stop()
