"""A cold transfer to a busy colleague, seen in real chromiums (elder, first agent): the first
agent's console goes to wrap-up saying the call waits for the colleague, the elder's page
stays in the call and says, big and aloud, that they are first in line for them. The
colleague (a websocket console here: only their ring is looked at) is rung with the note
once they are free."""

from __future__ import annotations

import pytest

from hotline.db import agents as agents_db
from hotline.db import elders as elders_db
from tests.a11y import problems
from tests.browser import browser, login, place_call, screenshot
from tests.support import SLOW, Client, ServerThread
from tests.test_call_ws import agent_url

pytestmark = pytest.mark.browser

CONSOLE_FLOOR = {"min_text": 16, "min_target": 32, "min_contrast": 4.5}


def test_cold_transfer_waits_for_a_busy_colleague_in_the_browser(server: ServerThread) -> None:
    from playwright.sync_api import sync_playwright

    agents_db.add(server.db, "kim", "pw-kim-123", ["cmn"], display_name="小金")
    lee = agents_db.add(server.db, "lee", "pw-lee-123", ["cmn"], display_name="小李")
    elder = elders_db.add(server.db, "张阿姨", dialect="cmn")
    link = elders_db.new_link(server.db, elder.id)

    async def open_lee() -> Client:
        client = await Client.open(agent_url(server, lee.id))
        await client.expect("hello")  # signed in, away: a colleague who is not free
        return client

    lee_console = server.call(open_lee())
    try:
        with (
            sync_playwright() as p,
            browser(p, viewport=(390, 844)) as caller_ctx,
            browser(p) as agent_ctx,
        ):
            first, caller = agent_ctx.new_page(), caller_ctx.new_page()
            login(first, server.http, "kim", "pw-kim-123")
            call_id = place_call(caller, first, server.http, link.token)
            first.click("#transfer-open")
            first.wait_for_selector(
                f"#transfer-target option[value='agent:{lee.id}']", state="attached"
            )
            first.select_option("#transfer-target", f"agent:{lee.id}")
            first.fill("#transfer-note-input", "她要改地址")
            first.click("#transfer-send")
            first.wait_for_selector("body[data-phase=wrap_up]", timeout=10_000 * SLOW)
            assert "小李 正忙" in first.inner_text("#call-title")
            assert problems(first, **CONSOLE_FLOOR) == []
            screenshot(first, "console-transfer-waiting")
            caller.wait_for_selector("#app[data-hold]", timeout=10_000 * SLOW)
            assert "最前面" in caller.inner_text("#call-note")
            assert "小金" not in caller.inner_text("#agent-line")  # the first agent has left
            screenshot(caller, "caller-transfer-waiting-390")

            async def lee_free() -> dict:
                await lee_console.send({"type": "status", "status": "available"})
                return await lee_console.expect("ring", call_id=call_id)

            ring = server.call(lee_free())
            assert ring["kind"] == "transfer" and ring["transfer"]["note"] == "她要改地址"
            assert ring["transfer"]["from"] == "小金"
    finally:
        server.call(lee_console.close())
