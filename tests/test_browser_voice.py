"""A voice before the prompt, and honest waits, in a real browser that blocks sound before
the first tap (as phones do): the explanation is spoken after the tap and before the camera
and microphone request; a message the browser refused is offered on a big button; the
waiting screen says plainly when nobody is on duty, and when someone will be."""

from __future__ import annotations

import time
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from hotline.db import agents as agents_db
from hotline.db import callbacks as callbacks_db
from hotline.db import elders as elders_db
from tests.a11y import broken_words, problems
from tests.browser import browser, screenshot
from tests.support import SLOW

pytestmark = pytest.mark.browser

# Records when the page first asks for the camera and microphone.
GUM_SPY = """
(() => {
  const md = navigator.mediaDevices;
  const real = md.getUserMedia.bind(md);
  md.getUserMedia = (c) => { if (window.__gumAt === undefined) window.__gumAt = performance.now(); return real(c); };
})();
"""


def _log(page) -> list[dict]:
    return page.evaluate("() => window.hotline.speech.log")


def test_voice_before_prompt_and_honest_unstaffed_wait(server) -> None:
    from playwright.sync_api import sync_playwright

    agent = agents_db.add(server.db, "wang", "pw-wang-123", ["cmn"])
    now = time.time()
    tz = ZoneInfo(server.cfg.timezone)
    tomorrow = datetime.fromtimestamp(now + 86400, tz)
    callbacks_db.add_shift(server.db, agent.id, tomorrow.isoweekday(), 9, 17, now)
    server.call(server.switchboard._load_shifts())
    elder = elders_db.add(server.db, "张阿姨", phone="13812345678", dialect="cmn")
    link = elders_db.new_link(server.db, elder.id)
    wait = 20_000 * SLOW
    prompts = server.services.prompts
    allow = prompts.url("zh_CN", "cmn", "caller.say_allow")
    intro = prompts.url("zh_CN", "cmn", "caller.say_intro")
    unstaffed = prompts.url("zh_CN", "cmn", "caller.say_unstaffed")
    nxt = prompts.url("zh_CN", "cmn", "caller.say_next")
    # Rendered ahead (as on a server that has spoken them once): the page waits up to 4 s
    # for a slow render before asking anyway, and this test is about the order, not speed.
    for url in (intro, allow, unstaffed, nxt):
        with urllib.request.urlopen(server.http + url, timeout=30 * SLOW) as r:
            assert r.read(4) == b"RIFF"

    with sync_playwright() as p, browser(p, viewport=(360, 740), autoplay=False) as ctx:
        page = ctx.new_page()
        page.add_init_script(GUM_SPY)
        page.goto(f"{server.http}/c/{link.token}")
        # Before any tap the browser refuses sound: the page offers it on a big button.
        page.wait_for_selector("#sound-blocked:not([hidden])", timeout=wait)
        assert any(e["url"] == intro and e["event"] == "blocked" for e in _log(page))
        screenshot(page, "voice-idle-blocked-360")
        assert problems(page) == [] and broken_words(page) == []
        # The big button plays it; messages said meanwhile wait their turn (none cut off).
        page.click("#hear-again")
        page.evaluate("(u) => window.hotline.say(u, 'x')", nxt)  # said while intro plays
        page.wait_for_function(
            "(u) => window.hotline.speech.log.some(e => e.url === u && e.event === 'ended')",
            arg=nxt,
            timeout=wait,
        )
        order = [(e["url"], e["event"]) for e in _log(page) if e["event"] in ("play", "ended")]
        assert order[-4:] == [(intro, "play"), (intro, "ended"), (nxt, "play"), (nxt, "ended")]

        page.click("#call")
        page.wait_for_selector("#waiting[data-line=unstaffed]", timeout=wait)
        log = _log(page)
        ended = [e["at"] for e in log if e["url"] == allow and e["event"] == "ended"]
        assert ended, log  # the explanation was heard in full ...
        assert page.evaluate("() => window.__gumAt") >= ended[0]  # ... before the request
        assert not any(
            e["url"] == intro and e["event"] == "play" and e["at"] > ended[0] for e in log
        )

        # Nobody on duty: no place, no minutes, when the next helper starts, and a callback.
        assert page.inner_text("#waiting-title") == "现在没有客服在线"
        assert page.is_hidden("#position")
        assert page.inner_text("#eta") == "客服明天 09:00上班。"
        assert page.is_visible("#callback")
        page.wait_for_function(
            "(u) => window.hotline.speech.log.some(e => e.url === u && e.event === 'playing')",
            arg=unstaffed,
            timeout=wait,
        )
        page.wait_for_selector("#sound-blocked", state="hidden")
        screenshot(page, "waiting-unstaffed-360")
        assert problems(page) == [] and broken_words(page) == []

        # A reload blocks sound again: the message is kept on the big button, not lost.
        page.reload()
        page.wait_for_selector("#waiting[data-line=unstaffed]", timeout=wait)
        page.wait_for_selector("#sound-blocked:not([hidden])", timeout=wait)
        screenshot(page, "waiting-reload-blocked-360")
        assert problems(page) == [] and broken_words(page) == []
        page.click("#hear-again")
        page.wait_for_function(
            "(u) => window.hotline.speech.log.some(e => e.url === u && e.event === 'playing')",
            arg=unstaffed,
            timeout=wait,
        )
        assert page.is_hidden("#sound-blocked")
