"""The agent console through a whole call and back, in two real chromiums: it resets between
calls (captions, guidance, meter, camera), the wrap-up fits without scrolling and starts
blank, shortcuts work, and the console's own floor (text >= 16 px, targets >= 32 px) holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hotline.db import agents as agents_db
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from tests.a11y import problems
from tests.browser import browser, login, make_wav, screenshot
from tests.support import SLOW, wait_until

pytestmark = pytest.mark.browser

CONSOLE_FLOOR = {"min_text": 16, "min_target": 32, "min_contrast": 4.5}


def camera_live(page: Any) -> bool:
    return page.evaluate(
        "() => !!(window.hotline.stream && window.hotline.stream.getTracks()"
        ".some(t => t.readyState === 'live'))"
    )


def test_console_resets_between_calls_and_fits(server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    agent_row = agents_db.add(server.db, "wang", "pw-wang-123", ["cmn"], display_name="小王")
    elder = elders_db.add(server.db, "张阿姨", phone="13812345678", dialect="cmn")
    link = elders_db.new_link(server.db, elder.id)
    voice = make_wav(tmp_path / "caller.wav", "hello there " * 30)

    with (
        sync_playwright() as p,
        browser(p, audio_file=voice, viewport=(390, 844)) as caller_ctx,
        browser(p) as agent_ctx,
    ):
        agent = agent_ctx.new_page()
        agent.goto(f"{server.http}/agent")
        # The sign-in page speaks the hotline's language, whatever the browser's is.
        assert agent.get_attribute("html", "lang") == "zh-CN"
        login(agent, server.http, "wang", "pw-wang-123")
        assert problems(agent, **CONSOLE_FLOOR) == []
        assert not camera_live(agent)  # camera off between calls
        agent.click("#preview")
        wait_until(lambda: camera_live(agent), 10, "the preview camera")
        agent.click("#preview")
        wait_until(lambda: not camera_live(agent), 10, "the preview to stop")
        agent.click("#available")
        agent.wait_for_selector("#status[data-status=available]")
        screenshot(agent, "console-idle")

        caller = caller_ctx.new_page()
        caller.goto(f"{server.http}/c/{link.token}")
        caller.click("#call")
        agent.wait_for_selector("#ring:not([hidden])", timeout=15_000 * SLOW)
        assert agent.get_attribute("#timers", "data-kind") == "wait"
        assert problems(agent, **CONSOLE_FLOOR) == []
        screenshot(agent, "console-ringing")
        agent.keyboard.press("Alt+a")  # the answer shortcut
        for page in (caller, agent):
            page.wait_for_function(
                "() => document.getElementById('remote').videoWidth > 0", timeout=20_000 * SLOW
            )
        assert agent.get_attribute("#timers", "data-kind") == "talk"
        agent.keyboard.press("Alt+m")
        assert agent.get_attribute("#mute", "aria-pressed") == "true"

        # Fill the screen with this caller: guidance running, a caption, an alert, the meter.
        call_id = caller.evaluate("() => window.hotline.callId")
        agent.evaluate(
            "() => window.hotline.send({type: 'guide_start', script_id: 'refund-progress'})"
        )
        agent.wait_for_selector(".gp-head button", timeout=10_000 * SLOW)
        presence = server.switchboard.agents[agent_row.id]
        caption = {
            "type": "caption",
            "call_id": call_id,
            "speaker": "caller",
            "kind": "final",
            "text": "我的退款在哪里",
            "words": [],
            "alerts": [{"category": "fraud", "phrase": "退款"}],
        }
        server.run(presence.conn.send, caption)
        agent.wait_for_selector("#captions .cap-final")
        agent.wait_for_selector("#alert-banner:not([hidden])")
        agent.wait_for_function("() => window.hotline.levels !== null", timeout=10_000 * SLOW)
        assert problems(agent, **CONSOLE_FLOOR) == []
        screenshot(agent, "console-in-call")

        # Hold (Alt+H): the elder sees and hears "请稍等，客服马上回来"; pictures paused.
        agent.keyboard.press("Alt+h")
        agent.wait_for_selector("body[data-phase=held]", timeout=10_000 * SLOW)
        caller.wait_for_selector("#app[data-hold]", timeout=10_000 * SLOW)
        assert "请稍等，客服马上回来" in caller.inner_text("#call-note")
        caller.wait_for_function(
            """() => { const a = document.getElementById('prompt');
                return a.src.includes('/') && a.duration > 0.5 && (a.currentTime > 0 || a.ended); }""",
            timeout=20_000 * SLOW,
        )  # the prompt was rendered and is playing on the elder's page
        caller.wait_for_function(
            "() => window.hotline.peer.pc.getSenders().every(s => !s.track)",
            timeout=10_000 * SLOW,
        )  # the elder's picture and voice stay private from the agent while on hold ...
        assert caller.evaluate(
            "() => window.hotline.stream.getTracks().every(t => t.enabled)"
        )  # ... but their own tracks stay live (a family member on the call hears them)
        assert agent.evaluate("() => window.hotline.stream.getTracks().every(t => !t.enabled)")
        assert problems(agent, **CONSOLE_FLOOR) == []
        screenshot(agent, "console-on-hold")
        screenshot(caller, "caller-on-hold-390")
        agent.keyboard.press("Alt+h")
        agent.wait_for_selector("body[data-phase=in_call]", timeout=10_000 * SLOW)
        caller.wait_for_selector("#app:not([data-hold])", timeout=10_000 * SLOW)
        assert caller.evaluate("() => window.hotline.stream.getVideoTracks()[0].enabled")
        caller.wait_for_function(
            "() => window.hotline.peer.pc.getSenders().every(s => s.track)", timeout=10_000 * SLOW
        )  # resumed: the agent gets the elder's picture and voice again

        agent.keyboard.press("Alt+x")  # hang up
        agent.wait_for_selector("body[data-phase=wrap_up]", timeout=10_000 * SLOW)
        assert agent.inner_text("#captions") == ""
        assert agent.is_hidden("#alert-banner")
        assert agent.locator(".gp-head button").count() == 0 or "停止" not in agent.inner_text(
            ".gp"
        )
        assert agent.is_hidden(".meter")
        wait_until(lambda: not camera_live(agent), 10, "the camera to go off after the call")
        assert agent.get_attribute("#timers", "data-kind") == "wrap"
        # The wrap-up: entirely in view, nothing pre-selected, a lasting confirmation.
        box = agent.locator("#wrapup form").bounding_box()
        assert box is not None and box["y"] >= 0
        assert box["y"] + box["height"] <= 800, box
        assert agent.input_value("select[name=outcome_code]") == ""
        assert agent.input_value("select[name=next_owner]") == ""
        assert problems(agent, **CONSOLE_FLOOR) == []
        agent.fill("textarea[name=problem]", "退款进度")
        agent.select_option("select[name=outcome_code]", "solved")
        agent.uncheck("input[name=follow_up]")
        agent.fill("input[name=no_follow_up_reason]", "已解决")
        agent.click("#wrapup button[type=submit]")
        agent.wait_for_selector(".wu-saved")
        screenshot(agent, "console-wrap-up")
        assert "小结已保存" in agent.inner_text(".wu-note")

        agent.click("#ready")
        agent.wait_for_selector("body[data-phase=idle]")
        agent.wait_for_selector("#status[data-status=available]")
        assert agent.locator("#wrapup form").count() == 0
        assert agent.inner_text("#timers") == ""
        assert agent.locator(".gp-head button").count() == 0

    row = calls_db.get(server.db, call_id)
    assert row["ended_by"] == "agent" and row["hold_seconds"] > 0
