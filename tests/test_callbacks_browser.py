"""A family member books a callback on a phone-sized chromium and downloads the .ics."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.db import agents as agents_db
from hotline.db import callbacks as store
from hotline.db import now
from tests import a11y
from tests.browser import browser, screenshot
from tests.support import ServerThread

pytestmark = pytest.mark.browser


def test_family_books_on_a_phone_and_gets_the_calendar_file(
    server: ServerThread, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    agent = agents_db.add(server.db, "ann", "pw", ["cmn", "yue"])
    with server.db.transaction():
        for day in range(1, 8):
            store.add_shift(server.db, agent.id, day, 0, 24, now())
    with sync_playwright() as pw:
        with browser(pw, viewport=(1280, 900)) as ctx:
            page = ctx.new_page()
            page.goto(f"{server.http}/family?lang=zh_CN")
            screenshot(page, "family-1280")
        with browser(pw, viewport=(360, 740)) as ctx:
            page = ctx.new_page()
            page.goto(f"{server.http}/family?lang=zh_CN")
            screenshot(page, "family-360")
            assert a11y.problems(page) == []
            page.fill("input[name=name]", "张阿姨")
            page.fill("input[name=phone]", "138 1234 5678")
            first = page.input_value("#slot")
            page.select_option("#dialect", "yue")
            page.wait_for_selector("#slots:not([aria-busy]) #slot")
            assert page.input_value("#slot") == first  # the next free hour stays chosen
            page.click('label.choice:has-text("防诈骗")')
            page.click("details.note summary")
            page.fill("#note", "最近总接到陌生电话")
            page.fill("input[name=contact]", "son@example.com")
            page.click("#submit")
            page.wait_for_selector("#booking-code")
            screenshot(page, "family-booked-360")
            code = page.inner_text("#booking-code")
            (b,) = store.all_bookings(server.db)
            assert b.code == code and b.dialect == "yue" and b.status == "booked"
            assert page.locator("#card img").count() == 1
            assert a11y.problems(page) == []
            with page.expect_download() as info:
                page.click("#ics")
            path = tmp_path / "booking.ics"
            info.value.save_as(path)
            text = path.read_text(encoding="utf-8")
            assert text.startswith("BEGIN:VCALENDAR") and code in text


def test_agent_components_claim_and_wrap_up(server: ServerThread) -> None:
    """The panel and the wrap-up form the lead mounts on the console, driven in chromium."""
    from playwright.sync_api import sync_playwright

    from hotline.callbacks.service import CallbackService
    from hotline.db import calls as calls_db
    from hotline.db import elders as elders_db
    from hotline.db import sessions as sessions_db
    from hotline.i18n import subset

    agent = agents_db.add(server.db, "ann", "pw", ["cmn"], display_name="Ann")
    elder = elders_db.add(server.db, "李伯", phone="13712345678")
    svc = CallbackService(server.db, server.services.cfg)
    booking_id = svc.abandoned("call-gone", elder.id)
    calls_db.create(
        server.db, "call-x", elder_id=elder.id, dialect="cmn", kind="inbound", arrived_at=now()
    )
    calls_db.answered(server.db, "call-x", agent.id, now())
    server.db.execute("UPDATE calls SET fraud_flag = 1 WHERE id = 'call-x'")
    sid, csrf = sessions_db.create(server.db, agent.id)
    strings = subset("zh_CN", ("callbacks.", "wrapup.", "family.topic."))
    with sync_playwright() as pw, browser(pw, viewport=(1280, 900)) as ctx:
        ctx.add_cookies([{"name": "hl_session", "value": sid, "url": server.http}])
        page = ctx.new_page()
        page.goto(f"{server.http}/family?lang=zh_CN")
        page.evaluate(
            """async ({csrf, strings}) => {
                document.body.innerHTML = '<div id="p"></div><div id="w"></div>';
                const {mountCallbacksPanel} = await import('/static/js/callbacks-panel.js');
                const {mountWrapup} = await import('/static/js/wrapup.js');
                window.started = null;
                mountCallbacksPanel(document.getElementById('p'),
                    {csrf, strings, onStart: (b) => { window.started = b.id; }});
                mountWrapup(document.getElementById('w'),
                    {csrf, strings, callId: 'call-x', fraud: true});
            }""",
            {"csrf": csrf, "strings": strings},
        )
        page.click(".cb-group-due_now .cb-claim")
        page.click(".cb-show-phone")
        page.wait_for_selector(".cb-phone:has-text('13712345678')")
        page.click(".cb-start")
        assert page.evaluate("window.started") == booking_id
        page.fill("textarea[name=problem]", "有人冒充银行")
        page.click(".wrapup button[type=submit]")  # nothing is pre-selected: outcome first
        page.wait_for_selector(".wu-note:has-text('请选结果')")
        page.select_option("select[name=outcome_code]", "fraud_stopped")
        page.click(".wrapup button[type=submit]")
        page.wait_for_selector(".wu-note:has-text('跟进时间')")
        assert "跟进时间" in page.inner_text(".wu-note")  # fraud call: follow-up time missing
        page.fill("input[name=no_follow_up_reason]", "家人会跟进")
        page.uncheck("input[name=follow_up]")
        page.click(".wrapup button[type=submit]")
        page.wait_for_selector(".wu-note:has-text('小结已保存')")
    assert store.get(server.db, booking_id).claimed_by == agent.id
