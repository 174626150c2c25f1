"""Live captions in the agent's console while a senior speaks into a real chromium call."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from hotline.db import agents as agents_db
from hotline.db import elders as elders_db
from tests.asr_helpers import file_decode_text, make_speech_wav
from tests.browser import browser, login, place_call, screenshot
from tests.support import SLOW, ServerThread, test_config, wait_until

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent


def planted_registry(tmp: Path, words: list[str]) -> Path:
    """A copy of the dialect registry whose Korean fraud phrases include `words`."""
    folder = tmp / "dialect_models"
    shutil.copytree(ROOT / "dialect_models", folder)
    path = folder / "registry.toml"
    text = path.read_text(encoding="utf-8")
    planted = ", ".join(f'"{w}"' for w in words)
    text = re.sub(
        r"(\[dialects\.ko\][^\[]*?alerts\.fraud = \[)", rf"\g<1>{planted}, ", text, flags=re.S
    )
    path.write_text(text, encoding="utf-8")
    return path


def test_agent_reads_live_captions_and_sees_alert(tmp_path: Path) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    speech = make_speech_wav("주문을 찾을 수 없어요 환불을 받고 싶어요", tmp_path / "s.wav")
    padded = tmp_path / "speech.wav"
    import subprocess

    subprocess.run(["sox", str(speech), str(padded), "pad", "0.3", "1.5"], check=True)
    # The agent's microphone is silent: its caption stream is gated, not decoded, so it does
    # not compete with the caller's for the CPU (chromium's default fake audio is a beep).
    quiet = tmp_path / "quiet.wav"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(quiet), "trim", "0", "5"],
        check=True,
    )
    # Through the call's Opus the model hears this voice differently from the file (see
    # docs/captions.md), so plant every word it heard, short ones too: some always come back.
    heard = sorted(set(file_decode_text(padded).split()) | {"이", "다", "요", "가"})
    assert heard, "the model recognised nothing in the speech file"
    cfg = test_config(
        tmp_path / "data",
        registry_path=planted_registry(tmp_path, heard),
        captions_deterministic=True,
        caption_warm=1,
    )
    srv = ServerThread(cfg)
    try:
        agents_db.add(srv.db, "kim", "pw-kim-123", ["ko"])
        elder = elders_db.add(srv.db, "김할머니", dialect="ko")
        link = elders_db.new_link(srv.db, elder.id)
        with (
            sync_playwright() as p,
            browser(p, audio_file=padded, viewport=(390, 844)) as caller_ctx,
            browser(p, audio_file=quiet) as agent_ctx,
        ):
            agent = agent_ctx.new_page()
            login(agent, srv.http, "kim", "pw-kim-123")
            # The warm-up runs in the background from start (measured on a loaded 2-core
            # machine: 25 s, 75 s beside stress-ng). A call placed before it ends gets a cold
            # recognizer (~4x the CPU at first) while the warm-up holds a core: the caption
            # stream fell behind, dropped audio and gave no final in 30 s. Wait for the pool.
            engine = srv.running.captions.engine
            wait_until(lambda: engine.idle_recognizers("ko") >= 1, 150, "a warm ko recognizer")
            caller = caller_ctx.new_page()
            place_call(caller, agent, srv.http, link.token)
            agent.wait_for_selector("#captions-status[data-state=on]", timeout=30_000 * SLOW)
            agent.wait_for_selector("#captions .cap-partial", timeout=30_000 * SLOW)
            try:
                agent.wait_for_selector("#captions .cap-final", timeout=30_000 * SLOW)
            except PlaywrightTimeout:  # say why: dropped audio (behind) or no endpoint
                stats = srv.run(srv.running.captions.stats)
                raise AssertionError(f"no final caption; caption streams: {stats}") from None
            agent.wait_for_selector("#alert-banner:not([hidden])", timeout=60_000 * SLOW)
            assert agent.get_attribute("#alert-banner", "data-category") == "fraud"
            screenshot(agent, "captions-agent-1280")
    finally:
        srv.stop()
