"""`hotline asr-worker`: a speech worker speaking the vosk-server websocket protocol.

One worker serves one installed model (the registry's model of `--dialect`), like
vosk-server, so a site can mix our workers with the official `alphacep/kaldi-*` containers.
Each connection is one stream: config frame, binary PCM answered chunk by chunk with vosk's
own partial/final JSON, `{"eof" : 1}` for the last final (hotline/asr/vosk_protocol.py).
Decoding runs in `--workers` forked processes (0: threads of this process, as vosk-server).

Faults stay per stream: a bad frame, a silent client or a dead decoding process closes that
stream with a code and a reason; the worker caps its streams (`--max-streams`) and refuses
more with close 1013. `GET /health` on the same port answers JSON with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from hotline.asr.decoders import (
    AUDIO,
    CLOSE,
    EOF,
    OPEN,
    RESET,
    DecoderGone,
    Decoders,
    ProcessDecoders,
    Recognizers,
    ThreadDecoders,
)
from hotline.asr.vosk_protocol import (
    POLICY,
    SERVER_ERROR,
    TRY_LATER,
    Refused,
    StreamConfig,
    apply_config,
    parse_frame,
)

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 1 << 20  # ~32 s of 16 kHz audio in one frame is more than any client sends


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker listens and how much it takes."""

    host: str = "127.0.0.1"
    port: int = 2700
    max_streams: int = 8
    idle_seconds: float = 30.0


class SpeechWorker:
    """The websocket side of a worker: one stream per connection, decoding in `decoders`."""

    def __init__(self, settings: WorkerSettings, decoders: Decoders, sample_rate: int) -> None:
        self.settings = settings
        self.decoders = decoders
        self.sample_rate = sample_rate
        self.open_streams = 0
        self.served = 0
        self.refused = 0
        self._ids = itertools.count(1)

    async def serve(self, stop: asyncio.Event, ready: Any = None) -> None:
        """Listen until `stop` is set; `ready(port)` is called once listening."""
        from websockets.asyncio.server import serve

        async with serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            max_size=MAX_FRAME_BYTES,
            max_queue=64,  # a client may pipeline chunks; the socket must still read pings
            compression=None,
            process_request=self._health,
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            if ready is not None:
                ready(port)
            await stop.wait()

    async def health(self) -> dict[str, Any]:
        """Load figures for `GET /health`."""
        return {
            "status": "ok",
            "streams": self.open_streams,
            "max_streams": self.settings.max_streams,
            "decoders": self.decoders.load(),
            "decoder_pids": self.decoders.pids(),
            "warm": await self.decoders.warm_idle(),
            "served": self.served,
            "refused": self.refused,
        }

    async def _health(self, connection: Any, request: Any) -> Any:
        if request.path.split("?")[0] != "/health":
            return None  # a websocket upgrade (any other path, as vosk-server)
        response = connection.respond(HTTPStatus.OK, json.dumps(await self.health()) + "\n")
        response.headers["Content-Type"] = "application/json"
        return response

    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        if self.open_streams >= self.settings.max_streams:
            self.refused += 1
            await ws.close(TRY_LATER, f"worker full: {self.settings.max_streams} streams open")
            return
        self.open_streams += 1
        self.served += 1
        sid = next(self._ids)
        opened = False
        try:
            opened = await self._stream(ws, sid)
        except Refused as exc:
            log.info("stream %s refused: %s", sid, exc.reason)
            await ws.close(exc.code, exc.reason)
        except DecoderGone as exc:
            opened = False
            await ws.close(SERVER_ERROR, str(exc))
        except ConnectionClosed:
            pass
        except Exception:  # the boundary: one stream's bug never ends the worker
            log.exception("stream %s failed", sid)
            await ws.close(SERVER_ERROR, "decoding failed")
        finally:
            self.open_streams -= 1
            if opened:
                try:
                    await self.decoders.call(sid, CLOSE)
                except Exception:
                    pass

    async def _stream(self, ws: Any, sid: int) -> bool:
        """Serve one stream until eof; returns True if a recognizer is still open."""
        cfg = StreamConfig(sample_rate=float(self.sample_rate))
        opened = False
        while True:
            try:
                message = await asyncio.wait_for(ws.recv(), self.settings.idle_seconds)
            except TimeoutError:
                raise Refused(POLICY, f"no data for {self.settings.idle_seconds:g} s") from None
            frame = parse_frame(message)
            if frame.kind == "config":
                if opened:
                    raise Refused(POLICY, "config must come before the audio")
                cfg = apply_config(cfg, frame.config or {})
                continue
            if not opened:
                args = (cfg.sample_rate, cfg.words, cfg.max_alternatives, cfg.phrase_list)
                await self.decoders.call(sid, OPEN, args)
                opened = True
            op = {"audio": AUDIO, "reset": RESET, "eof": EOF}[frame.kind]
            answer = await self.decoders.call(sid, op, frame.audio)
            await ws.send(answer)
            if op == EOF:
                return False  # the handler returns: the connection closes normally (1000)


def _warm_speech(sentences: tuple[str, ...] | list[str], voice: str, rate: int) -> bytes:
    """The warm-up sentences spoken by espeak-ng, or b"" when it cannot run."""
    from hotline.asr.warmup import PAUSE_SECONDS, read_resampled

    pause = b"\0" * (int(rate * PAUSE_SECONDS) * 2)
    parts = [pause]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i, text in enumerate(sentences):
                wav = Path(tmp) / f"{i}.wav"
                subprocess.run(
                    ["espeak-ng", "-v", voice, "-w", str(wav), text], check=True, timeout=20
                )
                parts += [read_resampled(wav, rate), pause]
    except (OSError, subprocess.SubprocessError):
        log.warning("warm-up speech could not be made; warming with noise")
        return b""
    return b"".join(parts)


def register(subparsers: Any) -> None:
    """Add the `asr-worker` command to the `hotline` parser."""
    p = subparsers.add_parser("asr-worker", help="serve captions on the vosk-server protocol")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 for a farm)")
    p.add_argument("--port", type=int, default=2700, help="port (0 picks a free one)")
    p.add_argument("--dialect", default="ko", help="dialect whose installed model is served")
    p.add_argument("--workers", type=int, default=2, help="decoding processes (0: threads)")
    p.add_argument("--max-streams", type=int, default=8, help="streams served at once")
    p.add_argument("--idle-seconds", type=float, default=30.0, help="close a silent client")
    p.add_argument(
        "--warm", type=int, default=2, help="recognizers warmed with speech per decoding process"
    )
    p.add_argument(
        "--keep-warm",
        type=int,
        default=None,
        help="warm recognizers kept idle per decoding process (default: --warm; 0: no top-up)",
    )
    p.add_argument(
        "--warm-speech",
        default="",
        help="audio file of speech in the model's language to warm recognizers with "
        "(default: the registry's warm_up sentences spoken by espeak-ng)",
    )
    p.add_argument("--deterministic", action="store_true", help="decode without dither")
    p.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace, cfg: Any) -> int:
    """Load the model, warm recognizers, fork the decoders, serve until SIGTERM/SIGINT."""
    from hotline.asr.pool import RecognizerPool
    from hotline.asr.registry import RegistryError, load_registry
    from hotline.asr.runtime import ModelBroken, ModelCache, RuntimeSettings

    try:
        registry = load_registry(cfg.registry_path)
        dialect = registry.dialect(args.dialect)
    except RegistryError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    spec = registry.model_of(dialect.id)
    if spec is None:
        print(f"error: dialect {dialect.id} has no speech model", file=sys.stderr)
        return 1
    if args.workers < 0 or args.max_streams < 1 or args.warm < 0 or (args.keep_warm or 0) < 0:
        print(
            "error: --workers, --warm and --keep-warm must be >= 0 and --max-streams >= 1",
            file=sys.stderr,
        )
        return 1
    base = RuntimeSettings()
    settings = RuntimeSettings(
        **{**base.__dict__, "deterministic": args.deterministic or spec.deterministic,
           "beam": spec.beam or base.beam}
    )  # fmt: skip
    cache = ModelCache(cfg.models_dir or cfg.data_dir / "models", lambda _spec: settings)
    try:
        cache.get(spec)
    except FileNotFoundError:
        print(
            f"error: model {spec.name} is not installed (hotline models install)", file=sys.stderr
        )
        return 1
    except ModelBroken as exc:
        print(f"error: model {spec.name} failed to load: {exc}", file=sys.stderr)
        return 1
    recognizers = Recognizers(RecognizerPool(cache), spec)
    if args.warm > 0 or args.keep_warm:
        # Warmed before forking: every decoding process starts with these warm recognizers
        # and keeps as many idle (a replacement warms on a niced thread as a stream takes one).
        if args.warm_speech:
            from hotline.asr.warmup import read_resampled

            try:
                speech = read_resampled(Path(args.warm_speech), spec.sample_rate)
            except (OSError, ValueError) as exc:
                print(f"error: --warm-speech {args.warm_speech}: {exc}", file=sys.stderr)
                return 1
        else:
            speech = _warm_speech(dialect.warm_up, dialect.voice, spec.sample_rate)
        recognizers.warm(args.warm, speech, args.keep_warm)
    decoders: Decoders
    if args.workers == 0:
        decoders = ThreadDecoders(recognizers, threads=os.cpu_count() or 1)
    else:
        decoders = ProcessDecoders(recognizers, args.workers)
    worker = SpeechWorker(
        WorkerSettings(args.host, args.port, args.max_streams, args.idle_seconds),
        decoders,
        spec.sample_rate,
    )

    def ready(port: int) -> None:
        print(f"asr-worker {dialect.id} ({spec.name}) listening on ws://{args.host}:{port}",
              flush=True)  # fmt: skip

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await worker.serve(stop, ready)

    try:
        asyncio.run(main())
    finally:
        decoders.close()
    return 0
