"""Screen guidance in a real call: the agent pushes steps, the senior answers with big buttons."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.db import agents as agents_db
from hotline.db import elders as elders_db
from hotline.db import guidance as guidance_db
from tests.a11y import problems
from tests.browser import browser, login, make_wav, place_call, screenshot
from tests.support import SLOW

pytestmark = pytest.mark.browser

AUDIO_DURATION_JS = """
async () => {
  const a = document.querySelector('#guide audio');
  if (!a || !a.src) return 0;
  if (a.readyState < 1) await new Promise(r => { a.addEventListener('loadedmetadata', r, {once: true}); setTimeout(r, 8000); });
  return a.duration || 0;
}
"""


def test_agent_guides_senior_step_by_step(server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    agents_db.add(server.db, "wang", "pw-wang-123", ["cmn"])
    elder = elders_db.add(server.db, "张阿姨", dialect="cmn")
    link = elders_db.new_link(server.db, elder.id)
    voice = make_wav(tmp_path / "caller.wav", "where is my order " * 10)

    with (
        sync_playwright() as p,
        browser(p, audio_file=voice, viewport=(360, 740)) as caller_ctx,
        browser(p) as agent_ctx,
    ):
        agent = agent_ctx.new_page()
        login(agent, server.http, "wang", "pw-wang-123")
        caller = caller_ctx.new_page()
        call_id = place_call(caller, agent, server.http, link.token)

        agent.evaluate(
            "() => window.hotline.send({type: 'guide_start', script_id: 'find-hidden-order'})"
        )
        caller.wait_for_selector("#guide:not([hidden]) .gd-text", timeout=10_000 * SLOW)
        assert caller.inner_text("#guide .gd-text").strip()
        assert caller.locator("#guide img, #guide svg.gd-picture, #guide .gd-picture").count() > 0
        assert caller.evaluate(AUDIO_DURATION_JS) > 0.3
        screenshot(caller, "guide-step1-360")
        assert problems(caller) == []

        caller.click("#guide .gd-help")
        agent.wait_for_selector(".gp-state-needs_help", timeout=10_000 * SLOW)
        # The first "没找到" shows the step's hint (or its branch) on the caller's screen.
        caller.wait_for_function(
            "() => window.hotline.guide && (window.hotline.guide.is_hint || window.hotline.guide.waiting_for_agent || window.hotline.guide.detour)",
            timeout=10_000 * SLOW,
        )
        screenshot(caller, "guide-hint-360")
        caller.wait_for_selector("#guide .gd-done:not([disabled])", timeout=10_000 * SLOW)
        caller.click("#guide .gd-done")
        agent.wait_for_selector(".gp-state-done", timeout=10_000 * SLOW)
        screenshot(agent, "guide-agent-panel-1280")

        # A reload brings the current step back.
        step_before = caller.evaluate("() => window.hotline.guide.step_id")
        caller.reload()
        caller.wait_for_selector("#guide:not([hidden]) .gd-text", timeout=20_000 * SLOW)
        assert caller.evaluate("() => window.hotline.guide.step_id") == step_before

    answers = guidance_db.answers(server.db, call_id=call_id)
    kinds = [a["answer"] for a in answers]
    assert "help" in kinds and "done" in kinds


def _all_step_views(library) -> list[dict]:
    from hotline.guidance.session import GuidanceSession

    views = []
    for script in library:
        for lang, dialect in (("zh_CN", "cmn"), ("zh_CN", "yue"), ("en", "cmn")):
            session = GuidanceSession(library)
            session.start(script.id)
            for step in script.steps:
                session.push(step.id)
                view = session.caller_view(lang, dialect)
                view["audio_url"] = "/static/none.wav"
                views.append(view)
    return views


RENDER_JS = """
async ([view, strings]) => {
  const m = await import('/static/guidance/caller-step.js');
  document.getElementById('incall').hidden = false;
  for (const id of ['idle', 'waiting', 'ended']) document.getElementById(id).hidden = true;
  document.getElementById('incall').classList.add('guiding');
  const box = document.getElementById('guide');
  box.hidden = false;
  box.replaceChildren();
  m.renderStep(box, view, {strings});
  await new Promise(r => setTimeout(r, 30));
}
"""


@pytest.mark.parametrize("width", [360, 1280])
def test_every_builtin_step_meets_the_bar(server, width: int) -> None:
    from playwright.sync_api import sync_playwright

    from hotline.i18n import subset

    elder = elders_db.add(server.db, "张阿姨", dialect="cmn")
    link = elders_db.new_link(server.db, elder.id)
    views = _all_step_views(server.services.guidance)
    assert len(views) >= 8 * 3 * 3
    with sync_playwright() as p, browser(p, viewport=(width, 740)) as ctx:
        page = ctx.new_page()
        page.goto(f"{server.http}/c/{link.token}")
        page.wait_for_selector("#call")
        failures = []
        for i, view in enumerate(views):
            strings = subset(view["lang"], ("caller.", "guidance."))
            page.evaluate(RENDER_JS, [view, strings])
            found = problems(page)
            # The highlight frame must never hide the instruction text.
            overlap = page.evaluate(
                "() => { const t = document.querySelector('#guide .gd-text');"
                " const h = document.querySelector('#guide .gd-highlight');"
                " if (!t || !h) return false; const a = t.getBoundingClientRect(), b = h.getBoundingClientRect();"
                " return !(b.right <= a.left || b.left >= a.right || b.bottom <= a.top || b.top >= a.bottom); }"
            )
            alt_ok = page.evaluate(
                "() => [...document.querySelectorAll('#guide img')].every(i => (i.alt || '').trim().length > 0)"
                " && [...document.querySelectorAll('#guide svg[role=img]')].every(s => s.getAttribute('aria-label'))"
            )
            if found or overlap or not alt_ok:
                failures.append(
                    (view["script_id"], view["step_id"], view["lang"], found, overlap, alt_ok)
                )
            if i % 25 == 0:
                screenshot(page, f"guide-all-{width}-{view['script_id']}-{view['step_id']}")
        assert failures == []
