"""Family booking out of the box: the demo's shifts make it work, the form says at once
whether helpers are scheduled or fully booked, the next free time is preselected, and the
form fits a phone (360 px) in at most three screens."""

from __future__ import annotations

import argparse
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline import cli
from hotline.db import agents as agents_db
from hotline.db import callbacks as store
from hotline.db import now
from tests import a11y
from tests.browser import browser, screenshot
from tests.support import ServerThread
from tests.test_call_ws import make_server

pytestmark = pytest.mark.browser

SCREENS = 3


def test_demo_family_form_works_and_fits_three_screens(server: ServerThread) -> None:
    from playwright.sync_api import sync_playwright

    cli._demo(argparse.Namespace(), server.cfg)  # the README's first command
    assert store.shifts(server.db), "the demo creates shifts"
    with sync_playwright() as p, browser(p, viewport=(360, 740), bypass_csp=True) as ctx:
        page = ctx.new_page()
        page.goto(f"{server.http}/family?lang=zh_CN")
        screenshot(page, "family-form-360")
        # The next free hour is chosen already; nothing else had to be filled in to see it.
        chosen = page.input_value("#slot")
        first = page.evaluate("() => document.querySelector('#slot option').value")
        assert chosen == first != ""
        height = page.evaluate("() => document.scrollingElement.scrollHeight")
        assert height <= SCREENS * 740, f"form is {height} px tall at 360 px"
        assert a11y.problems(page) == []
        assert a11y.broken_words(page) == []
        assert a11y.axe_violations(page) == []
        # A language nobody on shift speaks says so at once, before any field is filled in.
        page.select_option("#dialect", "nan")
        page.wait_for_selector("#slots:not([aria-busy]) [data-availability=no_helpers]")
        assert "还没有排班" in page.inner_text("#slots")
        screenshot(page, "family-no-helpers-360")
        assert a11y.problems(page) == [] and a11y.axe_violations(page) == []
        page.select_option("#dialect", "ko")
        page.wait_for_selector("#slots:not([aria-busy]) #slot")
        # Book with the defaults: name, phone, topic, contact; the time as preselected.
        page.fill("input[name=name]", "김할머니")
        page.fill("input[name=phone]", "13987654321")
        page.click('label.choice:has-text("手机设置")')
        page.fill("input[name=contact]", "son@example.com")
        page.click("#submit")
        page.wait_for_selector("#booking-code")
        screenshot(page, "family-booked-fit-360")
        (booking,) = store.all_bookings(server.db)
        assert booking.dialect == "ko" and booking.status == "booked"
        assert a11y.problems(page) == [] and a11y.axe_violations(page) == []


@pytest.fixture
def no_capacity(tmp_path: Path) -> Iterator[ServerThread]:
    yield from make_server(tmp_path, callback_per_agent_hour=0)


def test_no_helpers_scheduled_and_fully_booked_are_different(
    server: ServerThread, no_capacity: ServerThread
) -> None:
    def form(srv: ServerThread) -> str:
        with urllib.request.urlopen(f"{srv.http}/family?lang=zh_CN", timeout=30) as r:
            return r.read().decode()

    html = form(server)  # no shift at all
    status = re.search(r'data-availability="(\w+)">([^<]*)<', html)
    assert status and status.group(1) == "no_helpers" and "还没有排班" in status.group(2)
    agent = agents_db.add(no_capacity.db, "ann", "pw", ["cmn"])
    for day in range(1, 8):
        store.add_shift(no_capacity.db, agent.id, day, 0, 24, now())
    html = form(no_capacity)  # helpers on shift, but no room left
    status = re.search(r'data-availability="(\w+)">([^<]*)<', html)
    assert status and status.group(1) == "full" and "约满" in status.group(2)
