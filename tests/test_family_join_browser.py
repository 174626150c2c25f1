"""A family member joins a call in a third real chromium: they see and hear both the elder
and the agent, and the elder sees and hears them (a mesh: the server decodes no video).
Before that, the identity check's screens on the same call."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.db import agents as agents_db
from hotline.db import elders as elders_db
from tests.a11y import problems
from tests.browser import REMOTE_ENERGY_JS, browser, login, make_wav, place_call, screenshot
from tests.support import SLOW

pytestmark = pytest.mark.browser


def energy_of(page, path: str) -> float:
    """What a page hears on one of its connections (`path` to the PeerCall from window)."""
    return page.evaluate(REMOTE_ENERGY_JS.replace("window.hotline.peer", path))


def test_family_member_joins_and_sees_and_hears_both(server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    agents_db.add(server.db, "wang", "pw-wang-123", ["cmn"], display_name="小王")
    elder = elders_db.add(server.db, "张阿姨", dialect="cmn")
    link = elders_db.new_link(server.db, elder.id)
    voice = make_wav(tmp_path / "v.wav", "hello, can you hear me " * 30)

    with (
        sync_playwright() as p,
        browser(p, audio_file=voice, viewport=(390, 844)) as caller_ctx,
        browser(p, audio_file=voice) as agent_ctx,
        browser(p, audio_file=voice, viewport=(390, 844)) as family_ctx,
    ):
        agent, caller, family = agent_ctx.new_page(), caller_ctx.new_page(), family_ctx.new_page()
        login(agent, server.http, "wang", "pw-wang-123")
        call_id = place_call(caller, agent, server.http, link.token)

        # The identity check's screens: four big digits for the elder, the result for the
        # agent. (The elder's words are injected at the caption engine's output: espeak-ng
        # Korean digits are not recognised reliably enough by the shipped model to test
        # recognition itself; tests/test_identity_ws.py covers the rules.)
        agent.click("#identity-open")
        agent.wait_for_function(
            "() => document.getElementById('identity-photo-note').textContent.includes('还没有')"
        )
        agent.click("#identity-take")  # a still from the live video, beside the photo
        agent.click("#identity-register")  # the elder agreed: it becomes their photo
        agent.wait_for_selector("#identity-photo:not([hidden])", timeout=10_000 * SLOW)
        agent.click("#identity-start")
        caller.wait_for_selector("#identity-digits:not([hidden])", timeout=10_000 * SLOW)
        digits = caller.inner_text("#identity-digits").replace(" ", "")
        assert len(digits) == 4 and digits.isdigit()
        size = caller.evaluate(
            "() => parseFloat(getComputedStyle(document.getElementById('identity-digits')).fontSize)"
        )
        assert size >= 64
        screenshot(caller, "caller-identity-390")
        wrong = "".join(str((int(d) + 1) % 10) for d in digits)
        for text in (wrong, digits):
            event = {"type": "caption", "kind": "final", "text": text, "words": []}
            server.run(server.running.captions._on_caption, call_id, "caller", event)
        agent.wait_for_selector("#identity-status[data-passed=true]", timeout=10_000 * SLOW)
        caller.wait_for_selector("#identity-digits[hidden]", state="attached")
        agent.check("#identity-box input[value=verified]")
        agent.click("#identity-record")
        agent.wait_for_function(
            "() => document.getElementById('identity-status').textContent.includes('已核验')"
        )
        screenshot(agent, "console-identity")
        agent.click("#family-invite")
        agent.wait_for_function("() => document.getElementById('family-url').value.includes('/j/')")
        url = agent.input_value("#family-url")
        family.goto(url.replace(server.cfg.public_base_url.rstrip("/"), server.http))
        assert problems(family) == []  # the family page meets the senior-page bar
        family.click("#join")
        for video in ("elder-video", "agent-video"):
            family.wait_for_function(
                f"() => document.getElementById('{video}').videoWidth > 0", timeout=20_000 * SLOW
            )
        for party in ("caller", "agent"):
            heard = energy_of(family, f"window.hotline.peers.{party}")
            assert heard > 0.001, (party, heard)
        caller.wait_for_function(
            "() => document.getElementById('family-video').videoWidth > 0", timeout=20_000 * SLOW
        )
        assert energy_of(caller, "window.hotline.family") > 0.001
        agent.wait_for_function(
            "() => document.getElementById('family-video').videoWidth > 0", timeout=20_000 * SLOW
        )
        screenshot(caller, "caller-with-family-390")
        screenshot(family, "family-joined-390")
        screenshot(agent, "console-family")
        # On hold the agent's connection carries nothing of the elder, but the family member
        # (their own connection) still hears them.
        agent.keyboard.press("Alt+h")
        caller.wait_for_selector("#app[data-hold]", timeout=10_000 * SLOW)
        caller.wait_for_function(
            "() => window.hotline.peer.pc.getSenders().every(s => !s.track)",
            timeout=10_000 * SLOW,
        )
        heard = energy_of(family, "window.hotline.peers.caller")
        assert heard > 0.001, heard
        agent.keyboard.press("Alt+h")
        caller.wait_for_selector("#app:not([data-hold])", timeout=10_000 * SLOW)
        family.click("#leave")
        agent.wait_for_selector("#family-video[hidden]", state="attached", timeout=10_000 * SLOW)
        caller.wait_for_selector("#family-video[hidden]", state="attached", timeout=10_000 * SLOW)
    assert set(server.running.gateway.tracks) == {"audio"}  # the taps carry no video
