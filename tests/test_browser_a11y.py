"""The senior's pages meet the bar: text >= 24 px, contrast >= 7:1, targets >= 64 px, on a phone."""

from __future__ import annotations

import pytest

from hotline.db import elders as elders_db
from tests.a11y import problems
from tests.browser import browser, screenshot

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", [360, 1280])
def test_caller_pages_meet_the_bar(server, width: int) -> None:
    from playwright.sync_api import sync_playwright

    elder = elders_db.add(server.db, "李奶奶", dialect="yue")
    link = elders_db.new_link(server.db, elder.id)
    revoked = elders_db.new_link(server.db, elder.id)
    elders_db.revoke_link(server.db, revoked.token)
    pages = {
        "one-tap": f"/c/{link.token}",
        "generic": "/call",
        "home": "/",
        "revoked": f"/c/{revoked.token}",
        "unknown": "/c/nope",
    }
    with sync_playwright() as p, browser(p, viewport=(width, 740)) as ctx:
        page = ctx.new_page()
        for name, path in pages.items():
            page.goto(server.http + path)
            page.wait_for_load_state("networkidle")
            screenshot(page, f"a11y-{name}-{width}")
            found = problems(page)
            assert found == [], f"{name}: {found}"
        # The waiting screen too (shown as the caller would see it).
        page.goto(server.http + f"/c/{link.token}")
        page.evaluate(
            "() => { for (const id of ['idle','waiting','incall','ended'])"
            " document.getElementById(id).hidden = id !== 'waiting';"
            " document.getElementById('position').textContent = '您前面还有 3 位';"
            " document.getElementById('eta').textContent = '大约 6 分钟'; }"
        )
        screenshot(page, f"a11y-waiting-{width}")
        assert problems(page) == []
