"""A family member's page survives the death of the node holding the line: three real
chromiums (elder, agent, family member) on the two other nodes of a three-node cluster are in
one call; after `kill -9` of the holder the family page is taken back into the call by the
new holder (its join link was spent on the dead one) and the mesh of three is made again
(docs/cluster.md, failure story)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser import browser, login, make_wav, place_call, screenshot
from tests.cluster_nodes import Cluster
from tests.support import SLOW, wait_until
from tests.test_family_join_browser import energy_of

pytestmark = pytest.mark.browser

# A page's connection to a party: new since the kill (`window.__old`), and connected.
RENEWED = """([path, old]) => {
  const peer = path.split(".").reduce((o, k) => o && o[k], window);
  return !!peer && peer !== window.__old[old] && peer.pc.connectionState === "connected";
}"""


def remember(page: Any, paths: dict[str, str]) -> None:
    """Keep the page's current connections (by name) to tell new ones from them later."""
    pairs = ", ".join(f"{name}: {path}" for name, path in paths.items())
    page.evaluate(f"() => {{ window.__old = {{ {pairs} }}; }}")


def test_a_family_member_stays_in_the_call_when_the_holder_dies(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    voice = make_wav(tmp_path / "v.wav", "hello, can you hear me " * 30)
    with Cluster(("a", "b", "c")) as cluster:
        holder = cluster.wait_holder()
        elder_node, agent_node = (cluster[n] for n in ("a", "b", "c") if n != holder)
        cluster.add_agent("wang", "pw-wang-123", ["cmn"])
        link = cluster.add_elder("张阿姨", "cmn")
        with (
            sync_playwright() as p,
            browser(p, audio_file=voice, viewport=(390, 844)) as caller_ctx,
            browser(p, audio_file=voice) as agent_ctx,
            browser(p, audio_file=voice, viewport=(390, 844)) as family_ctx,
        ):
            agent, caller, family = (c.new_page() for c in (agent_ctx, caller_ctx, family_ctx))
            login(agent, agent_node.http, "wang", "pw-wang-123")
            place_call(caller, agent, elder_node.http, link)
            agent.click("#family-invite")
            agent.wait_for_function(
                "() => document.getElementById('family-url').value.includes('/j/')"
            )
            token = agent.input_value("#family-url").rsplit("/j/", 1)[1]
            family.goto(f"{elder_node.http}/j/{token}")  # the elder's node: not the holder
            family.click("#join")
            for page, video in ((family, "elder-video"), (family, "agent-video"),
                                (caller, "family-video"), (agent, "family-video")):  # fmt: skip
                page.wait_for_function(
                    f"() => document.getElementById('{video}').videoWidth > 0",
                    timeout=30_000 * SLOW,
                )
            remember(family, {"caller": "window.hotline.peers.caller",
                              "agent": "window.hotline.peers.agent"})  # fmt: skip
            for page in (caller, agent):
                remember(page, {"family": "window.hotline.family"})

            cluster.kill(holder)
            # The new holder takes the page back into the call (a second hello): it offers
            # both parties a new connection, and both answer it (told `family_joined`).
            for page, path, old in (
                (family, "hotline.peers.caller", "caller"),
                (family, "hotline.peers.agent", "agent"),
                (caller, "hotline.family", "family"),
                (agent, "hotline.family", "family"),
            ):
                page.wait_for_function(RENEWED, arg=[path, old], timeout=40_000 * SLOW)
            for party in ("caller", "agent"):
                wait_until(
                    lambda party=party: energy_of(family, f"window.hotline.peers.{party}") > 0.001,
                    20,
                    f"the family member hears the {party} again",
                )
            wait_until(
                lambda: energy_of(caller, "window.hotline.family") > 0.001,
                20,
                "the elder hears the family member again",
            )
            # Still in the call, not thrown out: the videos, the leave button, no error.
            assert family.is_visible("#join-videos") and family.is_visible("#leave")
            assert family.evaluate("() => window.hotline.callId") is not None
            screenshot(family, "cluster-family-after-failover-390")

            agent.click("#hangup")
            family.wait_for_selector("#join-videos", state="hidden", timeout=20_000 * SLOW)
