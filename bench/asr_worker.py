"""One speech worker's throughput: decoding in threads (`--workers 0`) vs processes.

    .venv/bin/python bench/asr_worker.py --quick     # 4 streams, each mode once (< 60 s)
    .venv/bin/python bench/asr_worker.py             # 8 streams, each mode four times

Each stream is a vosk-server protocol client sending Korean speech in 0.2 s chunks as fast
as the worker answers; the figure is seconds of audio decoded per wall-clock second by all
streams together. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402

from tests.asr_helpers import KO_SENTENCES, make_speech_wav, read_pcm  # noqa: E402
from tests.asr_workers import start_workers  # noqa: E402


async def one(url: str, pcm: bytes) -> None:
    """A vosk-server client: config, 0.2 s chunks each answered, eof."""
    async with connect(url) as ws:
        await ws.send('{"config": {"sample_rate": 16000}}')
        for i in range(0, len(pcm), 6400):
            await ws.send(pcm[i : i + 6400])
            await ws.recv()
        await ws.send('{"eof" : 1}')
        await ws.recv()


async def throughput(url: str, pcm: bytes, streams: int) -> float:
    """Audio seconds per wall second with `streams` clients at once (after one warm-up)."""
    await one(url, pcm)
    t = time.perf_counter()
    await asyncio.gather(*(one(url, pcm) for _ in range(streams)))
    return streams * len(pcm) / 32000 / (time.perf_counter() - t)


def main() -> int:
    """Measure each mode; print figures and the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 streams, one round")
    parser.add_argument("--streams", type=int, default=0)
    args = parser.parse_args()
    streams = args.streams or (4 if args.quick else 8)
    rounds = 1 if args.quick else 4
    tmp = Path(tempfile.mkdtemp(prefix="bench-asr-worker-"))
    pcm = b"".join(
        read_pcm(make_speech_wav(s, tmp / f"s{i}.wav"))[0] for i, s in enumerate(KO_SENTENCES)
    )
    results: dict[str, list[float]] = {"0": [], "2": []}
    for _ in range(rounds):
        for mode in results:
            flags = ("--workers", mode, "--warm", "0", "--max-streams", "16")
            (worker,) = start_workers(tmp / f"w{mode}", 1, *flags, timeout=300)
            try:
                results[mode].append(asyncio.run(throughput(worker.url, pcm, streams)))
            finally:
                worker.stop()
            print(f"decoders={mode}: {results[mode][-1]:.2f} audio s per wall s", flush=True)
    print(
        json.dumps(
            {
                "streams": streams,
                "threads_audio_s_per_s": round(statistics.median(results["0"]), 2),
                "processes_audio_s_per_s": round(statistics.median(results["2"]), 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
