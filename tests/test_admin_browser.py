"""The wallboard in chromium: callers join over real websockets and the counts move; a
supervisor watches a live call's guidance read-only; the charts render. Screenshots are
written to test-artifacts/ (admin-*.png) for a human to look at."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hotline.db import agents as agents_db
from hotline.db import audit
from hotline.db import callbacks as callbacks_db
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from hotline.db import guidance as guidance_db
from hotline.db import transcripts as transcripts_db
from tests.browser import browser, login, screenshot
from tests.support import SLOW, Client, ServerThread, agent_ticket

pytestmark = pytest.mark.browser
PASSWORD = "boss password 1"
# Every big figure fits its tile even at its widest ("88:88", "100%").
FIGURES_FIT = """() => {
  document.getElementById('longest').textContent = '88:88';
  document.getElementById('asa').textContent = '88:88';
  return [...document.querySelectorAll('.tile .num')]
    .filter(e => e.scrollWidth > e.clientWidth || e.getBoundingClientRect().right > e.parentElement.getBoundingClientRect().right)
    .map(e => e.id);
}"""


def seed_history(server: ServerThread, agent_id: int) -> str:
    """30 days of ended calls (waits, ratings, guidance answers) so the charts have shapes."""
    db, rnd = server.db, random.Random(7)
    tz = ZoneInfo(server.cfg.timezone)
    now = datetime.now(tz)
    today = datetime(now.year, now.month, now.day, tzinfo=tz)
    scripts = [
        ("elder-mode", "settings"),
        ("apply-refund", "all-orders"),
        ("share-location", "open-chat"),
    ]
    n, last = 0, ""
    for back in range(29, -1, -1):
        day = today - timedelta(days=back)
        hours = range(8, 21) if back else range(8, min(now.hour, 20) + 1)
        for hour in hours:
            if rnd.random() < 0.5:
                continue
            n += 1
            cid = f"h{n}"
            at = (day + timedelta(hours=hour, minutes=rnd.randint(0, 59))).timestamp()
            if at > now.timestamp():
                continue
            calls_db.create(db, cid, elder_id=None, dialect="cmn", kind="inbound", arrived_at=at)
            wait = rnd.choice([3, 6, 9, 12, 14, 18, 25, 40, 70, 200])
            if wait > 150:
                calls_db.ended(db, cid, outcome="abandoned", ended_by="caller", at=at + wait)
                continue
            calls_db.answered(db, cid, agent_id, at + wait)
            sid, step = scripts[n % 3]
            answer = "help" if n % 4 == 0 else "done"
            guidance_db.record_answer(
                db,
                cid,
                {
                    "script_id": sid,
                    "step_id": step,
                    "answer": answer,
                    "seq": 1,
                    "at": at + wait + 30,
                    "seconds": 20.0,
                },
            )
            calls_db.ended(db, cid, outcome="completed", ended_by="agent", at=at + wait + 240)
            calls_db.rate(db, cid, rnd.choice(["good", "good", "good", "ok", "bad"]))
            last = cid
    return last


def test_wallboard_follows_the_line_and_watches_a_call(server: ServerThread) -> None:
    from playwright.sync_api import sync_playwright

    agents_db.add(server.db, "boss", PASSWORD, ["cmn"], display_name="主管", role="supervisor")
    ann = agents_db.add(server.db, "ann", PASSWORD, ["cmn"], display_name="小安")
    last = seed_history(server, ann.id)
    transcripts_db.add_line(
        server.db, last, "caller", "cmn", {"text": "我的卡号是6222020200112233445"}
    )
    callbacks_db.save_wrapup(
        server.db,
        last,
        {
            "agent_id": ann.id,
            "problem": "不会开长辈模式",
            "action": "一步步带着开好了",
            "outcome_code": "solved",
        },
        at=time.time(),
    )
    links = []
    for name in ("王阿姨", "李伯伯", "张奶奶"):
        elder = elders_db.add(server.db, name, dialect="cmn")
        links.append(elders_db.new_link(server.db, elder.id).token)
    clients: list[Client] = []

    async def open_ws(url: str, expect: str) -> Client:
        c = await Client.open(url)
        clients.append(c)
        await c.expect(expect)
        return c

    async def agent_takes_a_call() -> str:
        token = agent_ticket(server, ann.id)
        agent = await open_ws(f"{server.ws}?role=agent&token={token}", "hello")
        await agent.send({"type": "status", "status": "available"})
        await agent.expect("status", status="available")
        caller = await open_ws(f"{server.ws}?role=caller&link={links[0]}", "hello")
        await caller.send({"type": "call"})
        ring = await agent.expect("ring")
        await agent.send({"type": "accept", "call_id": ring["call_id"]})
        await agent.expect("connected")
        return ring["call_id"]

    async def two_more_callers() -> None:
        for link in links[1:]:
            caller = await open_ws(f"{server.ws}?role=caller&link={link}", "hello")
            await caller.send({"type": "call"})
            await caller.expect("queued")

    async def guide(call_id: str) -> None:
        agent = clients[0]
        await agent.send({"type": "guide_start", "script_id": "elder-mode"})
        await agent.expect("guide_state")

    async def close_all() -> None:
        for c in clients:
            await c.close()

    try:
        with sync_playwright() as pw, browser(pw, viewport=(1920, 1080)) as ctx:
            page = ctx.new_page()
            login(page, server.http, "boss", PASSWORD)
            page.goto(f"{server.http}/admin?lang=zh_CN")
            page.wait_for_function("() => document.getElementById('handled').textContent !== ''")
            assert page.inner_text("#waiting") == "0"
            call_id = server.call(agent_takes_a_call())
            server.call(two_more_callers())
            # The websocket `line` update moves the big number (no reload).
            page.wait_for_function(
                "() => document.getElementById('waiting').textContent === '2'",
                timeout=10_000 * SLOW,
            )
            page.wait_for_selector(f"tr[data-call-id='{call_id}'] button.watch")
            assert "2" in page.inner_text("#dialects")
            page.click(f"tr[data-call-id='{call_id}'] button.watch")
            page.wait_for_selector("#monitor:not([hidden])")
            assert "王阿姨" in page.inner_text("#monitor-title")
            server.call(guide(call_id))
            page.wait_for_function(
                "() => document.querySelectorAll('#monitor-steps li').length > 0",
                timeout=10_000 * SLOW,
            )
            # What the screenshot and the fit check need: charts loaded and fonts in place.
            page.wait_for_function(
                "() => [...document.images].every(i => i.complete) && document.fonts.status === 'loaded'",
                timeout=10_000 * SLOW,
            )
            screenshot(page, "admin-wallboard-1920")
            assert page.evaluate(FIGURES_FIT) == []
            entries = [e["action"] for e in audit.entries(server.db)]
            assert "monitor_call" in entries
            page.set_viewport_size({"width": 1280, "height": 800})
            screenshot(page, "admin-wallboard-1280")
            assert page.evaluate(FIGURES_FIT) == []
            page.goto(f"{server.http}/admin/reports?lang=zh_CN")
            page.wait_for_function(
                "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
            )
            screenshot(page, "admin-reports-1280")
            page.goto(f"{server.http}/admin/calls?lang=zh_CN")
            screenshot(page, "admin-calls-1280")
            page.goto(f"{server.http}/admin/calls/{last}?lang=zh_CN")
            page.wait_for_selector("#timeline li")
            page.click("#show-transcript")
            page.wait_for_selector("#transcript li")
            assert "6222020200112233445" not in page.inner_text("#transcript")
            assert "3445" in page.inner_text("#transcript")
            screenshot(page, "admin-call-1280")
            page.goto(f"{server.http}/admin/manage?lang=zh_CN")
            screenshot(page, "admin-manage-1280")
    finally:
        server.call(close_all())
