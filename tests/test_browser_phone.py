"""The call screen on a phone (360×740) in a real call: the face as large as the screen
allows, mute / camera / hang-up always in view (in guidance too), and one call in one tab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hotline.db import agents as agents_db
from hotline.db import elders as elders_db
from tests.a11y import broken_words, problems
from tests.browser import browser, login, make_wav, place_call, screenshot
from tests.support import SLOW

pytestmark = pytest.mark.browser

LAYOUT_JS = """
() => {
  const r = (id) => { const b = document.getElementById(id).getBoundingClientRect();
    return {top: b.top, bottom: b.bottom, left: b.left, right: b.right, width: b.width, height: b.height}; };
  return {vw: innerWidth, vh: innerHeight, scroll: document.scrollingElement.scrollHeight,
          remote: r('remote'), mute: r('mute'), camera: r('camera'), hangup: r('hangup'),
          guide: document.getElementById('guide').hidden ? null : r('guide')};
}
"""


def _in_view(box: dict[str, float], vw: int, vh: int) -> bool:
    return box["top"] >= 0 and box["left"] >= 0 and box["bottom"] <= vh and box["right"] <= vw


def _check_strip(layout: dict[str, Any]) -> None:
    vw, vh = layout["vw"], layout["vh"]
    assert layout["scroll"] <= vh + 1, "the call screen scrolls"
    for name in ("mute", "camera", "hangup"):
        assert _in_view(layout[name], vw, vh), (name, layout[name])
        assert layout[name]["height"] >= 64 and layout[name]["width"] >= 64, name
    assert _in_view(layout["remote"], vw, vh)


def test_call_screen_on_a_phone_and_one_call_one_tab(server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    agents_db.add(server.db, "wang", "pw-wang-123", ["cmn"])
    elder = elders_db.add(server.db, "张阿姨", dialect="cmn")
    link = elders_db.new_link(server.db, elder.id)
    voice = make_wav(tmp_path / "caller.wav", "hello " * 60)
    wait = 20_000 * SLOW

    with (
        sync_playwright() as p,
        browser(p, audio_file=voice, viewport=(360, 740)) as caller_ctx,
        browser(p) as agent_ctx,
    ):
        caller, agent = caller_ctx.new_page(), agent_ctx.new_page()
        login(agent, server.http, "wang", "pw-wang-123")
        place_call(caller, agent, server.http, link.token)

        # A normal call: the face fills most of the phone, the three buttons below it.
        layout = caller.evaluate(LAYOUT_JS)
        screenshot(caller, "phone-incall-360")
        _check_strip(layout)
        assert layout["remote"]["width"] >= 0.9 * layout["vw"]
        assert layout["remote"]["height"] >= 0.5 * layout["vh"], layout["remote"]
        assert problems(caller) == [] and broken_words(caller) == []

        # Guidance: the step on top, the face and the buttons still on screen.
        agent.evaluate(
            "() => window.hotline.send({type: 'guide_start', script_id: 'find-hidden-order'})"
        )
        caller.wait_for_selector("#guide:not([hidden]) .gd-text", timeout=wait)
        layout = caller.evaluate(LAYOUT_JS)
        screenshot(caller, "phone-guiding-360")
        _check_strip(layout)
        assert layout["guide"]["top"] >= 0 and layout["guide"]["bottom"] <= layout["remote"]["top"]
        assert layout["remote"]["height"] >= 120 and layout["remote"]["width"] >= 110
        assert layout["guide"]["height"] >= 0.5 * layout["vh"]
        assert problems(caller) == [] and broken_words(caller) == []

        # One call, one tab: the link opened again takes the call over; the first tab says
        # so and can take it back.
        second = caller_ctx.new_page()
        second.goto(f"{server.http}/c/{link.token}")
        caller.wait_for_selector("#replaced:not([hidden])", timeout=wait)
        second.wait_for_function(
            "() => window.hotline.screen === 'incall' && document.getElementById('remote').videoWidth > 0",
            timeout=wait,
        )
        screenshot(caller, "phone-replaced-360")
        assert "别的窗口" in caller.inner_text("#replaced h1")
        assert problems(caller) == [] and broken_words(caller) == []
        caller.click("#continue-here")
        second.wait_for_selector("#replaced:not([hidden])", timeout=wait)
        caller.wait_for_function(
            "() => window.hotline.screen === 'incall' && document.getElementById('remote').videoWidth > 0",
            timeout=wait,
        )
        # Guidance came back with the call.
        caller.wait_for_selector("#guide:not([hidden]) .gd-text", timeout=wait)
        caller.click("#hangup")
        caller.wait_for_selector("#ended:not([hidden])", timeout=wait)
        agent.wait_for_function("() => !window.hotline.call || window.hotline.screen !== 'incall'")
