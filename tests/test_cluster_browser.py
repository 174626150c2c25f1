"""What a senior and an agent get when the node holding the line dies mid-call: two real
chromiums on two other nodes of a three-node cluster keep talking, and the console keeps its
view of the call (docs/cluster.md, failure story)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.browser import REMOTE_ENERGY_JS, browser, login, make_wav, screenshot, tap_call
from tests.cluster_nodes import Cluster
from tests.support import SLOW, wait_until

pytestmark = pytest.mark.browser

LEVELS = "() => (window.hotline.levels && window.hotline.levels.caller) || {frames: 0}"


def test_a_call_between_two_nodes_survives_the_holders_death(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    voice = make_wav(tmp_path / "caller.wav", "hello, I cannot find my refund button " * 12)
    with Cluster(("a", "b", "c")) as cluster:
        holder = cluster.wait_holder()
        caller_node, agent_node = (cluster[n] for n in ("a", "b", "c") if n != holder)
        cluster.add_agent("wang", "pw-wang-123", ["cmn"])
        link = cluster.add_elder("张阿姨", "cmn", phone="13812345678")
        with (
            sync_playwright() as p,
            browser(p, audio_file=voice, viewport=(390, 844)) as caller_ctx,
            browser(p) as agent_ctx,
        ):
            agent = agent_ctx.new_page()
            login(agent, agent_node.http, "wang", "pw-wang-123")
            agent.click("#available")
            agent.wait_for_selector("#status[data-status=available]")
            caller = caller_ctx.new_page()
            caller.goto(f"{caller_node.http}/c/{link}")
            tap_call(caller)
            agent.wait_for_selector("#ring:not([hidden])", timeout=20_000 * SLOW)
            agent.click("#accept")
            for page in (caller, agent):
                page.wait_for_function(
                    "() => document.getElementById('remote').videoWidth > 0", timeout=30_000 * SLOW
                )
            # The agent's console hears the caller's tap through the holder's gateway.
            agent.wait_for_function(f"() => ({LEVELS})().frames > 0", timeout=20_000 * SLOW)
            for page in (caller, agent):
                page.evaluate("() => { window.__peerBefore = window.hotline.peer; }")

            cluster.kill(holder)
            t_kill = time.monotonic()
            # Both pages are told `connected` again by the new holder and renegotiate (each
            # makes a new peer connection), and the tap is answered by the new holder.
            for page in (caller, agent):
                page.wait_for_function(
                    "() => window.hotline.peer && window.hotline.peer !== window.__peerBefore"
                    " && window.hotline.peer.remote"
                    " && window.hotline.peer.remote.getAudioTracks().length > 0",
                    timeout=30_000 * SLOW,
                )
            back_after = time.monotonic() - t_kill
            agent.wait_for_function(f"() => ({LEVELS})().frames > 0", timeout=20_000 * SLOW)
            for page, who in ((caller, "the senior hears the agent"), (agent, "and vice versa")):
                wait_until(lambda p=page: p.evaluate(REMOTE_ENERGY_JS) > 0.001, 20, who)
            assert caller.evaluate("() => window.hotline.screen") == "incall"
            assert agent.get_attribute("#status", "data-status") == "in_call"
            screenshot(agent, "cluster-agent-after-failover")
            print(f"both pages renegotiated {back_after:.2f} s after the kill")

            agent.click("#hangup")
            caller.wait_for_function(
                "() => window.hotline.screen === 'ended'", timeout=20_000 * SLOW
            )
            agent.wait_for_selector("#status[data-status=wrap_up]", timeout=20_000 * SLOW)
