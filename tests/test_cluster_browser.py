"""What a senior and an agent get when the node holding the line dies mid-call: two real
chromiums on two other nodes of a three-node cluster keep talking, the console keeps its
view of the call, and captions carry on (docs/cluster.md, failure story and taps)."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.asr_helpers import make_speech_wav
from tests.browser import REMOTE_ENERGY_JS, browser, login, screenshot, tap_call
from tests.cluster_nodes import Cluster, Node
from tests.support import SLOW, wait_until

pytestmark = pytest.mark.browser

LEVELS = "() => (window.hotline.levels && window.hotline.levels.caller) || {frames: 0}"
FINALS = "() => document.querySelectorAll('#captions .cap-final.cap-caller').length"


def korean_voice(tmp_path: Path) -> Path:
    """A senior's Korean sentences, then 6 s of silence, as a phone keeps sending after the
    speaker stops (the recogniser needs it to end an utterance). Chromium loops the file."""
    said = make_speech_wav("안녕하세요 도와주세요. 비밀번호를 잊어버렸어요", tmp_path / "said.wav")
    out = tmp_path / "caller.wav"
    subprocess.run(["sox", str(said), str(out), "pad", "0.3", "6"], check=True)
    return out


def quiet_tone(tmp_path: Path) -> Path:
    """The agent's microphone: a tone the senior's page can measure, but under the caption
    gate's floor, so the agent's caption stream does not compete with the caller's for CPU."""
    out = tmp_path / "agent.wav"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(out), "synth", "5", "sine",
         "440", "vol", "0.004"],
        check=True,
    )  # fmt: skip
    return out


def legs(node: Node) -> int | None:
    """The node's own gateway legs, from its /metrics (None while no node holds the line)."""
    try:
        with urllib.request.urlopen(node.http + "/metrics", timeout=10 * SLOW) as r:
            text = r.read().decode()
    except OSError:
        return None
    if not re.search(r"^hotline_live_up 1", text, re.M):
        return None
    found = re.search(r"^hotline_gateway_legs (\S+)$", text, re.M)
    return int(float(found.group(1))) if found else None


def wait_legs(cluster: Cluster, expected: dict[str, int], what: str) -> None:
    """Poll every named node's /metrics until each shows the expected number of legs."""
    seen: dict[str, int | None] = {}

    def check() -> bool:
        seen.update({name: legs(cluster[name]) for name in expected})
        return seen == expected

    try:
        wait_until(check, 30, what, interval=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: gateway legs {seen}, expected {expected}") from None


def wait_finals(agent: Any, cluster: Cluster, more_than: int, what: str) -> None:
    """Poll the console until it shows more of the caller's final captions; a failure says
    how the line holder's caption streams fared (a cold recogniser on a busy machine)."""
    try:
        wait_until(lambda: agent.evaluate(FINALS) > more_than, 90, what, interval=0.25)
    except AssertionError as exc:
        node = next(n for n in cluster.nodes.values() if n.alive)  # any: the holder's snapshot
        with urllib.request.urlopen(node.http + "/metrics", timeout=10 * SLOW) as r:
            streams = [ln for ln in r.read().decode().splitlines() if ln.startswith("hotline_asr")]
        raise AssertionError(f"{exc}; the holder's caption streams: {streams}") from None


def test_a_call_between_two_nodes_survives_the_holders_death(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    voice, tone = korean_voice(tmp_path), quiet_tone(tmp_path)
    with Cluster(("a", "b", "c")) as cluster:
        holder = cluster.wait_holder()
        caller_node, agent_node = (cluster[n] for n in ("a", "b", "c") if n != holder)
        cluster.add_agent("kim", "pw-kim-123", ["ko"])
        link = cluster.add_elder("김할머니", "ko", phone="13812345678")
        with (
            sync_playwright() as p,
            browser(p, audio_file=voice, viewport=(390, 844)) as caller_ctx,
            browser(p, audio_file=tone) as agent_ctx,
        ):
            agent = agent_ctx.new_page()
            login(agent, agent_node.http, "kim", "pw-kim-123")
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
            # Each tap is answered by the node its page's socket is on, not by the holder;
            # the holder hears the caller's through the bus: levels, and captions.
            wait_legs(
                cluster,
                {caller_node.name: 1, agent_node.name: 1, holder: 0},
                "each tap on its own page's node",
            )
            agent.wait_for_function(f"() => ({LEVELS})().frames > 0", timeout=20_000 * SLOW)
            wait_finals(agent, cluster, 0, "the caller's first final caption")
            for page in (caller, agent):
                page.evaluate("() => { window.__peerBefore = window.hotline.peer; }")
            agent.evaluate("() => { window.hotline.levels = null; }")
            finals_before = agent.evaluate(FINALS)

            cluster.kill(holder)
            t_kill = time.monotonic()
            # Both pages are told `connected` again by the new holder and renegotiate (each
            # makes a new peer connection), and re-offer their taps to their own nodes.
            for page in (caller, agent):
                page.wait_for_function(
                    "() => window.hotline.peer && window.hotline.peer !== window.__peerBefore"
                    " && window.hotline.peer.remote"
                    " && window.hotline.peer.remote.getAudioTracks().length > 0",
                    timeout=30_000 * SLOW,
                )
            back_after = time.monotonic() - t_kill
            wait_legs(
                cluster,
                {caller_node.name: 1, agent_node.name: 1},
                "each re-offered tap on its own node (the old leg replaced)",
            )
            # Levels come from the new holder, which knows only the re-offered legs.
            agent.wait_for_function(f"() => ({LEVELS})().frames > 0", timeout=20_000 * SLOW)
            for page, who in ((caller, "the senior hears the agent"), (agent, "and vice versa")):
                wait_until(lambda p=page: p.evaluate(REMOTE_ENERGY_JS) > 0.001, 20, who)
            wait_finals(agent, cluster, finals_before, "a final caption after the failover")
            assert caller.evaluate("() => window.hotline.screen") == "incall"
            assert agent.get_attribute("#status", "data-status") == "in_call"
            screenshot(agent, "cluster-agent-after-failover")
            print(f"both pages renegotiated {back_after:.2f} s after the kill")

            agent.click("#hangup")
            caller.wait_for_function(
                "() => window.hotline.screen === 'ended'", timeout=20_000 * SLOW
            )
            agent.wait_for_selector("#status[data-status=wrap_up]", timeout=20_000 * SLOW)
            wait_legs(
                cluster, {caller_node.name: 0, agent_node.name: 0}, "the taps closed at hang-up"
            )
