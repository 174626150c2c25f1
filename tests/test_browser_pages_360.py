"""Every caller and family page, and every guidance step, on a phone (360×740): text ≥ 24 px,
contrast ≥ 7:1, targets ≥ 64 px, 0 axe-core violations, and no word broken across lines on a
button or heading. Caller screens are rendered by feeding the page the server's messages."""

from __future__ import annotations

from typing import Any

import pytest

from hotline.db import elders as elders_db
from hotline.i18n import subset
from tests import a11y
from tests.browser import browser, screenshot
from tests.test_browser_guidance import RENDER_JS, _all_step_views

pytestmark = pytest.mark.browser

NEXT_SHIFT = "() => Math.floor(Date.now() / 1000) + 86400"

# name -> messages fed to window.hotline.handle (after the page has loaded)
SCREENS: dict[str, list[dict[str, Any]]] = {
    "waiting": [
        {"type": "queued", "call_id": "c1", "rejoin": ""},
        {"type": "queue", "state": "waiting", "position": 3, "ahead": 2, "eta_seconds": 720,
         "offer_callback": True},
    ],
    "next": [{"type": "queue", "state": "waiting", "position": 1, "ahead": 0, "eta_seconds": 30,
              "offer_callback": False}],
    "paused": [{"type": "queue", "state": "paused", "position": 2, "ahead": 1,
                "eta_seconds": None, "offer_callback": True}],
    "unstaffed-unknown": [{"type": "queue", "state": "unstaffed", "position": 1, "ahead": 0,
                           "eta_seconds": None, "offer_callback": True,
                           "next_staffed_at": None}],
    "ringing": [{"type": "queue", "state": "ringing", "position": 0, "ahead": 0,
                 "eta_seconds": 0, "offer_callback": False}],
    "callback-booked": [{"type": "callback_booked", "call_id": "c1", "position": 1}],
    "callback-ring": [{"type": "incoming_callback", "call_id": "c1", "agent_name": "小王"}],
    "ended": [{"type": "callback_cancelled"}, {"type": "ended", "call_id": "c1",
                                                "reason": "completed", "by": "agent"}],
    "rated": [{"type": "rated", "call_id": "c1", "rating": "good"}],
    "replaced": [{"type": "error", "code": "replaced", "detail": "opened elsewhere"}],
}  # fmt: skip


# The step's answers are on screen (not scrolled away under the call strip).
ANSWERS_IN_VIEW_JS = """
() => {
  const box = document.getElementById('guide').getBoundingClientRect();
  return [...document.querySelectorAll('#guide .gd-btn:not([hidden])')]
    .filter(b => b.getBoundingClientRect().bottom > box.bottom + 1)
    .map(b => 'answer off screen: ' + b.textContent.trim());
}
"""


def _check(page: Any, name: str, failures: list[Any], axe: bool = True) -> None:
    screenshot(page, f"sweep-{name}-360")
    found = a11y.problems(page) + a11y.broken_words(page)
    if axe:
        found += a11y.axe_violations(page)
    if found:
        failures.append((name, found))


def test_every_caller_and_family_page_and_step_at_360(server) -> None:
    from playwright.sync_api import sync_playwright

    elder = elders_db.add(server.db, "李奶奶", dialect="yue")
    link = elders_db.new_link(server.db, elder.id)
    revoked = elders_db.new_link(server.db, elder.id)
    elders_db.revoke_link(server.db, revoked.token)
    failures: list[Any] = []
    with (
        sync_playwright() as p,
        browser(p, viewport=(360, 740), bypass_csp=True) as ctx,
    ):
        page = ctx.new_page()
        for name, path in {
            "home": "/",
            "generic": "/call",
            "generic-en": "/call?lang=en",
            "revoked": f"/c/{revoked.token}",
            "unknown": "/c/nope",
            "family-form": "/family?lang=zh_CN",
            "family-form-en": "/family?lang=en",
            "family-bad-link": "/family/b/not-a-token",
        }.items():
            page.goto(server.http + path)
            page.wait_for_load_state("networkidle")
            _check(page, name, failures)

        page.goto(f"{server.http}/c/{link.token}")
        page.wait_for_function("() => window.hotline && window.hotline.handle")
        _check(page, "idle", failures)
        page.evaluate("() => { document.getElementById('sound-blocked').hidden = false; }")
        _check(page, "idle-sound-blocked", failures)
        for name, messages in SCREENS.items():
            for msg in messages:
                page.evaluate("(m) => window.hotline.handle(m)", msg)
            _check(page, name, failures)
        page.evaluate(
            "(at) => window.hotline.handle({type: 'queue', state: 'unstaffed', position: 1,"
            " ahead: 0, eta_seconds: null, offer_callback: true, next_staffed_at: at})",
            page.evaluate(NEXT_SHIFT),
        )
        _check(page, "unstaffed", failures)
        page.evaluate(
            "() => { window.hotline.show('incall');"
            " document.getElementById('agent-line').textContent = '小王 正在为您服务';"
            " document.getElementById('captions-toggle').hidden = false; }"
        )
        _check(page, "incall", failures)

        # Every guidance step of every built-in script, in the call screen.
        seen_scripts: set[tuple[str, str]] = set()
        for view in _all_step_views(server.services.guidance):
            strings = subset(view["lang"], ("caller.", "guidance."))
            page.evaluate(RENDER_JS, [view, strings])
            first = (view["script_id"], view["lang"]) not in seen_scripts
            seen_scripts.add((view["script_id"], view["lang"]))
            words = a11y.broken_words(page) + page.evaluate(ANSWERS_IN_VIEW_JS)
            axe = a11y.axe_violations(page) if first else []
            if words or axe:
                failures.append((view["script_id"], view["step_id"], view["lang"], words, axe))
            if first and view["lang"] == "zh_CN":
                screenshot(page, f"sweep-step-{view['script_id']}-360")
    assert failures == [], "\n".join(map(str, failures))
