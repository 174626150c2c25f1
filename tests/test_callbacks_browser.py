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
            page.click('label.choice:has-text("粤语")')
            page.wait_for_function("document.querySelectorAll('#slots .hour').length > 0")
            page.click('label.choice:has-text("防诈骗")')
            page.fill("#note", "最近总接到陌生电话")
            first = page.locator("#slots details[open] .hour").first
            first.click()
            assert page.locator("#chosen").inner_text().strip() != ""
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
