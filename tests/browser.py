"""Debian chromium driven by Playwright, with fake camera and a WAV file as the microphone."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support import SLOW

CHROMIUM = "/usr/bin/chromium"
BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

# Measures the energy a page receives from its remote peer, through WebAudio.
REMOTE_ENERGY_JS = """
async () => {
  const s = window.hotline && window.hotline.peer && window.hotline.peer.remote;
  if (!s || s.getAudioTracks().length === 0) return -1;
  const ctx = new AudioContext();
  await ctx.resume();
  const src = ctx.createMediaStreamSource(s);
  const an = ctx.createAnalyser();
  an.fftSize = 2048;
  src.connect(an);
  const buf = new Float32Array(an.fftSize);
  let peak = 0;
  for (let i = 0; i < 20; i++) {
    await new Promise(r => setTimeout(r, 50));
    an.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    peak = Math.max(peak, Math.sqrt(sum / buf.length));
  }
  ctx.close();
  return peak;
}
"""


def make_wav(path: Path, text: str, voice: str = "en", seconds_of_silence: float = 0.0) -> Path:
    """Speech from espeak-ng as 16 kHz mono s16 (what chromium's fake capture accepts)."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True)
    cmd = ["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path)]
    if seconds_of_silence:
        cmd += ["pad", "0", str(seconds_of_silence)]
    subprocess.run(cmd, check=True)
    raw.unlink()
    return path


@contextmanager
def browser(
    playwright: Any,
    *,
    audio_file: Path | None = None,
    viewport: tuple[int, int] = (1280, 800),
    extra_args: list[str] | None = None,
    autoplay: bool = True,
    bypass_csp: bool = False,
) -> Iterator[Any]:
    """A fresh chromium profile (persistent context), closed afterwards.

    autoplay=False keeps a real browser's rule (no sound before the first tap on a page);
    bypass_csp lets a test inject axe-core past the pages' strict CSP."""
    args = list(BASE_ARGS) + list(extra_args or [])
    if not autoplay:
        args.remove("--autoplay-policy=no-user-gesture-required")
        args.append("--autoplay-policy=user-gesture-required")
    if audio_file is not None:
        args.append(f"--use-file-for-fake-audio-capture={audio_file}")
    with tempfile.TemporaryDirectory(prefix="hotline-chromium-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=args,
            viewport={"width": viewport[0], "height": viewport[1]},
            permissions=["camera", "microphone"],
            bypass_csp=bypass_csp,
        )
        try:
            yield context
        finally:
            context.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page: Any, base: str, username: str, password: str) -> None:
    """Sign in at /agent and wait for the console to be connected (status away); a
    supervisor lands on the wallboard instead."""
    page.goto(f"{base}/agent")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("#status[data-status=away], body.admin-page", timeout=10_000 * SLOW)


def tap_call(caller: Any) -> None:
    """The big button; returns once the caller is in line (or already in a call).

    The page first explains by voice what the phone will ask (a few seconds), then asks for
    the camera and microphone and calls."""
    # The button is in the HTML before the page's module has run and wired it: a click before
    # that does nothing (seen when the module graph loaded slowly). window.hotline is set by it.
    caller.wait_for_function("() => window.hotline !== undefined", timeout=20_000 * SLOW)
    caller.click("#call")
    caller.wait_for_function(
        "() => ['waiting', 'incall'].includes(window.hotline.screen)", timeout=20_000 * SLOW
    )


def place_call(caller: Any, agent: Any, base: str, link_token: str) -> str:
    """The agent takes calls, the caller taps once, the agent answers; returns the call id."""
    agent.click("#available")
    agent.wait_for_selector("#status[data-status=available]")
    caller.goto(f"{base}/c/{link_token}")
    caller.wait_for_selector("#call")
    tap_call(caller)
    agent.wait_for_selector("#ring:not([hidden])", timeout=15_000 * SLOW)
    agent.click("#accept")
    for page in (caller, agent):
        page.wait_for_function(
            "() => document.getElementById('remote').videoWidth > 0", timeout=20_000 * SLOW
        )
    return caller.evaluate("() => window.hotline.callId")
